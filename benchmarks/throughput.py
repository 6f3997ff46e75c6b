"""Training throughput of PseudoLabelSED: float32 or bfloat16 autocast, eager
or through ``torch.compile``, at the demo's and the ``"cpu"`` recipe's sizes.

Measures the clips per second of ``PseudoLabelSED.fit`` (stage 1, Adam, the
library's own loop) on random 10 s feature maps (1024 x 64), side by side in
one run (the four set-ups alternate, median of the repeats). The second epoch
is timed, so the one-off compilation of the first is not counted. Each fit
runs in a child process, so that a set-up that aborts the interpreter (as
Inductor's compiled backward does on some CPUs) is recorded as such instead
of ending the benchmark. Writes the throughput section of
``docs/benchmarks.md``.

    python -m benchmarks.throughput [--repeats 3]
"""

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time

from benchmarks.common import ROOT, commit, machine, now, replace_section

SIZES = {
    # name: (n_filters, n_blocks, batch_size, n_clips)
    "demo (8 x 1)": (8, 1, 8, 48),
    "cpu recipe (16 x 2)": (16, 2, 16, 48),
}
SETUPS = {
    "float32": ("float32", False),
    "bfloat16": ("bfloat16", False),
    "float32 + compile": ("float32", True),
    "bfloat16 + compile": ("bfloat16", True),
}


def clips_per_second(
    n_filters, dtype, n_clips, batch_size, *, n_blocks=2, compile=False, device="cpu"
):
    """Clips/s of the second training epoch (run in this process)."""
    import numpy as np
    import torch

    from sklearn_sed import PseudoLabelSED

    rng = np.random.default_rng(0)
    X = rng.random((n_clips, 1024, 64), dtype=np.float32)
    y_weak = [["a"] if i % 2 else ["b"] for i in range(n_clips)]
    y_strong = [[(1.0, 3.0, w[0])] for w in y_weak]
    sed = PseudoLabelSED(
        n_filters=n_filters,
        n_blocks=n_blocks,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=batch_size,
        max_epochs=2,
        pseudo_labels=None,
        train_dtype=dtype,
        compile=compile,
        random_state=0,
        device=device,
    )
    sed.fit(X, y_weak, y_strong)
    return n_clips / sed.net_.history[-1, "dur"]


def measure_in_child(size, setup, timeout=900):
    """Run one fit in a child process; clips/s, or why it gave none."""
    n_filters, n_blocks, batch_size, n_clips = SIZES[size]
    dtype, compile = SETUPS[setup]
    args = json.dumps([n_filters, dtype, n_clips, batch_size, n_blocks, compile])
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--one", args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode == 0:
        return float(proc.stdout.strip().splitlines()[-1])
    if proc.returncode < 0:
        return f"killed by {signal.Signals(-proc.returncode).name}"
    last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:80]
    return f"failed (exit {proc.returncode}: {last})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--docs", default=f"{ROOT}/docs/benchmarks.md")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        n_filters, dtype, n_clips, batch_size, n_blocks, compile = json.loads(args.one)
        print(
            clips_per_second(
                n_filters,
                dtype,
                n_clips,
                batch_size,
                n_blocks=n_blocks,
                compile=compile,
            )
        )
        return 0
    header = " | ".join(f"{s} clips/s" for s in SETUPS)
    rows = [
        f"| network | batch | {header} | bfloat16 / float32 | compile / eager "
        "(float32) |",
        "|---|---|" + "---|" * (len(SETUPS) + 2),
    ]
    for size in SIZES:
        results = {name: [] for name in SETUPS}
        for _ in range(args.repeats):
            for name in SETUPS:
                time.sleep(0.5)
                results[name].append(measure_in_child(size, name))
        cells, medians = [], {}
        for name, values in results.items():
            numbers = [v for v in values if isinstance(v, float)]
            failures = sorted({v for v in values if not isinstance(v, float)})
            if numbers and not failures:
                medians[name] = statistics.median(numbers)
                cells.append(f"{medians[name]:.2f}")
            else:
                cells.append(
                    f"{len(values) - len(numbers)} of {len(values)} runs "
                    + "; ".join(failures)
                )

        def ratio(a, b, medians=medians):
            if a in medians and b in medians:
                return f"{medians[a] / medians[b]:.2f}x"
            return "n/a"

        batch = SIZES[size][2]
        rows.append(
            f"| {size} | {batch} | {' | '.join(cells)} | "
            f"{ratio('bfloat16', 'float32')} | "
            f"{ratio('float32 + compile', 'float32')} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "### Training throughput (`benchmarks/throughput.py`)",
            "",
            f"Command: `python -m benchmarks.throughput --repeats {args.repeats}`. "
            f"Commit: {commit()}. Machine: {machine()}. Date: {now()}. "
            "`PseudoLabelSED.fit` "
            "(stage 1, Adam), clips per second of the second epoch, median of "
            f"{args.repeats} alternating runs, each in a child process, nothing "
            "else running. A cell that names a signal is a set-up that killed "
            "the interpreter.",
            "",
            *rows,
        ]
    )
    replace_section(args.docs, "throughput", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
