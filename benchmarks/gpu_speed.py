"""Speed of the library on an accelerator, measured in one run there.

- the card's bfloat16 matrix peak: an 8192 x 8192 x 8192 product;
- the forward pass of the paper-size ResNet (64 filters x 2 blocks per
  stage): FLOPs counted by ``torch.utils.flop_counter`` and achieved
  TFLOP/s in float32 (TF32 convolutions, torch's default) and under bfloat16
  autocast, against that peak;
- training clips/s of ``PseudoLabelSED.fit`` at paper size (the second
  epoch, as ``benchmarks/throughput.py``): float32 and bfloat16 eager,
  bfloat16 compiled at batches 64 and 128, and what the training probe
  chooses (``compile="auto"``, ``train_dtype="auto"``), each with its share
  of the bfloat16 matmul peak (GFLOP per training clip counted by
  ``FlopCounterMode``, forward and backward);
- inference real-time factor end to end: ``predict_events`` from feature
  maps, and a fitted ``Pipeline`` from 10 s WAV files with the log-mel
  extractor on the GPU (``LogMelExtractor(device="cuda")``) and on the CPU.

Device work is timed with CUDA events or after ``torch.cuda.synchronize``,
after warm-up, median of repeats. Writes a JSON file (``--out``) that
``gpu_table1.py score`` puts into ``docs/benchmarks.md``.

    python -m benchmarks.gpu_speed --out $OUT/speed.json      # there
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from benchmarks.records import Record
from benchmarks.throughput import clips_per_second
from sklearn_sed import LogMelExtractor, PseudoLabelSED
from sklearn_sed.networks.resnet import ResNetSED
from sklearn_sed.pipeline import Pipeline

DEVICE = "cuda"  # "cpu" only for a check of the script itself (--check)


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _wall(fn):
    """Seconds of ``fn()`` on the wall clock, device work finished."""
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def _median_ms(fn, repeats=10, warmup=3):
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        if DEVICE != "cuda":
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
            continue
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def matmul_peak(n):
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    ms = _median_ms(lambda: a @ b)
    return 2 * n**3 / (ms / 1e3) / 1e12


def train_gflop_per_clip(width):
    """GFLOP of one training clip (forward and backward) at paper size."""
    from torch.utils.flop_counter import FlopCounterMode

    net = ResNetSED(n_classes=10, n_filters=width, n_blocks=2).train()
    with FlopCounterMode(display=False) as fc:
        frames, clips = net(torch.rand(1, 1024, 64))
        (frames.mean() + clips.mean()).backward()
    return fc.get_total_flops() / 1e9


def forward_tflops(batch, width):
    from torch.utils.flop_counter import FlopCounterMode

    net = ResNetSED(n_classes=10, n_filters=width, n_blocks=2).to(DEVICE).eval()
    x = torch.rand(batch, 1024, 64, device=DEVICE)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x[:1])
    flops = fc.get_total_flops() * batch
    out = {"gflop_per_clip": flops / batch / 1e9}
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):

        def step(dtype=dtype):
            with (
                torch.no_grad(),
                torch.autocast(
                    DEVICE, dtype=dtype or torch.bfloat16, enabled=bool(dtype)
                ),
            ):
                net(x)

        ms = _median_ms(step)
        out[name] = {
            "ms": ms,
            "tflops": flops / (ms / 1e3) / 1e12,
            "clips_per_s": batch / (ms / 1e3),
        }
    return out


def fitted_paper_size(dtype, width):
    rng = np.random.default_rng(0)
    X = rng.random((32, 1024, 64), dtype=np.float32)
    classes = [f"c{k}" for k in range(10)]
    y_weak = [[classes[i % 10]] for i in range(32)]
    y_strong = [[(1.0, 3.0, w[0])] for w in y_weak]
    return PseudoLabelSED(
        n_filters=width,
        n_blocks=2,
        max_epochs=1,
        pseudo_labels=None,
        device=DEVICE,
        train_dtype=dtype,
        inference_dtype=dtype,
        batch_size=32,
        random_state=0,
    ).fit(X, y_weak, y_strong)


def inference_rtf(n_clips, n_files, width):
    import soundfile as sf

    out = {}
    rng = np.random.default_rng(1)
    F = rng.random((n_clips, 1024, 64), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(n_files):
            y = 0.05 * rng.standard_normal(441000).astype(np.float32)
            y[100000:200000] += 0.3 * np.sin(
                2 * np.pi * 440 * np.arange(100000) / 44100
            )
            paths.append(os.path.join(tmp, f"clip{k:03d}.wav"))
            sf.write(paths[-1], y, 44100, subtype="PCM_16")
        for dtype in ("float32", "bfloat16"):
            sed = fitted_paper_size(dtype, width)
            sed.predict_events(F[:32])  # warm-up
            sec = _wall(lambda sed=sed: sed.predict_events(F))
            out[f"features_{dtype}"] = {
                "seconds": sec,
                "rtf": sec / (10.0 * n_clips),
                "clips": n_clips,
            }
            for where in (DEVICE, "cpu"):
                ext = LogMelExtractor(device=where).fit(paths[:8])
                pipe = Pipeline([("logmel", ext), ("sed", sed)])
                pipe.predict_events(paths[:8])  # warm-up
                sec = _wall(lambda pipe=pipe: pipe.predict_events(paths))
                ext_sec = _wall(lambda ext=ext: ext.transform(paths))
                out[f"audio_{dtype}_extractor_{where}"] = {
                    "seconds": sec,
                    "rtf": sec / (10.0 * n_files),
                    "extractor_seconds": ext_sec,
                    "files": n_files,
                }
            del sed
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--train-clips", type=int, default=512)
    p.add_argument("--clips", type=int, default=256, help="feature maps predicted")
    p.add_argument("--files", type=int, default=64, help="10 s WAV files predicted")
    p.add_argument("--batch", type=int, default=64, help="forward-pass batch")
    p.add_argument("--width", type=int, default=64, help="ResNet filters")
    p.add_argument("--matmul", type=int, default=8192)
    p.add_argument(
        "--check",
        action="store_true",
        help="run every step on the CPU at a tiny size (a check of the script)",
    )
    args = p.parse_args(argv)
    global DEVICE
    if args.check:
        DEVICE = "cpu"
        args.train_clips, args.clips, args.files, args.batch = 8, 4, 2, 2
        args.width, args.matmul = 4, 256
    elif not torch.cuda.is_available():
        sys.exit("error: gpu_speed.py measures a CUDA device; torch sees none here.")
    else:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    result = {"device": name}
    settings = {k: v for k, v in vars(args).items() if k != "out"}

    def record(key, fn):
        t0 = time.perf_counter()
        try:
            result[key] = fn()
        except Exception as exc:  # one failed measurement keeps the others
            result[key] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{key} ({time.perf_counter() - t0:.0f} s): {result[key]}", flush=True)
        # One record, rewritten after each measurement (a timeout keeps the rest).
        with open(args.out, "w") as f:
            json.dump(dataclasses.asdict(Record.new("gpu_speed", settings, result)), f)

    record("bf16_matmul_tflops", lambda: matmul_peak(args.matmul))
    record("forward", lambda: forward_tflops(args.batch, args.width))
    #: (train_dtype, compile, batch): the float32 and bfloat16 baselines, then
    #: compiled bfloat16 at growing batches, then what the probe chooses.
    setups = [
        ("float32", False, 16),
        ("float32", False, 64),
        ("bfloat16", False, 64),
        ("bfloat16", True, 64),
        ("bfloat16", True, 128),
        ("auto", "auto", 64),
    ]
    if args.check:  # eager and tiny: a check of the script, not of Inductor
        setups = [("float32", False, 2), ("bfloat16", False, 2)]

    def training():
        gflop = train_gflop_per_clip(args.width)
        peak = result.get("bf16_matmul_tflops")
        out = {"train_gflop_per_clip": gflop}
        for dtype, compiled, batch in setups:
            key = f"{dtype}{'_compiled' if compiled else ''}_batch{batch}"
            try:
                got = clips_per_second(
                    args.width,
                    dtype,
                    max(args.train_clips, 2 * batch),
                    batch,
                    compile=compiled,
                    device=DEVICE,
                )
            except Exception as exc:  # one set-up failing keeps the others
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            if isinstance(peak, float):
                tflops = got["clips_per_second"] * gflop / 1e3
                got["percent_of_bf16_peak"] = 100 * tflops / peak
            out[key] = got
            print(f"  {key}: {got}", flush=True)
        return out

    record("train_clips_per_s", training)
    record("inference", lambda: inference_rtf(args.clips, args.files, args.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
