"""skorch callbacks for SED training.

* :class:`ValidationScoring`: event F1 on held-out strong clips after every
  epoch (at fixed or per-class tuned post-processing);
* :class:`BestWeights`: the weights of the best epoch;
* :class:`WeightAveraging`: an exponential moving average of the weights
  (the mean teacher of the DCASE baselines, without its consistency loss),
  kept with :class:`torch.optim.swa_utils.AveragedModel`;
* :class:`WarmupCosineLR`: linear warm-up then cosine decay of the learning
  rate, batch by batch.
"""

import math

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.optim.swa_utils import AveragedModel

from sklearn_sed.metrics import event_f1_scorer
from sklearn_sed.nets import forward_probabilities
from sklearn_sed.tuning import tune_postprocessing

__all__ = [
    "BestWeights",
    "PseudoLabelQuality",
    "ValidationScoring",
    "WarmupCosineLR",
    "WeightAveraging",
    "evaluation_module",
]


def evaluation_module(net):
    """Return the module to evaluate: the averaged weights when kept.

    Parameters
    ----------
    net : skorch.NeuralNet
        An initialised net.

    Returns
    -------
    module : torch.nn.Module
        The :class:`WeightAveraging` copy when the net has one that has seen
        a batch, else ``net.module_``.
    """
    for _, cb in getattr(net, "callbacks_", []):
        if isinstance(cb, WeightAveraging) and cb.averaged_ is not None:
            return cb.averaged_.module
    return net.module_


def _ramped_ema(decay):
    """``multi_avg_fn`` for AveragedModel: EMA whose decay ramps up.

    The decay after ``n`` averaged steps is ``min(decay, 1 - 1 / (n + 1))``,
    as in the DCASE baselines' mean teacher, so that a short training is not
    averaged with its random initialisation.
    """

    @torch.no_grad()
    def update(averaged, current, n_averaged):
        d = min(decay, 1.0 - 1.0 / (float(n_averaged) + 1.0))
        for a, c in zip(averaged, current, strict=True):
            if torch.is_floating_point(a):
                a.lerp_(c, 1.0 - d)
            else:  # integer buffers (batch-norm counters): the current value
                a.copy_(c)

    return update


class WeightAveraging(Callback):
    """Exponential moving average of the module's weights and buffers.

    After every training batch, ``avg = d * avg + (1 - d) * weights``
    (batch-norm statistics included), with ``d = min(decay, 1 - 1 / (n + 1))``
    after ``n`` batches: the decay ramps up as in the DCASE baselines' mean
    teacher. Validation, pseudo labelling and the
    final model of :class:`~sklearn_sed.PseudoLabelSED` use the average
    (see :func:`evaluation_module`).

    Parameters
    ----------
    decay : float, default=0.999
        Weight of the old average, in [0, 1).

    Attributes
    ----------
    averaged_ : torch.optim.swa_utils.AveragedModel or None
        The average; None before the first batch.
    """

    def __init__(self, decay=0.999):
        self.decay = decay

    def initialize(self):
        """Forget any average."""
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(
                f"decay must be in [0, 1). Got decay={self.decay!r} instead."
            )
        self.averaged_ = None
        return self

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Update the average after a training batch."""
        if not training:
            return
        if self.averaged_ is None:
            self.averaged_ = self._new_average(net)
        self.averaged_.update_parameters(net.module_)

    def _new_average(self, net):
        return AveragedModel(
            net.module_, multi_avg_fn=_ramped_ema(self.decay), use_buffers=True
        )

    def __getstate__(self):
        # As BestWeights: a pickled model carries its weights once.
        state = dict(self.__dict__)
        state["averaged_"] = None
        return state

    def state_dict(self):
        """Return the average's tensors (for checkpoints), or None."""
        if self.averaged_ is None:
            return None
        return self.averaged_.state_dict()

    def load_state_dict(self, net, state):
        """Restore an average saved by :meth:`state_dict`."""
        if state is None:
            self.averaged_ = None
            return
        self.averaged_ = self._new_average(net)
        self.averaged_.load_state_dict(state)


class WarmupCosineLR(Callback):
    """Linear warm-up, then cosine decay to 0, updated before every batch.

    The rate is a pure function of the progress (epochs recorded in the
    history plus the fraction of the current epoch), so a fit resumed from
    a checkpoint continues the same schedule.

    Parameters
    ----------
    total_epochs : int
        Epochs of the whole fit (both stages).
    warmup_epochs : float, default=0
        Epochs of linear warm-up from 0.
    base_lr : float or None, default=None
        Peak rate; None takes the net's ``lr``.
    """

    def __init__(self, total_epochs, warmup_epochs=0, base_lr=None):
        self.total_epochs = total_epochs
        self.warmup_epochs = warmup_epochs
        self.base_lr = base_lr

    @staticmethod
    def factor(progress, total_epochs, warmup_epochs):
        """Multiplier of the peak rate at ``progress`` epochs (a float)."""
        if warmup_epochs > 0 and progress < warmup_epochs:
            return progress / warmup_epochs
        span = max(total_epochs - warmup_epochs, 1e-12)
        t = min(max((progress - warmup_epochs) / span, 0.0), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * t))

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        """Count the batches of this epoch."""
        self._batch = 0
        n = len(dataset_train) if dataset_train is not None else 0
        self._n_batches = max(1, math.ceil(n / net.batch_size))

    def on_batch_begin(self, net, training=False, **kwargs):
        """Set the rate of this batch."""
        if not training:
            return
        done = len(net.history) - 1  # the current epoch is already recorded
        progress = done + (self._batch + 0.5) / self._n_batches
        lr = (self.base_lr or net.lr) * self.factor(
            progress, self.total_epochs, self.warmup_epochs
        )
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        self._batch += 1

    def on_epoch_end(self, net, **kwargs):
        """Record the last rate of the epoch."""
        net.history.record("lr", net.optimizer_.param_groups[0]["lr"])


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
    tune : bool, default=False
        Score every epoch at its best per-class threshold and median filter
        (:func:`~sklearn_sed.tuning.tune_postprocessing` over
        ``tune_grid``) instead of the estimator's post-processing settings:
        the epoch chosen is then the best one after tuning.
    tune_grid : (thresholds, median_filters), default=((0.2, 0.35, 0.5), (0.25, 1.0))
        The (small) grid searched every epoch when ``tune``.

    Examples
    --------
    >>> from sklearn_sed.callbacks import ValidationScoring
    >>> ValidationScoring([], []).name
    'valid_event_f1'
    """

    def __init__(
        self,
        X_valid,
        y_valid,
        scoring=event_f1_scorer,
        name="valid_event_f1",
        *,
        tune=False,
        tune_grid=((0.2, 0.35, 0.5), (0.25, 1.0)),
    ):
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.scoring = scoring
        self.name = name
        self.tune = tune
        self.tune_grid = tune_grid

    def __getstate__(self):
        state = dict(self.__dict__)
        state["X_valid"] = state["y_valid"] = None
        return state

    def on_epoch_end(self, net, **kwargs):
        """Record the validation score of this epoch."""
        if self.X_valid is None or not hasattr(net, "sed_"):
            return
        from sklearn_sed.metrics import _reference_events

        sed = net.sed_
        refs, keep = _reference_events(self.y_valid)
        X = np.asarray(self.X_valid)[keep]
        frame_probs, clip_probs = forward_probabilities(
            net, X, None, sed.batch_size, module=evaluation_module(net)
        )
        if self.tune:
            thresholds, median_filters = self.tune_grid
            *_, f1 = tune_postprocessing(
                frame_probs,
                clip_probs,
                refs,
                classes=sed.classes_,
                duration=sed.duration,
                thresholds=thresholds,
                median_filters=median_filters,
                order=sed.postprocessing,
                clip_gating=sed.clip_gating,
            )
            score = float(np.mean(f1))
        else:
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
            module = evaluation_module(net)
            self.best_state_ = {
                k: v.detach().clone() for k, v in module.state_dict().items()
            }

    def __getstate__(self):
        # The weight copy is training state (checkpoints save it explicitly);
        # a pickled model carries its weights once, in the module.
        state = dict(self.__dict__)
        state["best_state_"] = None
        return state

    def restore(self, net):
        """Load the best weights into ``net`` (a no-op before any score)."""
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
        return net


class PseudoLabelQuality(Callback):
    """Precision and recall of the class-frame pseudo labels against a truth.

    For benchmarks whose weak clips were mixed, so that their frame labels
    are known (and never trained on). :class:`~sklearn_sed.PseudoLabelSED`
    calls :meth:`on_pseudo_labels` at every relabelling of stage 2.

    Parameters
    ----------
    y_true_frames : ndarray of shape (n_clips, n_frames_out, n_classes)
        True frame labels of the training clips, in the order given to
        ``fit`` (rows of clips without a known truth are ignored when NaN).

    Attributes
    ----------
    records_ : list of dict
        Per iteration: ``iteration``, ``threshold``, ``n_pseudo``,
        ``precision`` and ``recall`` of the positive pseudo-labelled frames
        (over the selected clips), and ``clip_precision``, the share of
        selected clips whose clip labels equal the truth's.
    """

    def __init__(self, y_true_frames):
        self.y_true_frames = y_true_frames

    def initialize(self):
        """Forget the records."""
        self.records_ = []
        return self

    def on_pseudo_labels(self, net, *, iteration, threshold, clip_index, frame_labels):
        """Compare the pseudo labels of the selected clips with the truth."""
        truth = np.asarray(self.y_true_frames)[clip_index]
        known = ~np.isnan(truth).any(axis=(1, 2))
        truth, pred = truth[known] > 0.5, np.asarray(frame_labels)[known] > 0.5
        tp = float(np.sum(truth & pred))
        self.records_.append(
            {
                "iteration": int(iteration),
                "threshold": float(threshold),
                "n_pseudo": len(clip_index),
                "precision": tp / max(float(pred.sum()), 1.0),
                "recall": tp / max(float(truth.sum()), 1.0),
                "clip_precision": float(
                    np.mean(np.all(truth.any(axis=1) == pred.any(axis=1), axis=1))
                )
                if len(truth)
                else float("nan"),
            }
        )
