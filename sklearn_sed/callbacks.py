"""skorch callbacks for SED training: validation F1 after every epoch."""

import numpy as np
from skorch.callbacks import Callback

from sklearn_sed.metrics import event_f1_scorer

__all__ = ["BestWeights", "ValidationScoring"]


class ValidationScoring(Callback):
    """Score a held-out set after every epoch of both stages.

    Adds a column (``name``) to the per-epoch table and to ``net_.history``.
    The held-out data is not pickled with the model.

    Parameters
    ----------
    X_valid : array-like of shape (n_clips, n_frames, n_mels)
        Validation feature maps.
    y_valid : sequence of (list of (onset, offset, event_label) or None)
        Their reference events.
    scoring : SEDScorer, default=event_f1_scorer
        Scorer from :func:`~sklearn_sed.make_sed_scorer`.
    name : str, default="valid_event_f1"
        Column name in the history.

    Examples
    --------
    >>> from sklearn_sed.callbacks import ValidationScoring
    >>> ValidationScoring([], []).name
    'valid_event_f1'
    """

    def __init__(
        self, X_valid, y_valid, scoring=event_f1_scorer, name="valid_event_f1"
    ):
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.scoring = scoring
        self.name = name

    def __getstate__(self):
        state = dict(self.__dict__)
        state["X_valid"] = state["y_valid"] = None
        return state

    def on_epoch_end(self, net, **kwargs):
        """Record the validation score of this epoch."""
        if self.X_valid is None or not hasattr(net, "sed_"):
            return
        from sklearn_sed.estimator import _forward
        from sklearn_sed.metrics import _reference_events

        sed = net.sed_
        refs, keep = _reference_events(self.y_valid)
        X = np.asarray(self.X_valid)[keep]
        frame_probs, clip_probs = _forward(net, X, None, sed.batch_size)
        events = sed.decode(frame_probs, clip_probs)
        score = self.scoring.score_events(
            refs, events, classes=sed.classes_, duration=sed.duration
        )
        net.history.record(self.name, score)


class BestWeights(Callback):
    """Remember the module weights of the epoch with the best monitored score.

    Call :meth:`restore` after ``fit`` to load them (restoring automatically
    at the end of each ``partial_fit`` would disturb the pseudo-label stage).

    Parameters
    ----------
    monitor : str, default="valid_event_f1"
        History column to maximise (written by :class:`ValidationScoring`,
        which must come first in the callback list).

    Attributes
    ----------
    best_score_ : float
        Best value seen.
    best_epoch_ : int
        Epoch (1-based) where it was seen.
    """

    def __init__(self, monitor="valid_event_f1"):
        self.monitor = monitor

    def initialize(self):
        """Reset the record."""
        self.best_score_ = -np.inf
        self.best_epoch_ = 0
        self.best_state_ = None
        return self

    def on_epoch_end(self, net, **kwargs):
        """Keep a copy of the weights when the score improves."""
        score = net.history[-1].get(self.monitor)
        if score is not None and score > self.best_score_:
            self.best_score_ = float(score)
            self.best_epoch_ = int(net.history[-1, "epoch"])
            self.best_state_ = {
                k: v.detach().clone() for k, v in net.module_.state_dict().items()
            }

    def restore(self, net):
        """Load the best weights into ``net`` (a no-op before any score)."""
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
        return net
