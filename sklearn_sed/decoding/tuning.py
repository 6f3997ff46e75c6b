"""Per-class post-processing tuned on strongly labelled validation clips.

The DCASE systems that localised well chose one decision threshold and one
median-filter length per class on held-out strong clips (Cances et al. 2019;
Miyazaki et al. 2020; see ``docs/recipe.md``). With ``"threshold_first"``
decoding, a class's events depend only on its own threshold and filter, so
the macro F1 of the best per-class choice is the mean of the per-class best
F1: one sed_eval run per grid point scores every class at once.
"""

import numpy as np

from sklearn_sed.decoding.decode import decode_events
from sklearn_sed.metrics.scoring import classes_without_events_quietly, sed_eval_results

__all__ = [
    "FINAL_MEDIAN_FILTER_GRID",
    "LOW_RATIO_GRID",
    "MEDIAN_FILTER_GRID",
    "THRESHOLD_GRID",
    "tune_postprocessing",
]

#: Decision thresholds tried per class.
THRESHOLD_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: Median-filter lengths (seconds) tried per class.
MEDIAN_FILTER_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
#: Median-filter lengths (seconds) of the final tuning of a fitted detector:
#: stationary sounds (frying, a vacuum cleaner, a shaver) last up to the
#: whole clip, and their fragments need longer filters.
FINAL_MEDIAN_FILTER_GRID = (*MEDIAN_FILTER_GRID, 3.0, 4.0)
#: Hysteresis tried by the final tuning: the low threshold as a fraction of
#: the threshold (1.0 is single thresholding).
LOW_RATIO_GRID = (1.0, 0.75, 0.5, 0.25)


def tune_postprocessing(
    frame_probs,
    y_true,
    *,
    classes,
    duration,
    thresholds=THRESHOLD_GRID,
    median_filters=MEDIAN_FILTER_GRID,
    order="threshold_first",
    low_ratios=(1.0,),
):
    """Choose the event-F1-best threshold, median filter and hysteresis of every class.

    Parameters
    ----------
    frame_probs : ndarray of shape (n_clips, n_frames_out, n_classes)
        Frame probabilities of the validation clips.
    y_true : sequence of sequence of (onset, offset, event_label)
        Reference events per clip, in seconds.
    classes : array-like of shape (n_classes,)
        Class labels, in the column order of ``frame_probs``.
    duration : float
        Clip length in seconds.
    thresholds : sequence of float, default=THRESHOLD_GRID
        Thresholds to try, in [0, 1].
    median_filters : sequence of float, default=MEDIAN_FILTER_GRID
        Median-filter lengths to try, in seconds.
    order : {"threshold_first", "filter_first"}, default="threshold_first"
        Post-processing order (see :func:`~sklearn_sed.decoding.decode.decode_events`).
    low_ratios : sequence of float, default=(1.0,)
        Hysteresis to try: the low threshold as a fraction of the threshold,
        each in [0, 1] (1.0 is single thresholding; see
        :func:`~sklearn_sed.decoding.decode.binarize`). :data:`LOW_RATIO_GRID`
        is the final tuning's.

    Returns
    -------
    threshold : ndarray of shape (n_classes,)
        Best threshold per class.
    median_filter_sec : ndarray of shape (n_classes,)
        Best median-filter length per class, in seconds.
    low_threshold : ndarray of shape (n_classes,)
        Best hysteresis low threshold per class (equal to ``threshold``
        where single thresholding won).
    f1 : ndarray of shape (n_classes,)
        Event-based F1 of every class at its best setting (0 for a class
        without reference events: it keeps the first grid point).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.decoding.tuning import tune_postprocessing
    >>> frames = np.zeros((1, 10, 1)); frames[0, 2:6, 0] = 0.35
    >>> thr, med, low, f1 = tune_postprocessing(
    ...     frames, [[(0.2, 0.6, "a")]], classes=["a"],
    ...     duration=1.0, thresholds=(0.3, 0.5), median_filters=(0.0,))
    >>> float(thr[0]), float(f1[0])
    (0.3, 1.0)
    """
    thresholds = [float(t) for t in thresholds]
    median_filters = [float(m) for m in median_filters]
    low_ratios = [float(r) for r in low_ratios]
    if not thresholds or not median_filters or not low_ratios:
        raise ValueError(
            "thresholds, median_filters and low_ratios must each hold at least "
            f"one value. Got thresholds={thresholds!r}, "
            f"median_filters={median_filters!r}, low_ratios={low_ratios!r}."
        )
    if any(not 0.0 <= r <= 1.0 for r in low_ratios):
        raise ValueError(
            "low_ratios must lie in [0, 1] (the low threshold as a fraction of "
            f"the threshold; 1.0 is single thresholding). Got {low_ratios!r}."
        )
    names = [str(c) for c in classes]
    n_classes = len(names)
    best_f1 = np.full(n_classes, -1.0)
    best_thr = np.full(n_classes, thresholds[0])
    best_med = np.full(n_classes, median_filters[0])
    best_low = np.full(n_classes, low_ratios[0] * thresholds[0])
    y_true = [list(ev or []) for ev in y_true]
    for thr in thresholds:
        for med in median_filters:
            for ratio in low_ratios:
                events = decode_events(
                    frame_probs,
                    classes=names,
                    duration=duration,
                    threshold=thr,
                    median_filter_sec=med,
                    order=order,
                    low_threshold=None if ratio == 1.0 else ratio * thr,
                )
                with classes_without_events_quietly():
                    res = sed_eval_results(
                        y_true, events, metric="event", classes=names
                    )["class_wise"]
                f1 = np.array(
                    [np.nan_to_num(res[c]["f_measure"]["f_measure"]) for c in names]
                )
                better = f1 > best_f1
                best_f1[better] = f1[better]
                best_thr[better] = thr
                best_med[better] = med
                best_low[better] = ratio * thr
    return best_thr, best_med, best_low, np.maximum(best_f1, 0.0)
