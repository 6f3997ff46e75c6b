"""Seconds per training epoch of the ``"cpu"`` recipe's ResNet with a mean teacher.

The ResNet (16 filters, 2 blocks, batch 16) trains stage 1 with the
DCASE2019 mean teacher (EMA 0.99) in bfloat16 (``--train-dtype``), on random
10 s feature maps (1024 x 64), half of them unlabelled, without validation;
each epoch's seconds come from skorch's history (``dur``). The first epoch includes a
compilation. Run it from two checkouts, alternately, to compare them side by
side; ``docs/benchmarks.md`` says where it was run and what it gave.

    python -m benchmarks.mean_teacher_epoch [--compile] [--clips 96] [--epochs 3]
        [--train-dtype float32]
"""

import argparse
import warnings


def epoch_seconds(n_clips, max_epochs, compile, train_dtype="bfloat16"):
    """Return the seconds of each training epoch (list of float)."""
    import numpy as np
    import torch

    from sklearn_sed import MeanTeacher, make_detector

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.random((n_clips, 1024, 64), dtype=np.float32)
    classes = ["Speech", "Dog", "Cat"]
    y_weak = [[classes[i % 3]] if i % 2 else -1 for i in range(n_clips)]
    sed = make_detector(
        "cpu",
        max_epochs=max_epochs,
        pseudo_labels=None,
        compile=compile,
        train_dtype=train_dtype,
        validation_fraction=None,
        mean_teacher=MeanTeacher(ema_decay=0.99),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no strong clips; a short fit
        sed.fit(X, y_weak)
    return list(sed.net_.history[:, "dur"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compile", action="store_true", help="compile the student")
    p.add_argument("--clips", type=int, default=96)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--train-dtype",
        choices=["bfloat16", "float32"],
        default="bfloat16",
        help="bfloat16 (default) where the CPU has it natively; float32 elsewhere",
    )
    args = p.parse_args(argv)
    seconds = epoch_seconds(args.clips, args.epochs, args.compile, args.train_dtype)
    print(" ".join(f"{s:.2f}" for s in seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
