"""Speed of sklearn-sed against what a user would otherwise write, side by side.

Every figure is measured in this one run on this machine (medians of repeats):

1. feature extraction: ``LogMelExtractor`` against a per-file librosa loop;
2. training: ``PseudoLabelSED`` against a hand-written PyTorch loop (same
   module, data, batch size, optimizer and loss);
3. inference real-time factor, end to end from audio files;
4. achieved GFLOP/s of the paper-size forward pass against a float32 matmul;
5. post-processing grid search (9 points) against one fit;
6. peak memory of training from a feature store as the clip count grows.

    python -m benchmarks.speed --data /tmp/sed_bench

``--only features`` measures the first alone and writes a section of its
own; with ``--isa avx2`` it runs in a child process whose torch (ATen,
oneDNN, MKL), numpy and OpenBLAS are held to AVX2 code, on a CPU that has
AVX-512: the code of an AVX2-only CPU, whose ratios (not clips per second)
stand for such a CPU. On a CPU with AVX2 only, ``--isa`` is refused (its
own code is AVX2 code) and ``--only features`` writes a section of its own.

    python -m benchmarks.speed --data /tmp/sed_bench --only features --isa avx2
"""

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

import librosa
import numpy as np
import soundfile as sf
import torch

from benchmarks.common import (
    ISA_LIMITS,
    ROOT,
    check_isa,
    commit,
    isa_held,
    isa_in_effect,
    isa_section,
    machine,
    now,
    numpy_isa_limits,
    replace_section,
    require,
)
from benchmarks.records import Record
from sklearn_sed import (
    Augment,
    Decoder,
    LogMelExtractor,
    PseudoLabelSchedule,
    PseudoLabelSED,
)
from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.labels import combine_labels
from sklearn_sed.metrics.scoring import event_f1_scorer
from sklearn_sed.networks.resnet import ResNetSED
from sklearn_sed.pipeline import make_pipeline
from sklearn_sed.training.losses import KIND_STRONG, PseudoLabelLoss


def timed(fn, repeats=3):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def timed_pair(fn_a, fn_b, repeats=5, pause=0.5):
    """Median times of two functions run alternately (A, B, A, B, ...), so that
    both see the same machine state; returns (t_a, out_a, t_b, out_b).

    Each run starts after ``pause`` seconds: BLAS and OpenMP worker threads
    keep spinning for a while after a call, and on 2 cores a run that starts
    while the other side's threads spin is measured up to 2x slow.
    """
    times_a, times_b, out_a, out_b = [], [], None, None
    for _ in range(repeats):
        time.sleep(pause)
        t = time.perf_counter()
        out_a = fn_a()
        times_a.append(time.perf_counter() - t)
        time.sleep(pause)
        t = time.perf_counter()
        out_b = fn_b()
        times_b.append(time.perf_counter() - t)
    return statistics.median(times_a), out_a, statistics.median(times_b), out_b


def librosa_loop(paths, ext):
    """What a user writes by hand with librosa alone: load, mel, log."""
    out = []
    for path in paths:
        y, _ = librosa.load(path, sr=ext.sr, mono=True, duration=ext.duration)
        y = librosa.util.fix_length(y, size=int(ext.duration * ext.sr))
        out.append(_librosa_db(y, ext))
    return np.stack(out)


def plain_loop(paths, ext):
    """The leanest loop by hand: ``soundfile.read`` (the files are 44.1 kHz
    mono 10 s, so no resampling or padding) and librosa's mel spectrogram."""
    out = []
    for path in paths:
        y, _ = sf.read(path, dtype="float32")
        out.append(_librosa_db(y, ext))
    return np.stack(out)


def _librosa_db(y, ext):
    S = librosa.feature.melspectrogram(
        y=y,
        sr=ext.sr,
        n_fft=ext.n_fft,
        hop_length=ext.hop_length,
        win_length=ext.win_length,
        n_mels=ext.n_mels,
        fmin=ext.fmin,
        fmax=ext.fmax,
        power=2.0,
    )
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=ext.top_db).T


def bench_features(paths, repeats=7, pause=1.0):
    """Clips/s of the extractor against the two loops by hand, side by side.

    Alternating runs with ``pause`` seconds before each; the extractor is
    also timed right after the plain loop, with no pause, while numpy's
    BLAS threads still spin from librosa's filter product (about 0.1 s).
    """
    ext = LogMelExtractor(scaling=None)
    ours = ext.fit_transform(paths)  # warm-up (numba, FFT plans, page cache)
    ref = plain_loop(paths, ext)
    librosa_loop(paths, ext)
    runs = {"library": [], "plain": [], "librosa": [], "library_after_plain": []}
    for _ in range(repeats):
        for key, fn in (
            ("library", lambda: ext.fit_transform(paths)),
            ("plain", lambda: plain_loop(paths, ext)),
            ("librosa", lambda: librosa_loop(paths, ext)),
        ):
            time.sleep(pause)
            t = time.perf_counter()
            fn()
            runs[key].append(time.perf_counter() - t)
        time.sleep(pause)
        plain_loop(paths, ext)
        t = time.perf_counter()
        ext.fit_transform(paths)
        runs["library_after_plain"].append(time.perf_counter() - t)
    rate = {k: len(paths) / statistics.median(v) for k, v in runs.items()}
    return {
        "n_files": len(paths),
        "library_clips_per_s": rate["library"],
        "library_after_plain_clips_per_s": rate["library_after_plain"],
        "plain_loop_clips_per_s": rate["plain"],
        "librosa_loop_clips_per_s": rate["librosa"],
        "speedup": rate["library"] / rate["plain"],
        "speedup_after_plain": rate["library_after_plain"] / rate["plain"],
        "speedup_librosa_load": rate["library"] / rate["librosa"],
        "max_abs_diff_db": float(np.abs(ours - ref).max()),
    }


def hand_loop(F, Y, frames, n_filters, epochs, batch_size, lr, seed):
    """Hand-written PyTorch training of the same module with the same loss."""
    torch.manual_seed(seed)
    module = ResNetSED(Y.shape[1], n_filters=n_filters, n_blocks=1)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    crit = PseudoLabelLoss(
        np.full(Y.shape[1], 1 / Y.shape[1]), n_weak=0, n_strong=len(F)
    )
    X_t, Y_t, fr_t = map(torch.as_tensor, (F, Y, frames))
    kind = torch.full((len(F),), KIND_STRONG)
    module.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(F)).split(batch_size):
            y = {"weak": Y_t[idx], "frames": fr_t[idx], "kind": kind[idx]}
            loss = crit(module(X_t[idx]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return module


def bench_training(F, y_strong, n_filters=8, epochs=2, batch_size=16):
    lr = 1e-3
    est = PseudoLabelSED(
        n_filters=n_filters,
        n_blocks=1,
        max_epochs=epochs,
        pseudo_labels=None,
        optimizer=torch.optim.Adam,
        lr=lr,
        batch_size=batch_size,
        class_weight=None,
        classes=DESED_CLASSES,
        random_state=0,
    )
    est.fit(F[:16], None, y_strong[:16])  # warm-up
    from sklearn_sed.labels import events_to_frames

    frames = np.stack(
        [
            events_to_frames(
                ev, classes=est.classes_, n_frames=est.n_frames_out_, duration=10.0
            )
            for ev in y_strong
        ]
    )
    Y = frames.max(axis=1)  # clip labels implied by the events
    hand_loop(F[:16], Y[:16], frames[:16], n_filters, 1, batch_size, lr, 0)  # warm-up
    t_lib, _, t_hand, _ = timed_pair(
        lambda: est.fit(F, None, y_strong),
        lambda: hand_loop(F, Y, frames, n_filters, epochs, batch_size, lr, 0),
    )
    n = len(F) * epochs
    return {
        "n_clips": len(F),
        "epochs": epochs,
        "n_filters": n_filters,
        "library_clips_per_s": n / t_lib,
        "hand_loop_clips_per_s": n / t_hand,
        "overhead_percent": 100 * (t_lib / t_hand - 1),
    }


def bench_inference(paths, F_fit):
    """Real-time factor end to end from files, and of the network alone, in
    float32 and under bfloat16 autocast."""
    out = {}
    for name, kw in (
        ("paper_size", dict(n_filters=64, n_blocks=2)),
        ("benchmark_size", dict(n_filters=8, n_blocks=1)),
    ):
        pipe = make_pipeline(
            LogMelExtractor(),
            PseudoLabelSED(
                **kw,
                max_epochs=0,
                pseudo_labels=None,
                batch_size=8,
                random_state=0,
                classes=DESED_CLASSES,
            ),
        )
        pipe.fit(paths[:4], [["Dog"]] * 4)
        out[name] = {"n_files": len(paths)}
        for dtype in ("float32", "bfloat16"):
            pipe[-1].set_params(inference_dtype=dtype)
            pipe.predict_frames(paths[:2])  # warm-up
            t, _ = timed(lambda pipe=pipe: pipe.predict_events(paths), repeats=3)
            t_net, _ = timed(
                lambda pipe=pipe: pipe[-1].predict_frames(F_fit[:8]), repeats=3
            )
            suffix = "" if dtype == "float32" else "_bf16"
            out[name][f"real_time_factor{suffix}"] = len(paths) * 10.0 / t
            out[name][f"network_only_real_time_factor{suffix}"] = 8 * 10.0 / t_net
    return out


def bench_bf16_accuracy(F, y_weak, y_strong, F_valid, y_valid, epochs=8):
    """Event and segment F1 of one trained benchmark-size model on the
    validation soundscapes, float32 against bfloat16 inference.

    Trained as in Table 1 (Adam, augmentation, paper class weights); the
    decision threshold is the one of (0.1, ..., 0.6) that maximises the
    float32 event F1 (which can only favour float32), then used for both.
    """
    est = PseudoLabelSED(
        n_filters=8,
        n_blocks=1,
        max_epochs=epochs,
        pseudo_labels=None,
        optimizer=torch.optim.Adam,
        lr=2e-3,
        batch_size=16,
        augment=Augment(time_shift=0.3, freq_mask=8),
        decoder=Decoder(median_filter_sec=0.5),
        classes=DESED_CLASSES,
        random_state=0,
    ).fit(F, y_weak, y_strong)
    scores = {
        thr: est.set_params(decoder__threshold=thr).score(F_valid, y_valid)
        for thr in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    }
    threshold = max(scores, key=scores.get)
    est.set_params(decoder__threshold=threshold)
    out = {
        "n_train": len(F),
        "n_valid": len(F_valid),
        "epochs": epochs,
        "threshold": threshold,
    }
    frames = {}
    for dtype in ("float32", "bfloat16"):
        est.set_params(inference_dtype=dtype)
        out[dtype] = {
            "event_f1": est.score(F_valid, y_valid),
            "segment_f1": est.score_segments(F_valid, y_valid),
        }
        frames[dtype] = est.predict_frames(F_valid)
    diff = np.abs(frames["float32"] - frames["bfloat16"])
    out["max_abs_prob_diff"] = float(diff.max())
    flips = (frames["float32"] > threshold) != (frames["bfloat16"] > threshold)
    out["frame_decisions_changed_percent"] = 100 * float(flips.mean())
    out["event_f1_diff_points"] = 100 * (
        out["bfloat16"]["event_f1"] - out["float32"]["event_f1"]
    )
    return out


def bench_flops():
    from torch.utils.flop_counter import FlopCounterMode

    net = ResNetSED(10, n_filters=64, n_blocks=2).eval()
    x = torch.rand(4, 1024, 64)
    with torch.inference_mode():
        net(x)
        with FlopCounterMode(display=False) as counter:
            net(x)
        flops = counter.get_total_flops()
        t, _ = timed(lambda: net(x), repeats=3)
        a, b = torch.rand(4096, 4096), torch.rand(4096, 4096)
        torch.mm(a, b)
        t_mm, _ = timed(lambda: torch.mm(a, b), repeats=5)
    peak = 2 * 4096**3 / t_mm / 1e9
    achieved = flops / t / 1e9
    return {
        "forward_gflop_per_clip": flops / 4 / 1e9,
        "achieved_gflops": achieved,
        "matmul_peak_gflops": peak,
        "fraction_of_peak": achieved / peak,
    }


def bench_grid(F, y_weak, y_strong, cache):
    from sklearn.model_selection import GridSearchCV

    n = len(F)
    split = [(np.arange(0, n * 3 // 4), np.arange(n * 3 // 4, n))]
    params = dict(
        n_filters=8,
        n_blocks=1,
        max_epochs=2,
        pseudo_labels=PseudoLabelSchedule(max_iter=1),
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=16,
        random_state=0,
    )
    tr = split[0][0]
    t_fit, _ = timed(
        lambda: PseudoLabelSED(**params).fit(
            F[tr], [y_weak[i] for i in tr], [y_strong[i] for i in tr]
        ),
        repeats=1,
    )
    grid = GridSearchCV(
        PseudoLabelSED(**params, decoder=Decoder(), memory=cache),
        {"decoder__threshold": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]},
        cv=split,
        scoring=event_f1_scorer,
        refit=False,
    )
    t_grid, _ = timed(lambda: grid.fit(F, combine_labels(y_weak, y_strong)), repeats=1)
    return {"one_fit_s": t_fit, "grid_9_points_s": t_grid, "ratio": t_grid / t_fit}


def bench_memory(counts, folder):
    out = {}
    for n in counts:
        res = subprocess.run(
            [
                *(sys.executable, "-m", "benchmarks.memory", "--n-clips", str(n)),
                *("--folder", folder, "--json"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        out[str(n)] = float(res.stdout.strip().splitlines()[-1])
    return out


def features_only(args, audio, argv):
    """``--only features``: the extraction against the loops, its own section.

    With a limited ``--isa``, runs itself again in a child process whose
    environment holds every library to it (numpy reads its limit at import,
    which this process has done).
    """
    limits = {**ISA_LIMITS.get(args.isa, {}), **numpy_isa_limits(args.isa)}
    if limits and any(os.environ.get(k) != v for k, v in limits.items()):
        argv = sys.argv[1:] if argv is None else list(argv)
        env = {**os.environ, **limits}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (ROOT, env.get("PYTHONPATH")) if p
        )
        cmd = [sys.executable, "-m", "benchmarks.speed", *argv]
        return subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode
    paths = sorted(glob.glob(os.path.join(audio, "*.wav")))[: args.n_files]
    r = bench_features(paths, repeats=args.repeats)
    options = f"--only features{f' --isa {args.isa}' if limits else ''}"
    options += f" --repeats {args.repeats}" if args.repeats != 7 else ""
    held = isa_held(args.isa, limits, isa_in_effect()) if limits else ""
    marker, title = isa_section(
        "speed_features", "### Log-mel extraction against a librosa loop", args.isa
    )
    text = f"""{title}

Command: `python -m benchmarks.speed {options}`. Commit: {commit()}. Machine: {machine()}.{held} Date: {now()}. {r["n_files"]} files of 10 s, medians of {args.repeats} alternating runs (library, plain loop, librosa loop, plain loop then library at once; 1 s pause before each), nothing else running.

| what | clips/s | the library against it |
|---|---|---|
| `LogMelExtractor` | {r["library_clips_per_s"]:.1f} | |
| `soundfile.read` + `librosa.feature.melspectrogram` (the plain loop) | {r["plain_loop_clips_per_s"]:.1f} | **{r["speedup"]:.2f}x** (bar: 3x); max difference {r["max_abs_diff_db"]:.2g} dB |
| `librosa.load` + `librosa.feature.melspectrogram` | {r["librosa_loop_clips_per_s"]:.1f} | {r["speedup_librosa_load"]:.2f}x |
| `LogMelExtractor` right after the plain loop (its BLAS threads still spinning) | {r["library_after_plain_clips_per_s"]:.1f} | {r["speedup_after_plain"]:.2f}x the plain loop |
"""
    replace_section(args.docs, marker, text)
    print(text)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/sed_bench")
    p.add_argument("--n-files", type=int, default=32)
    p.add_argument("--memory-clips", type=int, nargs="+", default=[200, 800, 3200])
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="alternating runs of the extraction's timings (default: 7)",
    )
    p.add_argument(
        "--only",
        choices=["all", "features"],
        default="all",
        help="measure every figure (default) or the log-mel extraction alone",
    )
    p.add_argument(
        "--isa",
        choices=["native", *ISA_LIMITS],
        default="native",
        help="instruction set of torch's, numpy's and OpenBLAS's kernels "
        "(default: the CPU's own; needs --only features)",
    )
    args = p.parse_args(argv)
    if args.isa != "native" and args.only != "features":
        p.error("--isa needs --only features")
    check_isa(args.isa)
    audio = require(
        os.path.join(args.data, "audio", "strong"),
        "benchmark data (run benchmarks/make_data.py first)",
    )
    if args.only == "features":
        return features_only(args, audio, argv)
    from sklearn_sed.datasets import load_desed

    X, y_weak, y_strong = load_desed(
        audio, os.path.join(args.data, "metadata", "strong.tsv")
    )
    paths = sorted(glob.glob(os.path.join(audio, "*.wav")))[: args.n_files]
    results = {"machine": machine(), "date": now()}
    t0 = time.perf_counter()
    results["features"] = bench_features(paths, repeats=args.repeats)
    print("features", results["features"], flush=True)
    ext = LogMelExtractor()
    F_all = ext.fit_transform(X)
    F = F_all[:64]
    results["training"] = bench_training(F, y_strong[:64])
    print("training", results["training"], flush=True)
    results["inference"] = bench_inference(paths[:8], F)
    print("inference", results["inference"], flush=True)
    X_valid, _, y_valid = load_desed(
        os.path.join(args.data, "audio", "validation"),
        os.path.join(args.data, "metadata", "validation.tsv"),
    )
    results["bf16_accuracy"] = bench_bf16_accuracy(
        F_all, y_weak, y_strong, ext.transform(X_valid), y_valid
    )
    print("bf16 accuracy", results["bf16_accuracy"], flush=True)
    results["flops"] = bench_flops()
    print("flops", results["flops"], flush=True)
    half = [None if i % 2 else s for i, s in enumerate(y_strong[:64])]
    # A fresh cache: a network cached by an earlier run would skip training.
    with tempfile.TemporaryDirectory(prefix="sed-grid-") as cache:
        results["grid"] = bench_grid(F, y_weak[:64], half, cache)
    print("grid", results["grid"], flush=True)
    results["memory_peak_bytes"] = bench_memory(
        args.memory_clips, os.path.join(args.data, "stores")
    )
    print("memory", results["memory_peak_bytes"], flush=True)
    Record.new(
        "speed", {"data": args.data, "memory_clips": args.memory_clips}, results
    ).write(os.path.join(ROOT, "benchmarks", "results", "speed"))
    r = results
    mem = ", ".join(
        f"{n} clips: {v / 2**20:.0f} MiB" for n, v in r["memory_peak_bytes"].items()
    )
    inf = r["inference"]
    acc = r["bf16_accuracy"]
    text = f"""### Speed, side by side

Command: `python -m benchmarks.speed {" ".join(sys.argv[1:])}`. Machine: {r["machine"]}.
Date: {r["date"]}. Wall time: {(time.perf_counter() - t0) / 60:.1f} min. Extraction: medians of {args.repeats} alternating runs (library, plain loop, librosa loop, plain loop then library at once; 1 s pause before each); training: medians of 5 alternating runs (0.5 s pause); other figures: medians of 3 runs.
Figures: `benchmarks/speed.json` (not kept in git).

| what | sklearn-sed | by hand | ratio | target |
|---|---|---|---|---|
| log-mel extraction, {r["features"]["n_files"]} files of 10 s (clips/s) | {r["features"]["library_clips_per_s"]:.1f} | {r["features"]["plain_loop_clips_per_s"]:.1f} (`soundfile.read` + `librosa.feature.melspectrogram`) | {r["features"]["speedup"]:.2f}x faster; max difference {r["features"]["max_abs_diff_db"]:.2g} dB | >= 3x |
| the same, right after the plain loop (its BLAS threads still spinning) | {r["features"]["library_after_plain_clips_per_s"]:.1f} | | {r["features"]["speedup_after_plain"]:.2f}x the plain loop | robust |
| the same against `librosa.load` + `melspectrogram` | | {r["features"]["librosa_loop_clips_per_s"]:.1f} | {r["features"]["speedup_librosa_load"]:.2f}x | |
| training, width {r["training"]["n_filters"]}, {r["training"]["n_clips"]} clips x {r["training"]["epochs"]} epochs (clips/s) | {r["training"]["library_clips_per_s"]:.2f} | {r["training"]["hand_loop_clips_per_s"]:.2f} (PyTorch loop) | overhead {r["training"]["overhead_percent"]:+.1f} % | < 5 % |
| inference end to end from files, paper size, float32 (x real time) | {inf["paper_size"]["real_time_factor"]:.1f} | network alone: {inf["paper_size"]["network_only_real_time_factor"]:.1f} | | >= 40 |
| inference end to end from files, paper size, `inference_dtype="bfloat16"` (x real time) | {inf["paper_size"]["real_time_factor_bf16"]:.1f} | network alone: {inf["paper_size"]["network_only_real_time_factor_bf16"]:.1f} | {inf["paper_size"]["real_time_factor_bf16"] / inf["paper_size"]["real_time_factor"]:.2f}x float32 | >= 40 |
| inference end to end from files, benchmark size, float32 / bfloat16 (x real time) | {inf["benchmark_size"]["real_time_factor"]:.1f} / {inf["benchmark_size"]["real_time_factor_bf16"]:.1f} | network alone: {inf["benchmark_size"]["network_only_real_time_factor"]:.1f} / {inf["benchmark_size"]["network_only_real_time_factor_bf16"]:.1f} | | |
| bfloat16 against float32 inference: event / segment F1 on {acc["n_valid"]} validation clips, benchmark-size model trained {acc["epochs"]} epochs (%) | {100 * acc["bfloat16"]["event_f1"]:.2f} / {100 * acc["bfloat16"]["segment_f1"]:.2f} | float32: {100 * acc["float32"]["event_f1"]:.2f} / {100 * acc["float32"]["segment_f1"]:.2f} | event F1 {acc["event_f1_diff_points"]:+.2f} points; {acc["frame_decisions_changed_percent"]:.3f} % of frame decisions change (threshold {acc["threshold"]}); largest probability difference {acc["max_abs_prob_diff"]:.3f} | within 0.5 point |
| paper-size forward pass (GFLOP/s) | {r["flops"]["achieved_gflops"]:.1f} ({r["flops"]["forward_gflop_per_clip"]:.1f} GFLOP per clip) | fp32 matmul peak {r["flops"]["matmul_peak_gflops"]:.1f} | {100 * r["flops"]["fraction_of_peak"]:.0f} % of peak | |
| 9-point threshold grid search / one fit | {r["grid"]["grid_9_points_s"]:.1f} s | one fit {r["grid"]["one_fit_s"]:.1f} s | {r["grid"]["ratio"]:.2f} | <= 1.2 |
| peak memory of training from a float16 store | {mem} | | | flat |
"""
    replace_section(args.docs, "speed", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
