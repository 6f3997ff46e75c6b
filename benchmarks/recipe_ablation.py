"""Ablation of the "cpu" recipe on the embedded dataset (no files needed).

Each variant is the recipe with one piece changed, trained on the demo's data
(80 training clips of which 40 strong, 20 development clips for the best epoch
and the per-class tuning, 40 test clips), width 8 x 1 block, 12 epochs,
without pseudo labels. ``old`` is the demo's settings before the recipe
(Adam at a constant rate, threshold 0.5, median filter 0.4 s, last epoch).
Prints one line per variant: fit seconds, best epoch, development F1 and
test event-based and segment-based macro F1.

    python benchmarks/recipe_ablation.py            # every variant, ~5 min
    python benchmarks/recipe_ablation.py recipe ema # some of them
"""

import sys
import time

import torch

from sklearn_sed import LogMelExtractor, PseudoLabelSED, make_detector
from sklearn_sed.datasets import make_domestic_soundscapes

COMMON = dict(
    n_filters=8,
    n_blocks=1,
    lr=3e-3,
    max_iter=4,
    random_state=0,
    pseudo_label=False,
    max_epochs=12,
)
OLD = dict(
    optimizer=torch.optim.Adam,
    batch_size=16,
    delta=0.1,
    threshold=0.5,
    median_filter_sec=0.4,
)
VARIANTS = {
    "old": lambda: PseudoLabelSED(**COMMON, **OLD),
    "recipe": lambda: make_detector("cpu", **COMMON, ema_decay=None),
    "ema": lambda: make_detector("cpu", **COMMON, ema_decay=0.99),
    "fp32": lambda: make_detector(
        "cpu", **COMMON, ema_decay=None, train_dtype="float32"
    ),
    "no_augment": lambda: make_detector(
        "cpu",
        **COMMON,
        ema_decay=None,
        time_shift=0.0,
        freq_mask=0,
        filter_augment=0.0,
    ),
    "no_filter_augment": lambda: make_detector(
        "cpu", **COMMON, ema_decay=None, filter_augment=0.0
    ),
    "constant_lr": lambda: make_detector(
        "cpu", **COMMON, ema_decay=None, lr_schedule=None
    ),
}


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        sys.exit(f"error: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    X, y_weak, y_strong = make_domestic_soundscapes(80, random_state=0)
    X_test, _, y_test = make_domestic_soundscapes(40, weak_fraction=0.0, random_state=1)
    X_dev, _, y_dev = make_domestic_soundscapes(20, weak_fraction=0.0, random_state=2)
    ext = LogMelExtractor()
    F, F_test, F_dev = ext.fit_transform(X), ext.transform(X_test), ext.transform(X_dev)
    for name in names:
        sed = VARIANTS[name]()
        validation = {} if name == "old" else {"X_val": F_dev, "y_val": y_dev}
        t = time.perf_counter()
        sed.fit(F, y_weak, y_strong, **validation)
        print(
            f"{name:12s} fit {time.perf_counter() - t:4.0f} s  best epoch "
            f"{sed.best_epoch_}  dev F1 {sed.validation_f1_}  test event F1 "
            f"{100 * sed.score(F_test, y_test):.1f} %  segment F1 "
            f"{100 * sed.score_segments(F_test, y_test):.1f} %",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
