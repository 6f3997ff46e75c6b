"""From frame probabilities to events: gating, thresholding, median filtering.

Thresholding is single (a frame is active when its probability reaches the
class threshold) or, with ``low_threshold``, by hysteresis: an event starts
where the probability reaches the threshold and lasts while it stays at or
above the lower one (Cances et al., WASPAA 2019), which keeps a stationary
sound whose probability dips below the threshold in one piece.

Both orders in use are available: ``"threshold_first"`` binarizes the frame
probabilities and median-filters the decisions (DCASE2019 baseline, and the
NEC system), ``"filter_first"`` median-filters the probabilities and then
binarizes (DESED baselines since 2021). Optional clip-level gating, the
DCASE2019 winner's trick, zeroes the frame scores of classes whose clip
probability is below the class threshold.
"""

import dataclasses

import numpy as np
from scipy.ndimage import median_filter

from sklearn_sed._validation import check_per_class
from sklearn_sed.labels import frames_to_events
from sklearn_sed.training.pseudo_labels import hysteresis

__all__ = [
    "POSTPROCESSING_ORDERS",
    "Decoding",
    "binarize",
    "decode_events",
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
    clip_probs=None,
    *,
    classes,
    duration,
    threshold=0.5,
    median_filter_sec=0.0,
    order="threshold_first",
    clip_gating=False,
    low_threshold=None,
):
    """Turn frame probabilities into event lists, one per clip.

    Parameters
    ----------
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
        Frame probabilities in [0, 1].
    clip_probs : ndarray of shape (n_clips, n_classes), default=None
        Clip probabilities; needed only for ``clip_gating``; the max over
        frames when None.
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
    clip_gating : bool, default=False
        Zero the frames of classes whose clip probability is below threshold.
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
    if clip_gating:
        if clip_probs is None:
            clip_probs = frame_probs.max(axis=1)
        gate = np.asarray(clip_probs) >= thresholds
        frame_probs = frame_probs * gate[:, None, :]
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
    clip_gating : bool, default=False
        Keep a class's frames only where its clip probability passes.

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
    clip_gating: bool = False

    def decode(self, frame_probs, clip_probs=None):
        """Decode ``(n_clips, n_frames, n_classes)`` probabilities into events.

        Parameters
        ----------
        frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
            Frame probabilities.
        clip_probs : ndarray of shape (n_clips, n_classes), default=None
            Clip probabilities, for ``clip_gating``.

        Returns
        -------
        events : list of list of (onset, offset, event_label)
            Per clip, in seconds.
        """
        return decode_events(
            frame_probs,
            clip_probs,
            classes=self.classes,
            duration=self.duration,
            threshold=self.threshold,
            median_filter_sec=self.median_filter_sec,
            low_threshold=self.low_threshold,
            order=self.order,
            clip_gating=self.clip_gating,
        )
