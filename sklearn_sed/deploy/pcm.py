"""Reading a live audio stream: WAV or raw PCM from a pipe, in blocks.

``arecord ... | sklearn-sed listen`` and ``ffmpeg ... -f wav - | ...``
write a WAV header whose data size is unknown (0 or the largest value),
then samples without end; :class:`PCMStream` reads that header (or takes
raw PCM's format as given), then yields blocks of mono float32 samples as
they arrive. A block that does not come within ``stall_timeout`` seconds,
a second header that changes the rate or channel count, a header that is
not WAV, or a float sample that is not finite raises :class:`StreamError`
naming what happened and when.
"""

import os
import select
import struct

import numpy as np

__all__ = ["SAMPLE_FORMATS", "PCMStream", "StreamError"]

#: Raw PCM formats: name -> numpy dtype (little-endian).
SAMPLE_FORMATS = {"s16le": "<i2", "s32le": "<i4", "f32le": "<f4"}


class StreamError(ValueError):
    """The stream stalled, changed format, or is not audio."""


class PCMStream:
    """Blocks of mono float32 samples from a file descriptor.

    Parameters
    ----------
    fd : int
        A readable file descriptor (a pipe, a file, standard input).
    raw : dict or None, default=None
        Raw PCM's ``rate``, ``channels`` and ``sample_format`` (a key of
        ``SAMPLE_FORMATS``); None reads a WAV header first.
    stall_timeout : float or None, default=10.0
        Seconds without a byte after which the stream counts as stalled;
        None waits for ever.

    Attributes
    ----------
    rate : int
        Sample rate in Hz.
    channels : int
        Channel count (averaged into mono).
    seconds : float
        Seconds of audio read so far.
    """

    def __init__(self, fd, *, raw=None, stall_timeout=10.0):
        self.fd = fd
        self.stall_timeout = stall_timeout
        self._buffer = b""
        self.seconds = 0.0
        self._left = None  # bytes of the current data chunk; None: to the end
        if raw is None:
            self._read_header()
        else:
            if raw["sample_format"] not in SAMPLE_FORMATS:
                raise StreamError(
                    f"sample format must be one of {sorted(SAMPLE_FORMATS)}. Got "
                    f"{raw['sample_format']!r} instead."
                )
            self._set_format(
                int(raw["rate"]),
                int(raw["channels"]),
                np.dtype(SAMPLE_FORMATS[raw["sample_format"]]),
            )

    # -- bytes -------------------------------------------------------------------
    def _read(self, n):
        """Return up to ``n`` bytes (b"" at the end), waiting at most the timeout."""
        if self.stall_timeout is not None:
            try:
                ready, _, _ = select.select([self.fd], [], [], self.stall_timeout)
            except (OSError, ValueError):  # not selectable (e.g. some files)
                ready = [self.fd]
            if not ready:
                raise StreamError(
                    f"no audio for {self.stall_timeout:g} s after {self.seconds:.2f} s "
                    "of stream: it stalled."
                )
        return os.read(self.fd, n)

    def _exactly(self, n, what):
        while len(self._buffer) < n:
            chunk = self._read(max(n - len(self._buffer), 4096))
            if not chunk:
                raise StreamError(f"the stream ended inside its {what}.")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    # -- WAV header --------------------------------------------------------------
    def _read_header(self):
        riff = self._exactly(12, "WAV header")
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise StreamError(
                "the stream is not WAV (no RIFF/WAVE header): give raw PCM's "
                "format with --raw --rate R --channels C --sample-format FORMAT."
            )
        fmt = None
        while True:
            chunk_id, size = struct.unpack("<4sI", self._exactly(8, "WAV header"))
            if chunk_id == b"data":
                if fmt is None:
                    raise StreamError(
                        "the WAV stream has no 'fmt ' chunk before its data."
                    )
                # Streams write 0 or the largest size: the data goes on to the end.
                self._left = None if size in (0, 0xFFFFFFFF, 0x7FFFFFFF) else size
                self._change_format(*fmt)
                return
            if size > 2**20:
                raise StreamError(f"the WAV header's {chunk_id!r} chunk is too large.")
            body = self._exactly(size + (size & 1), "WAV header")
            if chunk_id == b"fmt ":
                fmt = _wav_format(body)

    def _change_format(self, rate, channels, dtype):
        if hasattr(self, "rate") and (rate, channels) != (self.rate, self.channels):
            raise StreamError(
                f"the stream changed from {self.rate} Hz, {self.channels} channel(s) "
                f"to {rate} Hz, {channels} channel(s) at {self.seconds:.2f} s; one "
                "stream holds one format."
            )
        self._set_format(rate, channels, dtype)

    def _set_format(self, rate, channels, dtype):
        if not 1_000 <= rate <= 768_000 or not 1 <= channels <= 64:
            raise StreamError(
                f"the stream states {rate} Hz and {channels} channel(s); expected "
                "1,000-768,000 Hz and 1-64 channels."
            )
        self.rate, self.channels, self.dtype = rate, channels, dtype
        self._frame_bytes = channels * dtype.itemsize

    # -- samples -----------------------------------------------------------------
    def blocks(self, seconds):
        """Yield blocks of about ``seconds`` of mono float32 samples, to the end.

        Parameters
        ----------
        seconds : float
            Seconds per block (the last one may be shorter).

        Yields
        ------
        samples : ndarray of shape (n_samples,), dtype float32
        """
        want = max(1, round(seconds * self.rate)) * self._frame_bytes
        while True:
            if self._left == 0:  # a data chunk of stated size ended
                if not self._buffer:
                    self._buffer = self._read(4096)
                    if not self._buffer:
                        break
                self._read_header()  # another header: the same format or an error
                continue
            limit = want if self._left is None else min(want, self._left)
            while len(self._buffer) < limit:
                chunk = self._read(limit - len(self._buffer))
                if not chunk:
                    break
                self._buffer += chunk
            samples = self._take(limit)
            if samples is None:
                break  # the end (a partial sample at the very end is dropped)
            yield samples

    def drain(self):
        """Return the samples read but not yet yielded by :meth:`blocks`.

        :meth:`blocks` waits for a whole block; a stream that is interrupted
        (Ctrl-C) holds up to a block of samples that were received but not
        yielded. ``drain`` hands them over so that nothing received is lost.

        Returns
        -------
        samples : ndarray of shape (n_samples,), dtype float32
            Mono samples (whole sample frames only; empty before the header
            or when nothing is left).
        """
        samples = None
        if hasattr(self, "_frame_bytes"):  # the format is known
            samples = self._take(len(self._buffer))
        return np.zeros(0, np.float32) if samples is None else samples

    def _take(self, limit):
        """Take the buffer's whole sample frames as samples, or None if none.

        At most ``limit`` bytes, and at most the rest of the data chunk.
        """
        if self._left is not None:
            limit = min(limit, self._left)
        usable = min(len(self._buffer), limit)
        usable -= usable % self._frame_bytes
        if usable == 0:
            return None
        data, self._buffer = self._buffer[:usable], self._buffer[usable:]
        if self._left is not None:
            self._left -= usable
        return self._samples(data)

    def _samples(self, data):
        frames = np.frombuffer(data, dtype=self.dtype).reshape(-1, self.channels)
        if self.dtype.kind == "f":
            y = frames.astype(np.float32)
            if not np.isfinite(y).all():
                raise StreamError(
                    f"the stream holds NaN or infinite samples after "
                    f"{self.seconds:.2f} s: it is not audio (or not the sample "
                    "format given)."
                )
        else:
            y = frames / np.float32(2.0 ** (8 * self.dtype.itemsize - 1))
            y = y.astype(np.float32)
        y = y[:, 0] if self.channels == 1 else y.mean(axis=1)
        self.seconds += len(y) / self.rate
        return y


def _wav_format(body):
    """Return (rate, channels, dtype) of a WAV 'fmt ' chunk."""
    if len(body) < 16:
        raise StreamError("the WAV header's 'fmt ' chunk is too short.")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE
        tag = struct.unpack("<H", body[24:26])[0]
    kinds = {(1, 16): "<i2", (1, 32): "<i4", (3, 32): "<f4"}
    if (tag, bits) not in kinds:
        raise StreamError(
            f"the WAV stream's samples are format {tag} with {bits} bits; 16- or "
            "32-bit integer PCM or 32-bit float is read (e.g. ffmpeg -f wav "
            "-acodec pcm_s16le)."
        )
    return rate, channels, np.dtype(kinds[(tag, bits)])
