"""Precision and recall of pseudo labels against a truth never trained on."""

import numpy as np
from skorch.callbacks import Callback

from sklearn_sed.labels import events_to_frames
from sklearn_sed.training.pseudo_labels import select_unlabeled

__all__ = ["PseudoLabelQuality", "unlabeled_rule_quality"]


def _ratio(part, whole):
    """``part / whole``, NaN where ``whole`` is 0 (nothing to count)."""
    return part / whole if whole > 0 else float("nan")


class PseudoLabelQuality(Callback):
    """Precision and recall of the class-frame pseudo labels against a truth.

    For benchmarks whose weak (or unlabelled) clips were mixed, so that their
    frame labels are known and kept aside. :class:`~sklearn_sed.PseudoLabelSED`
    calls :meth:`on_pseudo_labels` at every relabelling of stage 2, with the
    positions of the selected clips in the training data it was given (give
    ``fit`` explicit ``X_val``/``y_val``, so that those positions are yours).

    Parameters
    ----------
    y_true_events : list of (list of (onset, offset, event_label) or None)
        The truth, one list per training clip in the order given to ``fit``
        (None where unknown), encoded at the pseudo labels' frame rate.
    classes : sequence of str
        The fitted classes in column order.
    duration : float, default=10.0
        Clip length in seconds.

    Attributes
    ----------
    records_ : list of dict
        Per iteration: ``iteration``, ``threshold``, ``n_pseudo``,
        ``precision`` and ``recall`` of the positive pseudo-labelled frames
        (over the selected clips with a truth), and ``clip_precision``, the
        share of those clips whose clip labels equal the truth's. A ratio
        with nothing to count (no clip selected, no positive frame) is NaN,
        not 0: it is undefined, and a mean over runs must leave it out.
    """

    def __init__(self, y_true_events, *, classes, duration=10.0):
        self.y_true_events = y_true_events
        self.classes = classes
        self.duration = duration

    def initialize(self):
        """Forget the records."""
        self.records_ = []
        return self

    def _truth(self, clip_index, n_frames):
        out = np.full(
            (len(clip_index), n_frames, len(self.classes)), np.nan, np.float32
        )
        for k, i in enumerate(clip_index):
            events = self.y_true_events[i]
            if events is not None:
                out[k] = events_to_frames(
                    events,
                    classes=self.classes,
                    n_frames=n_frames,
                    duration=self.duration,
                )
        return out

    def on_pseudo_labels(self, net, *, iteration, threshold, clip_index, frame_labels):
        """Compare the pseudo labels of the selected clips with the truth."""
        truth = self._truth(np.asarray(clip_index), np.shape(frame_labels)[1])
        known = ~np.isnan(truth).any(axis=(1, 2))
        truth, pred = truth[known] > 0.5, np.asarray(frame_labels)[known] > 0.5
        tp = float(np.sum(truth & pred))
        self.records_.append(
            {
                "iteration": int(iteration),
                "threshold": float(threshold),
                "n_pseudo": len(clip_index),
                "precision": _ratio(tp, float(pred.sum())),
                "recall": _ratio(tp, float(truth.sum())),
                "clip_precision": float(
                    np.mean(np.all(truth.any(axis=1) == pred.any(axis=1), axis=1))
                )
                if len(truth)
                else float("nan"),
            }
        )


def unlabeled_rule_quality(
    sed, F_u, truth_u, *, confidences=(0.6, 0.75, 0.9), thresholds=(0.75, 0.45)
):
    """How good the confidence rule's pseudo labels of unlabelled clips are.

    Applies :func:`sklearn_sed.training.pseudo_labels.select_unlabeled` with
    a fitted detector's predictions to clips whose true events are kept
    aside, for each confidence and frame threshold (``theta`` of eq. 5; the
    ``"cpu"`` recipe's schedule runs from 0.75 down to 0.45).

    Parameters
    ----------
    sed : PseudoLabelSED
        A fitted detector.
    F_u : ndarray of shape (n_clips, n_frames, n_mels)
        Features of the unlabelled clips.
    truth_u : list of (list of (onset, offset, event_label) or None)
        Their true events (None where unknown).
    confidences, thresholds : sequence of float
        The rule's confidences and eq. 4's frame thresholds to try.

    Returns
    -------
    rows : list of dict
        Per pair: ``confidence``, ``threshold``, ``selected`` (the share of
        clips selected) and :class:`PseudoLabelQuality`'s ``n_pseudo``,
        ``precision``, ``recall`` and ``clip_precision``.
    """
    # One forward pass for both outputs (predict_frames and predict_proba
    # would each run one; the CRNN's clip output is not the frames' max).
    frames, clips = sed._forward_all(F_u)
    quality = PseudoLabelQuality(truth_u, classes=[str(c) for c in sed.classes_])
    quality.initialize()
    rows = []
    for confidence in confidences:
        for threshold in thresholds:
            selected, _, pseudo = select_unlabeled(
                clips, frames, threshold=threshold, confidence=confidence
            )
            index = np.flatnonzero(selected)
            quality.on_pseudo_labels(
                None,
                iteration=len(rows),
                threshold=threshold,
                clip_index=index,
                frame_labels=pseudo[index],
            )
            row = {"confidence": float(confidence), "selected": float(selected.mean())}
            rows.append({**row, **quality.records_[-1]})
    return rows
