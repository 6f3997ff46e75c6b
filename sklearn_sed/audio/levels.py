"""Log-mel levels: power to dB, and their scaling to [0, 1]; without PyTorch.

What :class:`~sklearn_sed.audio.features.LogMelExtractor` does after the mel
power spectrogram, written once for it and for the ONNX detector's front end
(:mod:`sklearn_sed.deploy.frontend`).
"""

import numpy as np

__all__ = ["power_to_db", "scale_levels"]


def power_to_db(S, top_db):
    """Return ``10 log10`` of mel powers, floored ``top_db`` below each clip's peak.

    Parameters
    ----------
    S : ndarray of shape (n_clips, n_frames, n_mels)
        Mel power spectrograms.
    top_db : float or None
        Floor below each clip's maximum, in dB; None keeps every level
        (down to -100 dB, the ``1e-10`` floor of the power).

    Returns
    -------
    S_db : ndarray of shape (n_clips, n_frames, n_mels), dtype float32
        Levels in dB.
    """
    S_db = 10.0 * np.log10(np.maximum(S, 1e-10))
    if top_db is not None:
        peak = S_db.max(axis=(-2, -1), keepdims=True)
        S_db = np.maximum(S_db, peak - top_db)
    return S_db.astype(np.float32, copy=False)


def scale_levels(S_db, scaling, lo=None, hi=None):
    """Min-max scale dB levels to [0, 1], as the extractor's ``scaling`` says.

    Parameters
    ----------
    S_db : ndarray of shape (n_clips, n_frames, n_mels)
        Levels in dB.
    scaling : {"dataset", "clip"} or None
        ``"dataset"``: between ``lo`` and ``hi`` (the training set's
        extremes); ``"clip"``: between each clip's own extremes; None: the
        levels unscaled.
    lo, hi : float, default=None
        The extremes of ``"dataset"`` scaling, in dB.

    Returns
    -------
    X : ndarray of shape (n_clips, n_frames, n_mels), dtype float32
        In [0, 1] (values beyond the extremes are clipped), or ``S_db``.
    """
    if scaling is None:
        return S_db
    if scaling == "clip":
        lo = S_db.min(axis=(1, 2), keepdims=True)
        hi = S_db.max(axis=(1, 2), keepdims=True)
    return np.clip((S_db - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
