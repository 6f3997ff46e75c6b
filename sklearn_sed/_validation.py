"""Input checks shared by the estimators, with messages that say what to do.

Every check raises :class:`ValueError` or :class:`TypeError` with the pattern
"`<name>` must be <constraint>. Got <value> instead." and, where a remedy exists,
a "Consider ..." sentence.
"""

import numbers

import numpy as np

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CLASS_NAME_LENGTH",
    "MAX_EPOCHS",
    "MAX_LR",
    "check_class_names",
    "check_features",
    "check_finite",
    "check_n_clips",
    "check_per_class",
]


def check_finite(array, *, name):
    """Raise if ``array`` holds NaN or infinite values.

    Parameters
    ----------
    array : ndarray
        Numeric array to check.
    name : str
        Name of the input, used in the message.

    Raises
    ------
    ValueError
        If any value is NaN or infinite.
    """
    if not np.all(np.isfinite(array)):
        n_bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} must hold finite values only. Got {n_bad} NaN or infinite "
            "value(s) instead. Consider removing or repairing those clips."
        )


#: Bounds of the training loop's sizes: each sizes an allocation or a loop.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
#: Largest learning rate accepted: no optimizer here trains beyond it.
MAX_LR = 10.0
#: Longest class name accepted (DESED's longest is 26 characters).
MAX_CLASS_NAME_LENGTH = 200


def check_class_names(classes, *, name="classes"):
    """Raise unless every class is a printable name an event table can hold.

    A class name is written into every event table the model predicts
    (``onset offset event_label`` TSV lines read by sed_eval and DESED's
    tools): a tab, newline or carriage return in it would inject rows or
    columns. Names are non-empty strings of printable characters (spaces
    allowed) without tab, newline or carriage return, at most
    :data:`MAX_CLASS_NAME_LENGTH` long, or integers (the columns of an
    indicator matrix); booleans and anything else are refused.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        The class names, from ``fit``'s labels or from a model file.
    name : str, default="classes"
        Name of the input, used in the message.

    Raises
    ------
    ValueError
        If a class name is not such a string or integer.
    """
    for i, c in enumerate(np.asarray(classes, dtype=object).ravel().tolist()):
        if isinstance(c, numbers.Integral) and not isinstance(c, bool):
            continue
        ok = (
            isinstance(c, str)
            and 0 < len(c) <= MAX_CLASS_NAME_LENGTH
            and c.isprintable()  # no tab, newline, CR or other control
        )
        if not ok:
            shown = repr(c)[:80]
            raise ValueError(
                f"{name}[{i}] must be a class name: a non-empty string of at "
                f"most {MAX_CLASS_NAME_LENGTH} printable characters without "
                "tab, newline or carriage return, or an "
                f"integer. Got {type(c).__name__} {shown} instead. Event "
                "tables write class names verbatim; rename the class (or, for "
                "a model file, it was damaged or altered: retrain or restore it)."
            )


def check_features(X, *, n_mels=None, estimator="PseudoLabelSED"):
    """Validate a batch of feature maps.

    Parameters
    ----------
    X : array-like of shape (n_clips, n_frames, n_mels)
        Log-mel feature maps, as returned by
        :class:`~sklearn_sed.LogMelExtractor`. A :class:`numpy.memmap` is kept
        as it is (not loaded into memory).
    n_mels : int, default=None
        Number of mel bands seen at fit time; checked when given.
    estimator : str, default="PseudoLabelSED"
        Name of the calling estimator, used in the messages.

    Returns
    -------
    X : ndarray of shape (n_clips, n_frames, n_mels), dtype float32 or float16
        The features; float64 and integer input is converted to float32.
    """
    if getattr(X, "lazy_rows", False) is True:  # an on-disk store: read per batch
        if X.shape[0] == 0:
            raise ValueError("X must hold at least one clip. Got an empty store.")
        if n_mels is not None and X.shape[2] != n_mels:
            raise ValueError(
                f"X has {X.shape[2]} mel bands but {estimator} was fitted with "
                f"{n_mels}. Consider the same LogMelExtractor settings as at fit."
            )
        return X
    if isinstance(X, (str, bytes)) or (
        isinstance(X, (list, tuple)) and X and isinstance(X[0], str)
    ):
        raise TypeError(
            f"X must be feature maps of shape (n_clips, n_frames, n_mels), but "
            f"{estimator} got file paths. Consider extracting features first with "
            "LogMelExtractor, or use sklearn_sed.make_pipeline(LogMelExtractor(), "
            f"{estimator}())."
        )
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except ValueError as exc:
            raise ValueError(
                f"X must be an array of shape (n_clips, n_frames, n_mels) with "
                f"clips of equal length. {estimator} could not convert it: {exc}"
            ) from exc
    if X.dtype.kind not in "fiub":
        raise TypeError(
            f"X must hold numbers. Got dtype {X.dtype} instead. Consider "
            "extracting features with LogMelExtractor."
        )
    if X.ndim != 3:
        raise ValueError(
            f"X has shape {X.shape} but {estimator} expects a 3-D array of shape "
            "(n_clips, n_frames, n_mels). Consider LogMelExtractor to turn audio "
            "into feature maps."
        )
    if X.shape[0] == 0:
        raise ValueError(f"X must hold at least one clip. Got shape {X.shape}.")
    if X.shape[1] < 8:
        raise ValueError(
            f"X has {X.shape[1]} frame(s) per clip but {estimator} expects at "
            "least 8 (the network divides time by 8)."
        )
    if n_mels is not None and X.shape[2] != n_mels:
        raise ValueError(
            f"X has {X.shape[2]} mel bands but {estimator} was fitted with "
            f"{n_mels}. Consider extracting features with the same "
            "LogMelExtractor settings as at fit time."
        )
    if X.dtype.kind != "f":
        X = X.astype(np.float32)
    elif X.dtype == np.float64:
        X = X.astype(np.float32)
    if not isinstance(X, np.memmap):
        check_finite(X, name="X")
    return X


def check_n_clips(X, y, *, name):
    """Raise if ``y`` does not have one entry per clip of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_clips, ...)
        The clips.
    y : sequence or ndarray
        Labels, one per clip.
    name : str
        Name of ``y``, used in the message.
    """
    if len(y) != len(X):
        raise ValueError(
            f"{name} has {len(y)} entries but X has {len(X)} clips. {name} must "
            "have one entry per clip, in the order of X."
        )


def check_per_class(value, *, name, n_classes, low=0.0, high=None):
    """Broadcast a scalar or per-class setting to shape (n_classes,).

    Parameters
    ----------
    value : float or array-like of shape (n_classes,)
        The setting.
    name : str
        Parameter name, used in the message.
    n_classes : int
        Number of classes.
    low, high : float or None
        Inclusive bounds on every value.

    Returns
    -------
    values : ndarray of shape (n_classes,), dtype float64
        One value per class.
    """
    if isinstance(value, numbers.Real):
        values = np.full(n_classes, float(value))
    else:
        values = np.asarray(value, dtype=float)
        if values.shape != (n_classes,):
            raise ValueError(
                f"{name} must be a number or one value per class ({n_classes} "
                f"values). Got shape {values.shape} instead."
            )
    if (
        not np.all(np.isfinite(values))
        or (low is not None and np.any(values < low))
        or (high is not None and np.any(values > high))
    ):
        raise ValueError(
            f"{name} must be finite and lie in [{low}, {high}]. Got {value!r} instead."
        )
    return values
