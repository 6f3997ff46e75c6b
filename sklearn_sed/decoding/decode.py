"""From frame probabilities to events: thresholding and median filtering.

Thresholding is single (a frame is active when its probability reaches the
class threshold) or, with ``low_threshold``, by hysteresis: an event starts
where the probability reaches the threshold and lasts while it stays at or
above the lower one (Cances et al., WASPAA 2019), which keeps a stationary
sound whose probability dips below the threshold in one piece.

Both orders in use are available: ``"threshold_first"`` binarizes the frame
probabilities and median-filters the decisions (DCASE2019 baseline, and the
NEC system), ``"filter_first"`` median-filters the probabilities and then
binarizes (DESED baselines since 2021).

:class:`Decoder` holds the settings a user gives (a parameter of
:class:`~sklearn_sed.PseudoLabelSED`); :class:`Decoding` the per-class
settings a fitted detector decodes with.
"""

import dataclasses
import numbers

import numpy as np
from scipy.ndimage import label, median_filter
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_sed._validation import check_per_class
from sklearn_sed.labels import frames_to_events

__all__ = [
    "POSTPROCESSING_ORDERS",
    "Decoder",
    "Decoding",
    "binarize",
    "decode_events",
    "hysteresis",
    "median_filter_frames",
]

POSTPROCESSING_ORDERS = ("threshold_first", "filter_first")


def _kernel_frames(median_filter_sec, frame_sec):
    """Odd median-filter length in frames for a length in seconds."""
    n = round(median_filter_sec / frame_sec)
    return max(1, n + 1 - n % 2)


def median_filter_frames(frames, *, median_filter_sec, frame_sec):
    """Median-filter each class of a clip's frame matrix along time.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, n_classes)
        Frame probabilities or 0/1 decisions.
    median_filter_sec : float or ndarray of shape (n_classes,)
        Filter length in seconds, per class or for all; rounded to an odd
        number of frames (0 leaves the class unchanged).
    frame_sec : float
        Length of one frame in seconds.

    Returns
    -------
    filtered : ndarray of shape (n_frames, n_classes)
        Same dtype as ``frames``; edges repeat the nearest frame.
    """
    frames = np.asarray(frames)
    lengths = check_per_class(
        median_filter_sec, name="median_filter_sec", n_classes=frames.shape[1]
    )
    out = frames.copy()
    for c, sec in enumerate(lengths):
        k = _kernel_frames(sec, frame_sec)
        if k > 1:
            out[:, c] = median_filter(frames[:, c], size=k, mode="nearest")
    return out


def binarize(scores, threshold, low_threshold=None):
    """Frame decisions of one clip, by single or hysteresis thresholding.

    Parameters
    ----------
    scores : ndarray of shape (n_frames, n_classes)
        Frame probabilities of one clip, in [0, 1].
    threshold : ndarray of shape (n_classes,)
        A frame at or above it is active (and starts an event).
    low_threshold : ndarray of shape (n_classes,), default=None
        With it, a frame is active when it lies in a run of frames at or
        above ``low_threshold`` that holds a frame at or above ``threshold``
        (hysteresis); each value must be at most the class's threshold. None,
        or a value equal to the threshold, is single thresholding.

    Returns
    -------
    decisions : ndarray of shape (n_frames, n_classes), dtype int8
        1 for an active frame, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.decoding.decode import binarize
    >>> p = np.array([[0.1], [0.6], [0.3], [0.35], [0.1], [0.3]])
    >>> binarize(p, np.array([0.5]))[:, 0].tolist()
    [0, 1, 0, 0, 0, 0]
    >>> binarize(p, np.array([0.5]), np.array([0.25]))[:, 0].tolist()
    [0, 1, 1, 1, 0, 0]
    """
    high = scores >= threshold
    if low_threshold is None:
        return high.astype(np.int8)
    # The same runs as the pseudo labels' hysteresis, for one clip.
    return hysteresis(high[None], (scores >= low_threshold)[None])[0].astype(np.int8)


def decode_events(
    frame_probs,
    *,
    classes,
    duration,
    threshold=0.5,
    median_filter_sec=0.0,
    order="threshold_first",
    low_threshold=None,
):
    """Turn frame probabilities into event lists, one per clip.

    Parameters
    ----------
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
        Frame probabilities in [0, 1].
    classes : array-like of shape (n_classes,)
        Class labels.
    duration : float
        Clip length in seconds.
    threshold : float or ndarray of shape (n_classes,), default=0.5
        Decision threshold, scalar or per class.
    median_filter_sec : float or ndarray of shape (n_classes,), default=0.0
        Median filter length in seconds, scalar or per class.
    order : {"threshold_first", "filter_first"}, default="threshold_first"
        Whether to binarize before or after median filtering.
    low_threshold : float or ndarray of shape (n_classes,), default=None
        Hysteresis: an event starts at ``threshold`` and lasts while the
        probability stays at or above ``low_threshold`` (at most the
        threshold of its class; see :func:`binarize`). None is single
        thresholding.

    Returns
    -------
    events : list of list of (onset, offset, event_label)
        Per clip, events in seconds with ``0 <= onset < offset <= duration``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.decoding.decode import decode_events
    >>> p = np.zeros((1, 10, 1)); p[0, 2:5, 0] = 0.9
    >>> decode_events(p, classes=["Dog"], duration=10.0)
    [[(2.0, 5.0, 'Dog')]]
    """
    frame_probs = np.asarray(frame_probs)
    if frame_probs.ndim != 3:
        raise ValueError(
            "frame_probs must have shape (n_clips, n_frames, n_classes). Got "
            f"shape {frame_probs.shape} instead."
        )
    if order not in POSTPROCESSING_ORDERS:
        raise ValueError(
            f"order must be one of {POSTPROCESSING_ORDERS}. Got {order!r} instead."
        )
    _n_clips, n_frames, n_classes = frame_probs.shape
    thresholds = check_per_class(
        threshold, name="threshold", n_classes=n_classes, low=0.0, high=1.0
    )
    if low_threshold is not None:
        low_threshold = check_per_class(
            low_threshold, name="low_threshold", n_classes=n_classes, low=0.0, high=1.0
        )
        if np.any(low_threshold > thresholds):
            raise ValueError(
                "low_threshold must be at most the threshold of its class "
                f"(hysteresis keeps an event going below the threshold). Got "
                f"low_threshold={low_threshold.tolist()} for "
                f"threshold={thresholds.tolist()}; lower it, or pass None for "
                "single thresholding."
            )
        if np.array_equal(low_threshold, thresholds):
            low_threshold = None  # single thresholding, the fast way
    frame_sec = duration / n_frames
    events = []
    for scores in frame_probs:
        if order == "threshold_first":
            decisions = binarize(scores, thresholds, low_threshold)
            decisions = median_filter_frames(
                decisions, median_filter_sec=median_filter_sec, frame_sec=frame_sec
            )
        else:
            smoothed = median_filter_frames(
                scores, median_filter_sec=median_filter_sec, frame_sec=frame_sec
            )
            decisions = binarize(smoothed, thresholds, low_threshold)
        events.append(frames_to_events(decisions, classes=classes, duration=duration))
    return events


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How a detector turns frame probabilities into events: a value object.

    What a net in training hands to its validation scoring and to SED
    scorers in skorch's ``EpochScoring`` (``net.decoding_``), instead of a
    pointer back to the estimator that owns it.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
        Class labels, in column order.
    duration : float
        Seconds spanned by a clip's frames.
    threshold, median_filter_sec, low_threshold : ndarray of shape (n_classes,)
        Per-class settings, as :func:`decode_events` takes them.
    order : {"threshold_first", "filter_first"}, default="threshold_first"
        Post-processing order.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.decoding.decode import Decoding
    >>> d = Decoding(["a"], 1.0, threshold=[0.5], median_filter_sec=[0.0],
    ...              low_threshold=[0.5])
    >>> d.decode(np.array([[[0.1], [0.9], [0.9], [0.1]]]))
    [[(0.25, 0.75, 'a')]]
    """

    classes: object
    duration: float
    threshold: object
    median_filter_sec: object
    low_threshold: object
    order: str = "threshold_first"

    def decode(self, frame_probs):
        """Decode ``(n_clips, n_frames, n_classes)`` probabilities into events.

        Parameters
        ----------
        frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
            Frame probabilities.

        Returns
        -------
        events : list of list of (onset, offset, event_label)
            Per clip, in seconds.
        """
        return decode_events(
            frame_probs,
            classes=self.classes,
            duration=self.duration,
            threshold=self.threshold,
            median_filter_sec=self.median_filter_sec,
            low_threshold=self.low_threshold,
            order=self.order,
        )


class Decoder(BaseEstimator):
    """How events are decoded from frame probabilities: a parameter object.

    The ``decoder`` of :class:`~sklearn_sed.PseudoLabelSED`; the estimator's
    ``get_params``/``set_params`` reach its fields with the ``decoder__``
    prefix, so that ``GridSearchCV`` tunes them without retraining
    (``{"sed__decoder__threshold": [0.3, 0.5]}`` with ``memory``).

    Parameters
    ----------
    threshold : float or array-like of shape (n_classes,), default=0.5
        Decision threshold of ``predict`` and ``predict_events``.
    median_filter_sec : float or array-like of shape (n_classes,), default=0.4
        Median filter on frame decisions, in seconds.
    low_threshold : float, array-like of shape (n_classes,) or None, default=None
        Hysteresis thresholding: an event starts where the frame probability
        reaches ``threshold`` and lasts while it stays at or above
        ``low_threshold`` (at most the threshold of its class). None is
        single thresholding at ``threshold``.
    order : {"threshold_first", "filter_first"}, default="threshold_first"
        Binarize then filter (DCASE2019), or filter the probabilities first.
    tune : bool, default=False
        With validation clips (``X_val``/``y_val`` or
        ``validation_fraction`` of the estimator), choose a threshold and a
        median-filter length per class that maximise the validation event F1
        (the estimator's ``threshold_`` and ``median_filter_sec_``, used
        instead of the fields above), and monitor every epoch at its tuned
        setting. After training, the kept weights are tuned once more over a
        wider grid: median filters up to 4 s
        (:data:`~sklearn_sed.decoding.tuning.FINAL_MEDIAN_FILTER_GRID`) and
        hysteresis (:data:`~sklearn_sed.decoding.tuning.LOW_RATIO_GRID`,
        giving ``low_threshold_``).

    Examples
    --------
    >>> from sklearn_sed.decoding.decode import Decoder
    >>> Decoder(threshold=0.3).per_class(["a", "b"])[0].tolist()
    [0.3, 0.3]
    """

    _parameter_constraints: dict = {
        "threshold": [Interval(numbers.Real, 0, 1, closed="both"), "array-like"],
        "median_filter_sec": [
            Interval(numbers.Real, 0, None, closed="left"),
            "array-like",
        ],
        "low_threshold": [
            Interval(numbers.Real, 0, 1, closed="both"),
            "array-like",
            None,
        ],
        "order": [StrOptions(set(POSTPROCESSING_ORDERS))],
        "tune": ["boolean"],
    }

    def __init__(
        self,
        threshold=0.5,
        median_filter_sec=0.4,
        low_threshold=None,
        order="threshold_first",
        tune=False,
    ):
        self.threshold = threshold
        self.median_filter_sec = median_filter_sec
        self.low_threshold = low_threshold
        self.order = order
        self.tune = tune

    def per_class(self, classes):
        """Per-class ``threshold``, ``median_filter_sec`` and ``low_threshold``.

        Parameters
        ----------
        classes : array-like of shape (n_classes,)
            The class labels, in column order.

        Returns
        -------
        threshold, median_filter_sec, low_threshold : ndarray of shape (n_classes,)
            The low threshold equals the threshold where ``low_threshold``
            is None (single thresholding).

        Raises
        ------
        ValueError
            When a per-class setting has another length than ``classes``,
            or a low threshold is above its class's threshold.
        """
        self._validate_params()
        n_classes = len(classes)
        threshold = check_per_class(
            self.threshold, name="threshold", n_classes=n_classes, low=0.0, high=1.0
        )
        if self.low_threshold is None:
            low = threshold.copy()
        else:
            low = check_per_class(
                self.low_threshold,
                name="low_threshold",
                n_classes=n_classes,
                low=0.0,
                high=1.0,
            )
            if np.any(low > threshold):
                raise ValueError(
                    "low_threshold must be at most the threshold of its class. "
                    f"Got low_threshold={self.low_threshold!r} for "
                    f"threshold={self.threshold!r}; lower it, or set it to None "
                    "for single thresholding."
                )
        median = check_per_class(
            self.median_filter_sec, name="median_filter_sec", n_classes=n_classes
        )
        return threshold, median, low


def hysteresis(high, low):
    """Frames of the runs of ``low`` that hold a ``high`` frame, for many clips.

    Parameters
    ----------
    high : ndarray of shape (n_clips, n_frames, n_classes), dtype bool
        Frames at or above the high threshold.
    low : ndarray of shape (n_clips, n_frames, n_classes), dtype bool
        Frames at or above the low threshold (a superset of ``high``).

    Returns
    -------
    active : ndarray of shape (n_clips, n_frames, n_classes), dtype bool
        The frames of every run of consecutive ``low`` frames (along axis 1,
        within one clip and class) that holds at least one ``high`` frame.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.decoding.decode import hysteresis
    >>> p = np.array([0.1, 0.6, 0.3, 0.35, 0.1, 0.3])[None, :, None]
    >>> hysteresis(p >= 0.5, p >= 0.25)[0, :, 0].tolist()
    [False, True, True, True, False, False]
    """
    high = np.asarray(high, dtype=bool)
    low = np.asarray(low, dtype=bool) | high
    # Runs along time only: frames of other clips or classes never connect.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1, :, 1] = True
    runs, _ = label(low, structure=structure)
    keep = np.zeros(runs.max() + 1, dtype=bool)
    keep[runs[high]] = True
    keep[0] = False
    return keep[runs]
