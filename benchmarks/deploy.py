"""Deployment: onnxruntime against torch, and detection on a stream.

1. Throughput of the network with onnxruntime against torch, side by side
   (alternating runs, medians), for the ``"cpu"`` recipe's ResNet (16 x 2)
   and the DCASE2019 CRNN (32), on 10 s feature maps; and the largest
   difference of their probabilities.
2. Streaming (:class:`sklearn_sed.deploy.StreamingDetector`) on real
   recordings (the benchmark's validation soundscapes, back to back, as one
   recording): per hop and ``max_latency``, the events found against offline
   prediction of the same recording (sed_eval's event-based matching with
   the DCASE collars: offline's events as the reference), duplicates, the
   delay from an event's end to its report (stream time, plus the
   processing of the push that reported it), and the CPU time per second of
   audio.

The detector is small and trained here in a minute (width 8, a few epochs
on the benchmark's training clips): agreement and delay depend on the
stream's handling, not on the detector's quality.

    python -m benchmarks.deploy --data /tmp/sed_bench
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import soundfile as sf

from benchmarks.common import ROOT, commit, machine, now, require, write_record
from benchmarks.data import training_audio
from sklearn_sed import LogMelExtractor, make_detector, make_pipeline
from sklearn_sed.datasets import load_desed
from sklearn_sed.metrics.scoring import (
    classes_without_events_quietly,
    sed_eval_results,
)
from sklearn_sed.networks import network_factory

DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "deploy")


def train_small(data, n_train, seed=0, **params):
    """A quickly trained pipeline on the benchmark's strong and weak clips."""
    (X_s, w_s, s_s), (X_w, w_w, s_w) = training_audio(data)
    k = n_train // 2
    X, y_weak, y_strong = X_s[:k] + X_w[:k], w_s[:k] + w_w[:k], s_s[:k] + s_w[:k]
    sed = make_detector(
        "cpu",
        **{
            "n_filters": 8,
            "max_epochs": 4,
            "pseudo_labels": None,
            "validation_fraction": None,
            "compile": False,
            "random_state": seed,
            "decoder__tune": False,
            **params,
        },
    )
    pipe = make_pipeline(LogMelExtractor(), sed)
    return pipe.fit(X, y_weak, y_strong)


def bench_onnx(data, repeats=5, n_clips=16):
    """clips/s of torch and onnxruntime on the same maps, side by side."""
    import onnxruntime as ort

    from sklearn_sed.deploy import export_onnx
    from sklearn_sed.training.net import forward_probabilities

    rows = {}
    nets = {
        "ResNet 16 x 2 (the cpu recipe)": {},
        "CRNN 32 (DCASE2019 baseline)": {"module": network_factory("crnn")},
    }
    rng = np.random.default_rng(0)
    for name, params in nets.items():
        pipe = train_small(data, 16, max_epochs=1, n_filters=16, n_blocks=2, **params)
        sed = pipe[-1]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "net.onnx")
            diff = export_onnx(pipe, path)
            runtime = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        X = rng.random((n_clips, sed.n_frames_in_, sed.n_mels_in_), dtype=np.float32)
        for batch in (1, 8):

            def run_torch(batch=batch, sed=sed, X=X):
                return forward_probabilities(sed.net_, X, None, batch)[0]

            def run_ort(batch=batch, runtime=runtime, X=X):
                return np.concatenate(
                    [
                        runtime.run(["frame_probs"], {"features": X[i : i + batch]})[0]
                        for i in range(0, len(X), batch)
                    ]
                )

            times = {"torch": [], "onnxruntime": []}
            outs = {}
            for fn, key in ((run_torch, "torch"), (run_ort, "onnxruntime")):
                outs[key] = fn()  # warm-up
            for _ in range(repeats):
                for fn, key in ((run_torch, "torch"), (run_ort, "onnxruntime")):
                    t0 = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t0)
            rate = {k: n_clips / statistics.median(v) for k, v in times.items()}
            rows[f"{name}, batch {batch}"] = {
                "torch_clips_per_s": rate["torch"],
                "onnxruntime_clips_per_s": rate["onnxruntime"],
                "ratio": rate["onnxruntime"] / rate["torch"],
                "max_abs_diff": float(
                    np.max(np.abs(outs["torch"] - outs["onnxruntime"]))
                ),
                "export_check_diff": diff,
            }
            print(name, batch, rows[f"{name}, batch {batch}"], flush=True)
    return rows


def _event_dicts(events):
    return [[(a, b, c) for a, b, c in events]]


def bench_streaming(pipe, recording, length, configs):
    """Agreement, duplicates, delay and CPU time of streams of one recording."""
    from sklearn_sed.deploy.streaming import StreamingDetector
    from sklearn_sed.inference import predict_file_events

    y, sr = sf.read(recording, dtype="float32")
    rows = []
    offline_by_hop = {}
    for hop, max_latency in configs:
        if hop not in offline_by_hop:
            offline_by_hop[hop] = predict_file_events(
                pipe, recording, overlap=1 - hop / pipe[-1].duration
            )
        offline = offline_by_hop[hop]
        detector = StreamingDetector(
            pipe, sr=sr, hop=hop, max_latency=max_latency, max_event_sec=60.0
        )
        chunk = round(0.1 * sr)  # 100 ms blocks, as a sound card delivers them
        reported, busy = [], 0.0
        cpu0 = time.process_time()
        for i in range(0, len(y), chunk):
            t0 = time.perf_counter()
            events = detector.push(y[i : i + chunk])
            spent = time.perf_counter() - t0
            busy += spent
            at = detector.seconds_received + spent
            reported += [(e, at) for e in events]
        t0 = time.perf_counter()
        tail = detector.flush()
        busy += time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        streamed = [e for e, _ in reported] + tail
        delays = [at - e.offset for e, at in reported]
        with classes_without_events_quietly():
            ev = sed_eval_results(
                _event_dicts(offline),
                _event_dicts([e[:3] for e in streamed]),
                metric="event",
                classes=list(pipe[-1].classes_),
            )
        keys = [(round(e.onset, 3), e.label) for e in streamed]
        same = sorted((round(a, 6), round(b, 6), c) for a, b, c in offline) == sorted(
            (round(e.onset, 6), round(e.offset, 6), e.label) for e in streamed
        )
        row = {
            "hop": detector.hop_sec,
            "max_latency": max_latency,
            "offline_events": len(offline),
            "streamed_events": len(streamed),
            "found": ev["overall"]["f_measure"]["recall"] if offline else 1.0,
            "precision": ev["overall"]["f_measure"]["precision"] if streamed else 1.0,
            "identical_to_offline": same,
            "duplicates": len(keys) - len(set(keys)),
            "delay_median_s": statistics.median(delays) if delays else None,
            "delay_max_s": max(delays) if delays else None,
            "wall_s_per_audio_s": busy / length,
            "cpu_s_per_audio_s": cpu / length,
            "windows": detector.windows_run,
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy")
    parser.add_argument("--data", required=True, help="a benchmarks.make_data folder")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--n-valid", type=int, default=30, help="soundscapes streamed")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--skip-onnx", action="store_true")
    args = parser.parse_args(argv)
    require(os.path.join(args.data, "metadata", "validation.tsv"), "benchmark data")
    started = now()
    result = {"machine": machine(), "date": started, "commit": commit()}
    if not args.skip_onnx:
        result["onnx"] = bench_onnx(args.data)
    # bfloat16 autocast where the CPU has it: a detector in minutes.
    pipe = train_small(
        args.data, args.n_train, max_epochs=args.epochs, train_dtype="auto"
    )
    result["detector"] = {
        "n_train": args.n_train,
        "epochs": args.epochs,
        "width": 8,
        "classes_detected_offline": None,
    }
    pipe[0].set_params(verbose=0)
    X_v, _, _ = load_desed(
        os.path.join(args.data, "audio", "validation"),
        strong_tsv=os.path.join(args.data, "metadata", "validation.tsv"),
    )
    y = np.concatenate([sf.read(p, dtype="float32")[0] for p in X_v[: args.n_valid]])
    with tempfile.TemporaryDirectory() as tmp:
        recording = os.path.join(tmp, "stream.wav")
        sf.write(recording, y, 44100, subtype="FLOAT")
        configs = [(h, None) for h in (0.5, 1.0, 2.0, 5.0)]
        configs += [(1.0, lat) for lat in (0.0, 1.0, 2.0, 5.0)]
        result["streaming"] = bench_streaming(pipe, recording, len(y) / 44100, configs)
        from sklearn_sed.inference import predict_file_events

        found = {c for _, _, c in predict_file_events(pipe, recording, overlap=0.9)}
        result["detector"]["classes_detected_offline"] = sorted(found)
    result["stream_seconds"] = len(y) / 44100
    write_record(args.out, "deploy", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
