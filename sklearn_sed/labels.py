"""Conversions between the three label forms of sound event detection.

A clip's *weak* label is the set of classes it contains; its *strong* label is
a list of events ``(onset, offset, event_label)`` in seconds; the network is
trained on *frame* labels, a 0/1 matrix of shape (n_frames, n_classes). This
module turns each form into the others (numpy only, no torch).

A clip without any label (DESED's ``unlabel_in_domain``) is marked with
:data:`~sklearn_sed.labels.UNLABELED` (``-1``), as scikit-learn's
semi-supervised estimators mark unlabelled samples: ``-1`` in place of the
clip's label collection, or a row of ``-1`` in an indicator matrix.
``None`` is refused (it is ambiguous: an unlabelled clip, or a missing
label), and ``[]`` is a clip with no event.
"""

import math
import numbers
import warnings
from typing import NamedTuple

import numpy as np
from sklearn.preprocessing import MultiLabelBinarizer

__all__ = [
    "KIND_PSEUDO",
    "KIND_STRONG",
    "KIND_UNLABELED",
    "KIND_WEAK",
    "UNLABELED",
    "is_unlabeled",
    "ClipLabels",
    "EventEncoder",
    "combine_labels",
    "split_labels",
    "check_events",
    "encode_targets",
    "encode_weak_labels",
    "events_to_frames",
    "frames_to_events",
    "merge_overlapping_events",
    "weak_labels_of",
]

#: Codes of a training target's ``y["kind"]``: a clip's kind of label (weak
#: only, strong, with class-frame pseudo labels, or none at all).
KIND_WEAK, KIND_STRONG, KIND_PSEUDO, KIND_UNLABELED = 0, 1, 2, 3
#: The mark of a clip without any label, in ``y_weak`` (scikit-learn's ``-1``).
UNLABELED = -1


def is_unlabeled(labels):
    """Return whether one clip's weak label is the unlabelled mark (``-1``).

    See :data:`~sklearn_sed.labels.UNLABELED`.
    """
    return (
        isinstance(labels, numbers.Integral)
        and not isinstance(labels, bool)
        and labels == UNLABELED
    )


def _unique_classes(classes):
    classes = np.asarray(classes)
    values, counts = np.unique(classes, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"classes must not repeat a class. Got {values[counts > 1].tolist()} "
            "more than once."
        )
    return classes


def encode_weak_labels(y_weak, classes=None):
    """Turn weak labels into an indicator matrix.

    Parameters
    ----------
    y_weak : array-like of shape (n_clips, n_classes) or sequence of collections
        Either a 0/1 indicator matrix, or one collection of class labels
        (strings or ints) per clip; a string is split on commas as in DESED's
        ``weak.tsv`` (``"Dog,Speech"``). An unlabelled clip is
        :data:`~sklearn_sed.labels.UNLABELED` (``-1``), or a row of ``-1`` in a matrix.
    classes : array-like of shape (n_classes,), default=None
        Fixed class list. When None, the classes are the sorted labels seen
        (or ``0 .. n_classes - 1`` for an indicator matrix).

    Returns
    -------
    Y : ndarray of shape (n_clips, n_classes), dtype float32
        Indicator matrix; the rows of unlabelled clips are ``-1``.
    classes : ndarray of shape (n_classes,)
        The classes, in column order of ``Y``.
    """
    if (
        isinstance(y_weak, np.ndarray)
        and y_weak.ndim == 2
        and y_weak.dtype.kind in "biuf"
    ):
        Y = y_weak
        unlabeled_rows = np.all(Y == UNLABELED, axis=1)
        if not np.all(np.isin(Y[~unlabeled_rows], (0, 1))):
            raise ValueError(
                "y_weak must hold only 0 and 1 when given as an indicator matrix, "
                "and rows of -1 for unlabelled clips. Got values "
                f"{np.unique(Y[~unlabeled_rows])[:5].tolist()} instead."
            )
        if classes is None:
            classes = np.arange(Y.shape[1])
        classes = _unique_classes(classes)
        if len(classes) != Y.shape[1]:
            raise ValueError(
                f"y_weak has {Y.shape[1]} columns but classes has {len(classes)} "
                "entries. They must match."
            )
        return Y.astype(np.float32), classes
    rows, unlabeled = [], []
    for i, labels in enumerate(y_weak):
        if labels is None:
            raise ValueError(
                f"y_weak[{i}] is None, which is ambiguous. Mark an unlabelled "
                "clip with -1 (sklearn_sed.labels.UNLABELED), or give [] for a "
                "clip with no event."
            )
        if is_unlabeled(labels):
            unlabeled.append(i)
            rows.append([])
            continue
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.split(",") if s.strip()]
        elif not isinstance(labels, (list, tuple, set, frozenset, np.ndarray)):
            raise TypeError(
                f"y_weak[{i}] must be a collection of class labels. Got "
                f"{type(labels).__name__} {labels!r} instead."
            )
        rows.append(list(labels))
    if classes is not None:
        classes = _unique_classes(classes)
    binarizer = MultiLabelBinarizer(classes=None if classes is None else list(classes))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Y = binarizer.fit_transform(rows)
    unknown = [str(w.message) for w in caught if "unknown class" in str(w.message)]
    if unknown:
        raise ValueError(
            f"y_weak holds labels not in classes: {unknown[0]}. Consider adding "
            "them to `classes` or fixing the labels."
        )
    Y = Y.astype(np.float32)
    Y[unlabeled] = UNLABELED
    return Y, np.asarray(binarizer.classes_)


def check_events(events, *, duration, classes, name="y_strong[0]"):
    """Validate one clip's events and clip them to the clip.

    Parameters
    ----------
    events : sequence of (onset, offset, event_label)
        Times in seconds.
    duration : float
        Clip length in seconds.
    classes : array-like of shape (n_classes,)
        Known classes.
    name : str
        Name of the input, used in messages.

    Returns
    -------
    events : list of (float, float, label)
        Events with onset >= 0 and offset <= duration.

    Warns
    -----
    UserWarning
        When an event starts before 0 or ends after ``duration`` (clipped).
    """
    known = set(np.asarray(classes).tolist())
    cleaned = []
    for j, event in enumerate(events):
        try:
            onset, offset, label = event
            onset, offset = float(onset), float(offset)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name}[{j}] must be an (onset, offset, event_label) tuple with "
                f"times in seconds. Got {event!r} instead."
            ) from exc
        if isinstance(label, np.generic):
            label = label.item()
        if label not in known:
            raise ValueError(
                f"{name}[{j}] has event_label {label!r}, which is not one of the "
                f"classes {sorted(known, key=str)}. Consider passing `classes` "
                "with every label, or fixing the label."
            )
        if not (math.isfinite(onset) and math.isfinite(offset)):
            raise ValueError(f"{name}[{j}] has a non-finite time: {event!r}.")
        if onset >= offset:
            raise ValueError(
                f"{name}[{j}] must have onset < offset. Got onset={onset} and "
                f"offset={offset} instead."
            )
        if onset < 0 or offset > duration:
            warnings.warn(
                f"{name}[{j}] = {event!r} lies partly outside the clip "
                f"[0, {duration}] s; it is clipped to the clip.",
                UserWarning,
                stacklevel=3,
            )
            onset, offset = max(onset, 0.0), min(offset, duration)
            if onset >= offset:
                continue
        cleaned.append((onset, offset, label))
    return cleaned


def events_to_frames(events, *, classes, n_frames, duration):
    """Encode events as a frame-level 0/1 matrix.

    A frame is active when it overlaps the event: the onset frame is
    ``floor(onset / frame_sec)`` and the (exclusive) offset frame is
    ``ceil(offset / frame_sec)``, as DESED's encoder does.

    Parameters
    ----------
    events : sequence of (onset, offset, event_label)
        Times in seconds, inside ``[0, duration]``.
    classes : array-like of shape (n_classes,)
        Classes, in column order.
    n_frames : int
        Number of frames of the clip.
    duration : float
        Clip length in seconds.

    Returns
    -------
    frames : ndarray of shape (n_frames, n_classes), dtype float32
        1 where the class is active.

    See Also
    --------
    frames_to_events : The inverse.
    """
    classes = list(np.asarray(classes).tolist())
    frames = np.zeros((n_frames, len(classes)), dtype=np.float32)
    frame_sec = duration / n_frames
    for onset, offset, label in events:
        start = min(max(math.floor(onset / frame_sec + 1e-9), 0), n_frames)
        stop = min(max(math.ceil(offset / frame_sec - 1e-9), start + 1), n_frames)
        frames[start:stop, classes.index(label)] = 1.0
    return frames


def frames_to_events(frames, *, classes, duration):
    """Decode a binary frame matrix into events.

    Parameters
    ----------
    frames : array-like of shape (n_frames, n_classes)
        Binary (0/1 or bool) frame decisions.
    classes : array-like of shape (n_classes,)
        Classes, in column order.
    duration : float
        Clip length in seconds.

    Returns
    -------
    events : list of (onset, offset, event_label)
        One tuple per run of active frames, times in seconds, sorted by onset
        then label.

    See Also
    --------
    events_to_frames : The inverse.
    """
    frames = np.asarray(frames).astype(bool)
    n_frames = frames.shape[0]
    frame_sec = duration / n_frames
    events = []
    padded = np.zeros((n_frames + 2, frames.shape[1]), dtype=np.int8)
    padded[1:-1] = frames
    change = np.diff(padded, axis=0)
    for c, label in enumerate(np.asarray(classes).tolist()):
        starts = np.flatnonzero(change[:, c] == 1)
        stops = np.flatnonzero(change[:, c] == -1)
        for a, b in zip(starts, stops, strict=True):
            events.append((float(a * frame_sec), float(b * frame_sec), label))
    events.sort(key=lambda e: (e[0], str(e[2])))
    return events


class EventEncoder:
    """Encode and decode events on a fixed frame grid.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        Class labels, in column order.
    n_frames : int
        Frames per clip (128 for the paper's network output).
    duration : float, default=10.0
        Clip length in seconds.

    See Also
    --------
    events_to_frames, frames_to_events : The functions it wraps.

    Examples
    --------
    >>> from sklearn_sed import EventEncoder
    >>> enc = EventEncoder(["Dog", "Speech"], n_frames=10, duration=10.0)
    >>> enc.encode([(1.0, 3.0, "Dog")])[:, 0].tolist()
    [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    >>> enc.decode(enc.encode([(1.0, 3.0, "Dog")]))
    [(1.0, 3.0, 'Dog')]
    """

    def __init__(self, classes, *, n_frames, duration=10.0):
        if not isinstance(n_frames, numbers.Integral) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive int. Got {n_frames!r}.")
        self.classes = np.asarray(classes)
        self.n_frames = int(n_frames)
        self.duration = float(duration)

    @property
    def frame_sec(self):
        """Length of one frame in seconds."""
        return self.duration / self.n_frames

    def encode(self, events):
        """Return the (n_frames, n_classes) 0/1 matrix of ``events``."""
        return events_to_frames(
            events, classes=self.classes, n_frames=self.n_frames, duration=self.duration
        )

    def decode(self, frames):
        """Return the events of a binary (n_frames, n_classes) matrix."""
        return frames_to_events(frames, classes=self.classes, duration=self.duration)


class ClipLabels(NamedTuple):
    """Both labels of one clip, so that they travel together as one ``y``.

    scikit-learn's model selection splits one target ``y``; a list of
    ``ClipLabels`` carries the weak label (for training) and the events (for
    training and for scoring) through ``GridSearchCV`` and ``cross_validate``.

    Parameters
    ----------
    weak : tuple of labels or int
        Classes present in the clip, or
        :data:`~sklearn_sed.labels.UNLABELED` (``-1``) for a clip without any label.
    events : list of (onset, offset, event_label) or None
        Strong label, or None for a weak-only or unlabelled clip.
    """

    weak: tuple | int
    events: list | None


def _encode_strong(y_strong, *, n_clips, classes, n_frames, duration):
    """Return frame labels (n_clips, n_frames, n_classes) and a strong-clip mask."""
    frames = np.zeros((n_clips, n_frames, len(classes)), dtype=np.float32)
    if y_strong is None:
        return frames, np.zeros(n_clips, dtype=bool)
    if isinstance(y_strong, np.ndarray) and y_strong.ndim == 3:
        if y_strong.shape != frames.shape:
            raise ValueError(
                f"y_strong has shape {y_strong.shape} but PseudoLabelSED expects "
                f"(n_clips, n_frames_out, n_classes) = {frames.shape} (NaN rows "
                "for weak-only clips). Consider passing event lists instead."
            )
        missing = np.isnan(y_strong)
        strong = ~missing.any(axis=(1, 2))
        partial = np.flatnonzero(missing.any(axis=(1, 2)) & ~missing.all(axis=(1, 2)))
        if len(partial):
            raise ValueError(
                f"y_strong[{partial[0]}] is partly NaN ({len(partial)} clip(s) like "
                "it): a clip's frame labels are all known (0/1) or all NaN (a "
                "weak-only clip). Fill the missing frames or set the whole clip "
                "to NaN."
            )
        frames[strong] = y_strong[strong]
        if not np.all(np.isin(frames, (0, 1))):
            raise ValueError("y_strong frame labels must be 0, 1 or NaN.")
        return frames, strong
    strong = np.zeros(n_clips, dtype=bool)
    for i, events in enumerate(y_strong):
        if events is None:
            continue
        events = check_events(
            events, duration=duration, classes=classes, name=f"y_strong[{i}]"
        )
        strong[i] = True
        frames[i] = events_to_frames(
            events, classes=classes, n_frames=n_frames, duration=duration
        )
    return frames, strong


def encode_targets(Y_weak, y_strong, *, classes, n_frames, duration):
    """Encode a training set's labels into the targets of eqs. 1-10.

    The one place where weak and strong labels become what the loss and the
    pseudo-label step read: clip labels, frame labels and each clip's kind.

    Parameters
    ----------
    Y_weak : ndarray of shape (n_clips, n_classes)
        Clip labels, from :func:`encode_weak_labels`.
    y_strong : list or ndarray or None
        Per clip, a list of ``(onset, offset, label)`` events or None (a
        weak-only clip), or frame labels of shape (n_clips, n_frames,
        n_classes) with NaN rows for weak-only clips; None when no clip is
        strong.
    classes : ndarray of shape (n_classes,)
        Class labels, in the order of ``Y_weak``'s columns.
    n_frames : int
        Frames of the network's output per clip.
    duration : float
        Clip length in seconds.

    Returns
    -------
    targets : dict
        ``"weak"`` (n_clips, n_classes) float32, ``"frames"`` (n_clips,
        n_frames, n_classes) float32 (zeros for weak-only clips) and
        ``"kind"`` (n_clips,) int64, :data:`KIND_STRONG`, :data:`KIND_WEAK`
        or :data:`KIND_UNLABELED` (a row of ``-1`` in ``Y_weak``).

    Raises
    ------
    ValueError
        If an event list is invalid, frame labels have the wrong shape or
        values, or a strong clip's events contradict its weak label.
    """
    Y_weak = np.asarray(Y_weak, dtype=np.float32)
    classes = np.asarray(classes)
    frames, strong = _encode_strong(
        y_strong,
        n_clips=len(Y_weak),
        classes=classes,
        n_frames=n_frames,
        duration=duration,
    )
    unlabeled = np.all(Y_weak == UNLABELED, axis=1)
    both = np.flatnonzero(strong & unlabeled)
    if both.size:
        i = int(both[0])
        raise ValueError(
            f"clip {i} is marked unlabelled in y_weak (-1) but has events in "
            f"y_strong ({both.size} clip(s)). A clip is unlabelled or labelled, "
            "not both: give its weak label, or None as its strong label."
        )
    implied = frames.max(axis=1)
    bad = np.flatnonzero(strong & np.any(implied != Y_weak, axis=1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"y_strong[{i}] contradicts y_weak[{i}]: the events contain "
            f"{classes[implied[i] > 0].tolist()} but the weak label is "
            f"{classes[Y_weak[i] > 0].tolist()} ({bad.size} clip(s) "
            "disagree). A strong clip's weak label must list exactly its "
            "event classes."
        )
    kind = np.where(strong, KIND_STRONG, KIND_WEAK).astype(np.int64)
    kind[unlabeled] = KIND_UNLABELED
    return {"weak": Y_weak, "frames": frames, "kind": kind}


def weak_labels_of(events):
    """Return the weak label a clip's events imply: their classes, sorted.

    The one rule by which the library derives weak labels from strong ones
    (``fit`` without ``y_weak``, ``combine_labels``, the dataset loaders).

    Parameters
    ----------
    events : sequence of (onset, offset, event_label)
        A clip's events.

    Returns
    -------
    labels : list
        The distinct labels, sorted (as strings, so mixed types sort).

    Examples
    --------
    >>> from sklearn_sed.labels import weak_labels_of
    >>> weak_labels_of([(0.0, 1.0, "Dog"), (2.0, 3.0, "Cat"), (4.0, 5.0, "Dog")])
    ['Cat', 'Dog']
    """
    return sorted({e[2] for e in events}, key=str)


def combine_labels(y_weak, y_strong=None, *, classes=None):
    """Zip weak and strong labels into one target for model selection.

    Parameters
    ----------
    y_weak : sequence of collections of labels, array of shape (n_clips, \
            n_classes), or None
        Weak labels in any form ``fit`` takes: label collections, a
        comma-separated string per clip, or a 0/1 indicator matrix (then
        ``classes`` names its columns). Derived from the events when None.
    y_strong : sequence of (list of events or None), default=None
        Strong labels.
    classes : array-like of shape (n_classes,), default=None
        Column names of an indicator ``y_weak``; ignored otherwise.

    Returns
    -------
    y : list of ClipLabels
        One entry per clip; pass it as ``y`` to ``fit``, ``GridSearchCV`` or
        ``cross_validate``.

    Raises
    ------
    ValueError
        If a clip has neither a weak nor a strong label (mark an unlabelled
        clip with -1: it is not a clip without events), or the lengths differ.

    See Also
    --------
    split_labels : The inverse.

    Examples
    --------
    >>> from sklearn_sed.labels import combine_labels
    >>> combine_labels([["Dog"], ["Cat"]], [[(0.0, 1.0, "Dog")], None])[1]
    ClipLabels(weak=('Cat',), events=None)
    >>> import numpy as np
    >>> combine_labels(np.array([[0, 1]]), classes=["Cat", "Dog"])[0].weak
    ('Dog',)
    """
    if y_weak is None and y_strong is None:
        raise ValueError("combine_labels needs y_weak or y_strong. Got neither.")
    if (
        isinstance(y_weak, np.ndarray)
        and y_weak.ndim == 2
        and y_weak.dtype.kind in "biuf"
    ):
        if classes is None:
            raise ValueError(
                "y_weak is an indicator matrix: pass classes=... to name its "
                "columns (the labels of the strong events must use those names)."
            )
        Y, names = encode_weak_labels(y_weak, classes)
        y_weak = [
            [c for c, on in zip(names.tolist(), row, strict=True) if on] for row in Y
        ]
    if y_weak is None:
        y_weak = [None if ev is None else weak_labels_of(ev) for ev in y_strong]
    if y_strong is None:
        y_strong = [None] * len(y_weak)
    if len(y_weak) != len(y_strong):
        raise ValueError(
            f"y_weak has {len(y_weak)} entries but y_strong has {len(y_strong)}. "
            "They must have one entry per clip."
        )
    out = []
    for i, (weak, events) in enumerate(zip(y_weak, y_strong, strict=True)):
        if weak is None and events is None:
            raise ValueError(
                f"clip {i} has neither a weak nor a strong label. Mark an "
                "unlabelled clip with -1 (sklearn_sed.labels.UNLABELED); a clip "
                "without events is []."
            )
        if is_unlabeled(weak):
            if events is not None:
                raise ValueError(
                    f"clip {i} is marked unlabelled (-1) but has strong labels. "
                    "A clip is unlabelled or labelled, not both."
                )
            out.append(ClipLabels(UNLABELED, None))
            continue
        if isinstance(weak, str):
            weak = [s.strip() for s in weak.split(",") if s.strip()]
        if weak is None:
            weak = weak_labels_of(events)
        out.append(ClipLabels(tuple(weak), None if events is None else list(events)))
    return out


def is_combined(y):
    """Whether ``y`` is a sequence of :class:`~sklearn_sed.labels.ClipLabels`."""
    try:
        return len(y) > 0 and isinstance(y[0], ClipLabels)
    except TypeError:
        return False


def split_labels(y):
    """Split a list of ``ClipLabels`` into ``y_weak`` and ``y_strong``.

    Parameters
    ----------
    y : sequence of ClipLabels
        Combined labels.

    Returns
    -------
    y_weak : list of (list or int)
        Weak labels (:data:`~sklearn_sed.labels.UNLABELED` for an unlabelled clip).
    y_strong : list of (list or None)
        Strong labels.
    """
    weak = [c.weak if is_unlabeled(c.weak) else list(c.weak) for c in y]
    return weak, [c.events for c in y]


def merge_overlapping_events(events):
    """Merge events of one class that overlap or touch into one event.

    Parameters
    ----------
    events : sequence of (onset, offset, event_label)
        Events of one clip.

    Returns
    -------
    merged : list of (onset, offset, event_label)
        Sorted by onset then label; no two events of a class overlap.

    Examples
    --------
    >>> from sklearn_sed.labels import merge_overlapping_events
    >>> merge_overlapping_events([(0, 2, "a"), (1, 3, "a"), (5, 6, "a")])
    [(0, 3, 'a'), (5, 6, 'a')]
    """
    merged = []
    for onset, offset, label in sorted(events, key=lambda e: (str(e[2]), e[0])):
        if merged and merged[-1][2] == label and onset <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], offset), label)
        else:
            merged.append((onset, offset, label))
    return sorted(merged, key=lambda e: (e[0], str(e[2])))
