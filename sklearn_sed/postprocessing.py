"""From frame probabilities to events: gating, thresholding, median filtering.

Both orders in use are available: ``"threshold_first"`` binarizes the frame
probabilities and median-filters the decisions (DCASE2019 baseline, and the
NEC system), ``"filter_first"`` median-filters the probabilities and then
binarizes (DESED baselines since 2021). Optional clip-level gating, the
DCASE2019 winner's trick, zeroes the frame scores of classes whose clip
probability is below the class threshold.
"""

import numpy as np
from scipy.ndimage import median_filter

from sklearn_sed._validation import check_per_class
from sklearn_sed.labels import frames_to_events

__all__ = ["POSTPROCESSING_ORDERS", "decode_events", "median_filter_frames"]

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

    Returns
    -------
    events : list of list of (onset, offset, event_label)
        Per clip, events in seconds with ``0 <= onset < offset <= duration``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.postprocessing import decode_events
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
    frame_sec = duration / n_frames
    if clip_gating:
        if clip_probs is None:
            clip_probs = frame_probs.max(axis=1)
        gate = np.asarray(clip_probs) >= thresholds
        frame_probs = frame_probs * gate[:, None, :]
    events = []
    for scores in frame_probs:
        if order == "threshold_first":
            decisions = (scores >= thresholds).astype(np.int8)
            decisions = median_filter_frames(
                decisions, median_filter_sec=median_filter_sec, frame_sec=frame_sec
            )
        else:
            smoothed = median_filter_frames(
                scores, median_filter_sec=median_filter_sec, frame_sec=frame_sec
            )
            decisions = smoothed >= thresholds
        events.append(frames_to_events(decisions, classes=classes, duration=duration))
    return events
