"""Reading audio files: the one reader of the library, without PyTorch.

:func:`load_audio` reads a file (or a stretch of it) as a mono float32
waveform at a given rate; :func:`audio_info` checks a file's header against
its size first, so that a truncated or lying file is refused by name.
Feature extraction, long-recording inference, the soundscape mixer and the
ONNX detector (:mod:`sklearn_sed.deploy`) all read audio here.
"""

import numbers
import os

import librosa
import numpy as np
import soundfile as sf

from sklearn_sed._validation import check_finite

__all__ = [
    "MAX_DURATION_SEC",
    "MAX_N_FFT",
    "MAX_N_MELS",
    "MAX_SR",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "audio_info",
    "check_sample_rate",
    "clip_frames",
    "load_audio",
]

#: Largest sample rate (Hz), FFT size (samples), mel band count and clip
#: duration (s) of :class:`LogMelExtractor`: the bounds of its settings.
MAX_SR, MAX_N_FFT, MAX_N_MELS, MAX_DURATION_SEC = 384_000, 65_536, 1024, 600.0


def _missing_bytes(path):
    """Bytes of samples a file's header promises but the file lacks (0 if none).

    libsndfile reads a truncated file as a shorter one without a word, so the
    header of every format that declares the length of its samples is read
    here: WAV (RIFF/RIFX), RF64, Wave64, AIFF/AIFC and AU. None when the
    format declares no length (or marks it unknown, as streamed files do).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(16)
        if len(head) >= 12 and head[8:12] == b"WAVE" and head[:4] in _RIFF_IDS:
            return _riff_missing(f, size, head[:4])
        if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _chunks_missing(f, size, 12, b"SSND", "big")
        if head == _W64_RIFF:
            return _w64_missing(f, size)
        if head[:4] == b".snd" and len(head) >= 12:
            offset = int.from_bytes(head[4:8], "big")
            n = int.from_bytes(head[8:12], "big")
            return None if n == 0xFFFFFFFF else max(0, n - (size - offset))
    return None


_RIFF_IDS = (b"RIFF", b"RIFX", b"RF64")
_W64_RIFF = bytes.fromhex("726966662e91cf11a5d628db04c10000")
_W64_DATA = bytes.fromhex("64617461f3acd3118cd100c04f8edb8a")


def _chunks_missing(f, size, pos, data_id, order, data_size=None):
    """Walk ``id + 4-byte size`` chunks from ``pos`` to the sample chunk."""
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        n = int.from_bytes(chunk[4:], order)
        if chunk[:4] == data_id:
            if n == 0xFFFFFFFF:
                if data_size is None:
                    return None
                n = data_size
            return max(0, n - (size - pos - 8))
        pos += 8 + n + (n & 1)
    return None


def _riff_missing(f, size, kind):
    order = "big" if kind == b"RIFX" else "little"
    data_size = None
    if kind == b"RF64":  # the 64-bit sizes are in the "ds64" chunk
        f.seek(12)
        chunk = f.read(28)
        if chunk[:4] == b"ds64":
            data_size = int.from_bytes(chunk[16:24], "little")
    return _chunks_missing(f, size, 12, b"data", order, data_size)


def _w64_missing(f, size):
    """Wave64: 16-byte GUID chunk ids, 8-byte sizes that count the header."""
    pos = 40  # riff GUID, file size, wave GUID
    while pos + 24 <= size:
        f.seek(pos)
        chunk = f.read(24)
        n = int.from_bytes(chunk[16:], "little")
        if chunk[:4] == b"data" and chunk[4:16] == _W64_DATA[4:16]:
            return max(0, (n - 24) - (size - pos - 24))
        if n < 24:
            return None
        pos += n + (-n % 8)
    return None


def audio_info(path):
    """Check that an audio file is complete and holds samples; return its info.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.

    Returns
    -------
    info : soundfile._SoundFileInfo
        ``samplerate``, ``frames``, ``channels``, ``format`` and the rest.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded, holds no samples, or its header
        promises more samples than the file holds (a truncated copy or
        download; WAV, RF64, Wave64, AIFF and AU declare their length). A
        truncated FLAC, OGG or MP3 declares none and is read as it is.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Audio file {path!r} does not exist. Check the path and the audio folder."
        )
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"Audio file {path!r} could not be decoded ({type(exc).__name__}: "
            f"{exc}). Check that it is a complete WAV, FLAC or OGG file."
        ) from exc
    missing = _missing_bytes(path)
    if missing:
        raise ValueError(
            f"Audio file {path!r} is truncated: its header promises {missing} more "
            "bytes of samples than the file holds. Copy or download it again."
        )
    if info.frames <= 0:
        raise ValueError(f"Audio file {path!r} holds no samples.")
    check_sample_rate(info.samplerate, what=f"Audio file {path!r}")
    return info


#: Sample rates the extractor resamples from meaningfully (Hz): below, no
#: domestic event is audible; above, no recorder writes.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000


def check_sample_rate(rate, *, what):
    """Raise unless ``rate`` (Hz) is one audio can meaningfully be read at.

    Parameters
    ----------
    rate : float
        Sample rate a file header or a ``(waveform, rate)`` pair states.
    what : str
        The input, for the message.

    Raises
    ------
    ValueError
        If ``rate`` is not finite or outside
        [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].
    """
    if not (np.isfinite(rate) and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise ValueError(
            f"{what} states a sample rate of {rate!r} Hz; the extractor reads "
            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz. The header is wrong or "
            "the audio is not a recording: convert it (e.g. sox in.wav -r 44100 "
            "out.wav) or leave it out."
        )


def load_audio(path, *, sr=44100, offset=0.0, duration=None):
    """Read an audio file (or a stretch of it) as a mono waveform at ``sr``.

    The one place where the library reads audio: feature extraction, the
    windowed inference of long recordings and the soundscape mixer all call
    it.

    Parameters
    ----------
    path : str or os.PathLike
        WAV, FLAC, OGG or any format libsndfile reads; any rate, any channel
        count (channels are averaged).
    sr : int, default=44100
        Target sample rate in Hz.
    offset : float, default=0.0
        Start reading this many seconds into the file (as ``librosa.load``);
        only the stretch asked for is read from disk.
    duration : float or None, default=None
        Read at most this many seconds; None reads to the end.

    Returns
    -------
    y : ndarray of shape (n_samples,), dtype float32
        The waveform.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded, is empty or truncated (see
        :func:`~sklearn_sed.audio.features.audio_info`), or holds NaN values. A
        stretch that starts past the end of the file is empty (no error).
    """
    path = os.fspath(path)
    audio_info(path)
    try:
        with sf.SoundFile(path) as f:
            file_sr, subtype = f.samplerate, f.subtype
            start = round(offset * file_sr)
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration is None else round(duration * file_sr)
            if subtype == "PCM_16":
                # libsndfile's int16 -> float conversion is slower than numpy's;
                # both give exactly sample / 32768.
                data = f.read(frames, dtype="int16", always_2d=True)
                data = np.multiply(data, np.float32(1 / 32768), dtype=np.float32)
            else:
                data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"Audio file {path!r} could not be decoded ({type(exc).__name__}: "
            f"{exc}). Check that it is a complete WAV, FLAC or OGG file."
        ) from exc
    if data.size == 0:
        if offset > 0 or duration is not None:
            return np.zeros(0, np.float32)  # a stretch past the end
        raise ValueError(f"Audio file {path!r} holds no samples.")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    if subtype != "PCM_16":  # integer samples are always finite
        check_finite(y, name=f"Audio file {path!r}")
    if file_sr != sr:
        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    return y.astype(np.float32, copy=False)


def to_waveform(item, *, index, sr, sr_in, max_seconds=None):
    """Return one clip as a mono float32 waveform at ``sr``.

    Of a file, at most the first ``max_seconds`` are read.
    """
    if isinstance(item, (str, os.PathLike)):
        # Only the stretch that is used is read (a 3-hour file costs 10 s).
        return load_audio(item, sr=sr, duration=max_seconds)
    item_sr = sr_in if sr_in is not None else sr
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], numbers.Real):
        item, item_sr = item
        if not (np.isfinite(item_sr) and item_sr > 0):
            raise ValueError(
                f"X[{index}] is a (waveform, rate) pair with rate {item_sr!r}; the "
                "rate must be a positive number of Hz."
            )
        check_sample_rate(item_sr, what=f"X[{index}], a (waveform, rate) pair,")
    y = np.asarray(item)
    if y.dtype.kind not in "fiu":
        raise TypeError(
            f"X[{index}] must be a file path or a waveform of numbers. Got "
            f"{type(item).__name__} with dtype {y.dtype} instead."
        )
    if y.ndim == 2:  # (channels, n_samples)
        y = y.mean(axis=0) if y.shape[0] < y.shape[1] else y.mean(axis=1)
    if y.ndim != 1:
        raise ValueError(
            f"X[{index}] must be a 1-D waveform (or channels x samples). Got "
            f"shape {y.shape} instead."
        )
    if y.size == 0:
        raise ValueError(f"X[{index}] is an empty clip; every clip needs samples.")
    if y.dtype.kind in "iu":  # integer PCM: full scale maps to [-1, 1)
        half = 2.0 ** (8 * y.dtype.itemsize - 1)
        y = (y - half) / half if y.dtype.kind == "u" else y / half
    y = y.astype(np.float32)
    check_finite(y, name=f"X[{index}]")
    if item_sr != sr:
        y = librosa.resample(y, orig_sr=item_sr, target_sr=sr)
    return y


def clip_frames(duration, sr, hop_length):
    """Return the frames of one clip's feature map (centred STFT frames).

    Parameters
    ----------
    duration : float
        Clip length in seconds.
    sr : int
        Sample rate in Hz.
    hop_length : int
        Hop in samples.

    Returns
    -------
    n_frames : int
        ``1 + round(duration * sr) // hop_length``: 1024 for 10 s at 44.1 kHz
        with a 431-sample hop.
    """
    return 1 + round(duration * sr) // hop_length


def fix_length(y, n_samples):
    if y.shape[0] >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - y.shape[0]))
