"""Audio in: reading files, log-mel features, and the on-disk feature store."""

from sklearn_sed.audio.features import LogMelExtractor, load_audio, log_mel_spectrogram

__all__ = ["LogMelExtractor", "load_audio", "log_mel_spectrogram"]
