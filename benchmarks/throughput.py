"""Training throughput of PseudoLabelSED: float32 or bfloat16 autocast, eager
or through ``torch.compile``, and the ``"cpu"`` recipe's default (``"auto"``:
the training probe's choice), at the demo's and the ``"cpu"`` recipe's sizes,
against the machine's measured matmul peaks.

Measures the clips per second of ``PseudoLabelSED.fit`` (stage 1, Adam, the
library's own loop) on random 10 s feature maps (1024 x 64), side by side in
one run (the set-ups alternate, median of the repeats). The second epoch
is timed, so the one-off compilation of the first is not counted. Each fit
runs in a child process, so that a set-up that aborts the interpreter (as
Inductor's compiled backward does on some CPUs) is recorded as such instead
of ending the benchmark. The ``"auto"`` set-ups share one fresh probe cache
per network: the first repeat pays the probe (its one-time cost is
reported), the others read its verdict. GFLOP per training clip are counted
by ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward);
the float32 and bfloat16 peaks are those of a 2048 x 2048 ``torch.matmul``
in the same run. Writes the throughput section of ``docs/benchmarks.md``.

``--isa avx2`` runs every fit and the matmul peaks on the code paths of a CPU
with AVX2 only (ATen and Inductor, oneDNN and MKL limited by
``benchmarks.common.ISA_LIMITS``), on a CPU that has AVX-512; it writes a
section of its own. The code is that of an AVX2-only CPU, the core executing
it is not: its ratios, not its clips per second, stand for such a CPU. On a
CPU with AVX2 only, ``--isa`` is refused (its own code is AVX2 code) and the
figures go to a section of their own as well
(``benchmarks.common.isa_section``). Where the CPU has no native bfloat16
(AVX-512 BF16 or AMX) or is held to AVX2, bfloat16 is not measured.

    python -m benchmarks.throughput [--repeats 3] [--isa avx2] [--size cpu]
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

from benchmarks.common import (
    ISA_LIMITS,
    ROOT,
    check_isa,
    commit,
    isa_held,
    isa_section,
    machine,
    now,
    replace_section,
    run_in_child,
)

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
    # What the training probe may choose: compiled or not, and the dtype too.
    "float32, compile=auto": ("float32", "auto"),
    "auto (dtype and compile)": ("auto", "auto"),
}
AUTO = [name for name, (d, c) in SETUPS.items() if "auto" in (d, c)]


def default_setup():
    """Return the name in :data:`SETUPS` of the ``"cpu"`` recipe's set-up."""
    from sklearn_sed.recipes import RECIPES

    recipe = (RECIPES["cpu"]["train_dtype"], RECIPES["cpu"]["compile"])
    return next(name for name, setup in SETUPS.items() if setup == recipe)


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
    path = sed.training_path_
    probe_seconds = sum(
        v.get("probe_seconds", 0.0) for v in path.probes if not v.get("cached")
    )
    return {
        "clips_per_second": n_clips / sed.net_.history[-1, "dur"],
        "chose": f"{path.train_dtype}{' + compile' if path.compile else ''}",
        "probe_seconds": probe_seconds,
    }


def matmul_peaks(n=2048, repeats=7, dtypes=("float32", "bfloat16")):
    """GFLOP/s of a square ``torch.matmul`` in each of ``dtypes`` (median)."""
    import torch

    peaks = {}
    for name in dtypes:
        dtype = getattr(torch, name)
        a = torch.rand(n, n, dtype=dtype)
        b = torch.rand(n, n, dtype=dtype)
        torch.matmul(a, b)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - started)
        peaks[name] = 2 * n**3 / statistics.median(times) / 1e9
    return peaks


def gflop_per_clip(n_filters, n_blocks):
    """GFLOP of one training clip (forward and backward), 1024 x 64 input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sklearn_sed.networks import ResNetSED

    module = ResNetSED(10, n_filters=n_filters, n_blocks=n_blocks).train()
    x = torch.rand(1, 1024, 64)
    with FlopCounterMode(display=False) as counter:
        frames, clips = module(x)
        (frames.mean() + clips.mean()).backward()
    return counter.get_total_flops() / 1e9


def measure_in_child(size, setup, timeout=1800, cache=None):
    """Run one fit in a child process; its result, or why it gave none."""
    n_filters, n_blocks, batch_size, n_clips = SIZES[size]
    dtype, compile = SETUPS[setup]
    env = {**os.environ, "SKLEARN_SED_PROBE": "on"}
    if cache is not None:
        env["SKLEARN_SED_CACHE_DIR"] = cache
    return run_in_child(
        "benchmarks.throughput",
        [n_filters, dtype, n_clips, batch_size, n_blocks, compile],
        env=env,
        timeout=timeout,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--docs", default=f"{ROOT}/docs/benchmarks.md")
    p.add_argument(
        "--isa",
        choices=["native", *ISA_LIMITS],
        default="native",
        help="instruction set of torch's kernels (default: the CPU's own)",
    )
    p.add_argument(
        "--size",
        choices=["all", "demo", "cpu"],
        default="all",
        help="the networks measured (default: both)",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.one:
        check_isa(args.isa)
    limits = ISA_LIMITS.get(args.isa, {})
    # Before this process's torch starts: the peaks and every child follow it.
    os.environ.update(limits)
    sizes = [s for s in SIZES if args.size == "all" or s.startswith(args.size)]
    # bfloat16 where the code paths have no native bfloat16 is not what such
    # a CPU runs (oneDNN would fall back to its reference kernels here, torch
    # to other ones there): not measured.
    # After the limits: the library's own test reads them (and ATen's level).
    from sklearn_sed.training.fast_path import has_native_bfloat16

    bfloat16 = has_native_bfloat16("cpu")
    active = [n for n in SETUPS if bfloat16 or SETUPS[n][0] != "bfloat16"]
    if args.one:
        n_filters, dtype, n_clips, batch_size, n_blocks, compile = json.loads(args.one)
        result = clips_per_second(
            n_filters, dtype, n_clips, batch_size, n_blocks=n_blocks, compile=compile
        )
        print(json.dumps(result))
        return 0
    default = default_setup()
    # No bfloat16 peak on code paths without native bfloat16: oneDNN's
    # reference kernels (0.4 GFLOP/s, 6 minutes) are no peak.
    peaks = matmul_peaks(dtypes=("float32", "bfloat16") if bfloat16 else ("float32",))
    print(f"matmul peaks: {peaks}", flush=True)
    header = " | ".join(f"{s} clips/s" for s in SETUPS)
    rows = [
        f"| network | batch | GFLOP / clip | {header} | default chose | "
        "probe, once (s) | default / float32 | best / float32 | default "
        f"GFLOP/s (% of {' / '.join(peaks)} matmul peak) |",
        "|---|---|---|" + "---|" * (len(SETUPS) + 5),
    ]
    for size in sizes:
        results = {name: [] for name in active}
        cache = tempfile.mkdtemp(prefix="throughput-probe-")
        for _ in range(args.repeats):
            for name in active:
                time.sleep(0.5)
                results[name].append(
                    measure_in_child(size, name, cache=cache if name in AUTO else None)
                )
        cells, medians = [], {}
        for name in SETUPS:
            if name not in results:
                cells.append("not run (no native bfloat16)")
                continue
            values = results[name]
            numbers = [v["clips_per_second"] for v in values if isinstance(v, dict)]
            # A failure's first sentence: "failed (exit 1: ...Error: ... nan.)"
            failures = sorted(
                {
                    re.sub(r"\.\s[^)]*", ".", v)
                    for v in values
                    if not isinstance(v, dict)
                }
            )
            if numbers and not failures:
                medians[name] = statistics.median(numbers)
                cells.append(f"{medians[name]:.2f}")
            else:
                cells.append(
                    f"{len(values) - len(numbers)} of {len(values)} runs "
                    + "; ".join(failures)
                )
        done = [v for v in results[default] if isinstance(v, dict)]
        chose = sorted({v["chose"] for v in done}) or ["n/a"]
        probe = sum(
            v["probe_seconds"]
            for name in AUTO
            for v in results[name]
            if isinstance(v, dict)
        )

        def ratio(a, b, medians=medians):
            if a in medians and b in medians:
                return f"{medians[a] / medians[b]:.2f}x"
            return "n/a"

        best = max(medians, key=medians.get) if medians else None
        flops = gflop_per_clip(*SIZES[size][:2])
        speed = "n/a"
        if default in medians:
            rate = medians[default] * flops
            shares = " / ".join(f"{100 * rate / peak:.0f} %" for peak in peaks.values())
            speed = f"{rate:.0f} ({shares})"
        batch = SIZES[size][2]
        rows.append(
            f"| {size} | {batch} | {flops:.2f} | {' | '.join(cells)} | "
            f"{', '.join(chose)} | {probe:.0f} | "
            f"{ratio(default, 'float32')} | "
            f"{ratio(best, 'float32') if best else 'n/a'} ({best}) | {speed} |"
        )
        print(rows[-1], flush=True)
    options = f"--repeats {args.repeats}"
    options += f" --isa {args.isa}" if limits else ""
    options += f" --size {args.size}" if args.size != "all" else ""
    limited = isa_held(args.isa, limits)
    marker, title = isa_section("throughput", "### Training throughput", args.isa)
    if marker == "throughput":
        title += " (`benchmarks.throughput`)"
    text = "\n".join(
        [
            title,
            "",
            f"Command: `python -m benchmarks.throughput {options}`. "
            f"Commit: {commit()}. Machine: {machine()}.{limited} Date: {now()}. "
            "`PseudoLabelSED.fit` "
            "(stage 1, Adam), clips per second of the second epoch, median of "
            f"{args.repeats} alternating runs, each in a child process, nothing "
            "else running. A cell that names a signal is a set-up that killed "
            'the interpreter. "default" is the `"cpu"` recipe\'s set-up, '
            f"{default}: what the training probe chose, "
            "and its one-time cost on this machine (every `auto` probe of the "
            'network, summed); "auto (dtype and compile)" lets the probe '
            "choose bfloat16 where the CPU has it, as well as compilation. "
            "Matmul peaks in the same run: "
            + ", ".join(f"{v:.0f} GFLOP/s {k}" for k, v in peaks.items())
            + ".",
            "",
            *rows,
        ]
    )
    replace_section(args.docs, marker, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
