"""Table 1 of the NEC report on real recordings: train, score, record, report.

``run`` trains each variant (the CRNN of the DCASE2019 baseline, the
ResNet, the ResNet with pseudo labels) for each seed with the same data, epochs,
augmentation and post-processing tuning, scores the validation soundscapes
with sed_eval (DCASE2019 settings) and writes one record per run
(:class:`benchmarks.records.Record`). ``report`` merges records and prints
the table (mean ± spread over seeds), or writes it into
``docs/benchmarks.md``::

    python -m benchmarks.make_data --output /tmp/sed_bench
    python -m benchmarks.table1 run --data /tmp/sed_bench --seeds 0 1 2
    python -m benchmarks.table1 report benchmarks/results/table1

The DCASE2019 baseline as the report compares with it is the CRNN with its
mean teacher and the unlabelled clips; at the CPU's 14 epochs its EMA decay
is 0.99 (``MeanTeacher.check_horizon``)::

    python -m benchmarks.table1 run --data /tmp/sed_bench --variants crnn \
        --mean-teacher --unlabeled --ema-decay 0.99

On an accelerator, the data travel as a pack (``python -m benchmarks.data
--data /tmp/sed_bench --pack .gpu``) and ``run --pack .gpu --device cuda``
reads it (``benchmarks/gpu_run.sh``).
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

from benchmarks.common import ROOT, commit, replace_section, require
from benchmarks.data import dev_split, extract, load_pack
from benchmarks.quality import PseudoLabelQuality, unlabeled_rule_quality
from benchmarks.records import Record, merge, read_records, summarise
from benchmarks.settings import VARIANTS, Settings
from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.labels import UNLABELED
from sklearn_sed.metrics.scoring import sed_eval_results
from sklearn_sed.training.net import history_to_rows

DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "table1")


def load_data(args):
    """Training and validation data of ``--data`` (a make_data folder) or ``--pack``."""
    if args.pack:
        meta, train, valid = load_pack(args.pack, tiny=args.tiny)
        return {
            "train": train,
            "valid": valid,
            "weak_truth": None,
            "unlabeled": meta.get("unlabeled"),
        }
    require(
        os.path.join(args.data, "metadata", "strong.tsv"),
        "benchmark data (python -m benchmarks.make_data --output DIR)",
    )
    return extract(args.data, os.path.join(args.data, "cache"))


def run_one(settings, data, verbose=0):
    """Train and score one run; return its results (a record's ``results``)."""
    F, y_weak, y_strong = data["train"]
    train, dev = dev_split(y_strong)
    X_fit = F[train]
    y_weak_fit = [y_weak[i] for i in train]
    y_strong_fit = [y_strong[i] for i in train]
    truth = [(data.get("weak_truth") or [None] * len(F))[i] for i in train]
    if settings.unlabeled:
        if not data.get("unlabeled"):
            raise SystemExit(
                "error: unlabeled=True but the data hold no unlabelled clips "
                "(python -m benchmarks.make_data --n-unlabeled N)."
            )
        F_u, truth_u = data["unlabeled"]
        X_fit = np.concatenate([X_fit, F_u])
        y_weak_fit += [UNLABELED] * len(F_u)
        y_strong_fit += [None] * len(F_u)
        truth += list(truth_u)
    callbacks, quality = [], None
    if settings.variant == "resnet_pl" and any(t is not None for t in truth):
        quality = PseudoLabelQuality(truth, classes=list(DESED_CLASSES))
        callbacks.append(quality)
    sed = settings.estimator(verbose=verbose, callbacks=callbacks)
    t0 = time.perf_counter()
    sed.fit(
        X_fit,
        y_weak_fit,
        y_strong_fit,
        X_val=F[dev],
        y_val=[y_strong[i] for i in dev],
    )
    fit_seconds = time.perf_counter() - t0
    F_valid, y_valid = data["valid"]
    events = sed.predict_events(F_valid)
    classes = [str(c) for c in sed.classes_]
    ev = sed_eval_results(y_valid, events, metric="event", classes=classes)
    seg = sed_eval_results(
        y_valid, events, metric="segment", classes=classes, duration=10.0
    )
    results = {
        "event_f1": ev["class_wise_average"]["f_measure"]["f_measure"],
        "segment_f1": seg["class_wise_average"]["f_measure"]["f_measure"],
        "per_class_event_f1": {
            c: ev["class_wise"][c]["f_measure"]["f_measure"] for c in classes
        },
        "fit_seconds": fit_seconds,
        "best_epoch": sed.best_epoch_,
        "dev_event_f1": sed.validation_f1_,
        "pseudo_label_history": sed.pseudo_label_history_,
        "pseudo_label_quality": quality.records_ if quality is not None else [],
        "history": history_to_rows(sed.net_.history),
        "decoding": {
            "threshold": [float(x) for x in sed.threshold_],
            "median_filter_sec": [float(x) for x in sed.median_filter_sec_],
            "low_threshold": [float(x) for x in sed.low_threshold_],
        },
        "n_train_clips": len(X_fit),
        "n_unlabeled_clips": int(sed.n_unlabeled_),
    }
    if data.get("unlabeled") and data["unlabeled"][1] is not None:
        # The confidence rule of unlabelled clips, with this run's model.
        results["unlabeled_rule"] = unlabeled_rule_quality(sed, *data["unlabeled"])
    if sed.teacher_ is not None:
        t_events = sed.teacher_.predict_events(F_valid)
        t_ev = sed_eval_results(y_valid, t_events, metric="event", classes=classes)
        results["teacher_event_f1"] = t_ev["class_wise_average"]["f_measure"][
            "f_measure"
        ]
    return results


def run(args):
    data = load_data(args)
    fixed = {}
    if args.tiny:  # a one-minute check of the whole path
        fixed = dict(n_filters=2, n_blocks=1, crnn_filters=4, epochs=2, max_iter=1)
    t_start = time.perf_counter()
    for seed in args.seeds:
        for variant in args.variants:
            if args.budget and time.perf_counter() - t_start > args.budget:
                print(f"budget of {args.budget:.0f} s spent: {variant} s{seed} skipped")
                continue
            settings = Settings.from_args(args, variant=variant, seed=seed, **fixed)
            started_at = commit()
            results = run_one(settings, data, verbose=args.verbose)
            record = Record.new("table1", settings.as_dict(), results, started_at)
            path = record.write(args.out)
            print(
                f"{variant} s{seed}: event F1 {100 * results['event_f1']:.1f} %, "
                f"segment F1 {100 * results['segment_f1']:.1f} %, "
                f"{results['fit_seconds'] / 60:.1f} min -> {path}",
                flush=True,
            )
    return 0


def table(records):
    """Markdown of Table 1: one row per group of runs (equal settings but seed)."""
    lines = [
        "| system | event-based F1 (%) | segment-based F1 (%) | training minutes "
        "| seeds: event F1 (%) | seeds: best epoch | settings | commit, machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = merge(records)
    for shared, runs in groups:
        name = _label(shared)
        res = [r.results for r in runs]
        differs = _differs(shared)
        origin = sorted({f"{r.commit}, {r.machine}" for r in runs})
        lines.append(
            f"| {name} "
            f"| {summarise(100 * r['event_f1'] for r in res)} "
            f"| {summarise(100 * r['segment_f1'] for r in res)} "
            f"| {summarise(r['fit_seconds'] / 60 for r in res)} "
            f"| {', '.join(_seed_f1(r) for r in runs)} "
            f"| {', '.join(_seed_best_epoch(r) for r in runs)} "
            f"| {', '.join(f'{k}={v}' for k, v in differs.items()) or 'defaults'} "
            f"| {'; '.join(origin)} |"
        )
    lines += _commands(groups) + _per_class(groups)
    lines += _mean_teacher_epochs(groups) + _unlabeled_rule(groups)
    return "\n".join(lines)


def _commands(groups, data="DATA"):
    """The ``sklearn-sed train`` command of each row (its settings, seed 0)."""
    lines = [
        "",
        "Each row with the command line (`DATA` a `benchmarks.make_data` folder; "
        "`--set random_state=S` for seed S; then `sklearn-sed predict MODEL "
        "DATA/audio/validation --output events.tsv` and `sklearn-sed evaluate "
        "events.tsv DATA/metadata/validation.tsv` score it):",
        "",
    ]
    for shared, _ in groups:
        settings = Settings.from_dict({**shared, "seed": 0})
        lines.append(f"- {_label(shared)}: `{settings.train_command(data)}`")
    return lines


def _label(shared):
    """The row name of a group of runs (their settings but the seed)."""
    return Settings.from_dict({**shared, "seed": 0}).label()


def _differs(shared):
    """The settings of a group that differ from the defaults, but its row's own."""
    base = Settings().as_dict()
    own = ("variant", "seed", "unlabeled", "mean_teacher", "ema_decay")
    return {k: v for k, v in shared.items() if k not in own and base.get(k) != v}


def _seed_f1(record):
    return f"{record.settings['seed']}: {100 * record.results['event_f1']:.1f}"


def _seed_best_epoch(record):
    """``seed: epoch`` of the kept epoch; ``seed: -`` in a record without one."""
    return f"{record.settings['seed']}: {record.results.get('best_epoch', '-')}"


def _per_class(groups):
    """Event F1 per class of every row, mean over its seeds (%)."""
    scored = [
        (shared, [r.results["per_class_event_f1"] for r in runs])
        for shared, runs in groups
        if all("per_class_event_f1" in r.results for r in runs)
    ]
    if not scored:
        return []
    classes = list(scored[0][1][0])
    lines = [
        "",
        "Event-based F1 per class (%), mean over each row's seeds:",
        "",
        "| system | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for shared, per_class in scored:
        cells = [
            np.mean([100 * run.get(c, np.nan) for run in per_class]) for c in classes
        ]
        lines.append(
            f"| {_label(shared)} | " + " | ".join(f"{c:.1f}" for c in cells) + " |"
        )
    return lines


def _mean_teacher_epochs(groups):
    """Per epoch of every mean-teacher run: consistency cost, weight, dev F1."""
    lines = []
    for shared, runs in groups:
        if not shared.get("mean_teacher"):
            continue
        if not lines:
            lines = ["", "Mean teacher, per epoch: consistency cost (x 1000) / "
                     "its weight / teacher's dev event F1 at threshold 0.5 (%):", ""]  # fmt: skip
        name = _label(shared)
        differs = ", ".join(f"{k}={v}" for k, v in _differs(shared).items())
        name += f" ({differs})" if differs else ""
        for r in runs:
            cells = [
                f"{1000 * h['consistency']:.0f} / {h['consistency_weight']:.2f} / "
                f"{100 * h.get('valid_event_f1', float('nan')):.0f}"
                for h in r.results["history"]
            ]
            lines.append(f"- {name}, seed {r.settings['seed']}: " + "; ".join(cells))
    return lines


def _unlabeled_rule(groups):
    """The confidence rule on the unlabelled clips, mean over each group's runs."""
    lines = []
    for shared, runs in groups:
        rules = [
            r.results["unlabeled_rule"] for r in runs if "unlabeled_rule" in r.results
        ]
        if not rules:
            continue
        if not lines:
            lines = [
                "",
                "Pseudo labels of the unlabelled clips by the confidence rule "
                "(`select_unlabeled`), with each run's fitted model, against "
                "their kept-aside events (mean over seeds, %; the ratios over "
                "the seeds that selected clips, - where none did):",
                "",
                "| model | confidence | theta | clips selected | clip labels "
                "right | frame precision | frame recall | seeds |",
                "|---|---|---|---|---|---|---|---|",
            ]
        name = _label(shared)
        for k, row in enumerate(rules[0]):
            rows = [rule[k] for rule in rules]
            # A run that selected no clip has no precision or recall (older
            # records stored 0 for them): the ratios average the others.
            some = [r for r in rows if r["n_pseudo"] > 0]
            cells = [np.mean([100 * r["selected"] for r in rows])] + [
                _mean_defined([100 * r[key] for r in some])
                for key in ("clip_precision", "precision", "recall")
            ]
            seeds = f"{len(rows)}"
            if len(some) < len(rows):
                seeds += f" ({len(rows) - len(some)} selected none)"
            lines.append(
                f"| {name} | {row['confidence']} | {row['threshold']} | "
                + " | ".join("-" if np.isnan(c) else f"{c:.1f}" for c in cells)
                + f" | {seeds} |"
            )
    return lines


def _mean_defined(values):
    """The mean of the values that are not NaN; NaN where none is."""
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def report(args):
    records = read_records(args.records, experiment="table1")
    if not records:
        sys.exit("error: no table1 record in " + ", ".join(args.records))
    # A record made before a setting existed ran with its default.
    records = [
        dataclasses.replace(r, settings=Settings.from_dict(r.settings).as_dict())
        for r in records
    ]
    text = table(records)
    print(text)
    if args.docs:
        replace_section(args.docs, args.section, text)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.table1", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score variants x seeds; write records")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", help="a benchmarks.make_data folder")
    where.add_argument("--pack", help="a pack of benchmarks.data (accelerators)")
    r.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--out", default=DEFAULT_OUT, help="folder of the records")
    r.add_argument("--budget", type=float, default=None, help="seconds; then stop")
    r.add_argument("--tiny", action="store_true", help="a one-minute check")
    r.add_argument("--verbose", type=int, default=0)
    Settings.add_arguments(r)
    p = sub.add_parser("report", help="merge records into the table")
    p.add_argument("records", nargs="+", help="record files or folders")
    p.add_argument("--docs", default=None, help="write the table into this page")
    p.add_argument("--section", default="table1", help="its marked section")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
