"""Log-mel features of the NEC report (section 2.1), as a function and a transformer.

Audio (file paths or waveforms, any rate, mono or multi-channel) is down-mixed,
resampled to 44.1 kHz, zero-padded or cut to 10 s and turned into a 64-band
log-mel spectrogram from 0 to 16 kHz with 20 ms windows. The report's 8 ms hop
would give 1251 frames, not the 1024 it states; we keep the 1024 x 64 map and
use a 431-sample (9.77 ms) hop: ``1 + 441000 // 431 = 1024``. Values are
floored ``top_db`` below each clip's maximum and min-max scaled to [0, 1].
"""

import functools
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import librosa
import numpy as np
import scipy.sparse as sp
import torch
from joblib import Parallel, cpu_count, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from sklearn_sed._device import check_device
from sklearn_sed._validation import check_finite
from sklearn_sed.audio.levels import power_to_db, scale_levels
from sklearn_sed.audio.reading import (  # re-exported: their historic home
    MAX_DURATION_SEC,
    MAX_N_FFT,
    MAX_N_MELS,
    MAX_SAMPLE_RATE,  # noqa: F401 - importable here as before
    MAX_SR,
    MIN_SAMPLE_RATE,  # noqa: F401
    audio_info,
    check_sample_rate,  # noqa: F401
    clip_frames,
    fix_length,
    load_audio,
    to_waveform,
)

__all__ = [
    "LogMelExtractor",
    "audio_info",
    "clip_items",
    "load_audio",
    "log_mel_spectrogram",
]


#: Seconds read past a clip's ``duration`` (the resampler's edge stays exact).
_READ_MARGIN_SEC = 0.1
#: How much longer than ``duration`` a training clip may be (DESED's are 10 s).
LENGTH_TOLERANCE_SEC = 0.1

_CHUNK = 16  # clips per task: batches the STFT and amortises joblib overhead


def log_mel_spectrogram(
    y,
    *,
    sr=44100,
    n_fft=1024,
    hop_length=431,
    win_length=882,
    n_mels=64,
    fmin=0.0,
    fmax=16000.0,
    top_db=80.0,
):
    """Log-mel spectrogram in dB, time first.

    Parameters
    ----------
    y : ndarray of shape (n_samples,) or (n_clips, n_samples)
        Mono waveform(s) at ``sr``.
    sr : int, default=44100
        Sample rate in Hz.
    n_fft : int, default=1024
        FFT size in samples.
    hop_length : int, default=431
        Hop in samples (9.77 ms at 44.1 kHz: 1024 frames per 10 s).
    win_length : int, default=882
        Window length in samples (20 ms at 44.1 kHz).
    n_mels : int, default=64
        Number of mel bands.
    fmin, fmax : float, default=0.0, 16000.0
        Frequency range of the mel filters in Hz.
    top_db : float or None, default=80.0
        Floor each clip at its maximum minus ``top_db`` dB (so that digital
        silence, e.g. zero padding, does not sit at -100 dB).

    Returns
    -------
    S_db : ndarray of shape (n_frames, n_mels) or (n_clips, n_frames, n_mels)
        Power in dB (``10 log10``), float32, with
        ``n_frames = 1 + n_samples // hop_length``.

    See Also
    --------
    LogMelExtractor : The transformer twin, with loading and scaling.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed import log_mel_spectrogram
    >>> log_mel_spectrogram(np.zeros(441000, dtype=np.float32)).shape
    (1024, 64)
    """
    y = np.asarray(y, dtype=np.float32)
    S = _mel_power(
        y.reshape(-1, y.shape[-1]),
        sr=sr,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
    )
    return power_to_db(S, top_db).reshape(*y.shape[:-1], *S.shape[1:])


#: Mel filters per band of the filter product (:func:`_mel_bands`): 16 ran
#: the product 2.4x faster than the dense one (one thread, AVX-512 EPYC,
#: timed beside a training run), where 4 and 8 ran slower than dense.
_FILTERS_PER_BAND = 16

#: Frames per real FFT in :func:`_mel_power`: 256 frames (0.5 MB of spectrum
#: at 1024-point FFTs) ran the mel power 1.3x faster than the whole clip at
#: once, and faster than 128 or 512 (one thread, AVX-512 EPYC).
_FRAMES_PER_STEP = 256


@functools.lru_cache(maxsize=8)
def _mel_basis(sr, n_fft, win_length, n_mels, fmin, fmax):
    """Build librosa's Hann window and mel filters, cut to the FFT bins used.

    Returns the window padded to ``n_fft``, the transposed filter bank with
    each bin's row twice, of shape (2 * n_bins_used, n_mels) (one row for the
    squared real part, one for the imaginary part), both as float32 tensors,
    ``n_bins_used``, and the same filters as bands (:func:`_mel_bands`).
    """
    window = librosa.filters.get_window("hann", win_length, fftbins=True)
    window = librosa.util.pad_center(window, size=n_fft).astype(np.float32)
    mel = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    ).astype(np.float32)
    used = np.flatnonzero(mel.any(axis=0))
    n_bins = int(used[-1]) + 1 if used.size else 1
    pairs = torch.from_numpy(np.repeat(mel[:, :n_bins].T, 2, axis=0))
    return torch.from_numpy(window), pairs, n_bins, _mel_bands(pairs)


def _mel_bands(pairs):
    """Split the filter product into the blocks where the filters are not zero.

    A mel filter is a triangle over a few FFT bins, so the dense product
    multiplies mostly zeros (97 % of them at 64 bands). Each run of
    :data:`_FILTERS_PER_BAND` consecutive filters touches one stretch of
    rows; its block is that stretch, and the product is these small
    products side by side, equal to the dense one but for float32 rounding.

    Parameters
    ----------
    pairs : torch.Tensor of shape (2 * n_bins, n_mels)

    Returns
    -------
    bands : tuple of (int, int, int, int, torch.Tensor)
        ``(first_filter, end_filter, first_row, end_row, block)`` with
        ``block = pairs[first_row:end_row, first_filter:end_filter]``;
        filters that are zero everywhere are left out (their output is 0).
    """
    bands = []
    for first in range(0, pairs.shape[1], _FILTERS_PER_BAND):
        end = min(first + _FILTERS_PER_BAND, pairs.shape[1])
        rows = torch.nonzero(pairs[:, first:end].any(dim=1)).flatten()
        if len(rows):
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            bands.append((first, end, lo, hi, pairs[lo:hi, first:end].contiguous()))
    return tuple(bands)


def _mel_power(
    clips, *, sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, device="cpu"
):
    """Compute librosa's mel power spectrogram clip by clip, time first.

    ``clips`` is a 2-D float32 array or a list of 1-D float32 arrays, all of
    one length; returns an array of shape (n_clips, n_frames, n_mels).

    Equal to ``librosa.feature.melspectrogram(..., power=2.0).swapaxes(-1, -2)``
    (centred frames, zero padding, periodic Hann window, librosa's filters;
    float32 rounding apart) but several times as fast here: float32 real
    FFTs of the frames cut to the window's ``win_length`` samples (the
    window is zero elsewhere),
    :data:`_FRAMES_PER_STEP` frames at a time so that their spectrum stays in
    cache, only the bins below ``fmax``, and the product with the filters
    band by band, only where they are not zero (:func:`_mel_bands`), the
    clips back to back so that torch's threads stay awake. On another
    ``device`` (a GPU) all clips go through one batched ``torch.stft`` there
    and only the mel powers come back.
    """
    window, mel_pairs, n_bins, bands = _mel_basis(
        int(sr), int(n_fft), int(win_length), int(n_mels), float(fmin), float(fmax)
    )
    if torch.device(device).type != "cpu":
        return _mel_power_on(
            clips, device, window, mel_pairs, n_bins, n_fft, hop_length
        )
    n_samples = len(clips[0]) if len(clips) else 0
    n_frames = 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length
    # The window is zero outside its win_length centre samples; the frame cut
    # there and zero-padded at the end to n_fft is the centred frame shifted
    # circularly, which leaves |X|^2 as it is.
    offset = (n_fft - win_length) // 2
    window = window[offset : offset + win_length]
    # Zeros: a filter that is zero everywhere is in no band.
    out = torch.zeros((len(clips), n_frames, n_mels), dtype=torch.float32)
    with torch.inference_mode():
        for k, clip in enumerate(clips):
            if not clip.flags.writeable:  # torch.from_numpy warns on read-only
                clip = clip.copy()
            padded = torch.nn.functional.pad(
                torch.from_numpy(np.ascontiguousarray(clip)), (n_fft // 2, n_fft // 2)
            )
            frames = padded[offset:].unfold(0, win_length, hop_length)[:n_frames]
            # A few frames at a time, so that their spectrum stays in cache.
            for start in range(0, n_frames, _FRAMES_PER_STEP):
                stop = min(start + _FRAMES_PER_STEP, n_frames)
                spec = torch.fft.rfft(frames[start:stop] * window, n=n_fft)
                # |X|^2 @ mel as (re^2, im^2 interleaved) @ (each filter row
                # twice), band by band: only the blocks where the filters are
                # not zero.
                pairs = torch.view_as_real(spec[:, :n_bins]).square()
                pairs = pairs.reshape(stop - start, -1)
                for first, end, lo, hi, block in bands:
                    torch.matmul(
                        pairs[:, lo:hi], block, out=out[k, start:stop, first:end]
                    )
    return out.numpy()


def _mel_power_on(clips, device, window, mel_pairs, n_bins, n_fft, hop_length):
    """:func:`_mel_power` for a batch of clips on an accelerator."""
    with torch.inference_mode():
        y = torch.from_numpy(np.stack(clips)).to(device, non_blocking=True)
        spec = torch.stft(
            y,
            n_fft,
            hop_length,
            window=window.to(device),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )[:, :n_bins]  # (n_clips, n_bins, n_frames)
        pairs = torch.view_as_real(spec).square().transpose(1, 2)
        pairs = pairs.reshape(len(clips), pairs.shape[1], -1)
        return (pairs @ mel_pairs.to(device)).cpu().numpy()


@functools.cache
def _thread_controller():
    """Return threadpoolctl's view of the loaded BLAS and OpenMP libraries.

    Cached: building it scans the libraries of the process.
    """
    return ThreadpoolController()


class _ClipWorkers:
    """One worker thread per core for clip-by-clip work, as a context manager.

    Each worker runs whole clips with one torch thread, and BLAS is limited
    to one thread while they run (the FFT, the filter product, resampling):
    the cores work on different clips without the barriers of a
    multi-threaded FFT, which stall when another library's BLAS threads are
    still spinning from an earlier call. Reading and decoding, the STFT and
    numpy's large-array work release the GIL. The pool lives as long as the
    ``with`` block, so that its threads are started once per transform.
    """

    def __init__(self, n_items):
        self.n_workers = max(1, min(n_items, cpu_count()))
        self._pool = None

    def __enter__(self):
        if self.n_workers > 1:
            self._pool = ThreadPoolExecutor(
                self.n_workers, initializer=torch.set_num_threads, initargs=(1,)
            )
        return self

    def __exit__(self, *exc_info):
        if self._pool is not None:
            self._pool.shutdown()

    def map(self, fn, n):
        """``[fn(k) for k in range(n)]``, spread over the workers, in order."""
        if self._pool is None:
            return [fn(k) for k in range(n)]
        n_threads = torch.get_num_threads()
        try:
            with _thread_controller().limit(limits=1, user_api="blas"):
                return list(self._pool.map(fn, range(n)))
        finally:
            torch.set_num_threads(n_threads)


def clip_items(X):
    """Split the audio input of a transformer into a list of clips.

    Parameters
    ----------
    X : list or ndarray of shape (n_clips, n_samples)
        File paths, waveforms or ``(waveform, rate)`` pairs, or one waveform
        per row.

    Returns
    -------
    items : list
        One item per clip, unread.

    Raises
    ------
    TypeError, ValueError
        For a single path, sparse or complex input, an empty list, or an
        array that is not one clip per row.
    """
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            "X must be a list of clips (file paths or waveforms). Got a single "
            f"path {X!r} instead. Consider [X]."
        )
    if sp.issparse(X):
        raise TypeError(
            "Sparse input is not supported: X must be waveforms "
            "or file paths. Consider X.toarray()."
        )
    if isinstance(X, np.ndarray):
        if X.dtype.kind == "c":
            raise ValueError("Complex data not supported: waveforms must be real.")
        if X.ndim >= 1 and X.shape[0] == 0:
            raise ValueError(
                f"X must hold at least one clip. Got an array of shape {X.shape}."
            )
        if X.dtype.kind in "fiu":
            if X.ndim == 1:
                raise ValueError(
                    f"X has shape {X.shape} but the extractor expects a list of "
                    "clips or a 2-D array (n_clips, n_samples). Consider X[None] "
                    "for a single clip."
                )
            if X.ndim != 2:
                raise ValueError(
                    f"X has shape {X.shape} but the extractor expects a 2-D "
                    "array (n_clips, n_samples) of waveforms, or a list of clips."
                )
            # Thousands of "clips" of at most 8 samples: a recording of
            # samples x channels, not clips (scikit-learn's own checks pass
            # a few dozen short rows, which stay accepted).
            if X.shape[1] <= 8 and X.shape[0] >= 200:
                raise ValueError(
                    f"X has shape {X.shape}: {X.shape[0]} clips of {X.shape[1]} "
                    "samples, or rather one recording of samples x channels as "
                    "soundfile.read returns it? Pass [x.T] (one clip, channels "
                    "averaged) or a list of clips."
                )
        return list(X)
    items = list(X)
    if not items:
        raise ValueError("X must hold at least one clip. Got an empty list.")
    return items


class LogMelExtractor(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Extract min-max scaled log-mel feature maps from audio.

    Parameters
    ----------
    sr : int, default=44100
        Rate in Hz the audio is resampled to.
    sr_in : int, default=None
        Rate in Hz of waveforms given as arrays; None means ``sr``. A clip
        given as a ``(waveform, rate)`` tuple carries its own rate, and files
        are read at their own rate.
    duration : float, default=10.0
        Clip length in seconds; shorter clips are zero-padded, longer ones cut.
    n_fft : int, default=1024
        FFT size in samples.
    hop_length : int, default=431
        Hop in samples; 431 gives 1024 frames per 10 s at 44.1 kHz.
    win_length : int, default=882
        Window length in samples (20 ms at 44.1 kHz).
    n_mels : int, default=64
        Number of mel bands.
    fmin : float, default=0.0
        Lowest mel frequency in Hz.
    fmax : float, default=16000.0
        Highest mel frequency in Hz.
    top_db : float or None, default=80.0
        Floor each clip at its maximum minus ``top_db`` dB.
    scaling : {"dataset", "clip"} or None, default="dataset"
        Min-max scaling to [0, 1]. ``"dataset"`` learns the dB range over the
        training clips in ``fit`` (like :class:`~sklearn.preprocessing.MinMaxScaler`;
        keeps loudness differences between clips, values outside the range are
        clipped); ``"clip"`` scales each clip by its own range (needs no fit);
        None returns dB.
    n_jobs : int, default=None
        Parallel processes over chunks of 16 clips (joblib semantics). With
        one job (the default) the clips are already spread over one worker
        thread per core, each with one torch and one BLAS thread, which is
        fastest on a few cores: 2.6-3.1x a plain ``soundfile.read`` +
        ``librosa.feature.melspectrogram`` loop on 2 cores across runs
        (``docs/benchmarks.md``); more processes pay off when Python-level
        work (resampling, decoding compressed files) dominates.
    device : str or torch.device, default="cpu"
        Torch device of the STFT and the mel filters, e.g. ``"cuda"``: audio
        is read and resampled on the CPU, each chunk of 16 clips goes through
        one batched ``torch.stft`` on the device, and the mel powers come
        back (equal to the CPU's up to float32 rounding).
    verbose : int, default=0
        Show a progress bar when > 0.

    Attributes
    ----------
    data_min_, data_max_ : float
        dB range learnt in ``fit`` (``scaling="dataset"``), else None.
    n_frames_ : int
        Frames per clip, ``1 + round(duration * sr) // hop_length``.

    See Also
    --------
    log_mel_spectrogram : The function twin.
    PseudoLabelSED : The estimator that consumes these features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed import LogMelExtractor
    >>> X = np.random.default_rng(0).normal(size=(2, 8000)).astype(np.float32)
    >>> ext = LogMelExtractor(sr=8000, duration=1.0, n_fft=256, win_length=160,
    ...                       hop_length=125, n_mels=16, fmax=4000)
    >>> ext.fit_transform(X).shape
    (2, 65, 16)
    """

    _parameter_constraints: dict = {
        # Bounded, so that settings read from a model file cannot allocate
        # gigabytes before the first clip (docs/reliability.md).
        "sr": [Interval(numbers.Integral, 1, MAX_SR, closed="both")],
        "sr_in": [Interval(numbers.Integral, 1, MAX_SR, closed="both"), None],
        "duration": [Interval(numbers.Real, 0, MAX_DURATION_SEC, closed="right")],
        "n_fft": [Interval(numbers.Integral, 2, MAX_N_FFT, closed="both")],
        "hop_length": [Interval(numbers.Integral, 1, MAX_N_FFT, closed="both")],
        "win_length": [Interval(numbers.Integral, 1, MAX_N_FFT, closed="both")],
        "n_mels": [Interval(numbers.Integral, 1, MAX_N_MELS, closed="both")],
        "fmin": [Interval(numbers.Real, 0, None, closed="left")],
        "fmax": [Interval(numbers.Real, 0, None, closed="neither")],
        "top_db": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "scaling": [StrOptions({"dataset", "clip"}), None],
        "n_jobs": [numbers.Integral, None],
        "device": [str, torch.device],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        sr=44100,
        sr_in=None,
        duration=10.0,
        n_fft=1024,
        hop_length=431,
        win_length=882,
        n_mels=64,
        fmin=0.0,
        fmax=16000.0,
        top_db=80.0,
        scaling="dataset",
        n_jobs=None,
        device="cpu",
        verbose=0,
    ):
        self.sr = sr
        self.sr_in = sr_in
        self.duration = duration
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.top_db = top_db
        self.scaling = scaling
        self.n_jobs = n_jobs
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True  # file paths
        tags.requires_fit = self.scaling == "dataset"
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- computation ------------------------------------------------------
    def _check_settings(self):
        if self.win_length > self.n_fft:
            raise ValueError(
                f"win_length must be <= n_fft. Got win_length={self.win_length} "
                f"and n_fft={self.n_fft} instead."
            )
        check_device(self.device)
        if self.fmax > self.sr / 2 or self.fmin >= self.fmax:
            raise ValueError(
                f"fmin and fmax must satisfy 0 <= fmin < fmax <= sr / 2 = "
                f"{self.sr / 2}. Got fmin={self.fmin}, fmax={self.fmax} instead."
            )

    def _chunk_db(self, items, start, workers=None):
        if workers is None:  # a task of its own (joblib, n_jobs > 1)
            with _ClipWorkers(len(items)) as workers:
                return self._chunk_db(items, start, workers)
        n_samples = round(self.duration * self.sr)
        settings = dict(
            sr=self.sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
        )
        on_cpu = torch.device(self.device).type == "cpu"

        def clip(k):
            y = to_waveform(
                items[k],
                index=start + k,
                sr=self.sr,
                sr_in=self.sr_in,
                max_seconds=self.duration + _READ_MARGIN_SEC,
            )
            y = fix_length(y, n_samples)
            if not on_cpu:
                return y, None
            return y, power_to_db(_mel_power([y], **settings), self.top_db)[0]

        waveforms, S_db = zip(*workers.map(clip, len(items)), strict=True)
        if on_cpu:
            S_db = np.stack(S_db)
        else:
            S = _mel_power(list(waveforms), device=self.device, **settings)
            S_db = power_to_db(S, self.top_db)
        finite = np.isfinite(S_db).all(axis=(1, 2))
        if not finite.all():
            k = int(np.argmin(finite))
            peak = float(np.max(np.abs(waveforms[k])))
            raise ValueError(
                f"X[{start + k}]: its log-mel spectrogram overflows float32 (the "
                f"waveform peaks at {peak:.3g}). Waveforms are expected in [-1, 1]; "
                "consider dividing the clip by its peak."
            )
        return S_db

    def _threaded_chunks(self, items, starts):
        with _ClipWorkers(len(items)) as workers:
            for s in starts:
                yield self._chunk_db(items[s : s + _CHUNK], s, workers)

    def _iter_db(self, X):
        """Yield dB feature maps chunk by chunk, in order."""
        self._check_settings()
        items = clip_items(X)
        starts = range(0, len(items), _CHUNK)
        if effective_n_jobs(self.n_jobs) == 1:  # threads of this process
            chunks = self._threaded_chunks(items, starts)
        else:  # joblib's processes, each chunk on threads of its own
            parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
            chunks = parallel(
                delayed(self._chunk_db)(items[s : s + _CHUNK], s) for s in starts
            )
        if self.verbose:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, total=len(starts), desc="log-mel", unit="chunk")
        yield from chunks

    def _scale(self, S_db):
        if self.scaling == "dataset":
            return scale_levels(S_db, "dataset", self.data_min_, self.data_max_)
        return scale_levels(S_db, self.scaling)

    # -- estimator API -------------------------------------------------------
    def _set_fitted(self, lo, hi):
        if lo is not None and hi is not None and not hi > lo:
            raise ValueError(
                f"Every training clip has the same log-mel level ({lo:.1f} dB): "
                "all silent (or constant), so min-max scaling has no range and "
                "every real clip would saturate to 1. Fit on clips with sound."
            )
        self.data_min_ = float(lo) if lo is not None else None
        self.data_max_ = float(hi) if hi is not None else None
        self.n_frames_ = clip_frames(self.duration, self.sr, self.hop_length)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the dB range of ``X`` (``scaling="dataset"``).

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio file paths, waveforms or ``(waveform, rate)`` tuples.
        y : None
            Ignored.

        Returns
        -------
        self : LogMelExtractor
            The fitted transformer.
        """
        if self.scaling != "dataset":
            items = clip_items(X)  # validates without computing features
            if isinstance(X, np.ndarray) and X.dtype.kind == "f":
                check_finite(X, name="X")
            elif not items:
                raise ValueError("X must hold at least one clip.")
            return self._set_fitted(None, None)
        lo, hi = np.inf, -np.inf
        for S_db in self._iter_db(X):
            lo, hi = min(lo, S_db.min()), max(hi, S_db.max())
        return self._set_fitted(lo, hi)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and transform in one pass over the audio.

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio file paths, waveforms or ``(waveform, rate)`` tuples.
        y : None
            Ignored.

        Returns
        -------
        features : ndarray of shape (n_clips, n_frames, n_mels), dtype float32
            Scaled log-mel maps.
        """
        S_db = np.concatenate(list(self._iter_db(X)))
        if self.scaling == "dataset":
            self._set_fitted(S_db.min(), S_db.max())
        else:
            self._set_fitted(None, None)
        return self._scale(S_db)

    def transform(self, X):
        """Extract scaled log-mel maps.

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio file paths, waveforms or ``(waveform, rate)`` tuples.

        Returns
        -------
        features : ndarray of shape (n_clips, n_frames, n_mels), dtype float32
            Scaled log-mel maps, ``n_frames = 1 + round(duration * sr) //
            hop_length``.
        """
        if self.scaling == "dataset":
            check_is_fitted(self, ["data_min_", "data_max_"])
        return np.concatenate([self._scale(S) for S in self._iter_db(X)])

    def get_feature_names_out(self, input_features=None):
        """Names of the feature columns: the mel bands, the last axis.

        The output of :meth:`transform` is 3-D (clips x frames x bands); its
        last axis holds the features in scikit-learn's sense, one per band.

        Parameters
        ----------
        input_features : None
            Ignored: the input is audio, which has no feature names.

        Returns
        -------
        names : ndarray of shape (n_mels,), dtype object
            ``"mel0"`` ... ``"mel<n_mels-1>"``, low to high frequency.
        """
        return np.asarray([f"mel{i}" for i in range(self.n_mels)], dtype=object)

    def set_output(self, *, transform=None):
        """Set the output container; only NumPy arrays can hold 3-D maps.

        Parameters
        ----------
        transform : {"default", None}, default=None
            "default" (NumPy) or None (unchanged) are accepted. "pandas" and
            "polars" are refused: a data frame is 2-D and the feature maps
            are clips x frames x bands.

        Returns
        -------
        self : LogMelExtractor
        """
        if transform not in (None, "default"):
            raise ValueError(
                f"LogMelExtractor.set_output(transform={transform!r}): the output is "
                "3-D (clips x frames x mel bands), which a data frame cannot hold. "
                "Use transform='default' (NumPy); get_feature_names_out() names the "
                "bands of the last axis."
            )
        return self

    def iter_transform(self, X):
        """Yield scaled feature maps chunk by chunk (bounded memory).

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.

        Yields
        ------
        features : ndarray of shape (n_chunk, n_frames, n_mels), dtype float32
            Consecutive chunks of the output of :meth:`transform`.
        """
        if self.scaling == "dataset":
            check_is_fitted(self, ["data_min_", "data_max_"])
        for S in self._iter_db(X):
            yield self._scale(S)
