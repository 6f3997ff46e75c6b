"""Audio in: reading files, log-mel features, and the on-disk feature store.

The submodules load on first use (PEP 562), so that reading audio
(:mod:`.reading`) never imports PyTorch, which :mod:`.features` needs.
"""

import importlib

__all__ = ["LogMelExtractor", "load_audio", "log_mel_spectrogram"]

_HOMES = {
    "LogMelExtractor": "features",
    "log_mel_spectrogram": "features",
    "load_audio": "reading",
}


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
