"""Try the detection levers of the CPU recipe side by side on an accelerator.

A Table 1 run takes 20-30 minutes on the 2-core CPU, so a lever costs an
hour of CPU per seed to measure there; on an H100 the same run, at the CPU
recipe's width, takes well under a minute. This script trains many variants
of the CPU recipe (``reproduce_table1.py``'s settings from the pack of
``gpu_table1.py``, with one or two settings changed each) in several
processes that share the accelerator, scores each on the validation
soundscapes with sed_eval there and writes one ``sweep.json``. What wins
here is then confirmed on the CPU, where the bars of the detection issue are
measured; the accelerator only picks which levers deserve the CPU's hours.

    python benchmarks/gpu_table1.py pack --data /tmp/sed_bench     # here
    python benchmarks/gpu_sweep.py --pack .gpu --out $OUT          # there
    python benchmarks/gpu_sweep.py --report DIR/sweep.json         # here

``--tiny`` runs two small configurations on this CPU (the test).
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ROOT, machine, now, replace_section, save_dev_f1_figure, write_json

#: (name, variant, seeds, overrides of the CPU table's settings), most
#: telling first: a budget cut drops the end of the list. The first
#: sweep (before FilterAugment was in the recipe).
LEVERS = (
    ("recipe", "resnet", (0, 1, 2), {}),
    ("mixup 0.5", "resnet", (0, 1, 2), {"mixup": 0.5}),
    ("clip gating", "resnet", (0, 1, 2), {"clip_gating": True}),
    (
        "mixup 0.5 + clip gating",
        "resnet",
        (0, 1, 2),
        {"mixup": 0.5, "clip_gating": True},
    ),
    ("20 epochs", "resnet", (0,), {"epochs": 20}),
    ("30 epochs", "resnet", (0,), {"epochs": 30}),
    ("3 blocks per stage", "resnet", (0,), {"n_blocks": 3}),
    ("lr 0.004", "resnet", (0,), {"lr": 4e-3}),
    ("lr 0.001", "resnet", (0,), {"lr": 1e-3}),
    ("batch 8", "resnet", (0,), {"batch_size": 8}),
    ("no augmentation", "resnet", (0,), {"time_shift": 0.0, "freq_mask": 0}),
    ("width 24", "resnet", (0,), {"n_filters": 24}),
    ("50 epochs", "resnet", (0,), {"epochs": 50}),
    ("PL, mixup + gating", "resnet_pl", (0, 1), {"mixup": 0.5, "clip_gating": True}),
    (
        "PL keep_strong, mixup + gating",
        "resnet_pl",
        (0, 1),
        {"mixup": 0.5, "clip_gating": True, "stage2_weighting": "keep_strong"},
    ),
    ("CRNN, mixup + gating", "crnn", (0,), {"mixup": 0.5, "clip_gating": True}),
    ("CRNN", "crnn", (0,), {}),
    ("PL, mixup", "resnet_pl", (0, 1, 2), {"mixup": 0.5}),
    (
        "PL keep_strong, mixup",
        "resnet_pl",
        (0, 1, 2),
        {"mixup": 0.5, "stage2_weighting": "keep_strong"},
    ),
)
#: The sweep of levers on top of the recipe with
#: FilterAugment (6 dB), three seeds each, all in one round of workers.
FILTER_AUGMENT = (
    ("recipe", "resnet", (0, 1, 2), {}),
    ("FilterAugment 12 dB", "resnet", (0, 1, 2), {"filter_augment": 12.0}),
    ("3 blocks per stage", "resnet", (0, 1, 2), {"n_blocks": 3}),
    ("mixup 0.5", "resnet", (0, 1, 2), {"mixup": 0.5}),
    (
        "PL keep_strong, mixup 0.5",
        "resnet_pl",
        (0, 1, 2),
        {"mixup": 0.5, "stage2_weighting": "keep_strong"},
    ),
)
#: The sweep of Table 1 again with the decoder's
#: hysteresis (every variant), eq. 4's pseudo labels against hysteresis
#: pseudo labels (``pseudo_low_ratio``), three seeds each, 15 runs in one
#: round of 15 workers.
PSEUDO_HYSTERESIS = (
    ("recipe", "resnet", (0, 1, 2), {}),
    ("CRNN", "crnn", (0, 1, 2), {}),
    ("PL (eq. 4)", "resnet_pl", (0, 1, 2), {}),
    ("PL, pseudo_low_ratio 0.25", "resnet_pl", (0, 1, 2), {"pseudo_low_ratio": 0.25}),
    (
        "PL keep_strong, pseudo_low_ratio 0.25",
        "resnet_pl",
        (0, 1, 2),
        {"pseudo_low_ratio": 0.25, "stage2_weighting": "keep_strong"},
    ),
)
#: The sweep of the same fifteen runs on the data of
#: ``make_data.py --weak-sources disjoint`` (pack it with
#: ``gpu_table1.py pack --data`` that folder): weak clips from recordings the
#: strong clips never use, as in DCASE2019.
WEAK_DISJOINT = PSEUDO_HYSTERESIS
#: The sweeps whose pack is not ``make_data.py``'s default data: their runs
#: never merge with another sweep's (``merge_records``).
OTHER_DATA = {"weak_disjoint": "make_data.py --weak-sources disjoint"}
#: The sweep of stage 2 at a rate of its own (the cosine
#: restarted after the ten stage-1 epochs at half the peak rate), with the
#: control that trains the same schedule without pseudo labels, and the
#: recipe's one cosine beside both; three seeds each, 15 runs.
_HYST = {"pseudo_low_ratio": 0.25, "stage2_weighting": "keep_strong"}
STAGE2_RATE = (
    ("recipe", "resnet", (0, 1, 2), {}),
    ("restart after epoch 10", "resnet", (0, 1, 2), {"lr_restart_epoch": 10}),
    (
        "PL keep_strong, pseudo_low_ratio 0.25, restart after epoch 10",
        "resnet_pl",
        (0, 1, 2),
        {**_HYST, "lr_restart_epoch": 10},
    ),
    ("PL keep_strong, pseudo_low_ratio 0.25", "resnet_pl", (0, 1, 2), _HYST),
    (
        "PL (eq. 10), pseudo_low_ratio 0.25, restart after epoch 10",
        "resnet_pl",
        (0, 1, 2),
        {"pseudo_low_ratio": 0.25, "lr_restart_epoch": 10},
    ),
)
HEADINGS = {
    "levers": "### The levers side by side on an accelerator",
    "filter_augment": "### Levers on top of FilterAugment, side by side on an "
    "accelerator",
    "frames": "### The recipe on an accelerator, probabilities saved",
    "pseudo_hysteresis": "### Table 1 with hysteresis pseudo labels on an accelerator",
    "weak_disjoint": "### Table 1 with weak clips of their own recordings, on an "
    "accelerator",
    "stage2_rate": "### Stage 2 at a rate of its own, on an accelerator",
}
#: The recipe's probabilities of three seeds, to study post-processing
#: (``--save-frames``; ``postprocessing_grid.py --frames``).
FRAMES = (("recipe", "resnet", (0, 1, 2), {}),)
#: Each sweep by name, with the section of docs/benchmarks.md it writes.
SWEEPS = {
    "levers": (LEVERS, "gpu_sweep"),
    "filter_augment": (FILTER_AUGMENT, "gpu_sweep_fa"),
    "frames": (FRAMES, "gpu_sweep_frames"),
    "pseudo_hysteresis": (PSEUDO_HYSTERESIS, "gpu_sweep_pl_hysteresis"),
    "weak_disjoint": (WEAK_DISJOINT, "gpu_sweep_weak_disjoint"),
    "stage2_rate": (STAGE2_RATE, "gpu_sweep_stage2_rate"),
}
TINY = (
    (
        "recipe",
        "resnet",
        (0,),
        {"n_filters": 2, "n_blocks": 1, "epochs": 1, "compile": "off"},
    ),
    (
        "PL, mixup + gating",
        "resnet_pl",
        (0,),
        {
            "n_filters": 2,
            "n_blocks": 1,
            "epochs": 2,
            "max_iter": 1,
            "mixup": 0.5,
            "clip_gating": True,
            "compile": "off",
        },
    ),
)

_DATA = {}


def _load(pack, tiny, threads=2):
    if "split" not in _DATA:
        import torch

        torch.set_num_threads(threads)
        from gpu_table1 import load_pack

        _DATA["split"] = load_pack(pack, tiny)
    return _DATA["split"]


def _pack_created(pack):
    """When the pack was made: what tells two packs' records apart."""
    with open(os.path.join(pack, "meta.json")) as f:
        return json.load(f).get("created")


def run_config(job):
    """Train and score one configuration (in a worker process)."""
    import torch
    from gpu_table1 import _events
    from reproduce_table1 import build_parser, dev_split, fit_with_dev, make_variant

    from sklearn_sed.metrics.scoring import (
        event_based_f1,
        sed_eval_results,
        segment_based_f1,
    )

    name, variant, seed, overrides, pack, tiny, device, threads, frames_dir = job
    meta, (F, y_weak, y_strong), (F_valid, y_valid) = _load(pack, tiny, threads)
    settings = {**vars(build_parser().parse_args([])), **meta["settings"], **overrides}
    st = types.SimpleNamespace(**{**settings, "verbose": 0})
    train_idx, dev = dev_split(y_strong)
    sed = make_variant(variant, seed, st, device=device)
    fit_sec = fit_with_dev(sed, F, y_weak, y_strong, train_idx, dev)
    # The validation probabilities once, decoded with both gating settings.
    valid_probs = sed.predict_frames(F_valid), sed.predict_proba(F_valid)
    if frames_dir:  # the format of reproduce_table1.py --save-frames
        import numpy as np

        tag = name.replace(" ", "_")
        np.savez_compressed(
            os.path.join(frames_dir, f"frames-{tag}-{variant}-s{seed}.npz"),
            dev_frames=sed.predict_frames(F[dev]).astype(np.float16),
            dev_clips=sed.predict_proba(F[dev]).astype(np.float16),
            valid_frames=valid_probs[0].astype(np.float16),
            valid_clips=valid_probs[1].astype(np.float16),
            dev_index=np.asarray(dev),
        )
    events = sed.decode(*valid_probs)
    classes = [str(c) for c in sed.classes_]
    ev = sed_eval_results(y_valid, events, metric="event", classes=classes)
    seg = sed_eval_results(
        y_valid, events, metric="segment", classes=classes, duration=10.0
    )
    # The other setting of clip gating, tuned on the same dev split with the
    # same weights (a post-processing choice: no retraining).
    from sklearn_sed.decoding.decode import decode_events
    from sklearn_sed.decoding.tuning import tune_postprocessing

    gate = not sed.clip_gating
    dev_frames, dev_clips = sed.predict_frames(F[dev]), sed.predict_proba(F[dev])
    thr, med, low, _ = tune_postprocessing(
        dev_frames,
        dev_clips,
        [y_strong[i] for i in dev],
        classes=sed.classes_,
        duration=sed.duration,
        clip_gating=gate,
    )
    other = decode_events(
        *valid_probs,
        classes=sed.classes_,
        duration=sed.duration,
        threshold=thr,
        median_filter_sec=med,
        low_threshold=low,
        order=sed.postprocessing,
        clip_gating=gate,
    )
    history = sed.net_.history
    out = {
        "other_gating": {
            "clip_gating": gate,
            "event_f1": event_based_f1(y_valid, other, classes=classes),
            "segment_f1": segment_based_f1(
                y_valid, other, classes=classes, duration=10.0
            ),
        },
        "name": name,
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "event_f1": ev["class_wise_average"]["f_measure"]["f_measure"],
        "segment_f1": seg["class_wise_average"]["f_measure"]["f_measure"],
        "per_class_event_f1": {
            c: ev["class_wise"][c]["f_measure"]["f_measure"] for c in classes
        },
        "best_epoch": sed.best_epoch_,
        "dev_event_f1_per_epoch": history[:, "valid_event_f1"],
        "epoch_seconds": history[:, "dur"],
        "fit_seconds": fit_sec,
        "pseudo_label_history": sed.pseudo_label_history_,
        "events": [_events(e) for e in events],
    }
    del sed
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def sweep(args):
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    configs = TINY if args.tiny else SWEEPS[args.sweep][0]
    if args.only:
        configs = [c for c in configs if c[0] in args.only]
    jobs = [
        (
            name,
            variant,
            seed,
            overrides,
            args.pack,
            args.tiny,
            device,
            args.threads,
            args.out if args.save_frames else None,
        )
        for name, variant, seeds, overrides in configs
        for seed in seeds
    ]
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sweep.json")
    record = {
        "machine": machine(),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "date": now(),
        "workers": args.workers,
        "threads": args.threads,
        "sweep": args.sweep,
        "only": args.only,
        "pack_created": _pack_created(args.pack),
        "runs": [],
    }
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    with ctx.Pool(args.workers, maxtasksperchild=None) as pool:
        pending = [pool.apply_async(run_config, (job,)) for job in jobs]
        for res in pending:
            left = args.budget - (time.perf_counter() - t0)
            try:
                r = res.get(timeout=max(1.0, left))
            except mp.TimeoutError:
                print(f"budget of {args.budget:.0f} s spent; stopping", flush=True)
                pool.terminate()
                break
            record["runs"].append(r)
            write_json(path, record)
            g = r["other_gating"]
            print(
                f"{r['name']} ({r['variant']}, seed {r['seed']}): event F1 "
                f"{100 * r['event_f1']:.1f} %, segment F1 {100 * r['segment_f1']:.1f} % "
                f"(clip gating {g['clip_gating']}: {100 * g['event_f1']:.1f} %, "
                f"{100 * g['segment_f1']:.1f} %) "
                f"(fit {r['fit_seconds']:.0f} s, best epoch {r['best_epoch']}) "
                f"at {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    write_json(path, record)
    print(
        f"{len(record['runs'])} of {len(jobs)} runs in {time.perf_counter() - t0:.0f} s"
    )
    return 0


def merge_records(records, sweep):
    """The runs of ``sweep`` gathered from several ``sweep.json`` records.

    A run counts for a row of ``sweep`` when its name, variant and overrides
    are that row's and its seed one of the row's; the first record that holds
    a (row, seed) gives it. So the runs of a sweep may come from calls of
    other sweeps that trained the same configuration (``--only`` picks the
    rows a call trains).
    """
    rows = {(n, v): (o, set(seeds)) for n, v, seeds, o in SWEEPS[sweep][0]}
    data = OTHER_DATA.get(sweep, "the default data")
    packs = {r["pack_created"] for r in records if "pack_created" in r}
    if len(packs) > 1:
        raise ValueError(
            f"The records were trained on {len(packs)} different packs (created "
            f"{', '.join(sorted(packs))}); merge only the records of one pack."
        )
    runs, seen = [], set()
    for record in records:
        other = OTHER_DATA.get(record.get("sweep"), "the default data")
        if other != data:
            raise ValueError(
                f"A record of the {record.get('sweep')} sweep cannot give runs to "
                f"the {sweep} sweep: they train on other data ({other} against "
                f"{data})."
            )
        for r in record["runs"]:
            key = (r["name"], r["variant"])
            if key not in rows:
                continue
            overrides, seeds = rows[key]
            if r["overrides"] != overrides or r["seed"] not in seeds:
                continue
            if (*key, r["seed"]) in seen:
                continue
            seen.add((*key, r["seed"]))
            runs.append(r)
    order = {key: i for i, key in enumerate(rows)}
    runs.sort(key=lambda r: (order[(r["name"], r["variant"])], r["seed"]))
    return runs


def _command(record):
    only = record.get("only")
    return (
        f"--sweep {record.get('sweep', 'levers')} --workers {record['workers']}"
        + (f" --threads {record['threads']}" if "threads" in record else "")
        + (" --only " + " ".join(f'"{o}"' for o in only) if only else "")
    )


def report(args):
    """Write the sweep's table into docs/benchmarks.md (the runs of one
    record, or of several records merged with ``merge_records``)."""
    records = []
    for path in args.report:
        with open(path) as f:
            records.append(json.load(f))
    if len(records) == 1 and args.sweep is None:
        record = records[0]
    else:
        sweep = args.sweep or records[0].get("sweep", "levers")
        try:
            runs = merge_records(records, sweep)
        except ValueError as e:
            sys.exit(f"error: {e}")
        record = {
            **records[0],
            "sweep": sweep,
            "runs": runs,
            "calls": [
                {"command": _command(r), "device": r["device"], "date": r["date"]}
                for r in records
            ],
        }
        if not record["runs"]:
            sys.exit(
                f"error: none of the runs in {', '.join(args.report)} is a row of "
                f"the {sweep} sweep (same name, variant, overrides and seed); "
                "pass --sweep with the sweep those records trained."
            )
    groups = {}
    for r in record["runs"]:
        groups.setdefault((r["name"], r["variant"]), []).append(r)
    base = {r["seed"]: r["event_f1"] for r in groups.get(("recipe", "resnet"), [])}
    rows = [
        "| configuration | variant | seeds | event F1 (%) | segment F1 (%) | "
        "event F1 against the recipe, same seeds (points) | event F1 with clip "
        "gating switched (%) | best epochs | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, variant), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        e = [100 * r["event_f1"] for r in rs]
        s = [100 * r["segment_f1"] for r in rs]
        paired = [
            100 * (r["event_f1"] - base[r["seed"]]) for r in rs if r["seed"] in base
        ]

        def ms(v):
            return f"{statistics.mean(v):.1f}" + (
                f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else ""
            )

        def gated(rs):
            v = [100 * r["other_gating"]["event_f1"] for r in rs if "other_gating" in r]
            return ms(v) if v else "not run"

        rows.append(
            f"| {name} | {variant} | {', '.join(str(r['seed']) for r in rs)} | "
            f"{ms(e)} | {ms(s)} | "
            + (f"{statistics.mean(paired):+.1f}" if paired else "")
            + f" | {gated(rs)}"
            + f" | {', '.join(str(r['best_epoch']) for r in rs)} | "
            + ", ".join(f"{r['fit_seconds']:.0f}" for r in rs)
            + " |"
        )
    sweep = record.get("sweep", "levers")
    if "calls" in record:
        calls = (
            f"Runs from {len(record['calls'])} "
            + ("call" if len(record["calls"]) == 1 else "calls")
            + ", each `python "
            "benchmarks/gpu_sweep.py --pack .gpu --out $OUT` with: "
            + "; ".join(
                f"`{c['command']}` on {c['device']} ({c['date']})"
                for c in record["calls"]
            )
            + "; a configuration that two sweeps share is trained once; "
        )
    else:
        calls = (
            "Command: `python benchmarks/gpu_sweep.py --pack .gpu --out $OUT "
            f"{_command(record)}` on {record['device']} ({record['workers']} "
            "runs at a time), "
        )
    text = "\n".join(
        [
            HEADINGS[sweep],
            "",
            calls
            + "then `python benchmarks/gpu_sweep.py --report "
            + " ".join(os.path.relpath(p, ROOT) for p in args.report)
            + (f" --sweep {sweep}" if "calls" in record else "")
            + f"`. Date: {record['date']}. Data, dev split and settings of the CPU "
            'Table 1 (`make_detector("cpu")`: ResNet width 16 x 2 blocks, CRNN '
            "width 32, 14 epochs, Adam with warm-up and cosine decay, bfloat16"
            + ("), " if sweep == "levers" else ", FilterAugment 6 dB), ")
            + "one or two settings changed per row; scored with sed_eval on the "
            "150 validation soundscapes.",
            "",
            *rows,
        ]
    )
    if args.curves:
        plot_curves(record["runs"], args.curves, record["device"])
        text += (
            f"\n\n![Development event F1 per epoch, {sweep}]"
            f"({os.path.relpath(args.curves, os.path.dirname(args.docs))})"
        )
    replace_section(args.docs, SWEEPS[sweep][1], text)
    print(text)
    return 0


def plot_curves(runs, path, device):
    """Development event F1 after every epoch, the mean over seeds of each
    configuration with its range shaded: where each one stalls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = {}
    for r in runs:
        groups.setdefault(f"{r['name']} ({r['variant']})", []).append(
            100 * np.asarray(r["dev_event_f1_per_epoch"], dtype=float)
        )
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, curves in groups.items():
        n = min(len(c) for c in curves)
        c = np.stack([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        (line,) = ax.plot(
            epochs, c.mean(0), marker=".", label=f"{name}, {len(curves)} seeds"
        )
        ax.fill_between(epochs, c.min(0), c.max(0), color=line.get_color(), alpha=0.15)
    save_dev_f1_figure(
        fig,
        ax,
        f"epoch ({device}; stage 2 of the pseudo-label runs after epoch 10)",
        "Where each variant stalls: mean over seeds, range shaded",
        path,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", default=os.path.join(ROOT, ".gpu"))
    p.add_argument("--out", default=None)
    p.add_argument(
        "--sweep",
        choices=sorted(SWEEPS),
        default=None,
        help="the sweep to run (default filter_augment), or with several "
        "--report records the sweep whose runs to gather from them",
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument(
        "--threads", type=int, default=2, help="torch threads of each worker"
    )
    p.add_argument("--budget", type=float, default=330, help="seconds")
    p.add_argument("--device", default=None, help="default: cuda if present")
    p.add_argument("--tiny", action="store_true", help="a CPU check")
    p.add_argument(
        "--save-frames",
        action="store_true",
        help="write each run's dev and validation probabilities to --out",
    )
    p.add_argument("--only", nargs="+", default=None, help="configurations by name")
    p.add_argument(
        "--report",
        nargs="+",
        default=None,
        help="sweep.json record(s) to write into docs (several: merged, see --sweep)",
    )
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument(
        "--curves",
        default=None,
        help="with --report: also plot each configuration's development F1 "
        "per epoch into this PNG and link it from the section",
    )
    args = p.parse_args(argv)
    if args.report:
        return report(args)
    if not args.out:
        p.error("--out is required to run the sweep")
    args.sweep = args.sweep or "filter_augment"
    return sweep(args)


if __name__ == "__main__":
    sys.exit(main())
