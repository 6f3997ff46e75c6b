"""Audio in: reading files, log-mel features, and the on-disk feature store.

The submodules load on first use (PEP 562), so that reading audio
(:mod:`.reading`) never imports PyTorch, which :mod:`.features` needs.
"""

from sklearn_sed._lazy import lazy_names

__all__ = ["LogMelExtractor", "load_audio", "log_mel_spectrogram"]

_HOMES = {
    "LogMelExtractor": "features",
    "log_mel_spectrogram": "features",
    "load_audio": "reading",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
