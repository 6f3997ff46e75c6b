"""Detection on a live stream: sliding windows, merged frames, each event once.

:class:`StreamingDetector` keeps a window of the model's clip length that
advances by ``hop`` seconds as samples arrive (:meth:`~StreamingDetector.push`).
Each window goes through the model as one clip would (the same resampling
and features); frame probabilities of overlapping windows are merged on one
frame grid (their mean, as offline prediction of a long file does, or their
maximum); and the merged frames are decoded by the model's own decoding
(per-class thresholds, median filters, hysteresis).

When is a frame final? When no window still to come covers it (then the
stream's events are those of offline prediction, :func:`sklearn_sed.inference.
predict_file_events`, with ``overlap = 1 - hop / duration``; the latency is
about the clip length), or, with ``max_latency``, once that many seconds of
audio after it went through the model (fewer windows merged, less delay).

When is an event reported? Decoding is monotone in the probabilities
(thresholds, hysteresis, median filters of 0/1 decisions or of
probabilities), so decoding the final frames twice, followed once by
frames of probability 0 and once of probability 1, brackets every future:
an event found alike in both has its onset and offset settled, whatever
comes next, and is reported then, exactly once. An event still going on
is reported once it has lasted ``max_event_sec`` (marked ``ongoing``).
Memory stays flat: final frames are dropped at quiet stretches (every
class below its low threshold long enough for no filter to reach across),
and at the latest ``max_event_sec`` after they were decoded.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np

__all__ = ["StreamEvent", "StreamingDetector"]

#: Windows that go through the model together.
_BATCH = 8


class StreamEvent(NamedTuple):
    """An event of a stream.

    Attributes
    ----------
    onset, offset : float
        Seconds since the stream started; for an ``ongoing`` event the
        offset is where it had reached when reported.
    label : str
        Event class.
    ongoing : bool
        Whether the event was still going on when reported (it had lasted
        ``max_event_sec``); it is not reported again when it ends.
    """

    onset: float
    offset: float
    label: str
    ongoing: bool = False


class StreamingDetector:
    """Detect events on a stream of samples, each reported once.

    Parameters
    ----------
    model : Pipeline or OnnxDetector
        A fitted ``LogMelExtractor`` + ``PseudoLabelSED`` pipeline
        (:func:`sklearn_sed.load`) or an exported one
        (:class:`~sklearn_sed.deploy.OnnxDetector`).
    sr : int, default=None
        Sample rate of the stream in Hz; None is the model's. Each window is
        resampled as a whole, as offline prediction does.
    hop : float, default=1.0
        Seconds between window starts (rounded to whole frames), at most the
        model's clip duration.
    merge : {"mean", "max"}, default="mean"
        How the probabilities of a frame from overlapping windows merge:
        their mean (offline prediction's) or their maximum.
    max_latency : float or None, default=None
        Seconds of audio after a frame that suffice to make it final (merging
        the windows seen by then); None waits for every window that covers
        it, which gives offline prediction's events.
    max_event_sec : float, default=30.0
        An event still going on after this many seconds is reported then,
        once, as ``ongoing``; the decoded frames kept never span much more.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    frame_sec : float
        Seconds of one frame of probabilities.
    hop_sec : float
        Seconds between window starts, after rounding to frames.
    seconds_received : float
        Seconds of audio pushed so far.
    windows_run : int
        Windows that went through the model.

    Examples
    --------
    >>> detector = StreamingDetector(model, hop=1.0)  # doctest: +SKIP
    >>> for block in blocks:  # doctest: +SKIP
    ...     for event in detector.push(block):
    ...         print(event.onset, event.offset, event.label)
    >>> detector.flush()  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        *,
        sr=None,
        hop=1.0,
        merge="mean",
        max_latency=None,
        max_event_sec=30.0,
    ):
        from sklearn_sed.inference import windowed_parts

        self._parts = parts = windowed_parts(model)
        self.sr = int(parts.sr if sr is None else sr)
        if not 1_000 <= self.sr <= 768_000:
            raise ValueError(f"sr must be a sample rate in Hz. Got {sr!r} instead.")
        if merge not in ("mean", "max"):
            raise ValueError(f"merge must be 'mean' or 'max'. Got {merge!r} instead.")
        self.merge = merge
        self.duration = parts.duration
        self.n_out = parts.n_frames_out
        self.frame_sec = self.duration / self.n_out
        if not (isinstance(hop, (int, float)) and 0 < hop <= self.duration):
            raise ValueError(
                f"hop must be in (0, {self.duration}] seconds (the clip length). "
                f"Got {hop!r} instead."
            )
        self.hop_frames = max(1, round(hop / self.frame_sec))
        self.hop_sec = self.hop_frames * self.frame_sec
        if max_latency is not None and not (
            isinstance(max_latency, (int, float)) and 0 <= max_latency
        ):
            raise ValueError(f"max_latency must be >= 0 or None. Got {max_latency!r}.")
        self.max_latency = max_latency
        if not (isinstance(max_event_sec, (int, float)) and max_event_sec > 0):
            raise ValueError(f"max_event_sec must be > 0. Got {max_event_sec!r}.")
        self.max_event_sec = float(max_event_sec)
        decoding = self._decoding = parts.decoding
        if decoding is None:
            raise TypeError(
                "model must be a fitted pipeline whose detector is a PseudoLabelSED, "
                "or an OnnxDetector: its decoding settings decode the stream."
            )
        self.classes_ = np.asarray(decoding.classes)
        self._low = np.minimum(
            np.asarray(decoding.low_threshold, float),
            np.asarray(decoding.threshold, float),
        )
        # Frames within which one frame's decision reaches another: the
        # longest median filter's half-length, plus one.
        half = max(
            _kernel_half(sec, self.frame_sec)
            for sec in np.atleast_1d(decoding.median_filter_sec)
        )
        self._reach = half + 1
        self._win_samples = round(self.duration * self.sr)
        n_classes = len(self.classes_)
        # Samples kept: from the next window's start.
        self._audio = np.zeros(0, np.float32)
        self._audio_start = 0
        self.seconds_received = 0.0
        self._received = 0
        self.windows_run = 0
        # Frames still merging: from _pending_start, as sums (or maxima) and counts.
        self._pending = np.zeros((0, n_classes))
        self._count = np.zeros(0)
        self._pending_start = 0
        # Final frames not yet dropped: from _final_start.
        self._final = np.zeros((0, n_classes))
        self._final_start = 0
        self._emitted = set()  # (label, onset frame) of reported events
        self._trimmed_forcibly = False
        self._done = False

    # -- input -------------------------------------------------------------------
    def push(self, samples):
        """Add samples; return the events that they completed.

        Parameters
        ----------
        samples : array-like of shape (n_samples,) or (n_samples, n_channels)
            Float samples in [-1, 1] at ``sr`` (channels are averaged), or
            int16 PCM (scaled by 1/32768, as files are read).

        Returns
        -------
        events : list of StreamEvent
            Events whose end (or ``max_event_sec``) these samples settled,
            in order of onset.
        """
        if self._done:
            raise ValueError("the stream was flushed; start a new StreamingDetector.")
        y = _as_mono(samples)
        self._audio = np.concatenate([self._audio, y])
        self._received += len(y)
        self.seconds_received = self._received / self.sr
        ready = []
        while True:
            start = self._window_start(self.windows_run + len(ready))
            if start + self._win_samples > self._received:
                break
            ready.append(start)
        self._run_windows(ready)
        return self._advance(final=False)

    def flush(self):
        """End the stream: run its last windows and report every event left.

        Returns
        -------
        events : list of StreamEvent
            The events not reported yet, as offline prediction of the whole
            recording would give them (cut at the end of the stream).
        """
        if self._done:
            return []
        length = self._received / self.sr
        n_windows = max(1, math.ceil(max(length - self.duration, 0) / self.hop_sec) + 1)
        self._run_windows(
            [self._window_start(w) for w in range(self.windows_run, n_windows)]
        )
        self._n_total = max(1, math.ceil(length / self.frame_sec))
        events = self._advance(final=True)
        self._done = True
        return events

    # -- windows -----------------------------------------------------------------
    def _window_start(self, w):
        return round(w * self.hop_sec * self.sr)

    def _run_windows(self, starts):
        if not starts:
            return
        clips = []
        for start in starts:
            a = start - self._audio_start
            y = self._audio[a : a + self._win_samples]
            y = y if y.size else np.zeros(1, np.float32)
            clips.append(y if self.sr == self._parts.sr else (y, self.sr))
        for b in range(0, len(clips), _BATCH):  # a batch at a time: bounded memory
            batch = clips[b : b + _BATCH]
            for p in self._parts.predict_frames(self._parts.transform(batch)):
                self._add(self.windows_run * self.hop_frames, np.asarray(p, float))
                self.windows_run += 1
        keep_from = self._window_start(self.windows_run) - self._audio_start
        self._audio = self._audio[max(0, keep_from) :].copy()
        self._audio_start += max(0, keep_from)

    def _add(self, first, probs):
        """Merge a window's frames (global frame ``first`` on) into the pending."""
        end = first + len(probs)
        if end > self._pending_start + len(self._pending):
            grow = end - self._pending_start - len(self._pending)
            self._pending = np.concatenate(
                [self._pending, np.zeros((grow, probs.shape[1]))]
            )
            self._count = np.concatenate([self._count, np.zeros(grow)])
        skip = max(0, self._pending_start - first)  # frames already final
        rows = slice(first + skip - self._pending_start, end - self._pending_start)
        if self.merge == "mean":
            self._pending[rows] += probs[skip:]
        else:
            self._pending[rows] = np.maximum(self._pending[rows], probs[skip:])
        self._count[rows] += 1

    def _finalize(self, final):
        """Move the frames that no later window will change to the final ones."""
        if final:
            end = self._n_total
        else:
            end = self.windows_run * self.hop_frames  # no later window covers these
            if self.max_latency is not None and self.windows_run:
                seen = (
                    self._window_start(self.windows_run - 1) / self.sr + self.duration
                )
                by_latency = math.floor((seen - self.max_latency) / self.frame_sec)
                end = max(
                    end, min(by_latency, self._pending_start + len(self._pending))
                )
        n = max(0, min(end - self._pending_start, len(self._pending)))
        if final:
            frames = np.zeros(
                (max(0, end - self._pending_start), self._pending.shape[1])
            )
            frames[:n] = self._merged(n)
        else:
            frames = self._merged(n)
        self._final = np.concatenate([self._final, frames])
        self._pending = self._pending[n:]
        self._count = self._count[n:]
        self._pending_start += len(frames) if final else n
        return len(frames)

    def _merged(self, n):
        if self.merge == "mean":
            return self._pending[:n] / np.maximum(self._count[:n, None], 1)
        return self._pending[:n].copy()

    # -- events ------------------------------------------------------------------
    def _decode(self, frames):
        """Return the events of ``frames`` as (label, onset, offset) frame indices."""
        decoding = dataclasses.replace(
            self._decoding, duration=self.frame_sec * len(frames)
        )
        return {
            (label, round(on / self.frame_sec), round(off / self.frame_sec))
            for on, off, label in decoding.decode(frames[None])[0]
        }

    def _advance(self, final):
        if not self._finalize(final) and not final:
            return []  # nothing new to decode
        P, b0 = self._final, self._final_start
        n = len(P)
        if n == 0:
            return []
        found = []
        if final:
            length = self._received / self.sr
            for label, on, off in self._decode(P):
                off_sec = min((b0 + off) * self.frame_sec, length)
                on_sec = (b0 + on) * self.frame_sec
                if round(off_sec, 3) > round(on_sec, 3):
                    found.append((label, on, off_sec, False))
        else:
            pad = self._reach + 1
            low = self._decode(np.concatenate([P, np.zeros((pad, P.shape[1]))]))
            high = self._decode(np.concatenate([P, np.ones((pad, P.shape[1]))]))
            for label, on, off in low & high:
                if off < n:  # its end lies in final frames, and is settled
                    found.append((label, on, (b0 + off) * self.frame_sec, False))
            # Going on: settled onset (1 in the low bracket, 0 before it in the
            # high one), not ended in the high bracket.
            onsets_low = {(label, on) for label, on, _ in low}
            for label, on, off in high:
                if off > n and (label, on) in onsets_low:
                    if (n - on) * self.frame_sec >= self.max_event_sec:
                        found.append((label, on, (b0 + n) * self.frame_sec, True))
        events = []
        for label, on, off_sec, ongoing in sorted(found, key=lambda e: (e[1], e[0])):
            key = (label, b0 + on)
            if key in self._emitted or (self._trimmed_forcibly and on < self._reach):
                continue  # reported, or the rest of one cut at the buffer's start
            self._emitted.add(key)
            events.append(
                StreamEvent((b0 + on) * self.frame_sec, off_sec, label, ongoing)
            )
        if not final:
            self._trim()
        return events

    def _trim(self):
        """Drop final frames that no report needs any more (memory stays flat)."""
        P = self._final
        reach = 2 * self._reach + 1
        # The newest frame where every class has been below its low threshold
        # for `reach` frames on both sides, short of the frames that the
        # brackets of _advance touch.
        quiet = np.all(P < self._low, axis=1).astype(int)
        last = len(P) - self._reach - 1 - reach
        cut = 0
        if last > reach:
            window = np.convolve(quiet, np.ones(2 * reach + 1, int), mode="valid")
            centres = (
                np.flatnonzero(window[: last - reach + 1] == 2 * reach + 1) + reach
            )
            if centres.size:
                cut = int(centres[-1])
        limit = math.ceil((self.max_event_sec + self.duration) / self.frame_sec)
        if cut == 0 and len(P) > 2 * limit:  # no quiet stretch for that long
            cut = len(P) - limit
            self._trimmed_forcibly = True
        elif cut:
            self._trimmed_forcibly = False
        if cut:
            self._final = P[cut:]
            self._final_start += cut
            self._emitted = {k for k in self._emitted if k[1] >= self._final_start - 1}


def _kernel_half(median_filter_sec, frame_sec):
    n = round(float(median_filter_sec) / frame_sec)
    k = max(1, n + 1 - n % 2)
    return k // 2


def _as_mono(samples):
    y = np.asarray(samples)
    if y.dtype.kind not in "fiu":
        raise TypeError(f"samples must be numbers. Got dtype {y.dtype} instead.")
    if y.dtype.kind in "iu":
        half = 2.0 ** (8 * y.dtype.itemsize - 1)
        y = (y - half) / half if y.dtype.kind == "u" else y / np.float32(half)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.ndim != 1:
        raise ValueError(
            f"samples must have shape (n_samples,) or (n_samples, n_channels). Got "
            f"{y.shape} instead."
        )
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise ValueError(
            "samples hold NaN or infinite values; the stream is not audio."
        )
    return y
