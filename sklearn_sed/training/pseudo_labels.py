"""Class-frame pseudo labels: the threshold schedule (eq. 5) and selection (eq. 4).

Section 3.2 and 3.4 of the NEC report: after each training iteration ``i`` the
weakly labelled clips whose clip prediction, binarized at ``theta_i``, equals
their weak label receive frame labels, the frame predictions binarized at the
same ``theta_i``. Plain numpy, so that the rule can be tested on crafted
probabilities.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = [
    "STAGE2_WEIGHTINGS",
    "PseudoLabelSchedule",
    "select_pseudo_labels",
    "select_unlabeled",
    "threshold_schedule",
]

#: Frame-loss weightings of stage 2 (``PseudoLabelSchedule.weighting``).
STAGE2_WEIGHTINGS = ("paper", "keep_strong")


def threshold_schedule(iteration, *, delta=0.05, start=0.75, floor=0.25):
    """Threshold of eq. 5 for training iteration ``iteration``.

    The report prints ``theta_i = min(-delta * i + 3/4, 1/4)``, which is 0.25
    for every ``i >= 0`` and contradicts its own text ("set lower than the
    previous iteration's one from 0.75 to 0.25"). We implement the text:
    ``theta_i = max(start - delta * i, floor)``.

    Parameters
    ----------
    iteration : int
        Iteration index ``i >= 0``; 0 is the pseudo labelling that follows
        stage 1.
    delta : float, default=0.05
        Decrease per iteration (the report does not give it).
    start : float, default=0.75
        Threshold at ``i = 0`` (3/4 in eq. 5).
    floor : float, default=0.25
        Lowest threshold (1/4 in eq. 5).

    Returns
    -------
    theta : float
        The threshold, in ``[floor, start]``.

    Examples
    --------
    >>> from sklearn_sed.training.pseudo_labels import threshold_schedule
    >>> [round(threshold_schedule(i, delta=0.2), 2) for i in range(4)]
    [0.75, 0.55, 0.35, 0.25]
    """
    if not isinstance(iteration, numbers.Integral) or iteration < 0:
        raise ValueError(f"iteration must be an int >= 0. Got {iteration!r} instead.")
    if delta < 0:
        raise ValueError(f"delta must be >= 0. Got {delta!r} instead.")
    # Rounded so that 0.75 - 0.1 * 3 prints as 0.45, not 0.44999999999999996.
    return round(float(max(start - delta * iteration, floor)), 12)


def select_pseudo_labels(clip_probs, frame_probs, weak_labels, *, threshold):
    """Select weak clips for pseudo labelling and make their frame labels.

    A clip is selected when ``clip_probs >= threshold`` equals its weak label
    for every class (section 3.4); its pseudo label is eq. 4, the frame
    probabilities binarized at ``threshold``.

    Parameters
    ----------
    clip_probs : ndarray of shape (n_clips, n_classes)
        Predicted clip probabilities of the weakly labelled clips.
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
        Predicted frame probabilities of the same clips.
    weak_labels : ndarray of shape (n_clips, n_classes)
        Their 0/1 weak labels.
    threshold : float or ndarray of shape (n_classes,)
        ``theta_i`` of eq. 5.

    Returns
    -------
    selected : ndarray of shape (n_clips,), dtype bool
        Clips that get pseudo labels (their count is ``M_p``).
    pseudo_frames : ndarray of shape (n_clips, n_frames, n_classes), dtype float32
        Eq. 4 for every clip (1 or 0); only the rows of selected clips are
        used.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.training.pseudo_labels import select_pseudo_labels
    >>> frames = np.array([[[0.9, 0.1], [0.2, 0.1]], [[0.9, 0.8], [0.1, 0.1]]])
    >>> sel, pl = select_pseudo_labels(frames.max(1), frames,
    ...                                np.array([[1, 0], [1, 0]]), threshold=0.5)
    >>> sel.tolist(), pl[0, :, 0].tolist()
    ([True, False], [1.0, 0.0])
    """
    clip_probs = np.asarray(clip_probs)
    frame_probs = np.asarray(frame_probs)
    weak_labels = np.asarray(weak_labels).astype(bool)
    if clip_probs.shape != weak_labels.shape:
        raise ValueError(
            f"clip_probs has shape {clip_probs.shape} but weak_labels has shape "
            f"{weak_labels.shape}; they must match."
        )
    if frame_probs.ndim != 3 or frame_probs.shape[::2] != clip_probs.shape:
        raise ValueError(
            f"frame_probs has shape {frame_probs.shape} but must be "
            f"(n_clips, n_frames, n_classes) = ({clip_probs.shape[0]}, n_frames, "
            f"{clip_probs.shape[1]})."
        )
    threshold = np.asarray(threshold, dtype=float)
    selected = np.all((clip_probs >= threshold) == weak_labels, axis=1)
    pseudo_frames = (frame_probs >= threshold).astype(np.float32)
    return selected, pseudo_frames


def select_unlabeled(clip_probs, frame_probs, *, threshold, confidence=0.75):
    """Pseudo-label clips without any label (an extension, not in the report).

    A clip without a weak label has none to compare its prediction with
    (section 3.4), so it is selected when the network is confident of every
    class: each clip probability is at least ``confidence`` (present) or
    below ``1 - confidence`` (absent). Its pseudo clip label is the classes
    present; its frame labels are eq. 4 at ``threshold`` (``theta_i``) for
    those classes, and 0 for the others.

    Parameters
    ----------
    clip_probs : ndarray of shape (n_clips, n_classes)
        Predicted clip probabilities of the unlabelled clips.
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
        Their frame probabilities.
    threshold : float
        ``theta_i`` of eq. 5, for the frames.
    confidence : float in (0.5, 1], default=0.75
        How sure the clip prediction must be, both ways (0.75 is eq. 5's
        starting threshold).

    Returns
    -------
    selected : ndarray of shape (n_clips,), dtype bool
        Clips that get pseudo labels.
    clip_labels : ndarray of shape (n_clips, n_classes), dtype float32
        Their pseudo clip labels (0/1).
    pseudo_frames : ndarray of shape (n_clips, n_frames, n_classes), dtype float32
        Their frame labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.training.pseudo_labels import select_unlabeled
    >>> frames = np.array([[[0.9, 0.1], [0.2, 0.1]], [[0.5, 0.1], [0.1, 0.1]]])
    >>> sel, clip, pl = select_unlabeled(frames.max(1), frames, threshold=0.5)
    >>> sel.tolist(), clip[0].tolist(), pl[0, :, 0].tolist()
    ([True, False], [1.0, 0.0], [1.0, 0.0])
    """
    clip_probs = np.asarray(clip_probs)
    frame_probs = np.asarray(frame_probs)
    if frame_probs.ndim != 3 or frame_probs.shape[::2] != clip_probs.shape:
        raise ValueError(
            f"frame_probs has shape {frame_probs.shape} but must be "
            f"(n_clips, n_frames, n_classes) = ({clip_probs.shape[0]}, n_frames, "
            f"{clip_probs.shape[1]})."
        )
    if not 0.5 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0.5, 1]. Got {confidence!r}.")
    present = clip_probs >= confidence
    selected = np.all(present | (clip_probs < 1.0 - confidence), axis=1)
    pseudo_frames = (frame_probs >= threshold) & present[:, None, :]
    return selected, present.astype(np.float32), pseudo_frames.astype(np.float32)


#: Most pseudo-labelling iterations (the report used 10; each is an epoch).
MAX_PSEUDO_LABEL_ITER = 1000


class PseudoLabelSchedule(BaseEstimator):
    """Stage 2 of the report: how often, from what and how pseudo labels are drawn.

    A parameter object of :class:`~sklearn_sed.PseudoLabelSED`
    (``pseudo_labels=PseudoLabelSchedule(...)``); ``get_params`` and
    ``set_params`` of the estimator reach its fields with the
    ``pseudo_labels__`` prefix, so that ``GridSearchCV`` tunes them
    (``{"pseudo_labels__delta": [0.05, 0.1]}``).

    Parameters
    ----------
    max_iter : int, default=10
        Pseudo-labelling iterations of stage 2, one training epoch each
        (paper silent).
    delta : float, default=0.05
        Decrease of the threshold per iteration in eq. 5 (paper silent).
    threshold_start, threshold_floor : float, default=0.75, 0.25
        The 3/4 and 1/4 of eq. 5; ``threshold_floor <= threshold_start``.
    weighting : {"paper", "keep_strong"}, default="paper"
        Frame-loss weights of stage 2. "paper" is eq. 10, which shares one
        weight between strong and pseudo-labelled clips, so the strong frames
        weigh about a quarter of their stage-1 weight when ``M_p`` is close
        to ``M_s``. "keep_strong" (not in the report) keeps eq. 8's weight on
        the strong frames and adds eq. 10's pseudo term
        (:func:`~sklearn_sed.training.losses.stage2_loss`).
    teacher : estimator or None, default=None
        Where the probabilities of eqs. 4-5 come from (not in the report).
        None: the network labels the weak clips itself, as in the report.
        An estimator with ``predict_frames`` and ``predict_proba`` (e.g. a
        :class:`~sklearn_sed.PseudoLabelSED` with ``module=CRNN``): a clone of
        it is fitted at the start of ``fit`` on the same training clips, with
        the same validation clips, and its frame and clip probabilities of
        the weak clips, drawn once, replace the network's in every iteration
        (same ``theta_i``, same selection). Wrap a fitted one in
        :class:`sklearn.frozen.FrozenEstimator` to use it as it is. Its
        ``classes_`` must hold every class of the student; its frames are
        resampled (nearest) to the student's output frames. The checkpoints
        of the student's ``checkpoint_dir`` hold the student only: give the
        teacher a ``checkpoint_dir`` of its own (``sklearn-sed train
        --teacher crnn`` does), or freeze it.
    unlabeled_confidence : float in (0.5, 1] or None, default=0.75
        Clips without any label (``y_weak`` of ``-1``; an extension, not in
        the report) are pseudo-labelled when every class's clip probability
        is at least this or below ``1 - unlabeled_confidence``
        (:func:`~sklearn_sed.training.pseudo_labels.select_unlabeled`); None
        leaves them out of stage 2.

    Examples
    --------
    >>> from sklearn_sed.training.pseudo_labels import PseudoLabelSchedule
    >>> schedule = PseudoLabelSchedule(max_iter=4, delta=0.1)
    >>> [schedule.threshold(i) for i in range(schedule.max_iter)]
    [0.75, 0.65, 0.55, 0.45]
    """

    _parameter_constraints: dict = {
        # Each iteration is at least one epoch over the training clips.
        "max_iter": [
            Interval(numbers.Integral, 0, MAX_PSEUDO_LABEL_ITER, closed="both")
        ],
        "delta": [Interval(numbers.Real, 0, 1, closed="both")],
        "threshold_start": [Interval(numbers.Real, 0, 1, closed="both")],
        "threshold_floor": [Interval(numbers.Real, 0, 1, closed="both")],
        "weighting": [StrOptions(set(STAGE2_WEIGHTINGS))],
        "teacher": [HasMethods(["fit", "predict_frames", "predict_proba"]), None],
        "unlabeled_confidence": [Interval(numbers.Real, 0.5, 1, closed="right"), None],
    }

    def __init__(
        self,
        max_iter=10,
        delta=0.05,
        threshold_start=0.75,
        threshold_floor=0.25,
        weighting="paper",
        teacher=None,
        unlabeled_confidence=0.75,
    ):
        self.max_iter = max_iter
        self.delta = delta
        self.threshold_start = threshold_start
        self.threshold_floor = threshold_floor
        self.weighting = weighting
        self.teacher = teacher
        self.unlabeled_confidence = unlabeled_confidence

    def check(self):
        """Validate the fields; return ``self``.

        Raises
        ------
        ValueError
            When a field is out of its range, or ``threshold_floor`` is above
            ``threshold_start``.
        """
        self._validate_params()
        if self.threshold_floor > self.threshold_start:
            raise ValueError(
                "threshold_floor must be <= threshold_start. Got "
                f"threshold_floor={self.threshold_floor} and threshold_start="
                f"{self.threshold_start} instead."
            )
        return self

    def threshold(self, iteration):
        """Return ``theta_i`` of eq. 5 for ``iteration``.

        See :func:`~sklearn_sed.training.pseudo_labels.threshold_schedule`.
        """
        return threshold_schedule(
            iteration,
            delta=self.delta,
            start=self.threshold_start,
            floor=self.threshold_floor,
        )
