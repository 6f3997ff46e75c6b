"""The log-mel front end of a model file, in numpy and librosa (no PyTorch).

:class:`~sklearn_sed.audio.features.LogMelExtractor` computes its mel powers
with ``torch.stft`` for speed; they equal librosa's
``feature.melspectrogram`` with the same settings (periodic Hann window,
centred frames, zero padding, Slaney filters) up to float32 rounding. This
module computes them with librosa itself, then the same dB levels and
scaling (:mod:`sklearn_sed.audio.levels`), so that an exported model runs
where PyTorch is not installed. ``tests/test_deploy.py`` checks the two
agree.
"""

import dataclasses

import librosa
import numpy as np

from sklearn_sed.audio.levels import power_to_db, scale_levels
from sklearn_sed.audio.reading import clip_frames, fix_length, to_waveform

__all__ = ["FrontEnd"]

#: The extractor's settings that the front end needs, with their types.
SETTINGS = {
    "sr": int,
    "sr_in": (int, type(None)),
    "duration": float,
    "n_fft": int,
    "hop_length": int,
    "win_length": int,
    "n_mels": int,
    "fmin": float,
    "fmax": float,
    "top_db": (float, type(None)),
    "scaling": (str, type(None)),
    "data_min": (float, type(None)),
    "data_max": (float, type(None)),
}


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """A fitted :class:`~sklearn_sed.audio.features.LogMelExtractor`, as values.

    Attributes are the extractor's parameters and its fitted ``data_min_``
    and ``data_max_`` (``data_min``, ``data_max``): see
    :class:`~sklearn_sed.audio.features.LogMelExtractor` for each.
    """

    sr: int
    sr_in: object
    duration: float
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    top_db: object
    scaling: object
    data_min: object
    data_max: object

    @classmethod
    def from_extractor(cls, extractor):
        """Return the front end of a fitted ``LogMelExtractor``."""
        params = extractor.get_params()
        values = {k: params[k] for k in SETTINGS if k in params}
        values["data_min"] = getattr(extractor, "data_min_", None)
        values["data_max"] = getattr(extractor, "data_max_", None)
        return cls(**values)

    @property
    def n_samples(self):
        """Samples of one clip at ``sr``."""
        return round(self.duration * self.sr)

    @property
    def n_frames(self):
        """Frames of one clip's feature map."""
        return clip_frames(self.duration, self.sr, self.hop_length)

    def waveforms(self, X):
        """Return the clips of ``X`` as mono float32 waveforms of one clip each.

        Parameters
        ----------
        X : sequence of str, os.PathLike, ndarray or (ndarray, rate)
            Audio files, or waveforms at ``sr_in`` (``sr`` if None), or
            ``(waveform, rate)`` pairs; cut or zero-padded to ``duration``.

        Returns
        -------
        clips : list of ndarray of shape (n_samples,), dtype float32
        """
        return [
            fix_length(
                to_waveform(
                    item,
                    index=k,
                    sr=self.sr,
                    sr_in=self.sr_in,
                    max_seconds=self.duration + 0.1,
                ),
                self.n_samples,
            )
            for k, item in enumerate(X)
        ]

    def transform(self, X):
        """Return the scaled log-mel maps of ``X``, as the extractor does.

        Parameters
        ----------
        X : sequence of str, os.PathLike, ndarray or (ndarray, rate)
            See :meth:`waveforms`.

        Returns
        -------
        features : ndarray of shape (n_clips, n_frames, n_mels), dtype float32
        """
        clips = self.waveforms(X)
        if not clips:
            return np.zeros((0, self.n_frames, self.n_mels), np.float32)
        S = librosa.feature.melspectrogram(
            y=np.stack(clips),
            sr=self.sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window="hann",
            center=True,
            pad_mode="constant",
            power=2.0,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
        )  # (n_clips, n_mels, n_frames)
        S_db = power_to_db(np.swapaxes(S, 1, 2), self.top_db)
        return scale_levels(S_db, self.scaling, self.data_min, self.data_max)
