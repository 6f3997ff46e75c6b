"""``sklearn-sed evaluate``: F1 of predicted events against a reference.

sed_eval's event- and segment-based F1, and PSDS from a scores folder.
"""

import json
import os
import sys

from sklearn_sed.cli._common import CLIError, sed_scores_eval


def _cmd_evaluate(args):
    from sklearn_sed.datasets import read_strong_tsv
    from sklearn_sed.metrics.scoring import finite_or_zero, sed_eval_results

    ref = read_strong_tsv(args.reference, classes=None)
    pred = read_strong_tsv(args.prediction, classes=None)
    if not ref:
        raise CLIError(f"{args.reference}: the reference lists no file.")
    unknown = sorted(set(pred) - set(ref))
    if unknown:
        print(
            f"warning: {len(unknown)} predicted file(s) are not in the reference, "
            f"e.g. {unknown[0]!r}; they are ignored.",
            file=sys.stderr,
        )
    names = list(ref)
    y_true = [ref[n] for n in names]
    y_pred = [pred.get(n, []) for n in names]
    # Output classes that the reference lacks are scored too: their events
    # are false positives (sed_eval with the union of the labels).
    classes = sorted({e[2] for evs in y_true + y_pred for e in evs})
    out = {}
    for metric in ("event", "segment"):
        res = sed_eval_results(y_true, y_pred, metric=metric, classes=classes)
        avg = res["class_wise_average"]["f_measure"]
        out[metric] = {
            "macro_f1": finite_or_zero(avg["f_measure"]),
            "micro_f1": finite_or_zero(res["overall"]["f_measure"]["f_measure"]),
            # A class with references but no output scores 0, as the macro
            # mean counts it (sed_eval's own per-class value is NaN).
            "per_class_f1": {
                c: finite_or_zero(res["class_wise"][c]["f_measure"]["f_measure"])
                for c in classes
            },
        }
        if "f_measure_sed_eval" in avg:
            out[metric]["macro_f1_sed_eval"] = finite_or_zero(avg["f_measure_sed_eval"])
    if args.scores_dir:
        out["psds"] = _psds_from_scores(args.scores_dir, ref)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if "psds" in out:
        p = out["psds"]
        print(f"PSDS1 {p['psds1']:.3f}, PSDS2 {p['psds2']:.3f} ({p['n_files']} files)")
    for metric in ("event", "segment"):
        r = out[metric]
        print(
            f"{metric}-based F1: macro {100 * r['macro_f1']:.2f} %, "
            f"micro {100 * r['micro_f1']:.2f} %"
        )
        if "macro_f1_sed_eval" in r:
            print(
                f"  (sed_eval's macro mean, skipping classes never output: "
                f"{100 * r['macro_f1_sed_eval']:.2f} %)"
            )
    print(f"\n{'class':30s} {'event F1':>9s} {'segment F1':>11s}")
    for c in classes:
        e, s = out["event"]["per_class_f1"][c], out["segment"]["per_class_f1"][c]
        print(f"{c:30s} {100 * e:8.2f}% {100 * s:10.2f}%")


def _psds_from_scores(folder, reference):
    """PSDS1 and PSDS2 of the score files in ``folder`` against ``reference``."""
    from sklearn_sed.metrics.psds import psds_from_scores

    io = sed_scores_eval().io

    if not os.path.isdir(folder):
        raise CLIError(f"--scores-dir {folder!r} is not a folder.")
    scores = {}
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            if name.endswith(".tsv"):
                path = os.path.join(root, name)
                key = os.path.relpath(path, folder)[: -len(".tsv")]
                try:
                    scores[key.replace(os.sep, "/")] = io.read_sed_scores(path)
                except Exception as exc:  # pandas and sed_scores_eval raise many
                    raise CLIError(f"{path}: not a score file ({exc}).") from None
    truth = {os.path.splitext(name)[0]: events for name, events in reference.items()}
    missing = sorted(set(truth) - set(scores))
    if missing:
        raise CLIError(
            f"{len(missing)} reference file(s) have no score file in {folder!r}, "
            f"e.g. {missing[0]!r}.tsv; run predict --scores-dir on every file."
        )
    scores = {k: scores[k] for k in truth}
    durations = {k: float(df["offset"].iloc[-1]) for k, df in scores.items()}
    return {
        "n_files": len(scores),
        **{
            f"psds{n}": psds_from_scores(scores, truth, durations, scenario=n)
            for n in (1, 2)
        },
    }


def add_parser(sub):
    """Add the ``evaluate`` command to ``sub`` (argparse subparsers)."""
    evaluate = sub.add_parser("evaluate", help="F1 scores of predictions (sed_eval)")
    evaluate.add_argument("prediction", help="events TSV written by predict")
    evaluate.add_argument("reference", help="reference events TSV (DESED format)")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print the scores as JSON (macro, micro and per-class F1) instead "
        "of a table",
    )
    evaluate.add_argument(
        "--scores-dir",
        help="frame scores written by predict --scores-dir: adds PSDS1 and PSDS2 "
        "(DCASE settings, sed_scores_eval)",
    )
    evaluate.set_defaults(func=_cmd_evaluate)
