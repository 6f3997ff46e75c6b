"""Table 1 at the report's size on an accelerator, in three steps.

The accelerator that may be lent takes a working tree of at most
64 MiB, has no network and lacks skorch, librosa, soundfile and sed_eval; it
gives back at most 8 files of 16 MiB. So the work is split:

1. here, ``pack``: the log-mel maps of the benchmark soundscapes
   (``benchmarks/make_data.py``), quantised to 8 bits (steps of
   ``(data_max_ - data_min_) / 255`` dB, under half a dB) and compressed with
   lzma, their labels, the Table 1 settings of ``table1.json`` and the wheels
   the accelerator lacks go into ``.gpu/`` (ignored by git); the size of what
   would travel is checked against the limit first. ``--dry-run`` prints what
   would be sent and its size without writing anything.
2. there, ``train``: each variant at paper size (ResNet 64 filters x 2 blocks
   per stage, the DCASE2019 CRNN at 64 filters), the recipe and epochs of the
   CPU table, bfloat16 autocast, seeds in turn until a time budget is spent;
   the frame probabilities and events of the validation soundscapes and the
   training histories are written to ``--out``.
3. here, ``score``: sed_eval's event- and segment-based macro F1 of those
   events, written into ``docs/benchmarks.md`` beside the CPU table.

    python benchmarks/gpu_table1.py pack --data /tmp/sed_bench
    python benchmarks/gpu_table1.py train --pack .gpu --out $OUT      # there
    python benchmarks/gpu_table1.py score --pack .gpu --results DIR

``train --tiny`` runs the whole step on this CPU in a minute (2 filters, 1
epoch, 40 clips): the tests and a check before anything is sent.
"""

import argparse
import json
import lzma
import os
import subprocess
import sys
import time
import types

import numpy as np
from _common import ROOT, machine, now, replace_section, require, write_json

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
    sys.path.insert(0, os.path.dirname(__file__))
    from reproduce_table1 import build_parser, extract, load_results

    require(
        os.path.join(args.data, "metadata", "strong.tsv"),
        "benchmark data (run benchmarks/make_data.py first)",
    )
    split = extract(args.data, os.path.join(args.data, "cache"))
    F, y_weak, y_strong = split["train"]
    F_valid, y_valid = split["valid"]
    runs = load_results(os.path.join(args.data, "table1.json"))
    settings = next(
        (r["settings"] for r in runs if r["variant"] == "resnet_pl"),
        runs[0]["settings"] if runs else {},
    )
    if not settings:
        sys.exit(
            "error: no Table 1 runs on record in DATA/table1.json; run "
            "benchmarks/reproduce_table1.py first so that the accelerator uses "
            "the CPU table's settings."
        )
    defaults = vars(build_parser().parse_args([]))
    for key in ("docs", "data", "seeds", "variants", "fresh", "report_only"):
        defaults.pop(key, None)
    meta = {
        "settings": {**defaults, **settings},
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
    est_features = (len(F) + len(F_valid)) * F.shape[1] * F.shape[2] * 0.65
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


# -- train (there) -----------------------------------------------------------
def load_pack(path, tiny=False):
    """Features (float32) and labels of a pack."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    with lzma.open(os.path.join(path, "features.npz.xz"), "rb") as f:
        q = np.load(f)
        F, F_valid = dequantise(q["train"]), dequantise(q["valid"])
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
    return meta, (F, y_weak, y_strong), (F_valid, y_valid)


def train(args):
    sys.path.insert(0, os.path.dirname(__file__))
    import torch
    from reproduce_table1 import build_parser, dev_split, fit_with_dev, make_variant

    from sklearn_sed.training.net import history_to_rows

    t_start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    meta, (F, y_weak, y_strong), (F_valid, _) = load_pack(args.pack, args.tiny)
    # Settings added to the table after a pack was made take their defaults.
    defaults = vars(build_parser().parse_args([]))
    settings = {**defaults, **meta["settings"], **SIZES}
    if args.tiny:
        settings.update(
            n_filters=2, n_blocks=1, crnn_filters=4, epochs=2, max_iter=1, compile="off"
        )
    if args.epochs:
        settings["epochs"] = args.epochs
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    st = types.SimpleNamespace(**{**settings, "verbose": 0})
    train_idx, dev = dev_split(y_strong)
    record_path = os.path.join(args.out, "results.json")
    record = {
        "machine": machine(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "settings": settings,
        "train_dtype": args.train_dtype,
        "tiny": args.tiny,
        "runs": [],
    }
    all_frames = {}
    for seed in args.seeds:
        for variant in args.variants:
            spent = time.perf_counter() - t_start
            if record["runs"] and spent > args.budget:
                print(
                    f"budget of {args.budget:.0f} s spent; {variant} seed {seed} skipped"
                )
                continue
            sed = make_variant(
                variant, seed, st, device=device, train_dtype=args.train_dtype
            )
            fit_sec = fit_with_dev(sed, F, y_weak, y_strong, train_idx, dev)
            frames = sed.predict_frames(F_valid)
            events = sed.predict_events(F_valid)
            name = f"{variant}_s{seed}"
            # One file for all runs: the accelerator returns at most 8 files.
            all_frames[name] = frames.astype(np.float16)
            np.savez_compressed(os.path.join(args.out, "frames.npz"), **all_frames)
            record["runs"].append(
                {
                    "variant": variant,
                    "seed": seed,
                    "fit_seconds": fit_sec,
                    "n_train_clips": len(train_idx),
                    "events": [_events(e) for e in events],
                    "best_epoch": sed.best_epoch_,
                    "pseudo_label_history": sed.pseudo_label_history_,
                    "history": history_to_rows(sed.net_.history),
                    "threshold": [float(t) for t in sed.threshold_],
                    "median_filter_sec": [float(m) for m in sed.median_filter_sec_],
                    "classes": [str(c) for c in sed.classes_],
                }
            )
            write_json(record_path, record)
            print(
                f"{name}: fit {fit_sec:.0f} s on {record['device']}, best epoch "
                f"{sed.best_epoch_}",
                flush=True,
            )
            del sed
            if device == "cuda":
                torch.cuda.empty_cache()
    sizes = {
        f: os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)
    }
    too_big = [f for f, n in sizes.items() if n > RETURN_MIB * 2**20]
    if too_big:
        print(f"warning: over {RETURN_MIB} MiB, will not come back: {too_big}")
    print(f"train step done in {time.perf_counter() - t_start:.0f} s")
    return 0


# -- score (here) -------------------------------------------------------------
def score_runs(record, y_valid):
    """sed_eval macro F1 of each run's events on the validation soundscapes."""
    from sklearn_sed.metrics.scoring import sed_eval_results

    rows = []
    for r in record["runs"]:
        events = [[tuple(e) for e in clip] for clip in r["events"]]
        kw = {"classes": r["classes"]}
        ev = sed_eval_results(y_valid, events, metric="event", **kw)
        seg = sed_eval_results(y_valid, events, metric="segment", duration=10.0, **kw)
        hist = r["history"]
        dur = [h["dur"] for h in hist]
        rows.append(
            {
                **{k: r[k] for k in ("variant", "seed", "fit_seconds", "best_epoch")},
                "event_f1": ev["class_wise_average"]["f_measure"]["f_measure"],
                "segment_f1": seg["class_wise_average"]["f_measure"]["f_measure"],
                "median_epoch_seconds": float(np.median(dur)) if dur else None,
                "train_clips_per_s": r["n_train_clips"] / float(np.median(dur))
                if dur
                else None,
                "dev_event_f1_per_epoch": [h.get("valid_event_f1") for h in hist],
                "epoch_seconds": dur,
            }
        )
    return rows


def merge_records(paths):
    """One record from the ``results.json`` of several accelerator calls.

    ``paths`` are files or folders holding ``results.json``; a later run of
    the same variant and seed replaces an earlier one. The calls must have
    used the same settings and device.
    """
    merged = None
    for path in paths:
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        with open(path) as f:
            record = json.load(f)
        if merged is None:
            merged = record
            continue
        for key in ("settings", "train_dtype", "device", "tiny"):
            if record.get(key) != merged.get(key):
                sys.exit(
                    f"error: {path} was trained with another {key} "
                    f"({record.get(key)!r}, not {merged.get(key)!r}); score it apart."
                )
        new = {(r["variant"], r["seed"]) for r in record["runs"]}
        merged["runs"] = [
            r for r in merged["runs"] if (r["variant"], r["seed"]) not in new
        ] + record["runs"]
    return merged


def speed_section(path):
    """The accelerator's speed figures (``gpu_speed.py``) as Markdown."""
    with open(path) as f:
        sp = json.load(f)
    peak = sp["bf16_matmul_tflops"]
    fw, tr, inf = sp["forward"], sp["train_clips_per_s"], sp["inference"]
    lines = [
        "### Speed at the report's size on an accelerator",
        "",
        f"Command: `python benchmarks/gpu_speed.py --out $OUT/speed.json` (a step "
        f"of `benchmarks/gpu_run.sh`). Device: {sp['device']} ({sp['machine']}). "
        f"Date: {sp['date']}. Device time from CUDA events, median of 10 after 3 "
        "warm-ups; wall times after `torch.cuda.synchronize()`.",
        "",
        f"- bfloat16 matrix peak measured in the same run (8192³ product): "
        f"**{peak:.0f} TFLOP/s**.",
        f"- Forward pass of the paper-size ResNet (64 filters x 2 blocks per "
        f"stage, {fw['gflop_per_clip']:.1f} GFLOP per 10 s clip, counted by "
        "`torch.utils.flop_counter`), batch 64, eval mode: float32 (cuDNN's TF32 "
        f"convolutions) {fw['float32']['tflops']:.0f} TFLOP/s "
        f"({fw['float32']['clips_per_s']:.0f} clips/s); bfloat16 autocast "
        f"{fw['bfloat16']['tflops']:.0f} TFLOP/s "
        f"({fw['bfloat16']['clips_per_s']:.0f} clips/s), "
        f"**{100 * fw['bfloat16']['tflops'] / peak:.0f} % of the matrix peak**.",
        "- Training clips/s of `PseudoLabelSED.fit` at paper size (stage 1, Adam, "
        "second epoch of 512 random maps, the library's own loop): "
        + "; ".join(
            f"{k.replace('_batch', ', batch ')}: {v:.0f}" for k, v in tr.items()
        )
        + ".",
        "- Inference real-time factor end to end (seconds of compute per second "
        "of audio; lower is faster): "
        + "; ".join(
            f"`predict_events` from {v['clips']} feature maps in {k.split('_')[1]}: "
            f"{v['rtf']:.1e} ({1 / v['rtf']:,.0f}x real time)"
            for k, v in inf.items()
            if k.startswith("features")
        )
        + "; a fitted `Pipeline` from 64 WAV files of 10 s: "
        + "; ".join(
            f"{k.split('_')[1]} with the extractor on the "
            f"{'GPU' if k.endswith('cuda') else 'CPU'}: {v['rtf']:.1e} (extractor "
            f"alone {v['extractor_seconds']:.2f} s)"
            for k, v in inf.items()
            if k.startswith("audio")
        )
        + ".",
    ]
    return "\n".join(lines)


def score(args):
    sys.path.insert(0, os.path.dirname(__file__))
    from reproduce_table1 import VARIANTS, load_results, mean_std, plot_curves

    record = merge_records(args.results)
    meta, _, (_, y_valid) = load_pack(args.pack, record.get("tiny", False))
    rows = score_runs(record, y_valid)
    cpu = load_results(os.path.join(args.data, "table1.json")) if args.data else []
    st = record["settings"]
    lines = [
        "### Table 1 at the report's size on an accelerator",
        "",
        f"Device: {record['device']} ({record['machine']}); scored here with "
        f"sed_eval on {now()}. Commands: `python benchmarks/gpu_table1.py pack "
        "--data /tmp/sed_bench` here, `python benchmarks/gpu_table1.py train "
        "--pack .gpu --out $OUT` on the accelerator (a step of "
        "`benchmarks/gpu_run.sh`; further seeds with `train --seeds 1 2`), "
        "`python benchmarks/gpu_table1.py score --results "
        + " ".join(os.path.relpath(r, ROOT) for r in args.results)
        + "` here (the raw results are kept in the repository). "
        f"Same data, dev split, recipe and epochs as the CPU table ({st['epochs']} "
        f"epochs, ResNet + PL {st['epochs'] - st['max_iter']} + {st['max_iter']}), "
        f"at paper size: ResNet {st['n_filters']} filters x {st['n_blocks']} blocks "
        f"per stage, CRNN {st['crnn_filters']} filters; training dtype "
        f"{record['train_dtype']}; features quantised to 8 bits for the transfer "
        f"(largest error {meta.get('max_quantisation_error', float('nan')):.4f} "
        "on the [0, 1] scale).",
        "",
        "| system | event-based F1 (%) | segment-based F1 (%) | seeds: event F1 (%) "
        "| fit seconds | median s/epoch | clips/s per epoch (training + validation pass) | CPU table (ResNet width 16, CRNN 32): "
        "event / segment F1 (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, title in VARIANTS.items():
        rs = sorted(
            (r for r in rows if r["variant"] == variant), key=lambda r: r["seed"]
        )
        if not rs:
            continue
        e, s = (mean_std([r[k] for r in rs]) for k in ("event_f1", "segment_f1"))
        c = [r for r in cpu if r["variant"] == variant]
        cpu_cell = "-"
        if c:
            ce, cs = (mean_std([r[k] for r in c]) for k in ("event_f1", "segment_f1"))
            cpu_cell = f"{100 * ce[0]:.1f} / {100 * cs[0]:.1f}"
        lines.append(
            f"| {title} | {100 * e[0]:.1f} ± {100 * e[1]:.1f} | "
            f"{100 * s[0]:.1f} ± {100 * s[1]:.1f} | "
            + ", ".join(f"{r['seed']}: {100 * r['event_f1']:.1f}" for r in rs)
            + " | "
            + ", ".join(f"{r['fit_seconds']:.0f}" for r in rs)
            + " | "
            + ", ".join(f"{r['median_epoch_seconds']:.1f}" for r in rs)
            + " | "
            + ", ".join(f"{r['train_clips_per_s']:.0f}" for r in rs)
            + f" | {cpu_cell} |"
        )
    lines += ["", "Development event F1 after each epoch (seed 0):", ""]
    for r in rows:
        if r["seed"] == min(x["seed"] for x in rows):
            curve = ", ".join(
                "-" if v is None else f"{100 * v:.0f}"
                for v in r["dev_event_f1_per_epoch"]
            )
            lines.append(f"- {VARIANTS[r['variant']]}: {curve}")
    text = "\n".join(lines)
    write_json(os.path.join(args.pack, "gpu_table1_scored.json"), rows)
    if args.speed:
        speed = speed_section(args.speed)
        print(speed)
    if args.docs:
        figure = os.path.join(os.path.dirname(args.docs), "gpu_table1_curves.png")
        plot_curves(rows, figure, where=record["device"])
        text += (
            "\n\n![Development event F1 against training minutes on the "
            "accelerator](gpu_table1_curves.png)"
        )
        replace_section(args.docs, "gpu_table1", text)
        if args.speed:
            replace_section(args.docs, "gpu_speed", speed)
    print(text)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    pk = sub.add_parser("pack", help="here: features, labels, settings, wheels")
    pk.add_argument("--data", default="/tmp/sed_bench")
    pk.add_argument("--pack", default=os.path.join(ROOT, ".gpu"))
    pk.add_argument("--dry-run", action="store_true", help="print what would travel")
    tr = sub.add_parser("train", help="there: train the variants, write results")
    tr.add_argument("--pack", default=os.path.join(ROOT, ".gpu"))
    tr.add_argument("--out", required=True)
    tr.add_argument("--variants", nargs="+", default=["crnn", "resnet", "resnet_pl"])
    tr.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    tr.add_argument(
        "--budget", type=float, default=300.0, help="seconds; no new run after"
    )
    tr.add_argument("--epochs", type=int, default=None, help="default: the CPU table's")
    tr.add_argument(
        "--train-dtype", choices=("float32", "bfloat16"), default="bfloat16"
    )
    tr.add_argument("--device", default=None, help="default: cuda if present")
    tr.add_argument("--tiny", action="store_true", help="a one-minute CPU check")
    sc = sub.add_parser("score", help="here: sed_eval F1 into docs/benchmarks.md")
    sc.add_argument("--pack", default=os.path.join(ROOT, ".gpu"))
    sc.add_argument(
        "--results",
        nargs="+",
        required=True,
        help="results.json files (or folders) of one or more accelerator calls",
    )
    sc.add_argument("--speed", default=None, help="speed.json of gpu_speed.py")
    sc.add_argument("--data", default="/tmp/sed_bench", help="for the CPU table")
    sc.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    args = p.parse_args(argv)
    return {"pack": pack, "train": train, "score": score}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
