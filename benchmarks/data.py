"""The benchmark data: features of the soundscapes, the development split, packs.

:func:`extract` computes (and caches) the log-mel maps of the soundscapes that
``benchmarks.make_data`` writes. :func:`pack` quantises them to 8 bits with
lzma, with their labels and the wheels that the accelerator lacks, into a
folder that travels with the working tree (at most 64 MiB in all);
:func:`load_pack` reads it back there.
"""

import json
import lzma
import os
import subprocess
import sys
import time

import numpy as np
from joblib import Memory

from benchmarks.common import ROOT, now, require
from sklearn_sed import LogMelExtractor
from sklearn_sed.datasets import load_desed, read_strong_tsv

LIMIT_MIB = 64  # working tree sent to the accelerator, carried paths included
RETURN_MIB = 16  # largest file it sends back
SIZES = {"n_filters": 64, "n_blocks": 2, "crnn_filters": 64}
#: What the accelerator lacks, pinned to the versions tested here.
WHEELS = (
    "skorch==1.4.0",
    "librosa==0.11.0",
    "soundfile==0.14.0",
    "cffi==2.1.1",
    "pycparser==3.12",
    "audioread==3.1.0",
    "decorator==5.3.1",
    "soxr==1.1.0",
    "pooch==1.9.0",
    "platformdirs==4.14.8",
    "future==1.0.0",
    "validators==0.36.0",
    "setuptools==80.10.2",
)
#: Pure-Python packages published as source only: built into wheels here.
SDISTS = ("sed_eval==0.2.1", "dcase_util==0.2.20")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)


# -- pack (here) -----------------------------------------------------------
def training_audio(data):
    """The strong and the weak training clips of a make_data folder.

    Returns ``(paths, y_weak, y_strong)`` of the strong clips, then of the
    weak ones (``load_desed``'s).
    """
    strong = load_desed(
        os.path.join(data, "audio", "strong"),
        strong_tsv=os.path.join(data, "metadata", "strong.tsv"),
    )
    weak = load_desed(
        os.path.join(data, "audio", "weak"),
        weak_tsv=os.path.join(data, "metadata", "weak.tsv"),
    )
    return strong, weak


def extract(data, cache):
    """Features of every split, extracted once (cached on disk).

    Returns ``{"train": (F, y_weak, y_strong), "valid": (F, y_valid),
    "weak_truth": [...], "unlabeled": (F, truth) or None}``: the unlabelled
    clips (``benchmarks.make_data --n-unlabeled``) are kept apart, so that a
    run adds them only when its settings say so.
    """
    ext = LogMelExtractor()
    split = {}
    (X_s, w_s, s_s), (X_w, w_w, s_w) = training_audio(data)
    X_v, _, s_v = load_desed(
        os.path.join(data, "audio", "validation"),
        strong_tsv=os.path.join(data, "metadata", "validation.tsv"),
    )
    unlabeled_tsv = os.path.join(data, "metadata", "unlabeled.tsv")
    X_u = []
    if os.path.exists(unlabeled_tsv):
        X_u, _, _ = load_desed(
            os.path.join(data, "audio", "unlabeled"), unlabeled_tsv=unlabeled_tsv
        )
    # One fit of the scaling, on the training clips; the others transformed.
    features = Memory(cache, verbose=0).cache(_features)
    F_train, F_valid, F_u = features(ext, X_s + X_w, X_v, X_u)
    split["train"] = (F_train, w_s + w_w, s_s + s_w)
    split["valid"] = (F_valid, s_v)
    # True events of the weak clips (kept aside, never trained on).
    split["weak_truth"] = [None] * len(X_s) + _truth(data, "weak_truth.tsv", X_w)
    split["unlabeled"] = (
        (F_u, _truth(data, "unlabeled_truth.tsv", X_u)) if X_u else None
    )
    return split


def _truth(data, name, paths):
    """The events kept aside for ``paths`` (None where unknown)."""
    path = os.path.join(data, name)
    truth = read_strong_tsv(path) if os.path.exists(path) else {}
    return [truth.get(os.path.basename(p)) for p in paths]


def _features(ext, X_train, X_valid, X_unlabeled):
    F_train = ext.fit_transform(X_train)
    F_unlabeled = ext.transform(X_unlabeled) if X_unlabeled else None
    return F_train, ext.transform(X_valid), F_unlabeled


def dev_split(y_strong):
    """Indices of the training and dev clips: 15 % of the strong clips, the
    same for every run (and on every machine)."""
    strong_idx = [i for i, s in enumerate(y_strong) if s is not None]
    rng = np.random.RandomState(1234)
    dev = set(
        rng.choice(
            strong_idx, size=max(1, len(strong_idx) * 15 // 100), replace=False
        ).tolist()
    )
    return [i for i in range(len(y_strong)) if i not in dev], sorted(dev)


def fit_with_dev(sed, F, y_weak, y_strong, train, dev):
    """Fit ``sed`` on the clips ``train``, validating on the strong clips
    ``dev`` (:func:`dev_split`); return the seconds of ``fit``."""
    t0 = time.perf_counter()
    sed.fit(
        F[train],
        [y_weak[i] for i in train],
        [y_strong[i] for i in train],
        X_val=F[dev],
        y_val=[y_strong[i] for i in dev],
    )
    return time.perf_counter() - t0


def _tree_bytes():
    """Bytes of the working tree that the device tool sends (git's view)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    paths = [p for p in out.decode().split("\0") if p]
    return sum(
        os.path.getsize(os.path.join(ROOT, p))
        for p in paths
        if os.path.isfile(os.path.join(ROOT, p))
    )


def _dir_bytes(path):
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(path)
        for f in files
    )


def quantise(F):
    """Min-max scaled maps in [0, 1] as uint8 (``round(255 x)``)."""
    return np.round(np.clip(F, 0.0, 1.0) * 255.0).astype(np.uint8)


def dequantise(Q):
    """uint8 maps back to float32 in [0, 1]."""
    return Q.astype(np.float32) * np.float32(1 / 255)


def _events(events):
    return (
        None if events is None else [[float(a), float(b), str(c)] for a, b, c in events]
    )


def pack(args):
    """Write the pack of ``args.data`` into ``args.pack`` (the accelerator's input)."""
    require(
        os.path.join(args.data, "metadata", "strong.tsv"),
        "benchmark data (run python -m benchmarks.make_data first)",
    )
    split = extract(args.data, os.path.join(args.data, "cache"))
    F, y_weak, y_strong = split["train"]
    F_valid, y_valid = split["valid"]
    meta = {
        "y_weak": [sorted(map(str, w)) if w is not None else None for w in y_weak],
        "y_strong": [_events(s) for s in y_strong],
        "y_valid": [_events(s) for s in y_valid],
        "shape_train": list(F.shape),
        "shape_valid": list(F_valid.shape),
        "quantisation": "uint8 = round(255 * feature); feature = uint8 / 255",
        "created": now(),
    }
    out = os.path.abspath(args.pack)
    wheels = os.path.join(out, "wheels")
    # Everything that travels: the tree (git's view) plus the pack, whose
    # features compress to about 41 KiB per clip (measured on these maps).
    tree = _tree_bytes()  # .gpu/ is ignored by git: counted on its own
    # lzma keeps 0.65 of the uint8 bytes of these maps (measured).
    n_unl = args.n_unlabeled if split["unlabeled"] is not None else 0
    est_features = (len(F) + len(F_valid) + n_unl) * F.shape[1] * F.shape[2] * 0.65
    existing_wheels = _dir_bytes(wheels) if os.path.isdir(wheels) else 6.5 * 2**20
    total = tree + est_features + existing_wheels
    print(
        f"would send: working tree {tree / 2**20:.1f} MiB, features of "
        f"{len(F)} + {len(F_valid)} clips about {est_features / 2**20:.1f} MiB "
        f"(uint8, lzma), wheels {existing_wheels / 2**20:.1f} MiB "
        f"({len(WHEELS) + len(SDISTS)}: {', '.join(WHEELS + SDISTS)}); "
        f"total about {total / 2**20:.1f} MiB of {LIMIT_MIB} MiB"
    )
    if total > LIMIT_MIB * 2**20:
        sys.exit(
            f"error: about {total / 2**20:.1f} MiB would travel, over the "
            f"{LIMIT_MIB} MiB limit; pack fewer clips or leave untracked files "
            "out of the tree."
        )
    if args.dry_run:
        return 0
    os.makedirs(wheels, exist_ok=True)
    q = {"train": quantise(F), "valid": quantise(F_valid)}
    if args.n_unlabeled and split["unlabeled"] is not None:
        F_u, truth_u = split["unlabeled"]
        q["unlabeled"] = quantise(F_u[: args.n_unlabeled])
        meta["unlabeled_truth"] = [_events(s) for s in truth_u[: args.n_unlabeled]]
    err = max(
        float(np.abs(dequantise(q["train"]) - F).max()),
        float(np.abs(dequantise(q["valid"]) - F_valid).max()),
    )
    meta["max_quantisation_error"] = err
    with lzma.open(os.path.join(out, "features.npz.xz"), "wb", preset=6) as f:
        np.savez(f, **q)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    _fetch_wheels(wheels)
    total = _tree_bytes() + _dir_bytes(out)
    print(
        f"packed {out}: {_dir_bytes(out) / 2**20:.1f} MiB (features "
        f"{os.path.getsize(os.path.join(out, 'features.npz.xz')) / 2**20:.1f} MiB, "
        f"max quantisation error {err:.4f}); with the tree {total / 2**20:.1f} "
        f"MiB of {LIMIT_MIB} MiB. Send it with the command "
        "'bash benchmarks/gpu_run.sh' and carry ['.gpu']."
    )
    if total > LIMIT_MIB * 2**20:
        sys.exit(
            f"error: {total / 2**20:.1f} MiB would travel, over the {LIMIT_MIB} MiB "
            "limit; pack fewer clips or leave untracked files out of the tree."
        )
    return 0


def _fetch_wheels(folder):
    have = set(os.listdir(folder))
    for spec in WHEELS:
        name = spec.split("==")[0].replace("-", "_").lower()
        if any(w.lower().startswith(name + "-") for w in have):
            continue
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        cmd += ["--only-binary=:all:", "--python-version", "3.12"]
        cmd += ["--implementation", "cp", "-d", folder, spec]
        for plat in PLATFORMS:
            cmd += ["--platform", plat]
        subprocess.run(cmd, check=True)
    for spec in SDISTS:
        name = spec.split("==")[0].lower()
        if any(w.lower().startswith(name + "-") for w in have):
            continue
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
        subprocess.run([*cmd, "--no-build-isolation", "-w", folder, spec], check=True)


def load_pack(path, tiny=False):
    """Features (float32) and labels of a pack."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    with lzma.open(os.path.join(path, "features.npz.xz"), "rb") as f:
        q = np.load(f)
        F, F_valid = dequantise(q["train"]), dequantise(q["valid"])
        if "unlabeled" in q.files:
            truth = meta.get("unlabeled_truth") or []
            meta["unlabeled"] = (
                dequantise(q["unlabeled"]),
                [None if s is None else [tuple(e) for e in s] for s in truth],
            )
    y_weak = meta["y_weak"]
    y_strong = [None if s is None else [tuple(e) for e in s] for s in meta["y_strong"]]
    y_valid = [[tuple(e) for e in s] for s in meta["y_valid"]]
    if tiny:  # a few clips of each kind, for a check on the CPU
        strong = [i for i, s in enumerate(y_strong) if s is not None][:24]
        weak = [i for i, s in enumerate(y_strong) if s is None][:16]
        keep = strong + weak
        F, y_weak = F[keep], [y_weak[i] for i in keep]
        y_strong = [y_strong[i] for i in keep]
        F_valid, y_valid = F_valid[:8], y_valid[:8]
        if meta.get("unlabeled") is not None:
            F_u, truth_u = meta["unlabeled"]
            meta["unlabeled"] = (F_u[:8], truth_u[:8])
    return meta, (F, y_weak, y_strong), (F_valid, y_valid)


def main(argv=None):
    """``python -m benchmarks.data --data DIR --pack .gpu``: write a pack."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.data")
    parser.add_argument("--data", required=True, help="a benchmarks.make_data folder")
    parser.add_argument("--pack", default=os.path.join(ROOT, ".gpu"))
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would travel"
    )
    parser.add_argument(
        "--n-unlabeled",
        type=int,
        default=0,
        help="unlabelled clips to pack too (about 41 KiB each)",
    )
    return pack(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
