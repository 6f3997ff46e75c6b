"""Post-processing grids, tried on the saved probabilities of Table 1 runs.

``reproduce_table1.py --save-frames`` writes the dev and validation
probabilities of each run; this script tunes the per-class threshold and
median filter on the dev clips over several grids and scores the validation
soundscapes with sed_eval, without training again:

    python benchmarks/reproduce_table1.py --data /tmp/sed_bench --save-frames ...
    python benchmarks/postprocessing_grid.py --data /tmp/sed_bench --frames /tmp/sed_bench/frames-*.npz

``--cross-tune`` asks instead what the dev split costs: the estimator's final
tuning (hysteresis, medians up to 4 s) is chosen on half of the validation
soundscapes (even or odd clips) and scored on the other half, against the
same halves scored with the dev-tuned settings. A diagnostic only: the
halves share recordings, so its settings are not a result.
"""

import argparse
import functools
import os
import sys

import numpy as np
from _common import require

from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.decoding.decode import decode_events
from sklearn_sed.decoding.tuning import (
    FINAL_MEDIAN_FILTER_GRID,
    LOW_RATIO_GRID,
    MEDIAN_FILTER_GRID,
    THRESHOLD_GRID,
    tune_postprocessing,
)
from sklearn_sed.metrics.scoring import event_based_f1, segment_based_f1

#: name: (thresholds, median filters in seconds)
GRIDS = {
    "library grid (thresholds 0.1-0.7, medians 0-2 s)": (
        THRESHOLD_GRID,
        MEDIAN_FILTER_GRID,
    ),
    "medians up to 4 s": (THRESHOLD_GRID, (*MEDIAN_FILTER_GRID, 3.0, 4.0)),
    "thresholds 0.05-0.8 by 0.05": (
        tuple(np.round(np.arange(0.05, 0.81, 0.05), 2)),
        MEDIAN_FILTER_GRID,
    ),
    "no median filter": (THRESHOLD_GRID, (0.0,)),
}


def tune_shared(frame_probs, clip_probs, y_true, *, classes, duration):
    """The grid point of the library grid with the best dev macro F1.

    Returns the threshold, median filter (seconds) and low threshold (the
    threshold: no hysteresis) repeated per class, and the per-class dev F1
    at that point, as ``tune_postprocessing`` does.
    """
    best = None
    for thr in THRESHOLD_GRID:
        for med in MEDIAN_FILTER_GRID:
            *_, f1 = tune_postprocessing(
                frame_probs,
                clip_probs,
                y_true,
                classes=classes,
                duration=duration,
                thresholds=(thr,),
                median_filters=(med,),
            )
            if best is None or f1.mean() > best[2].mean():
                best = (thr, med, f1)
    n = len(classes)
    return np.full(n, best[0]), np.full(n, best[1]), np.full(n, best[0]), best[2]


#: name: how it tunes ``(frame_probs, clip_probs, y_true, classes=, duration=)``
TUNERS = {
    **{
        name: functools.partial(
            tune_postprocessing, thresholds=thresholds, median_filters=medians
        )
        for name, (thresholds, medians) in GRIDS.items()
    },
    "library grid, one setting for all classes": tune_shared,
    "hysteresis: low = 1, 0.75, 0.5, 0.25 x threshold": functools.partial(
        tune_postprocessing, low_ratios=LOW_RATIO_GRID
    ),
    "hysteresis, medians up to 4 s (the estimator's final tuning)": functools.partial(
        tune_postprocessing,
        median_filters=FINAL_MEDIAN_FILTER_GRID,
        low_ratios=LOW_RATIO_GRID,
    ),
}


def _score(frames, clips, refs, settings, classes):
    thr, med, low = settings
    events = decode_events(
        frames,
        clips,
        classes=classes,
        duration=10.0,
        threshold=thr,
        median_filter_sec=med,
        low_threshold=low,
    )
    return (
        100 * event_based_f1(refs, events, classes=classes),
        100 * segment_based_f1(refs, events, classes=classes, duration=10.0),
    )


def cross_tune(paths, y_strong, y_valid, classes):
    """Dev-tuned against validation-tuned settings, on held-out halves."""
    tune = TUNERS["hysteresis, medians up to 4 s (the estimator's final tuning)"]
    print(
        "| run | dev-tuned: event / segment F1 (%) | tuned on the other half: "
        "event / segment F1 (%) |"
    )
    print("|---|---|---|")
    for path in paths:
        f = np.load(path)
        y_dev = [y_strong[i] for i in f["dev_index"]]
        dev = f["dev_frames"].astype(np.float32), f["dev_clips"].astype(np.float32)
        vf = f["valid_frames"].astype(np.float32)
        vc = f["valid_clips"].astype(np.float32)
        dev_settings = tune(*dev, y_dev, classes=classes, duration=10.0)[:3]
        idx = np.arange(len(vf))
        halves = (idx[idx % 2 == 0], idx[idx % 2 == 1])
        ours, other = [], []
        for a, b in ((0, 1), (1, 0)):
            A, B = halves[a], halves[b]
            refs_a, refs_b = [y_valid[i] for i in A], [y_valid[i] for i in B]
            settings = tune(vf[A], vc[A], refs_a, classes=classes, duration=10.0)[:3]
            ours.append(_score(vf[B], vc[B], refs_b, dev_settings, classes))
            other.append(_score(vf[B], vc[B], refs_b, settings, classes))
        (e1, s1), (e2, s2) = np.mean(ours, axis=0), np.mean(other, axis=0)
        print(
            f"| {os.path.basename(path)} | {e1:.1f} / {s1:.1f} | {e2:.1f} / {s2:.1f} |",
            flush=True,
        )
    return 0


def labels(data):
    """Reference events of the strong training clips and of the validation
    soundscapes, in the order ``reproduce_table1.py`` uses."""
    sys.path.insert(0, os.path.dirname(__file__))
    from reproduce_table1 import extract

    split = extract(data, os.path.join(data, "cache"))
    return split["train"][2], split["valid"][1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/sed_bench")
    p.add_argument("--frames", nargs="+", required=True)
    p.add_argument("--only", nargs="+", default=None, help="grids by name")
    p.add_argument(
        "--cross-tune",
        action="store_true",
        help="tune on half of the validation soundscapes, score the other half",
    )
    args = p.parse_args(argv)
    require(os.path.join(args.data, "metadata", "strong.tsv"), "benchmark data")
    y_strong, y_valid = labels(args.data)
    classes = list(DESED_CLASSES)
    if args.cross_tune:
        return cross_tune(args.frames, y_strong, y_valid, classes)
    print(
        "| run | grid | dev event F1 (%) | validation event F1 (%) | validation segment F1 (%) |"
    )
    print("|---|---|---|---|---|")
    for path in args.frames:
        f = np.load(path)
        y_dev = [y_strong[i] for i in f["dev_index"]]
        dev = f["dev_frames"].astype(np.float32), f["dev_clips"].astype(np.float32)
        val = f["valid_frames"].astype(np.float32), f["valid_clips"].astype(np.float32)
        for name, tune in TUNERS.items():
            if args.only and name not in args.only:
                continue
            thr, med, low, f1 = tune(*dev, y_dev, classes=classes, duration=10.0)
            events = decode_events(
                *val,
                classes=classes,
                duration=10.0,
                threshold=thr,
                median_filter_sec=med,
                low_threshold=low,
            )
            ev = event_based_f1(y_valid, events, classes=classes)
            seg = segment_based_f1(y_valid, events, classes=classes, duration=10.0)
            print(
                f"| {os.path.basename(path)} | {name} | {100 * f1.mean():.1f} | "
                f"{100 * ev:.1f} | {100 * seg:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
