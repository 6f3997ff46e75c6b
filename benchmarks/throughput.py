"""Training throughput of PseudoLabelSED: float32, bfloat16 autocast, and
bfloat16 with ``torch.compile``.

Lever 1 of the detection work: every clip-step saved buys width, depth,
epochs or data. Measures the clips per second of ``PseudoLabelSED.fit``
(stage 1, Adam, the library's own loop) at the CPU recipe's size (width 16 x
2 blocks) and at paper size (64 x 2), in float32, in bfloat16 and in
bfloat16 with ``compile=True``, side by side in one run (alternating, median
of repeats), on random 10 s feature maps (1024 x 64). The second epoch is
timed, so the one-off compilation of the first is not counted. Writes
``docs/recipe.md``'s throughput section.

    python benchmarks/throughput.py
"""

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from _common import ROOT, machine, now, replace_section

from sklearn_sed import PseudoLabelSED


def clips_per_second(
    n_filters, dtype, n_clips, batch_size, seed=0, device="cpu", compile=False
):
    rng = np.random.default_rng(seed)
    X = rng.random((n_clips, 1024, 64), dtype=np.float32)
    y_weak = [["a"] if i % 2 else ["b"] for i in range(n_clips)]
    y_strong = [[(1.0, 3.0, w[0])] for w in y_weak]
    sed = PseudoLabelSED(
        n_filters=n_filters,
        n_blocks=2,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=batch_size,
        max_epochs=2,
        pseudo_label=False,
        train_dtype=dtype,
        compile=compile,
        random_state=seed,
        device=device,
    )
    sed.fit(X, y_weak, y_strong)
    # The second epoch: the first includes one-off set-up (allocations).
    return n_clips / sed.net_.history[-1, "dur"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--docs", default=f"{ROOT}/docs/recipe.md")
    args = p.parse_args(argv)
    rows = [
        "| network | batch | float32 clips/s | bfloat16 clips/s | bfloat16 + "
        "compile clips/s | bfloat16 / float32 | compile / bfloat16 |",
        "|---|---|---|---|---|---|---|",
    ]
    setups = {
        "float32": ("float32", False),
        "bfloat16": ("bfloat16", False),
        "compile": ("bfloat16", True),
    }
    for n_filters, n_clips, batch in ((16, 64, 16), (64, 8, 4)):
        times = {name: [] for name in setups}
        for _ in range(args.repeats):
            for name, (dtype, compile) in setups.items():
                time.sleep(0.5)
                times[name].append(
                    clips_per_second(n_filters, dtype, n_clips, batch, compile=compile)
                )
        f32, b16, comp = (statistics.median(times[n]) for n in setups)
        rows.append(
            f"| ResNet {n_filters} x 2 | {batch} | {f32:.2f} | {b16:.2f} | "
            f"{comp:.2f} | {b16 / f32:.2f}x | {comp / b16:.2f}x |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "### Training throughput (`benchmarks/throughput.py`)",
            "",
            f"Command: `python benchmarks/throughput.py`. Machine: {machine()}. "
            f"Date: {now()}. `PseudoLabelSED.fit` (stage 1, Adam), clips per "
            "second of the second epoch, median of "
            f"{args.repeats} alternating runs, nothing else running.",
            "",
            *rows,
        ]
    )
    replace_section(args.docs, "throughput", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
