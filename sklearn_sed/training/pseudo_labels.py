"""Class-frame pseudo labels: the threshold schedule (eq. 5) and selection (eq. 4).

Section 3.2 and 3.4 of the NEC report: after each training iteration ``i`` the
weakly labelled clips whose clip prediction, binarized at ``theta_i``, equals
their weak label receive frame labels, the frame predictions binarized at the
same ``theta_i``. Plain numpy, so that the rule can be tested on crafted
probabilities.
"""

import numbers

import numpy as np
from scipy.ndimage import label

__all__ = ["hysteresis", "select_pseudo_labels", "threshold_schedule"]


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


def select_pseudo_labels(
    clip_probs, frame_probs, weak_labels, *, threshold, negatives="all", low_ratio=1.0
):
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
    negatives : {"all", "absent"}, default="all"
        Which frames below ``threshold`` become negatives. ``"all"`` is eq. 4.
        ``"absent"`` (not in the report) keeps as negatives only the frames of
        classes that the weak label says are absent, which are certainly
        negative, and marks the frames of present classes below the threshold
        as unknown (NaN, left out of the loss): a high ``theta_i`` then no
        longer teaches the network that the quieter part of an event is
        silence.
    low_ratio : float in (0, 1], default=1.0
        Hysteresis of eq. 4 (not in the report). 1.0 is eq. 4: a frame is
        positive when its probability is at or above ``threshold``. Below
        1.0, a frame is positive when it lies in a run of consecutive frames
        at or above ``low_ratio * threshold`` that holds a frame at or above
        ``threshold``: an event that the network finds confidently somewhere
        is labelled over its whole extent, not only at its peaks (the
        decoder's hysteresis, :func:`~sklearn_sed.decoding.decode.binarize`,
        applied to the pseudo labels). The selection of clips is unchanged.

    Returns
    -------
    selected : ndarray of shape (n_clips,), dtype bool
        Clips that get pseudo labels (their count is ``M_p``).
    pseudo_frames : ndarray of shape (n_clips, n_frames, n_classes), dtype float32
        Eq. 4 for every clip (1, 0, or NaN for unknown with
        ``negatives="absent"``); only the rows of selected clips are used.

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
    if negatives not in ("all", "absent"):
        raise ValueError(
            f'negatives must be "all" (eq. 4) or "absent". Got {negatives!r} instead.'
        )
    if not (isinstance(low_ratio, numbers.Real) and 0 < low_ratio <= 1):
        raise ValueError(
            f"low_ratio must be a number in (0, 1] (1.0: eq. 4). Got {low_ratio!r} "
            "instead."
        )
    threshold = np.asarray(threshold, dtype=float)
    selected = np.all((clip_probs >= threshold) == weak_labels, axis=1)
    above = frame_probs >= threshold
    if low_ratio < 1:
        above = hysteresis(above, frame_probs >= low_ratio * threshold)
    pseudo_frames = above.astype(np.float32)
    if negatives == "absent":
        unknown = ~above & weak_labels[:, None, :]
        pseudo_frames[unknown] = np.nan
    return selected, pseudo_frames


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
    >>> from sklearn_sed.training.pseudo_labels import hysteresis
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
