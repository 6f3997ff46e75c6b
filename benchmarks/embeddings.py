"""Pretrained embeddings: what they cost here (never what they gain: weights are random).

No checkpoint is downloaded: each model's network is built with random
weights and saved in the official layout (``{"iteration", "model"}``), so
that the measurement goes through the same loading, resampling and pooling
as a real checkpoint. Detection gains need the real weights; the field's
measurement of them is cited in ``docs/embeddings.md``.

1. Embedding throughput per model and compute type: clips/s of 10 s clips
   given at 44.1 kHz (resampled to the model's rate, as from a DESED
   folder), median of ``--repeats`` runs of ``--n-clips`` clips, and the
   process's peak resident memory after it.
2. The feature store: bytes per clip of ``FusedFeatures`` (log-mel plus
   embeddings) and of the embeddings alone, float16, from a store written
   here, scaled to 1,000 clips.
3. One fit end to end: ``FusedFeatures`` + ``PseudoLabelSED`` on the
   embedding CRNN, a few clips, a few epochs: its minutes, to show it runs.

    python -m benchmarks.embeddings [--n-clips 16] [--repeats 3]
"""

import argparse
import json
import os
import resource
import statistics
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import ROOT, commit, machine, now, write_record
from sklearn_sed import (
    FusedFeatures,
    LogMelExtractor,
    PretrainedEmbedding,
    make_detector,
)
from sklearn_sed.audio.store import extract_to_store
from sklearn_sed.embeddings.models import EMBEDDING_MODELS, empty_network
from sklearn_sed.networks import network_factory

DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "embeddings")


def random_checkpoint(model, folder, seed=0):
    """Save ``model``'s network with random weights in the official layout."""
    torch.manual_seed(seed)
    network = empty_network(model)
    path = os.path.join(folder, f"{model}-random.pth")
    obj = {"iteration": 0, "model": network.state_dict()}
    if hasattr(network, "cfg"):  # BEATs keeps its configuration beside its weights
        obj["cfg"] = dict(network.cfg)
    torch.save(obj, path)
    return path


def clips(n, seconds=10.0, sr=44100, seed=0):
    rng = np.random.default_rng(seed)
    return list(
        (0.1 * rng.standard_normal((n, round(seconds * sr)))).astype(np.float32)
    )


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_throughput(checkpoint, model, dtype, X, repeats, batch_size):
    emb = PretrainedEmbedding(
        checkpoint, model, sr_in=44100, dtype=dtype, batch_size=batch_size
    ).fit()
    emb.transform(X[:batch_size])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb.transform(X)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "model": model,
        "dtype": dtype,
        "batch_size": batch_size,
        "n_clips": len(X),
        "seconds": times,
        "clips_per_s": len(X) / median,
        "peak_rss_mib": peak_rss_mib(),
    }


def bench_store(checkpoint, model, X, folder):
    out = {}
    fused = FusedFeatures(
        PretrainedEmbedding(checkpoint, model, sr_in=44100), LogMelExtractor()
    )
    for name, extractor in (("fused", fused), ("embedding", fused.embedding)):
        path = os.path.join(folder, f"{name}.npy")
        store = extract_to_store(extractor, X, path, dtype="float16")
        size = os.path.getsize(path)
        out[name] = {
            "shape_per_clip": list(store.shape[1:]),
            "bytes_per_clip": size / len(X),
            "mb_per_1000_clips": size / len(X) * 1000 / 1e6,
        }
    return out


def bench_fit(checkpoint, model, epochs):
    from sklearn_sed.datasets import make_domestic_soundscapes
    from sklearn_sed.pipeline import Pipeline

    X, y_weak, y_strong = make_domestic_soundscapes(
        16, duration=10.0, sr=44100, n_classes=3, random_state=0
    )
    dim = EMBEDDING_MODELS[model]["dim"]
    sed = make_detector(
        "cpu",
        max_epochs=epochs,
        pseudo_labels=None,
        validation_fraction=None,
        random_state=0,
        module=network_factory("embedding_crnn", embed_dim=dim),
    )
    pipe = Pipeline(
        [
            ("features", FusedFeatures(PretrainedEmbedding(checkpoint, model))),
            ("sed", sed),
        ]
    )
    start = time.perf_counter()
    pipe.fit(X, y_weak, y_strong)
    fit_s = time.perf_counter() - start
    frames = pipe.predict_frames(X[:2])
    return {
        "n_clips": len(X),
        "epochs": epochs,
        "minutes": fit_s / 60,
        "frame_probs_shape": list(frames.shape),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embeddings")
    parser.add_argument("--n-clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fit-epochs", type=int, default=2)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = {
        "machine": machine(),
        "date": now(),
        "commit": commit(),
        "throughput": [],
    }
    X = clips(args.n_clips)
    with tempfile.TemporaryDirectory() as tmp:
        for model in EMBEDDING_MODELS:
            checkpoint = random_checkpoint(model, tmp)
            for dtype in ("float32", "bfloat16"):
                row = bench_throughput(
                    checkpoint, model, dtype, X, args.repeats, args.batch_size
                )
                print(json.dumps(row), flush=True)
                result["throughput"].append(row)
        checkpoint = random_checkpoint("panns-cnn14", tmp)
        result["store"] = bench_store(checkpoint, "panns-cnn14", X[:8], tmp)
        print(json.dumps(result["store"]), flush=True)
        result["fit"] = bench_fit(checkpoint, "panns-cnn14", args.fit_epochs)
        print(json.dumps(result["fit"]), flush=True)
    write_record(args.out, "embeddings", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
