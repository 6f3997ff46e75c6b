"""Eager wins of the training step, side by side: the ResNet's memory layout
(channels-last, the library's, against contiguous NCHW) in float32 and
bfloat16, eager and compiled, and the collate function's share of a step.

One training step of the ``"cpu"`` recipe's network (ResNet 16 x 2, batch 16
of 10 s maps, 1024 x 64; forward, BCE, backward, Adam) is timed in a child
process per set-up (so that a compiled set-up that aborts the interpreter is
recorded, not fatal), median of 12 steps after 3 warm-ups; the set-ups
alternate, ``--repeats`` times. The collate function is the recipe's
augmentation (time shift, frequency masks, FilterAugment) on 16 float16
maps, median of 50 calls. Writes the ``eager_wins`` section of
``docs/benchmarks.md``.

    python -m benchmarks.eager_wins [--repeats 2]
"""

import argparse
import json
import statistics
import sys
import time

from benchmarks.common import ROOT, commit, machine, now, replace_section, run_in_child

#: (dtype, compiled, layout)
SETUPS = [
    (dtype, compiled, layout)
    for dtype, compiled in (("float32", False), ("bfloat16", False), ("bfloat16", True))
    for layout in ("contiguous", "channels_last")
]


#: The ``"cpu"`` recipe's step: (n_filters, n_blocks, batch, n_frames, steps).
FULL = (16, 2, 16, 1024, 12)
#: A check that the script runs, in seconds (``--tiny``: float32 eager only).
TINY = (2, 1, 2, 64, 1)


def median_seconds(fn, calls, warmups=3):
    """Median seconds of ``calls`` calls of ``fn``, after ``warmups`` calls."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_seconds(dtype, compiled, layout, size=FULL):
    """Median seconds of one training step (run in this process)."""
    import torch

    from sklearn_sed.networks.resnet import ResNetSED

    n_filters, n_blocks, batch, n_frames, steps = size
    torch.manual_seed(0)
    module = ResNetSED(n_classes=10, n_filters=n_filters, n_blocks=n_blocks)
    layouts = {
        "contiguous": torch.contiguous_format,
        "channels_last": torch.channels_last,
    }
    module = module.to(memory_format=layouts[layout])
    x = torch.rand(batch, n_frames, 64)
    y = (torch.rand(batch, n_frames // 8, 10) > 0.8).float()
    optimizer = torch.optim.Adam(module.parameters(), 2e-3)
    forward = torch.compile(module) if compiled else module

    def step():
        optimizer.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=dtype == "bfloat16"):
            frames, _ = forward(x)
        loss = torch.nn.functional.binary_cross_entropy(frames.float(), y)
        loss.backward()
        optimizer.step()

    return median_seconds(step, calls=steps)


def collate_seconds(calls=50):
    """Median seconds of the ``"cpu"`` recipe's collate function, 16 maps."""
    import numpy as np
    import torch

    from sklearn_sed.recipes import RECIPES

    collate = RECIPES["cpu"]["augment"].collate(pooling=8)
    rng = np.random.default_rng(0)
    items = [
        (rng.random((1024, 64)).astype(np.float16), {"frames": torch.zeros(128, 10)})
        for _ in range(16)
    ]
    return median_seconds(lambda: collate(items), calls=calls)


def in_child(setup, size=FULL):
    """:func:`step_seconds` in a child process; a string says how it failed."""
    return run_in_child("benchmarks.eager_wins", [*setup, size])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--docs", default=f"{ROOT}/docs/benchmarks.md")
    p.add_argument("--tiny", action="store_true", help="a check in seconds")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(step_seconds(*json.loads(args.one))))
        return 0
    size = TINY if args.tiny else FULL
    setups = [s for s in SETUPS if not args.tiny or s[:2] == ("float32", False)]
    runs = {setup: [] for setup in setups}
    for _ in range(args.repeats):
        for setup in setups:
            time.sleep(0 if args.tiny else 0.5)
            runs[setup].append(in_child(setup, size))
            print(setup, runs[setup][-1], flush=True)
    medians = {}
    rows = [
        "| dtype | compiled | contiguous (s / step) | channels-last (s / step) "
        "| channels-last speed-up |",
        "|---|---|---|---|---|",
    ]
    for setup, values in runs.items():
        numbers = [v for v in values if isinstance(v, float)]
        failed = [v for v in values if not isinstance(v, float)]
        medians[setup] = statistics.median(numbers) if numbers and not failed else None
    for dtype, compiled in dict.fromkeys((d, c) for d, c, _ in setups):
        nchw = medians[(dtype, compiled, "contiguous")]
        nhwc = medians[(dtype, compiled, "channels_last")]

        def cell(value, setup):
            return f"{value:.3f}" if value is not None else ", ".join(runs[setup])

        ratio = f"{nchw / nhwc:.2f}x" if nchw and nhwc else "n/a"
        rows.append(
            f"| {dtype} | {'yes' if compiled else 'no'} | "
            f"{cell(nchw, (dtype, compiled, 'contiguous'))} | "
            f"{cell(nhwc, (dtype, compiled, 'channels_last'))} | {ratio} |"
        )
    collate = collate_seconds()
    text = "\n".join(
        [
            "### Eager wins (`benchmarks.eager_wins`)",
            "",
            "Command: `python -m benchmarks.eager_wins --repeats "
            f"{args.repeats}{' --tiny' if args.tiny else ''}`. "
            f"Commit: {commit()}. Machine: {machine()}. Date: {now()}. One "
            'training step of the `"cpu"` recipe\'s ResNet (16 x 2, batch 16 '
            "of 1024 x 64 maps, Adam), median of 12 steps in a child process "
            f"per set-up, median of {args.repeats} alternating runs, nothing "
            "else running.",
            "",
            *rows,
            "",
            f"The recipe's collate function (augmentation of 16 float16 maps): "
            f"{collate * 1e3:.1f} ms a batch, median of 50 calls.",
        ]
    )
    replace_section(args.docs, "eager_wins", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
