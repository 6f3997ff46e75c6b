"""skorch callbacks for SED training.

* :class:`ValidationScoring`: event F1 on held-out strong clips after every
  epoch (at fixed or per-class tuned post-processing);
* :class:`BestWeights`: the weights of the best epoch;
* :class:`WeightAveraging`: an exponential moving average of the weights
  (the mean teacher of the DCASE baselines, without its consistency loss),
  kept with :class:`torch.optim.swa_utils.AveragedModel`;
* :class:`WarmupCosineLR`: linear warm-up then cosine decay of the learning
  rate, batch by batch;
* :class:`PseudoLabeling`: the two stages of the NEC report in one skorch
  fit: the stage switch and the class-frame relabelling of eqs. 4-5;
* :class:`PseudoLabelQuality`: precision and recall of those pseudo labels
  against a known truth.
"""

import math
import numbers
import warnings
from contextlib import nullcontext

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval
from skorch.callbacks import Callback
from torch.optim.swa_utils import AveragedModel

from sklearn_sed._validation import MAX_EPOCHS
from sklearn_sed.decoding.tuning import tune_postprocessing
from sklearn_sed.labels import KIND_UNLABELED, UNLABELED
from sklearn_sed.metrics.scoring import (
    classes_without_events_quietly,
    event_f1_scorer,
    reference_events,
)
from sklearn_sed.training.losses import KIND_PSEUDO, KIND_STRONG, KIND_WEAK
from sklearn_sed.training.net import (
    bare_module,
    forward_probabilities,
    load_module_state,
    module_state,
)
from sklearn_sed.training.pseudo_labels import (
    select_pseudo_labels,
    select_unlabeled,
    threshold_schedule,
)

__all__ = [
    "BestWeights",
    "MeanTeacher",
    "MeanTeacherCallback",
    "PseudoLabeling",
    "ValidationScoring",
    "WarmupCosine",
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
        a batch, else ``net.module_`` (without a data-parallel wrapper).
    """
    for _, cb in getattr(net, "callbacks_", []):
        if isinstance(cb, WeightAveraging) and cb.averaged_ is not None:
            return cb.averaged_.module
    return bare_module(net)


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


class DropsOnPickle:
    """Mixin of the callbacks that hold training data or weight copies.

    The attributes named in ``_dropped_on_pickle`` are set to None in a
    pickle (``joblib.dump`` of a fitted model, a copy): training data is not
    part of a model, and a model carries its weights once, in its module.
    Checkpoints save what training needs explicitly.
    """

    _dropped_on_pickle = ()

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._dropped_on_pickle:
            state[name] = None
        return state


class WeightAveraging(DropsOnPickle, Callback):
    """Exponential moving average of the module's weights and buffers.

    After every training batch, ``avg = d * avg + (1 - d) * weights``
    (batch-norm statistics included), with ``d = min(decay, 1 - 1 / (n + 1))``
    after ``n`` batches: the decay ramps up as in the DCASE baselines' mean
    teacher. Validation, pseudo labelling and the
    final model of :class:`~sklearn_sed.PseudoLabelSED` use the average
    (see :func:`~sklearn_sed.training.callbacks.evaluation_module`).

    Parameters
    ----------
    decay : float, default=0.999
        Weight of the old average, in [0, 1).

    Attributes
    ----------
    averaged_ : torch.optim.swa_utils.AveragedModel or None
        The average; None before the first batch.
    """

    _dropped_on_pickle = ("averaged_",)

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
        self.averaged_.update_parameters(bare_module(net))

    def _new_average(self, net):
        return AveragedModel(
            bare_module(net), multi_avg_fn=_ramped_ema(self.decay), use_buffers=True
        )

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


def _batches_in_epoch(net, dataset_train):
    """Training batches of the epoch that begins (at least 1)."""
    n = len(dataset_train) if dataset_train is not None else 0
    return max(1, math.ceil(n / net.batch_size))


def _progress(net, batch, n_batches):
    """Epochs done at the middle of training batch ``batch`` of this epoch.

    A pure function of the history (whose row of the current epoch is
    already recorded), so that a resumed fit continues the same schedule.
    """
    return len(net.history) - 1 + (batch + 0.5) / n_batches


def sigmoid_rampup(progress, length):
    """Return the consistency ramp-up ``exp(-5 (1 - t)^2)``, ``t = progress / length``.

    Laine and Aila's ramp-up, used by the DCASE2019 baseline's mean teacher
    (``baseline/utils/ramps.py``); 1 from ``length`` on (and at once when
    ``length`` is 0).
    """
    if length <= 0:
        return 1.0
    t = min(max(progress / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


class MeanTeacherCallback(WeightAveraging):
    """The mean teacher of the DCASE2019 baseline, as a skorch callback.

    The teacher is an exponential moving average of the student's weights
    (:class:`WeightAveraging`, updated after every batch); the net adds, to
    every training batch's loss, the consistency cost
    ``weight * (MSE(student frames, teacher frames) + MSE(student clips,
    teacher clips))`` over all the clips of the batch, unlabelled ones
    included, with ``weight = consistency * sigmoid_rampup(epochs,
    rampup_epochs)`` (:meth:`consistency_loss`, called by
    ``SEDNet.get_loss``). The teacher runs in evaluation mode, without
    gradients, in the training's dtype (``SEDNet.autocast``: bfloat16 with
    ``train_dtype="bfloat16"``). Validation, pseudo labelling and the
    fitted model use the teacher (:func:`evaluation_module`). Records
    ``consistency`` (the mean cost of the epoch's batches) and
    ``consistency_weight`` in the history.

    Parameters
    ----------
    decay : float, default=0.999
        EMA decay per batch (ramped up as ``1 - 1 / (n + 1)`` at first).
    consistency : float, default=2.0
        Largest weight of the consistency cost.
    rampup_epochs : float, default=0.0
        Epochs of the sigmoid ramp-up of the weight.
    """

    _dropped_on_pickle = ("averaged_",)

    def __init__(self, decay=0.999, consistency=2.0, rampup_epochs=0.0):
        super().__init__(decay)
        self.consistency = consistency
        self.rampup_epochs = rampup_epochs

    def initialize(self):
        """Forget the average and the epoch's costs."""
        super().initialize()
        self._costs, self._batch, self._n_batches = [], 0, 1
        return self

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        """Count the batches of this epoch (for the ramp-up)."""
        self._costs, self._batch = [], 0
        self._n_batches = _batches_in_epoch(net, dataset_train)

    def weight(self, net):
        """Return the consistency weight of the current batch."""
        progress = _progress(net, self._batch, self._n_batches)
        return self.consistency * sigmoid_rampup(progress, self.rampup_epochs)

    def consistency_loss(self, net, X, y_pred):
        """Return the weighted consistency cost of a training batch (a scalar)."""
        if self.averaged_ is None:  # the first batch: the teacher is the student
            self.averaged_ = self._new_average(net)
        teacher = self.averaged_.module
        was_training = teacher.training
        teacher.eval()
        # In the student's training dtype (SEDNet.autocast): a float32 teacher
        # beside a bfloat16 student took half of each batch's time.
        autocast = getattr(net, "autocast", None)
        with torch.no_grad(), autocast(True) if autocast else nullcontext():
            t_frames, t_clips = teacher(X)
        teacher.train(was_training)
        frames, clips = y_pred
        cost = torch.nn.functional.mse_loss(frames, t_frames.float()) + (
            torch.nn.functional.mse_loss(clips, t_clips.float())
        )
        self._costs.append(float(cost.detach()))
        return self.weight(net) * cost

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Update the teacher after a training batch."""
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        if training:
            self._batch += 1

    def on_epoch_end(self, net, **kwargs):
        """Record the epoch's mean consistency cost and the last weight."""
        net.history.record(
            "consistency", float(np.mean(self._costs)) if self._costs else 0.0
        )
        net.history.record("consistency_weight", self.weight(net))


class MeanTeacher(BaseEstimator):
    """The DCASE2019 baseline's mean teacher: a parameter object.

    The ``mean_teacher`` of :class:`~sklearn_sed.PseudoLabelSED` (not in the
    NEC report): a teacher whose weights are an exponential moving average of
    the student's, a consistency cost between their frame and clip
    probabilities on every clip (unlabelled ones included) added to the
    supervised cost, and the teacher as the model that predicts
    (:class:`~sklearn_sed.training.callbacks.MeanTeacherCallback`). The
    defaults are the DCASE2019 Task 4 baseline's
    (``turpaultn/DCASE2019_task4``, ``baseline/main.py`` and ``config.py``):
    EMA decay 0.999, a largest consistency weight of 2
    (``max_consistency_cost``), a sigmoid ramp-up over the first half of the
    training (``rampup_length = len(train_loader) * n_epoch // 2``).

    The baseline's decay suits its ~75,000 batches; a fit of a few thousand
    batches needs a faster one (0.99 at the ``"cpu"`` recipe's size), and
    ``fit`` warns, naming one, when the teacher would average over more than
    a tenth of the fit (:meth:`check_horizon`).

    Parameters
    ----------
    ema_decay : float in [0, 1), default=0.999
        EMA decay per batch.
    consistency : float, default=2.0
        Largest weight of the consistency cost.
    rampup : float in [0, 1], default=0.5
        Share of all epochs (both stages) over which the weight ramps up.

    Examples
    --------
    >>> from sklearn_sed.training.callbacks import MeanTeacher
    >>> MeanTeacher().callback(total_epochs=20).rampup_epochs
    10.0
    """

    _parameter_constraints: dict = {
        "ema_decay": [Interval(numbers.Real, 0, 1, closed="left")],
        # 1000x the baseline's 2: beyond it the consistency term swamps the
        # classification loss entirely.
        "consistency": [Interval(numbers.Real, 0, 1000, closed="both")],
        "rampup": [Interval(numbers.Real, 0, 1, closed="both")],
    }

    def __init__(self, ema_decay=0.999, consistency=2.0, rampup=0.5):
        self.ema_decay = ema_decay
        self.consistency = consistency
        self.rampup = rampup

    def callback(self, total_epochs, batches_per_epoch=None):
        """Return the skorch callback of these settings over ``total_epochs``.

        Parameters
        ----------
        total_epochs : int
            Epochs of the whole fit (both stages).
        batches_per_epoch : int, default=None
            Training batches per epoch. When given, warns if the teacher
            would average over more than a tenth of the fit's batches, and
            over 20 (:meth:`check_horizon`).

        Returns
        -------
        callback : MeanTeacherCallback
        """
        self._validate_params()
        if batches_per_epoch is not None:
            self.check_horizon(total_epochs * batches_per_epoch)
        return MeanTeacherCallback(
            self.ema_decay, self.consistency, self.rampup * total_epochs
        )

    def check_horizon(self, total_batches):
        """Warn when the EMA is too slow for a fit of ``total_batches`` batches.

        The teacher averages the student's weights over about
        ``1 / (1 - ema_decay)`` batches, and, by the baseline's ramp-up of
        the decay, is the plain mean of all the weights since the
        initialisation for its first ``1 / (1 - ema_decay)`` batches. The
        DCASE2019 baseline's 0.999 spans about 1,000 of its ~75,000
        batches (1.3 %); in a fit of 2,000 batches the same decay makes a
        teacher that averages mostly early, untrained weights (measured in
        ``docs/benchmarks.md``: the teacher's dev F1 stayed at 3-12 % for
        14 epochs).

        Parameters
        ----------
        total_batches : int
            Training batches of the whole fit.

        Returns
        -------
        ok : bool
            False when it warned. A horizon of 20 batches or less never
            warns.
        """
        horizon = 1.0 / (1.0 - self.ema_decay)
        if horizon <= max(20.0, 0.1 * total_batches):
            return True
        suggested = 1.0 - 20.0 / total_batches
        warnings.warn(
            f"mean_teacher's ema_decay={self.ema_decay} averages the teacher "
            f"over about {horizon:.0f} batches, {100 * horizon / total_batches:.0f} "
            f"% of this fit's {total_batches}: the teacher, which predicts, "
            "will mostly average early, untrained weights (the DCASE2019 "
            "baseline's 0.999 is for its ~75,000 batches). Set "
            f"mean_teacher=MeanTeacher(ema_decay={max(suggested, 0.0):.3f}) or "
            "lower, or train for more batches.",
            UserWarning,
            stacklevel=3,
        )
        return False


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
        self._n_batches = _batches_in_epoch(net, dataset_train)

    def on_batch_begin(self, net, training=False, **kwargs):
        """Set the rate of this batch."""
        if not training:
            return
        lr = (self.base_lr or net.lr) * self.factor(
            _progress(net, self._batch, self._n_batches),
            self.total_epochs,
            self.warmup_epochs,
        )
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        self._batch += 1

    def on_epoch_end(self, net, **kwargs):
        """Record the last rate of the epoch."""
        net.history.record("lr", net.optimizer_.param_groups[0]["lr"])


class WarmupCosine(BaseEstimator):
    """A learning-rate schedule: linear warm-up, then cosine decay to 0.

    The ``lr_schedule`` of :class:`~sklearn_sed.PseudoLabelSED` (not in the
    report, which says nothing of a schedule); one cosine spans all epochs of
    both stages, updated batch by batch
    (:class:`~sklearn_sed.training.callbacks.WarmupCosineLR`). The
    estimator's ``get_params``/``set_params`` reach its field with the
    ``lr_schedule__`` prefix.

    Parameters
    ----------
    warmup_epochs : float, default=0
        Epochs of linear warm-up from 0 to the estimator's ``lr``.

    Examples
    --------
    >>> from sklearn_sed.training.callbacks import WarmupCosine
    >>> WarmupCosine(warmup_epochs=1).callback(total_epochs=14).total_epochs
    14
    """

    _parameter_constraints: dict = {
        "warmup_epochs": [Interval(numbers.Real, 0, MAX_EPOCHS, closed="both")],
    }

    def __init__(self, warmup_epochs=0):
        self.warmup_epochs = warmup_epochs

    def callback(self, total_epochs):
        """Return the skorch callback of this schedule over ``total_epochs``."""
        self._validate_params()
        return WarmupCosineLR(total_epochs, self.warmup_epochs)


class ValidationScoring(DropsOnPickle, Callback):
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
        Scorer from :func:`~sklearn_sed.metrics.scoring.make_sed_scorer`.
    name : str, default="valid_event_f1"
        Column name in the history.
    tune : bool, default=False
        Score every epoch at its best per-class threshold and median filter
        (:func:`~sklearn_sed.decoding.tuning.tune_postprocessing` over
        ``tune_grid``) instead of the estimator's post-processing settings:
        the epoch chosen is then the best one after tuning.
    tune_grid : (thresholds, median_filters), default=((0.2, 0.35, 0.5), (0.25, 1.0))
        The (small) grid searched every epoch when ``tune``.

    Examples
    --------
    >>> from sklearn_sed.training.callbacks import ValidationScoring
    >>> ValidationScoring([], []).name
    'valid_event_f1'
    """

    _dropped_on_pickle = ("X_valid", "y_valid")

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

    def on_epoch_end(self, net, **kwargs):
        """Record the validation score of this epoch."""
        decoding = getattr(net, "decoding_", None)
        if self.X_valid is None or decoding is None:
            return
        refs, keep = reference_events(self.y_valid)
        X = np.asarray(self.X_valid)[keep]
        frame_probs, _ = forward_probabilities(
            net, X, None, net.batch_size, module=evaluation_module(net)
        )
        if self.tune:
            thresholds, median_filters = self.tune_grid
            *_, f1 = tune_postprocessing(
                frame_probs,
                refs,
                classes=decoding.classes,
                duration=decoding.duration,
                thresholds=thresholds,
                median_filters=median_filters,
                order=decoding.order,
            )
            score = float(np.mean(f1))
        else:
            events = decoding.decode(frame_probs)
            with classes_without_events_quietly():
                score = self.scoring.score_events(
                    refs,
                    events,
                    classes=decoding.classes,
                    duration=decoding.duration,
                )
        net.history.record(self.name, score)


class BestWeights(DropsOnPickle, Callback):
    """Remember the module weights of the epoch with the best monitored score.

    Call :meth:`restore` after ``fit`` to load them
    (:class:`~sklearn_sed.PseudoLabelSED` does; restoring in ``on_train_end``
    would also change the weights that a user's own callbacks see there).

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

    _dropped_on_pickle = ("best_state_",)

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
            self.best_state_ = module_state(evaluation_module(net))

    def restore(self, net):
        """Load the best weights into ``net`` (a no-op before any score)."""
        if self.best_state_ is not None:
            load_module_state(net.module_, self.best_state_)
        return net


class PseudoLabeling(DropsOnPickle, Callback):
    """The two training stages of the NEC report inside one skorch fit.

    Epochs ``1 .. stage1_epochs`` are stage 1 (eq. 6). Then, before every
    epoch, pseudo-labelling iteration ``i`` draws
    ``theta_i`` (eq. 5), selects the weak clips whose binarized clip
    prediction equals their weak label and gives them the binarized frame
    predictions as frame labels (eq. 4, section 3.4), renewing those of the
    previous iteration, and switches the criterion to eq. 9 with ``M_p``.
    Every epoch's row of the history records ``stage``, ``n_pseudo`` (M_p)
    and ``pl_threshold`` (theta_i).

    The targets are changed in place: ``y`` must be the dict given to the
    net's ``fit`` (skorch's dataset indexes it batch by batch, so every batch
    after a relabelling sees the new labels). Other callbacks with an
    ``on_pseudo_labels(net, iteration, threshold, clip_index, frame_labels)``
    method are told of every relabelling (``clip_index``: positions in ``X``
    of the selected clips).

    Parameters
    ----------
    X : array-like of shape (n_clips, n_frames, n_mels)
        Training feature maps (those given to ``fit``).
    y : dict of ndarray
        Training targets, ``"weak"``, ``"frames"`` and ``"kind"``.
    stage1_epochs : int
        Epochs of stage 1.
    n_iter : int
        Pseudo-labelling iterations (0: stage 1 only).
    delta, start, floor : float, default=0.05, 0.75, 0.25
        The schedule of eq. 5
        (:func:`~sklearn_sed.training.pseudo_labels.threshold_schedule`).
    batch_size : int, default=32
        Clips per forward pass of the relabelling.
    teacher_probs : tuple of ndarray or None, default=None
        ``(frame_probs, clip_probs)`` of the weak clips, of shapes
        (n_weak, n_frames_out, n_classes) and (n_weak, n_classes), in their
        order in ``y``: drawn once by another model (``PseudoLabelSED``'s
        ``teacher``), they replace the network's own predictions in every
        relabelling. None: the network labels the clips itself (eq. 4).

    Attributes
    ----------
    records_ : list of dict
        Per iteration: ``iteration``, ``threshold``, ``n_pseudo``, ``n_weak``.
    """

    _dropped_on_pickle = ("X", "y", "teacher_probs", "unlabeled_")

    def __init__(
        self,
        X,
        y,
        *,
        stage1_epochs,
        n_iter,
        delta=0.05,
        start=0.75,
        floor=0.25,
        batch_size=32,
        teacher_probs=None,
        unlabeled_confidence=0.75,
    ):
        self.X = X
        self.y = y
        self.unlabeled_confidence = unlabeled_confidence
        self.stage1_epochs = stage1_epochs
        self.n_iter = n_iter
        self.delta = delta
        self.start = start
        self.floor = floor
        self.batch_size = batch_size
        self.teacher_probs = teacher_probs
        # The clips given without any label, before any relabelling turns
        # some of them into pseudo-labelled ones.
        self.unlabeled_ = None if y is None else y["kind"] == KIND_UNLABELED

    def initialize(self):
        """Forget the record."""
        self.records_ = []
        return self

    @property
    def total_epochs(self):
        """Epochs of both stages."""
        return self.stage1_epochs + self.n_iter

    def on_train_end(self, net, **kwargs):
        """Let go of the training data: a fitted model must not keep it alive."""
        self.X = self.y = self.teacher_probs = None

    def on_epoch_begin(self, net, **kwargs):
        """Relabel when an iteration starts; record the stage of this epoch."""
        k = len(net.history) - 1 - self.stage1_epochs  # the row is already new
        if self.y is not None and 0 <= k < self.n_iter:
            self.relabel(net, k)
        crit = net.criterion_
        net.history.record("stage", crit.stage)
        net.history.record("n_pseudo", crit.n_pseudo)
        net.history.record("pl_threshold", getattr(crit, "threshold", float("nan")))

    def _probabilities(self, net, weak_idx):
        """Frame and clip probabilities of the weak clips.

        The network's own (eq. 4), or the teacher's.
        """
        if self.teacher_probs is not None:
            t_frames, t_clips = self.teacher_probs
            if len(t_clips) != len(weak_idx):
                raise ValueError(
                    f"teacher_probs holds {len(t_clips)} clips but y has "
                    f"{len(weak_idx)} weak ones; give the teacher's "
                    "probabilities of exactly the weak clips, in their order."
                )
            return t_frames, t_clips
        return forward_probabilities(
            net, self.X, weak_idx, self.batch_size, module=evaluation_module(net)
        )

    def relabel(self, net, iteration):
        """Pseudo-label the weak clips for ``iteration`` (eqs. 4-5, 3.4).

        Clips without any label get pseudo clip and frame labels too when
        the network is confident of every class
        (:func:`~sklearn_sed.training.pseudo_labels.select_unlabeled`; not in
        the report), unless ``unlabeled_confidence`` is None.
        """
        y = self.y
        theta = threshold_schedule(
            iteration, delta=self.delta, start=self.start, floor=self.floor
        )
        # Weak and unlabelled clips, in their order in y (the teacher's too).
        weak_idx = np.flatnonzero(y["kind"] != KIND_STRONG)
        frame_probs, clip_probs = self._probabilities(net, weak_idx)
        is_unl = self.unlabeled_[weak_idx]
        selected = np.zeros(len(weak_idx), dtype=bool)
        pseudo = np.zeros_like(np.asarray(frame_probs), dtype=np.float32)
        labelled = ~is_unl
        selected[labelled], pseudo[labelled] = select_pseudo_labels(
            clip_probs[labelled],
            frame_probs[labelled],
            y["weak"][weak_idx[labelled]],
            threshold=theta,
        )
        if is_unl.any():
            unl_idx = weak_idx[is_unl]
            if self.unlabeled_confidence is None:
                sel_u = np.zeros(len(unl_idx), dtype=bool)
                clip_u = np.full((len(unl_idx), y["weak"].shape[1]), UNLABELED)
            else:
                sel_u, clip_u, pseudo[is_unl] = select_unlabeled(
                    clip_probs[is_unl],
                    frame_probs[is_unl],
                    threshold=theta,
                    confidence=self.unlabeled_confidence,
                )
            selected[is_unl] = sel_u
            # A pseudo clip label while selected, the unlabelled mark otherwise.
            y["weak"][unl_idx] = np.where(sel_u[:, None], clip_u, UNLABELED)
        # Renewed every iteration: clips not selected now lose old labels.
        y["kind"][weak_idx] = np.where(
            selected, KIND_PSEUDO, np.where(is_unl, KIND_UNLABELED, KIND_WEAK)
        )
        y["frames"][weak_idx[selected]] = pseudo[selected]
        n_pseudo = int(selected.sum())
        clip_index = weak_idx[selected]
        for _, cb in net.callbacks_:
            hook = getattr(cb, "on_pseudo_labels", None)
            if hook is not None:
                hook(
                    net,
                    iteration=iteration,
                    threshold=theta,
                    clip_index=clip_index,
                    frame_labels=pseudo[selected],
                )
        crit = net.criterion_
        crit.stage, crit.n_pseudo, crit.threshold = 2, n_pseudo, theta
        self.records_.append(
            {
                "iteration": iteration,
                "threshold": theta,
                "n_pseudo": n_pseudo,
                "n_weak": int((~is_unl).sum()),
                "n_unlabeled": int(is_unl.sum()),
                "n_pseudo_unlabeled": int(selected[is_unl].sum()),
            }
        )
