"""Table 1 of the NEC report on real recordings: baseline CRNN, ResNet, ResNet + PL.

Same data, epochs, augmentation and post-processing tuning for the three
variants, several seeds, mean and standard deviation. Event-based and
segment-based macro F1 with the DCASE2019 sed_eval settings on the validation
soundscapes of ``benchmarks/make_data.py``. Writes ``table1.json`` next to
the data, ``docs/table1.png`` and the table into ``docs/benchmarks.md``.

Runs are merged into ``table1.json``: a run of some variants or seeds replaces
those and keeps the others (``--fresh`` starts over), so the seeds can be run
in separate runs with the same settings.

    python benchmarks/make_data.py --output /tmp/sed_bench
    python benchmarks/reproduce_table1.py --data /tmp/sed_bench
"""

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from _common import (
    ROOT,
    bfloat16_is_fast,
    machine,
    now,
    replace_section,
    require,
    resolve_auto,
    save_dev_f1_figure,
    write_json,
)
from joblib import Memory
from skorch.callbacks import Callback

from sklearn_sed import LogMelExtractor, make_detector
from sklearn_sed.datasets import DESED_CLASSES, load_desed, read_strong_tsv
from sklearn_sed.metrics.scoring import sed_eval_results
from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.recipes import RECIPES
from sklearn_sed.training.callbacks import PseudoLabelQuality
from sklearn_sed.training.checkpoints import CHECKPOINT_NAME, seal_checkpoint

#: The recipe whose settings are the defaults of the command line.
CPU = RECIPES["cpu"]

FIGURES = (
    "\n\n![Table 1 bar chart](table1.png)\n\n"
    "![Development event F1 against training minutes](table1_curves.png)"
)
VARIANTS = {
    "crnn": "DCASE2019 baseline CRNN (no pseudo label)",
    "resnet": "ResNet without pseudo label",
    "resnet_pl": "ResNet with pseudo label (proposed)",
}


def extract(data, cache):
    """Features of every split, extracted once (cached on disk)."""
    ext = LogMelExtractor()
    split = {}
    X_s, w_s, s_s = load_desed(
        os.path.join(data, "audio", "strong"),
        strong_tsv=os.path.join(data, "metadata", "strong.tsv"),
    )
    X_w, w_w, s_w = load_desed(
        os.path.join(data, "audio", "weak"),
        weak_tsv=os.path.join(data, "metadata", "weak.tsv"),
    )
    X_v, _, s_v = load_desed(
        os.path.join(data, "audio", "validation"),
        strong_tsv=os.path.join(data, "metadata", "validation.tsv"),
    )
    fit_transform = Memory(cache, verbose=0).cache(_features)
    F_train, F_valid = fit_transform(ext, X_s + X_w, X_v)
    split["train"] = (F_train, w_s + w_w, s_s + s_w)
    split["valid"] = (F_valid, s_v)
    # True events of the weak clips (kept aside, never trained on).
    truth_path = os.path.join(data, "weak_truth.tsv")
    truth = read_strong_tsv(truth_path) if os.path.exists(truth_path) else {}
    split["weak_truth"] = [None] * len(X_s) + [
        truth.get(os.path.basename(path)) for path in X_w
    ]
    return split


def _features(ext, X_train, X_valid):
    return ext.fit_transform(X_train), ext.transform(X_valid)


def class_wise_f1(y_true, y_pred, classes):
    res = sed_eval_results(y_true, y_pred, metric="event", classes=classes)
    return {c: res["class_wise"][c]["f_measure"]["f_measure"] for c in classes}


def label(key):
    """Display name of a variant, or of a variant run with a tagged option."""
    base, _, tag = key.partition("+")
    return VARIANTS[base] + (f", option `{tag}` (not the report)" if tag else "")


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


def make_variant(variant, seed, args, callbacks=(), **params):
    """The detector of one Table 1 variant with the settings ``args``.

    ``params`` override the estimator's (``device``, ``train_dtype``).
    """
    stage1 = args.epochs - args.max_iter if variant == "resnet_pl" else args.epochs
    module = teacher = None
    if variant == "crnn":
        module = functools.partial(CRNN, n_filters=args.crnn_filters, hidden_size=64)
    if variant == "resnet_pl" and args.teacher == "crnn":
        # The CRNN of the same seed and settings, fitted inside this run's
        # fit (its minutes count in the run's) on the same clips.
        teacher = make_variant("crnn", seed, args, **params)
    return make_detector(
        "cpu",
        **resolve_auto(
            {
                "module": module,
                "classes": DESED_CLASSES,
                "n_filters": args.n_filters,
                "n_blocks": args.n_blocks,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "max_epochs": stage1,
                "pseudo_label": variant == "resnet_pl",
                "teacher": teacher,
                "teacher_weight": args.teacher_weight,
                "max_iter": args.max_iter,
                "delta": args.delta,
                "pseudo_negatives": args.pseudo_negatives,
                "pseudo_low_ratio": args.pseudo_low_ratio,
                "stage2_weighting": args.stage2_weighting,
                "lr_restart_epoch": args.lr_restart_epoch,
                "lr_restart_scale": args.lr_restart_scale,
                "time_shift": args.time_shift,
                "freq_mask": args.freq_mask,
                "ema_decay": args.ema_decay,
                "mixup": args.mixup,
                "filter_augment": args.filter_augment,
                "clip_gating": args.clip_gating,
                "compile": {"auto": "auto", "on": True, "off": False}[args.compile],
                "train_dtype": args.train_dtype,
                "random_state": seed,
                "verbose": args.verbose,
                "callbacks": list(callbacks),
                **params,
            }
        ),
    )


#: The variants whose first ``--epochs - --max-iter`` epochs are the same
#: training (without a teacher), so that ``--share-stage1`` trains them once.
SHARE_STAGE1 = ("resnet", "resnet_pl")
#: Fingerprint of a stage-1 snapshot that another variant continues.
_BRANCH = "stage-1 snapshot shared by the variants of one seed"


class Stage1Snapshot(Callback):
    """Keep the training state at the end of stage 1 (for ``--share-stage1``).

    The estimator's checkpoint (``checkpoint_dir``) is rewritten after every
    epoch by its last callback; when epoch ``stage1_epochs + 1`` begins it
    holds the end of epoch ``stage1_epochs``, before the pseudo labels of
    the first iteration, and this callback copies it to ``path``.
    """

    def __init__(self, checkpoint_dir, stage1_epochs, path):
        self.checkpoint_dir = checkpoint_dir
        self.stage1_epochs = stage1_epochs
        self.path = path

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.stage1_epochs + 1:  # the row is already new
            shutil.copyfile(
                os.path.join(self.checkpoint_dir, CHECKPOINT_NAME), self.path
            )


def _continue_from(snapshot, checkpoint_dir):
    """Make ``snapshot`` the checkpoint of a fit whose fingerprint is ``_BRANCH``."""
    state = torch.load(snapshot, map_location="cpu", weights_only=True)
    state["fingerprint"] = _BRANCH
    os.makedirs(checkpoint_dir, exist_ok=True)
    torch.save(seal_checkpoint(state), os.path.join(checkpoint_dir, CHECKPOINT_NAME))


def stage1_settings(args):
    """The settings that determine stage 1 (those a snapshot must match)."""
    # max_iter stays: with --epochs it sets where stage 1 ends.
    skip = {*_RUN_ONLY, *_PL_ONLY, "crnn_filters", "docs", "data"} - {"max_iter"}
    restart = args.lr_restart_epoch
    if restart is None or restart >= args.epochs - args.max_iter:
        skip.add("lr_restart_scale")  # the restarted cosine is stage 2's
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def _stage1_folder(args, seed):
    """Folder of the stage-1 snapshot of ``seed`` (``--share-stage1``).

    A temporary folder, removed at the end, or ``--stage1-dir/s{seed}``,
    kept, so that a later invocation continues more variants from the same
    stage 1; it holds the stage-1 settings and refuses other ones.
    """
    if args.stage1_dir is None:
        return tempfile.mkdtemp(prefix=f"stage1-s{seed}-")
    folder = os.path.join(args.stage1_dir, f"s{seed}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "settings.json")
    settings = stage1_settings(args)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = settings_diff(saved, settings)
        if diff:
            raise SystemExit(
                f"The stage-1 snapshot in {folder} was trained with other "
                f"settings (there, now): {diff}. Use another --stage1-dir, or "
                "the same settings."
            )
    else:
        write_json(path, settings)
    return folder


def run_one(variant, seed, split, args, stage1_dir=None):
    """Train and score one variant and seed.

    With ``stage1_dir`` (``--share-stage1``), the first variant of the seed
    saves its state at the end of stage 1 there, and the others start from
    it: their first epochs are the same training (same seed, data order,
    schedule and weights), so only their own epochs are run, and their
    ``fit_seconds`` are the shared stage-1 epochs' plus their own.
    """
    F, y_weak, y_strong = split["train"]
    train, dev = dev_split(y_strong)
    F_dev = F[dev]
    callbacks = []
    quality = None
    if variant == "resnet_pl" and any(t is not None for t in split["weak_truth"]):
        quality = PseudoLabelQuality(
            y_true_events=[split["weak_truth"][i] for i in train],
            classes=list(DESED_CLASSES),
            duration=10.0,
        )
        callbacks.append(quality)
    params = {}
    n_stage1 = args.epochs - args.max_iter
    resumed = False
    if stage1_dir is not None:
        snapshot = os.path.join(stage1_dir, "stage1.pt")
        params["checkpoint_dir"] = os.path.join(stage1_dir, variant)
        if os.path.exists(snapshot):
            _continue_from(snapshot, params["checkpoint_dir"])
            resumed = True
        else:
            callbacks.append(
                Stage1Snapshot(params["checkpoint_dir"], n_stage1, snapshot)
            )
    sed = make_variant(variant, seed, args, callbacks, **params)
    if resumed:
        # The snapshot was written by another variant's fit, whose
        # parameters (hence fingerprint) differ in what stage 1 does not use.
        sed._fingerprint = lambda *a, **k: _BRANCH
    fit_sec = fit_with_dev(sed, F, y_weak, y_strong, train, dev)
    if resumed:
        fit_sec += float(sum(sed.net_.history[:n_stage1, "dur"]))
    F_valid, y_valid = split["valid"]
    events = sed.predict_events(F_valid)
    classes = [str(c) for c in sed.classes_]
    ev = sed_eval_results(y_valid, events, metric="event", classes=classes)
    seg = sed_eval_results(
        y_valid, events, metric="segment", classes=classes, duration=10.0
    )
    clip_pred = sed.predict(F_valid)
    if args.save_frames:
        # Probabilities of the dev and validation clips (float16), so that
        # post-processing can be studied without training again.
        tag = "" if args.tag is None else f"-{args.tag}"
        np.savez_compressed(
            os.path.join(args.data, f"frames{tag}-{variant}-s{seed}.npz"),
            dev_frames=sed.predict_frames(F_dev).astype(np.float16),
            dev_clips=sed.predict_proba(F_dev).astype(np.float16),
            valid_frames=sed.predict_frames(F_valid).astype(np.float16),
            valid_clips=sed.predict_proba(F_valid).astype(np.float16),
            dev_index=np.asarray(dev),
        )
    history = sed.net_.history
    teacher = {}
    if sed.teacher_ is not None:  # the CRNN that drew the pseudo labels
        t_events = sed.teacher_.predict_events(F_valid)
        t_ev = sed_eval_results(y_valid, t_events, metric="event", classes=classes)
        t_seg = sed_eval_results(
            y_valid, t_events, metric="segment", classes=classes, duration=10.0
        )
        teacher = {
            "teacher_event_f1": t_ev["class_wise_average"]["f_measure"]["f_measure"],
            "teacher_segment_f1": t_seg["class_wise_average"]["f_measure"]["f_measure"],
            "teacher_fit_seconds": float(sum(sed.teacher_.net_.history[:, "dur"])),
        }
    return {
        **teacher,
        "variant": variant,
        "seed": seed,
        "event_f1": ev["class_wise_average"]["f_measure"]["f_measure"],
        "segment_f1": seg["class_wise_average"]["f_measure"]["f_measure"],
        "segment_f1_sed_eval": seg["class_wise_average"]["f_measure"][
            "f_measure_sed_eval"
        ],
        "per_class_event_f1": {
            c: ev["class_wise"][c]["f_measure"]["f_measure"] for c in classes
        },
        "pseudo_label_history": sed.pseudo_label_history_,
        "best_epoch": sed.best_epoch_,
        "dev_event_f1_per_epoch": history[:, "valid_event_f1"],
        "epoch_seconds": history[:, "dur"],
        "stage_per_epoch": history[:, "stage"],
        "pseudo_label_quality": quality.records_ if quality is not None else [],
        "postprocessing": {
            c: {
                "threshold": float(sed.threshold_[k]),
                "median_filter_sec": float(sed.median_filter_sec_[k]),
                # Hysteresis (the decoder's); equal to the
                # threshold where the tuning kept single thresholding.
                "low_threshold": float(
                    getattr(sed, "low_threshold_", sed.threshold_)[k]
                ),
            }
            for k, c in enumerate(classes)
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("docs", "data")},
        "fit_seconds": fit_sec,
        "stage1_shared": resumed,
        "n_clips_with_predicted_class": int(clip_pred.any(axis=1).sum()),
    }


def mean_std(values):
    values = [0.0 if v is None or not np.isfinite(v) else v for v in values]
    return statistics.mean(values), (
        statistics.stdev(values) if len(values) > 1 else 0.0
    )


def report(results, args, elapsed):
    rows = [
        "| system | event-based F1 (%) | segment-based F1 (%) | segment F1, "
        "sed_eval's skip rule (%) | training minutes | median s/epoch | best epoch "
        "| seeds: event F1 (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows.append(
        "| *paper: DCASE2019 baseline / ResNet / ResNet + PL* | *23.7 / 24.1 / 25.9* "
        "| *55.2 / 61.3 / 62.0* | | | | | |"
    )
    summary = {}
    keys = list(VARIANTS) + sorted({r["variant"] for r in results} - set(VARIANTS))
    for key in keys:
        name = label(key)
        rs = [r for r in results if r["variant"] == key]
        if not rs:
            continue
        e, s, s2 = (
            mean_std([r[k] for r in rs])
            for k in ("event_f1", "segment_f1", "segment_f1_sed_eval")
        )
        summary[key] = {"event_f1": e, "segment_f1": s, "segment_f1_sed_eval": s2}
        rs = sorted(rs, key=lambda r: r["seed"])
        minutes = ", ".join(f"{r['fit_seconds'] / 60:.1f}" for r in rs)
        # The median epoch is what a run costs on quiet cores; the minutes
        # include any contention with other jobs of the machine.
        per_epoch = ", ".join(
            f"{statistics.median(r['epoch_seconds']):.0f}"
            for r in rs
            if r.get("epoch_seconds")
        )
        best = ", ".join(str(r["best_epoch"]) for r in rs)
        seeds = ", ".join(f"{r['seed']}: {100 * r['event_f1']:.1f}" for r in rs)
        rows.append(
            f"| {name} | {100 * e[0]:.1f} ± {100 * e[1]:.1f} | "
            f"{100 * s[0]:.1f} ± {100 * s[1]:.1f} | {100 * s2[0]:.1f} ± {100 * s2[1]:.1f} "
            f"| {minutes} | {per_epoch} | {best} | {seeds} |"
        )
    classes = sorted(results[0]["per_class_event_f1"])
    per_class = [
        "| class | " + " | ".join(label(k) for k in summary) + " |",
        "|---|" + "---|" * len(summary),
    ]
    for c in classes:
        cells = []
        for key in summary:
            m, sd = mean_std(
                [r["per_class_event_f1"][c] for r in results if r["variant"] == key]
            )
            cells.append(f"{100 * m:.1f} ± {100 * sd:.1f}")
        per_class.append(f"| {c} | " + " | ".join(cells) + " |")
    pl = [r for r in results if r["variant"].startswith("resnet_pl")]
    pl_lines = []
    for r in pl:
        steps = ", ".join(
            f"θ={h['threshold']:.2f}: {h['n_pseudo']}/{h['n_weak']}"
            for h in r["pseudo_label_history"]
        )
        pl_lines.append(f"- {label(r['variant'])}, seed {r['seed']}: {steps}")
        if "teacher_event_f1" in r:
            pl_lines.append(
                f"  - teacher (CRNN, same seed): event F1 "
                f"{100 * r['teacher_event_f1']:.1f} %, segment F1 "
                f"{100 * r['teacher_segment_f1']:.1f} %, "
                f"{r['teacher_fit_seconds'] / 60:.1f} of the run's minutes"
            )
        for q in r.get("pseudo_label_quality", []):
            pl_lines.append(
                f"  - iteration {q['iteration']} (θ={q['threshold']:.2f}, "
                f"M_p={q['n_pseudo']}): frame precision {100 * q['precision']:.1f} %, "
                f"recall {100 * q['recall']:.1f} %, clip labels right "
                f"{100 * q['clip_precision']:.1f} %"
            )
    cmd = "python benchmarks/reproduce_table1.py " + " ".join(sys.argv[1:])
    st = results[0].get("settings") or vars(args)
    pl = next(
        (r["settings"] for r in results if r["variant"] == "resnet_pl"), st
    )  # the pseudo-label settings are those of the runs that use them
    text = "\n".join(
        [
            "### Table 1 on real recordings",
            "",
            "Command: `python benchmarks/make_data.py --output "
            f"{args.data}`, then `python benchmarks/reproduce_table1.py --data "
            f"{args.data}` (every variant and seed). This table was written by "
            f"`{cmd}` from the {len(results)} runs on record in "
            f"`{'table1.json' if args.tag is None else f'table1-{args.tag}.json'}`; "
            "runs of separate invocations merge by variant and seed, with the "
            "settings below.",
            f"Machine: {machine()}. Date: {now()}. "
            + (f"Wall time: {elapsed / 60:.0f} min. " if elapsed == elapsed else "")
            + "Runs (seeds) per variant: "
            + ", ".join(
                f"{k} {sum(r['variant'] == k for r in results)}" for k in VARIANTS
            )
            + ".",
            f'Settings (identical for all variants; `make_detector("cpu")` with '
            f"these overrides): {st['epochs']} epochs in all "
            f"(ResNet + PL: {pl['epochs'] - pl['max_iter']} stage-1 epochs + "
            f"{pl['max_iter']} pseudo-label iterations of 1 epoch, delta "
            f"{pl['delta']}, stage-2 weighting "
            f"{pl.get('stage2_weighting', 'paper')}, pseudo negatives "
            f"{pl.get('pseudo_negatives', 'all')}, pseudo-label hysteresis ratio "
            f"{pl.get('pseudo_low_ratio', 1.0)}), Adam lr {st['lr']} with 1 warm-up epoch and cosine "
            f"decay, training dtype {st['train_dtype']} (auto: bfloat16 where the "
            f"CPU has it{_dtype_here(st['train_dtype'])}), weight averaging "
            f"{st.get('ema_decay')}, "
            f"batch {st['batch_size']}, ResNet width {st['n_filters']} x "
            f"{st['n_blocks']} block(s), CRNN width {st['crnn_filters']}, time "
            f"shift {st['time_shift']}, frequency mask {st['freq_mask']} bands, "
            f"mixup {st.get('mixup', 0.0)}, FilterAugment "
            f"{st.get('filter_augment', 0.0)} dB, clip gating {st.get('clip_gating', False)}, "
            f"torch.compile {st.get('compile', 'off (before it existed)')}; "
            "best epoch and per-class threshold and median filter chosen on a dev "
            "split (15 % of the strong training clips, the same for every run). "
            "Training minutes: `fit` only (feature extraction excluded), "
            "validation scoring every epoch included.",
            "",
            *rows,
            "",
            "Per-class event-based F1 (%):",
            "",
            *per_class,
            "",
            "Weak clips that got pseudo labels per iteration (M_p / M_w):",
            "",
            *pl_lines,
        ]
    )
    return text, summary


def plot_curves(results, path, where="2-core CPU"):
    """Development event F1 after every epoch against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    colors = {
        "crnn": "tab:gray",
        "resnet": "tab:blue",
        "resnet_pl": "tab:orange",
        "resnet_pl+keep_strong": "tab:green",
    }
    for r in sorted(results, key=lambda r: (r["variant"], r["seed"])):
        if "epoch_seconds" not in r:
            continue
        minutes = np.cumsum(r["epoch_seconds"]) / 60
        ax.plot(
            minutes,
            100 * np.asarray(r["dev_event_f1_per_epoch"], dtype=float),
            color=colors.get(r["variant"]),
            marker=".",
            label=f"{label(r['variant'])}, seed {r['seed']}",
        )
    save_dev_f1_figure(
        fig, ax, f"training minutes ({where})", "Where each variant stalls", path
    )


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    keys = list(summary)
    x = np.arange(len(keys))
    for k, (metric, name) in enumerate(
        (("event_f1", "event-based F1"), ("segment_f1", "segment-based F1"))
    ):
        means = [100 * summary[v][metric][0] for v in keys]
        stds = [100 * summary[v][metric][1] for v in keys]
        ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=4, label=name)
    ax.axhline(23.7, color="gray", ls="--", lw=1)
    ax.axhline(55.2, color="gray", ls=":", lw=1)
    ax.set_xticks(
        x, [label(v).replace(", option", ",\noption") for v in keys], fontsize=7
    )
    ax.set_ylabel("macro F1 (%)")
    ax.set_title(
        "Table 1 on real recordings (dashed/dotted: DCASE2019 baseline in the paper)"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _dtype_here(setting):
    """``", float32 on this machine"`` (or bfloat16): what ``auto`` meant on
    the machine that wrote the table, where the runs were trained."""
    if setting != "auto":
        return ""
    return f", {'bfloat16' if bfloat16_is_fast('cpu') else 'float32'} on this machine"


def load_results(path):
    """The runs on record in ``path`` (an empty list when there is none)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        saved = json.load(f)
    return saved["results"] if isinstance(saved, dict) else saved


#: Settings that may differ between runs merged into one table.
_RUN_ONLY = (
    "save_frames",
    "seeds",
    "variants",
    "verbose",
    "report_only",
    "fresh",
    "tag",
    "include_tag",
    "share_stage1",
    "stage1_dir",
)
_PL_ONLY = (
    "max_iter",
    "delta",
    "pseudo_negatives",
    "pseudo_low_ratio",
    "stage2_weighting",
    "teacher",
    "teacher_weight",
)
#: What a setting was in the runs on record from before it existed.
_BEFORE_IT_EXISTED = {
    "filter_augment": 0.0,
    "pseudo_low_ratio": 1.0,
    "lr_restart_epoch": None,
    "lr_restart_scale": 0.5,
}
#: Settings a variant does not use, so that they may differ from its runs.
_UNUSED = {
    "crnn": ("n_filters", "n_blocks", "paper_size", *_PL_ONLY),
    "resnet": ("crnn_filters", *_PL_ONLY),
    "resnet_pl": ("crnn_filters",),  # unless a CRNN teacher (see below)
}


def settings_diff(saved, current, skip=()):
    """``{name: (saved, current)}`` of the settings in ``current`` (bar
    ``skip``) whose saved value differs."""
    return {
        k: (saved.get(k), v)
        for k, v in current.items()
        if k not in skip and saved.get(k) != v
    }


def check_same_settings(results, args, parser):
    """Refuse to merge runs made with other settings into one table.

    The runs that this invocation replaces (its variants and seeds) are not
    compared, and a setting that a variant does not use (the pseudo-label
    settings for the CRNN and the plain ResNet) may differ from its runs.
    """
    current = {k: v for k, v in vars(args).items() if k not in ("docs", "data")}
    replaced = {(v, s) for v in args.variants for s in args.seeds}
    for r in results:
        if (r["variant"], r["seed"]) in replaced:
            continue
        saved = {
            **vars(parser.parse_args([])),
            **_BEFORE_IT_EXISTED,
            **r.get("settings", {}),
        }
        skip = (*_RUN_ONLY, *_UNUSED.get(r["variant"], ()))
        if r["variant"] == "resnet_pl" and "none" not in (
            saved["teacher"],
            args.teacher,
        ):
            skip = tuple(k for k in skip if k != "crnn_filters")
        diff = settings_diff(saved, current, skip)
        if diff:
            raise SystemExit(
                f"The {r['variant']} seed {r['seed']} run on record used other "
                f"settings (on record, now): {diff}. Run with the same settings, "
                "with --fresh to start over, or with --tag to keep the runs apart."
            )


def _teacher_weight(text):
    """``--teacher-weight``: a float in [0, 1] or "max"."""
    return text if text == "max" else float(text)


def build_parser():
    """The command line, whose defaults are the settings of the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/sed_bench")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=CPU["max_epochs"] + CPU["max_iter"])
    p.add_argument("--max-iter", type=int, default=CPU["max_iter"])
    p.add_argument("--delta", type=float, default=CPU["delta"])
    p.add_argument(
        "--lr-restart-epoch",
        type=int,
        default=CPU.get("lr_restart_epoch"),
        help="restart the cosine schedule after this many epochs (e.g. "
        "--epochs minus --max-iter: stage 2 at a rate of its own; not the "
        "report)",
    )
    p.add_argument(
        "--lr-restart-scale",
        type=float,
        default=CPU.get("lr_restart_scale", 0.5),
        help="peak rate of the restarted cosine, as a fraction of --lr",
    )
    p.add_argument(
        "--stage1-dir",
        default=None,
        help="with --share-stage1: keep the stage-1 snapshots in DIR/s{SEED} "
        "(default: a temporary folder, removed at the end), so that a later "
        "run continues other variants or settings of stage 2 from them",
    )
    p.add_argument(
        "--share-stage1",
        action="store_true",
        help="train the first --epochs minus --max-iter epochs of the "
        "resnet and resnet_pl variants of a seed once (they are the same "
        "training) and continue each variant from there",
    )
    p.add_argument(
        "--pseudo-negatives",
        choices=("all", "absent"),
        default="all",
        help="frames below theta that a pseudo label marks negative (all: eq. 4)",
    )
    p.add_argument(
        "--pseudo-low-ratio",
        type=float,
        default=1.0,
        help="hysteresis of the frame pseudo labels: frames in a run above "
        "RATIO x theta that holds a frame above theta are positive (1.0: eq. 4)",
    )
    p.add_argument(
        "--stage2-weighting",
        choices=("paper", "keep_strong"),
        default="paper",
        help="frame-loss weights of stage 2 (paper: eq. 10; keep_strong: eq. 8's "
        "strong weight plus eq. 10's pseudo term)",
    )
    p.add_argument(
        "--teacher",
        choices=("none", "crnn"),
        default="none",
        help="where the pseudo labels come from (none: the ResNet itself, as in "
        "the report; crnn: a CRNN of the same seed and settings, fitted in the "
        "same run; not the report)",
    )
    p.add_argument(
        "--teacher-weight",
        type=_teacher_weight,
        default=1.0,
        help="with --teacher crnn, the teacher's share in the probabilities "
        "that are pseudo-labelled (the ResNet's own make up the rest), or "
        "'max': the larger of the two",
    )
    p.add_argument("--n-filters", type=int, default=CPU["n_filters"])
    p.add_argument("--n-blocks", type=int, default=CPU["n_blocks"])
    p.add_argument("--crnn-filters", type=int, default=32)
    p.add_argument("--lr", type=float, default=CPU["lr"])
    p.add_argument("--batch-size", type=int, default=CPU["batch_size"])
    p.add_argument("--time-shift", type=float, default=CPU["time_shift"])
    p.add_argument("--freq-mask", type=int, default=CPU["freq_mask"])
    p.add_argument("--ema-decay", type=float, default=CPU["ema_decay"])
    p.add_argument(
        "--mixup", type=float, default=0.0, help="probability that a batch is mixed"
    )
    p.add_argument(
        "--filter-augment",
        type=float,
        default=CPU["filter_augment"],
        help="largest gain (dB) of FilterAugment's random filters (0: off; "
        "default: the recipe's)",
    )
    p.add_argument(
        "--save-frames",
        action="store_true",
        help="write the dev and validation probabilities of each run to "
        "DATA/frames[-TAG]-VARIANT-sSEED.npz",
    )
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="off",
        help="train a torch.compile'd network (auto, as in older records: "
        "always; it aborts the interpreter on some CPUs)",
    )
    p.add_argument(
        "--clip-gating",
        action="store_true",
        help="keep a class's frames only where its clip probability passes its "
        "threshold (tuned with it on the dev split)",
    )
    p.add_argument(
        "--train-dtype",
        choices=("auto", "float32", "bfloat16"),
        default="float32",
        help="training precision (auto, as in older records: bfloat16 where "
        "the CPU or GPU has it natively)",
    )
    p.add_argument(
        "--paper-size",
        action="store_true",
        help="the report's width (64) and 2 blocks per stage (for a GPU)",
    )
    p.add_argument("--verbose", type=int, default=0)
    p.add_argument("--docs", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the table from DATA/table1.json (runs finished so "
        "far) without training",
    )
    p.add_argument(
        "--tag",
        default=None,
        help="keep these runs apart, in DATA/table1-TAG.json, and leave docs/ "
        "alone (for trying a setting)",
    )
    p.add_argument(
        "--include-tag",
        nargs="+",
        default=[],
        metavar="TAG",
        help="with --report-only: add the runs of DATA/table1-TAG.json as rows "
        "of their own (an option measured beside the report's method)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard the runs on record in DATA/table1.json instead of "
        "replacing only the variants and seeds run now",
    )
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    if args.paper_size:
        args.n_filters, args.n_blocks, args.crnn_filters = 64, 2, 64
    require(
        os.path.join(args.data, "metadata", "strong.tsv"),
        "benchmark data (run benchmarks/make_data.py first)",
    )
    t0 = time.perf_counter()
    record = os.path.join(
        args.data, "table1.json" if args.tag is None else f"table1-{args.tag}.json"
    )
    if args.report_only:
        results = load_results(record)
        for tag in args.include_tag:  # option runs, as rows of their own
            for r in load_results(os.path.join(args.data, f"table1-{tag}.json")):
                results.append({**r, "variant": f"{r['variant']}+{tag}"})
        text, summary = report(results, args, float("nan"))
        plot(summary, os.path.join(ROOT, "docs", "table1.png"))
        plot_curves(results, os.path.join(ROOT, "docs", "table1_curves.png"))
        replace_section(args.docs, "table1", text + FIGURES)
        print(text)
        return 0
    split = extract(args.data, os.path.join(args.data, "cache"))
    print(
        f"features: train {split['train'][0].shape}, valid {split['valid'][0].shape} "
        f"({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    results = [] if args.fresh else load_results(record)
    check_same_settings(results, args, p)
    if args.share_stage1 and args.teacher != "none":
        p.error(
            "--share-stage1 shares the ResNet's own stage 1; with --teacher the "
            "pseudo-label run also trains a teacher. Leave out one of the two."
        )
    if args.share_stage1:  # every variant of a seed, then the next seed
        runs = [(v, s) for s in args.seeds for v in args.variants]
    else:
        runs = [(v, s) for v in args.variants for s in args.seeds]
    stage1_dirs = {}
    try:
        for variant, seed in runs:
            stage1_dir = None
            if args.share_stage1 and variant in SHARE_STAGE1:
                if seed not in stage1_dirs:
                    stage1_dirs[seed] = _stage1_folder(args, seed)
                stage1_dir = stage1_dirs[seed]
            r = run_one(variant, seed, split, args, stage1_dir)
            # A rerun of one variant/seed replaces its earlier result; the
            # other runs on record are kept, so seeds can be run separately.
            results = [
                x for x in results if (x["variant"], x["seed"]) != (variant, seed)
            ]
            results.append(r)
            print(
                f"{variant} seed {seed}: event F1 {100 * r['event_f1']:.1f} %, "
                f"segment F1 {100 * r['segment_f1']:.1f} % "
                f"(fit {r['fit_seconds']:.0f} s, best epoch {r['best_epoch']})",
                flush=True,
            )
            write_json(record, results)
    finally:
        if args.stage1_dir is None:
            for path in stage1_dirs.values():
                shutil.rmtree(path, ignore_errors=True)
    text, summary = report(results, args, time.perf_counter() - t0)
    write_json(record, {"results": results, "summary": summary})
    if args.tag is not None:
        print(text)
        return 0
    plot(summary, os.path.join(ROOT, "docs", "table1.png"))
    plot_curves(results, os.path.join(ROOT, "docs", "table1_curves.png"))
    replace_section(args.docs, "table1", text + FIGURES)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
