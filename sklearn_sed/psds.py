"""Threshold-independent evaluation: PSDS from frame scores (sed_scores_eval).

The DCASE community ranks Task 4 systems by the polyphonic sound detection
score (Bilen et al. 2020) since 2023. This module computes it from
``predict_frames`` with sed_scores_eval's exact method (Ebbers et al. 2022).
sed_scores_eval is an optional extra: ``pip install sklearn-sed[psds]``.
"""

import numpy as np

from sklearn_sed.labels import merge_overlapping_events
from sklearn_sed.metrics import (
    StrongLabelScorer,
    call_final,
    final_estimator,
    reference_events,
    take_clips,
)

__all__ = ["PSDS1", "PSDS2", "PSDSScorer", "psds_score", "psds_scorer"]

#: DCASE PSDS scenario 1 (tight localisation) and 2 (clip-level detection).
PSDS1 = dict(
    dtc_threshold=0.7,
    gtc_threshold=0.7,
    cttc_threshold=None,
    alpha_ct=0.0,
    alpha_st=1.0,
    max_efpr=100.0,
)
PSDS2 = dict(
    dtc_threshold=0.1,
    gtc_threshold=0.1,
    cttc_threshold=0.3,
    alpha_ct=0.5,
    alpha_st=1.0,
    max_efpr=100.0,
)


def psds_score(frame_probs, y_true, *, classes, duration, scenario=1):
    """PSDS of frame probabilities against reference events.

    Parameters
    ----------
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
        Frame probabilities, e.g. from ``PseudoLabelSED.predict_frames``.
    y_true : sequence of sequence of (onset, offset, event_label)
        Reference events per clip, in seconds.
    classes : array-like of shape (n_classes,)
        Class labels, in column order.
    duration : float
        Clip length in seconds.
    scenario : {1, 2} or dict, default=1
        DCASE PSDS1 or PSDS2 settings, or a dict of sed_scores_eval arguments.

    Returns
    -------
    psds : float
        The score in [0, 1].
    """
    try:
        from sed_scores_eval import intersection_based
        from sed_scores_eval.base_modules.scores import create_score_dataframe
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "psds_score needs sed_scores_eval. Consider pip install "
            "'sklearn-sed[psds]'."
        ) from exc
    settings = {1: PSDS1, 2: PSDS2}.get(scenario, scenario)
    if not isinstance(settings, dict):
        raise ValueError(f"scenario must be 1, 2 or a dict. Got {scenario!r}.")
    frame_probs = np.asarray(frame_probs, dtype=float)
    n_frames = frame_probs.shape[1]
    timestamps = np.linspace(0.0, duration, n_frames + 1)
    labels = [str(c) for c in classes]
    scores, ground_truth, durations = {}, {}, {}
    for i, (probs, events) in enumerate(zip(frame_probs, y_true, strict=True)):
        key = f"clip_{i}"
        scores[key] = create_score_dataframe(probs, timestamps, labels)
        ground_truth[key] = merge_overlapping_events(
            [(float(a), float(b), str(c)) for a, b, c in events]
        )
        durations[key] = float(duration)
    value, *_ = intersection_based.psds(
        scores=scores,
        ground_truth=ground_truth,
        audio_durations=durations,
        **settings,
    )
    return float(value)


class PSDSScorer(StrongLabelScorer):
    """Scorer ``scorer(estimator, X, y_strong)`` for PSDS (sed_scores_eval).

    Requests ``y_strong`` through metadata routing like
    :class:`~sklearn_sed.metrics.SEDScorer`.

    Parameters
    ----------
    scenario : {1, 2} or dict, default=1
        PSDS settings (:data:`PSDS1`, :data:`PSDS2` or your own).
    """

    def __init__(self, scenario=1):
        self.scenario = scenario

    def __call__(self, estimator, X, y=None, *, y_strong=None, scenario=None):
        """Score a fitted detector (or a pipeline ending in one) on ``X``.

        Parameters
        ----------
        estimator : PseudoLabelSED or Pipeline ending in one
            Fitted detector; scikit-learn's own Pipeline works too.
        X : array-like
            Its input.
        y : sequence of (list of events or None) or list of ClipLabels
            References; weak-only clips are left out. Ignored when
            ``y_strong`` is given.
        y_strong : sequence, default=None
            References routed by metadata routing.
        scenario : {1, 2} or dict, default=None
            Overrides the scorer's scenario.

        Returns
        -------
        psds : float
            Greater is better.
        """
        reference = self._reference(y, y_strong)
        refs, keep = reference_events(reference)
        if len(keep) < len(reference):
            X = take_clips(X, keep)
        last = final_estimator(estimator)
        frames = call_final(estimator, "predict_frames", X)
        return psds_score(
            frames,
            refs,
            classes=last.classes_,
            duration=last.duration,
            scenario=self.scenario if scenario is None else scenario,
        )

    def __repr__(self):
        return f"PSDSScorer(scenario={self.scenario!r})"


#: PSDS1 scorer; ``PSDSScorer(scenario=2)`` or
#: ``functools.partial(psds_scorer, scenario=2)`` for PSDS2.
psds_scorer = PSDSScorer(scenario=1)
