"""Threshold-independent evaluation: PSDS from frame scores (sed_scores_eval).

The DCASE community ranks Task 4 systems by the polyphonic sound detection
score (Bilen et al. 2020) since 2023. This module computes it from
``predict_frames`` with sed_scores_eval's exact method (Ebbers et al. 2022).
sed_scores_eval is an optional extra: ``pip install sklearn-sed[psds]``.
"""

import warnings

import numpy as np

from sklearn_sed.labels import merge_overlapping_events
from sklearn_sed.metrics.scoring import (
    StrongLabelScorer,
    call_final,
    final_estimator,
)

__all__ = [
    "PSDS1",
    "PSDS2",
    "PSDSScorer",
    "psds_from_scores",
    "psds_score",
    "psds_scorer",
    "sed_scores_eval",
]

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
    create_score_dataframe = sed_scores_eval().io.create_score_dataframe
    frame_probs = np.asarray(frame_probs, dtype=float)
    n_frames = frame_probs.shape[1]
    timestamps = np.linspace(0.0, duration, n_frames + 1)
    labels = [str(c) for c in classes]
    scores, ground_truth, durations = {}, {}, {}
    for i, (probs, events) in enumerate(zip(frame_probs, y_true, strict=True)):
        key = f"clip_{i}"
        scores[key] = create_score_dataframe(probs, timestamps, labels)
        ground_truth[key] = events
        durations[key] = float(duration)
    return psds_from_scores(scores, ground_truth, durations, scenario=scenario)


def sed_scores_eval():
    """Return the ``sed_scores_eval`` package, or say how to install it.

    Raises
    ------
    ImportError
        Without the ``psds`` extra.
    """
    try:
        with warnings.catch_warnings():
            # It imports dcase_util, which imports pkg_resources, which warns.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            import sed_scores_eval as package
            from sed_scores_eval import intersection_based, io  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "PSDS needs sed_scores_eval: pip install 'sklearn-sed[psds]'."
        ) from exc
    return package


def psds_from_scores(scores, ground_truth, audio_durations, *, scenario=1):
    """PSDS of sed_scores_eval score tables against reference events.

    Parameters
    ----------
    scores : dict of str to pandas.DataFrame
        Per audio id, frame scores as sed_scores_eval writes and reads them
        (``onset``, ``offset``, one column per class).
    ground_truth : dict of str to sequence of (onset, offset, event_label)
        Reference events per audio id; overlapping events of one class are
        merged (sed_scores_eval requires it).
    audio_durations : dict of str to float
        Length of each recording in seconds.
    scenario : {1, 2} or dict, default=1
        DCASE PSDS1 or PSDS2 settings, or a dict of sed_scores_eval arguments.

    Returns
    -------
    psds : float
        The score in [0, 1].

    Warns
    -----
    UserWarning
        When some scored classes have no reference event (a subset of the
        data): PSDS is then computed over the classes that have references,
        and the warning names the others. With a single such class there
        are no cross-triggers, and PSDS2's cross-trigger cost is left out.

    Raises
    ------
    ValueError
        When no scored class has a reference event, or a reference class
        has no score column.
    """
    settings = {1: PSDS1, 2: PSDS2}.get(scenario, scenario)
    if not isinstance(settings, dict):
        raise ValueError(f"scenario must be 1, 2 or a dict. Got {scenario!r}.")
    merged = {
        k: merge_overlapping_events([(float(a), float(b), str(c)) for a, b, c in ev])
        for k, ev in ground_truth.items()
    }
    scores = _restrict_to_referenced_classes(scores, merged)
    n_classes = len(next(iter(scores.values())).columns) - 2 if scores else 0
    if n_classes < 2 and settings.get("cttc_threshold") is not None:
        # Cross-triggers need another class; sed_scores_eval fails without.
        settings = {**settings, "cttc_threshold": None, "alpha_ct": 0.0}
    value, *_ = sed_scores_eval().intersection_based.psds(
        scores=scores,
        ground_truth=merged,
        audio_durations=audio_durations,
        **settings,
    )
    return float(value)


def _restrict_to_referenced_classes(scores, ground_truth):
    """Score tables with exactly the classes that have reference events.

    sed_scores_eval asserts that every scored class has references; a subset
    of the data (a cross-validation fold, a few files) often lacks some.
    """
    referenced = sorted({e[2] for events in ground_truth.values() for e in events})
    if not scores:
        return scores
    scored = [
        c for c in next(iter(scores.values())).columns if c not in ("onset", "offset")
    ]
    unreferenced = [c for c in scored if c not in referenced]
    if not referenced:
        raise ValueError(
            "PSDS needs reference events: the ground truth holds none for the "
            f"scored classes {scored}."
        )
    if unreferenced:
        warnings.warn(
            f"PSDS is computed over the {len(referenced)} classes with reference "
            f"events; {unreferenced} have none in this data and are left out.",
            UserWarning,
            stacklevel=3,
        )
    unscored = [c for c in referenced if c not in scored]
    if unscored:
        raise ValueError(
            f"PSDS needs scores for every reference class; the scores have no "
            f"column for {unscored} (classes {scored}). Score with a model that "
            "knows them, or leave their events out of the reference."
        )
    return {key: df.drop(columns=unreferenced) for key, df in scores.items()}


class PSDSScorer(StrongLabelScorer):
    """Scorer ``scorer(estimator, X, y_strong)`` for PSDS (sed_scores_eval).

    Requests ``y_strong`` through metadata routing like
    :class:`~sklearn_sed.metrics.scoring.SEDScorer`.

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
        X, refs = self._strong_clips(X, y, y_strong)
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
