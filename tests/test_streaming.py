"""Detection on a stream: the offline events, each once, with bounded delay
and flat memory; `sklearn-sed listen` on WAV and raw PCM, and bad streams."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import sklearn_sed
from sklearn_sed import LogMelExtractor
from sklearn_sed.deploy.streaming import StreamingDetector
from sklearn_sed.inference import predict_file_events
from sklearn_sed.pipeline import make_pipeline
from tests.conftest import TINY_FEATURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = TINY_FEATURES["sr"]


@pytest.fixture(scope="module")
def pipe(fitted_sed, tiny_dataset):
    """The tiny fitted detector behind its (refitted, identical) extractor."""
    ext = LogMelExtractor(**TINY_FEATURES).fit(tiny_dataset["audio"])
    np.testing.assert_array_equal(
        ext.transform(tiny_dataset["audio"][:2]), tiny_dataset["F"][:2]
    )
    return make_pipeline(ext, fitted_sed)


@pytest.fixture(scope="module")
def recording(tiny_dataset, tmp_path_factory):
    """48 s of the test soundscapes back to back, as a float WAV."""
    y = np.concatenate(list(tiny_dataset["audio_test"])).astype(np.float32)
    path = tmp_path_factory.mktemp("stream") / "long.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    return y, path


def _stream(detector, y, chunk):
    """Push ``y`` in chunks; return (event, stream seconds when reported)."""
    out = []
    for i in range(0, len(y), chunk):
        for e in detector.push(y[i : i + chunk]):
            out.append((e, detector.seconds_received))
    out += [(e, detector.seconds_received) for e in detector.flush()]
    return out


def _key(events):
    return sorted((round(a, 6), round(b, 6), c) for a, b, c in events)


@pytest.mark.parametrize(("hop", "chunk"), [(0.5, 777), (1.0, 16000), (2.0, 4096)])
def test_a_stream_gives_the_offline_events_once(pipe, recording, hop, chunk):
    y, path = recording
    offline = predict_file_events(pipe, path, overlap=1 - hop / 2.0)
    assert len(offline) > 10
    detector = StreamingDetector(pipe, hop=hop, max_event_sec=1e4)
    streamed = [e for e, _ in _stream(detector, y, chunk)]
    assert _key(e[:3] for e in streamed) == _key(offline)  # all, and no duplicate
    assert not any(e.ongoing for e in streamed)


@pytest.mark.parametrize("hop", [0.5, 1.0])
def test_an_event_is_reported_within_a_clip_and_a_hop_of_its_end(pipe, recording, hop):
    """Without max_latency a frame waits for every window over it: the delay
    (stream time at report - offset) is at most the clip length plus a hop,
    the median filter's reach and one pushed chunk."""
    y, _ = recording
    detector = StreamingDetector(pipe, hop=hop, max_event_sec=1e4)
    chunk = 1000
    reported = _stream(detector, y, chunk)[:-1]
    reach = detector._reach * detector.frame_sec
    bound = detector.duration + detector.hop_sec + reach + chunk / SR + 1e-6
    delays = [at - e.offset for e, at in reported if at < len(y) / SR]
    assert delays
    assert max(delays) <= bound
    assert min(delays) >= 0


def test_max_latency_reports_sooner(pipe, recording):
    y, _ = recording
    detector = StreamingDetector(pipe, hop=0.5, max_latency=0.25, max_event_sec=1e4)
    chunk = 1000
    reported = _stream(detector, y, chunk)
    reach = detector._reach * detector.frame_sec
    bound = 0.25 + detector.hop_sec + reach + chunk / SR + 2 * detector.frame_sec
    delays = [at - e.offset for e, at in reported if at < len(y) / SR]
    assert delays
    assert max(delays) <= bound


def test_long_events_are_reported_once_as_ongoing(pipe, recording):
    y, path = recording
    offline = predict_file_events(pipe, path, overlap=0.5)
    longest = max(b - a for a, b, _ in offline)
    limit = longest / 2  # some events outlast it
    streamed = [
        e for e, _ in _stream(StreamingDetector(pipe, max_event_sec=limit), y, 4000)
    ]
    ongoing = [e for e in streamed if e.ongoing]
    assert ongoing
    starts = {(round(a, 6), c): b for a, b, c in offline}
    for e in ongoing:  # an offline event, cut where it had lasted the limit
        end = starts[(round(e.onset, 6), e.label)]
        assert e.offset - e.onset >= limit - 1e-6
        assert e.offset <= end + 1e-6
    rest = [e[:3] for e in streamed if not e.ongoing]
    assert set(_key(rest)) <= set(_key(offline))
    assert len(streamed) == len(offline)  # each event once
    assert len({(round(e.onset, 6), e.label) for e in streamed}) == len(streamed)


def test_memory_stays_flat_on_a_long_stream(pipe, recording):
    y, _ = recording
    detector = StreamingDetector(pipe, hop=1.0, max_event_sec=5.0)
    sizes = []
    for _ in range(8):  # 6.4 minutes
        for i in range(0, len(y), 8000):
            detector.push(y[i : i + 8000])
            sizes.append(
                (len(detector._final), len(detector._audio), len(detector._emitted))
            )
    frames, samples, keys = np.max(sizes, axis=0)
    limit = (5.0 + detector.duration) / detector.frame_sec
    assert frames <= 2 * limit + 2 * detector.hop_frames + 8 * detector._reach
    assert samples <= round(detector.duration * SR) + 8000
    assert keys <= frames


def test_one_window_per_frame_merges_alike(pipe, recording):
    y, _ = recording
    runs = [
        _key(
            e[:3]
            for e, _ in _stream(StreamingDetector(pipe, hop=2.0, merge=m), y, 5000)
        )
        for m in ("mean", "max")
    ]
    assert runs[0] == runs[1]


def test_bad_settings_and_samples_are_clear_errors(pipe):
    with pytest.raises(ValueError, match="hop must be in"):
        StreamingDetector(pipe, hop=5.0)
    with pytest.raises(ValueError, match="merge must be"):
        StreamingDetector(pipe, merge="median")
    detector = StreamingDetector(pipe)
    with pytest.raises(ValueError, match="NaN"):
        detector.push(np.full(100, np.nan, np.float32))
    detector.flush()
    with pytest.raises(ValueError, match="was flushed"):
        detector.push(np.zeros(10, np.float32))


# -- sklearn-sed listen ----------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.sed"
    sklearn_sed.save(pipe, path)
    return path


def _wav_bytes(y, rate, subtype="PCM_16", stream=False):
    buffer = io.BytesIO()
    sf.write(buffer, y, rate, format="WAV", subtype=subtype)
    data = bytearray(buffer.getvalue())
    if stream:  # as arecord and ffmpeg write to a pipe: sizes unknown
        data[4:8] = (0xFFFFFFFF).to_bytes(4, "little")
        k = data.index(b"data")
        data[k + 4 : k + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    return bytes(data)


def _listen(model_file, stdin, *args, timeout=120):
    proc = subprocess.run(
        [sys.executable, "-m", "sklearn_sed.cli", "listen", str(model_file), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    lines = proc.stdout.decode().splitlines() or ["(nothing printed)"]
    if proc.returncode == 0 or len(lines) > 1:
        assert lines[0] == "onset\toffset\tevent_label\tstatus\twall_clock"
    events = [
        (float(a), float(b), c) for a, b, c, *_ in (x.split("\t") for x in lines[1:])
    ]
    return proc, events


def _listen_file(model_file, data, tmp_path, capsys, *args):
    """`sklearn-sed listen --input FILE` in this process (the stream reader of
    standard input, on a file): exit status, events, error text."""
    from sklearn_sed.cli.main import main

    stream = tmp_path / "stream.bin"
    stream.write_bytes(data)
    status = main(["listen", str(model_file), "--input", str(stream), *args])
    captured = capsys.readouterr()
    rows = [x.split("\t") for x in captured.out.splitlines()[1:]]
    return status, [(float(a), float(b), c) for a, b, c, *_ in rows], captured.err


def test_listen_on_a_wav_pipe_prints_the_offline_events(
    model_file, pipe, recording, tmp_path, capsys
):
    y, _ = recording
    pcm = np.round(y * 32767).astype(np.int16)
    wav = tmp_path / "pcm16.wav"
    sf.write(wav, pcm, SR, subtype="PCM_16")
    offline = predict_file_events(pipe, wav, overlap=0.5)
    proc, events = _listen(
        model_file, _wav_bytes(pcm, SR, stream=True), "--max-event-sec", "1000"
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    expected = sorted((round(a, 3), round(b, 3), c) for a, b, c in offline)
    assert sorted(events) == expected  # in the order they ended
    # Raw PCM, the same samples.
    status, raw, err = _listen_file(
        model_file, pcm.tobytes(), tmp_path, capsys,
        "--raw", "--rate", str(SR), "--max-event-sec", "1000",
    )  # fmt: skip
    assert status == 0, err
    assert raw == events


def test_listen_refuses_bad_streams_and_keeps_the_events(
    model_file, recording, tmp_path, capsys
):
    y, _ = recording
    pcm = np.round(y * 32767).astype(np.int16)
    half = len(pcm) // 2
    # A second header with another rate, after a first stream of stated size.
    changed = _wav_bytes(pcm[:half], SR) + _wav_bytes(pcm[half:], 2 * SR)
    status, events, err = _listen_file(model_file, changed, tmp_path, capsys)
    assert status == 2
    assert "changed from 16000 Hz" in err
    assert "events detected until then were printed" in err
    assert events  # the first half's events were not lost
    status, _, err = _listen_file(model_file, os.urandom(4096), tmp_path, capsys)
    assert status == 2
    assert "not WAV" in err
    nan = np.full(SR, np.nan, np.float32).tobytes()
    status, _, err = _listen_file(
        model_file, nan, tmp_path, capsys, "--raw", "--rate", str(SR),
        "--sample-format", "f32le",
    )  # fmt: skip
    assert status == 2
    assert "NaN" in err


def _listen_process(model_file, *args):
    """`sklearn-sed listen` as a process whose standard input stays open.

    Its Ctrl-C (SIGINT) acts as from a terminal even where the tests were
    started in the background by a shell (``make test &``), which leaves
    SIGINT ignored, and an ignored signal stays ignored across ``exec``: a
    handler set here instead is reset to the default in the child.
    """
    import signal

    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "sklearn_sed.cli", "listen", str(model_file), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_listen_reports_a_stalled_stream(model_file, recording):
    y, _ = recording
    pcm = np.round(y[: 6 * SR] * 32767).astype(np.int16)
    proc = _listen_process(model_file, "--stall-timeout", "2")
    proc.stdin.write(_wav_bytes(pcm, SR, stream=True))
    proc.stdin.flush()  # ... and nothing more, the pipe left open
    try:
        proc.wait(timeout=120)  # stdin stays open: no end of stream
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 2
    assert "stalled" in err.decode()
    assert out.decode().startswith("onset\toffset")


def test_a_stream_drains_the_samples_of_an_unfinished_block():
    """What ``blocks`` holds while it waits for the rest of a block (Ctrl-C
    lands there) comes out of ``drain``: whole samples only, once."""
    from sklearn_sed.deploy.pcm import PCMStream, StreamError

    pcm = np.arange(1500, dtype="<i2")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, pcm.tobytes() + b"\x01")  # and half a sample
        raw = {"rate": 1000, "channels": 1, "sample_format": "s16le"}
        stream = PCMStream(read_fd, raw=raw, stall_timeout=0.2)
        blocks = stream.blocks(1.0)
        np.testing.assert_array_equal(next(blocks), pcm[:1000] / np.float32(32768))
        with pytest.raises(StreamError, match="stalled"):
            next(blocks)  # waits for 500 more samples that do not come
        np.testing.assert_array_equal(stream.drain(), pcm[1000:] / np.float32(32768))
        assert stream.seconds == 1.5
        assert stream.drain().size == 0
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_listen_prints_the_open_events_on_ctrl_c(model_file, pipe, recording):
    """SIGINT (Ctrl-C) mid-stream: the events still open are printed, as the
    end of the stream would print them, and listen exits cleanly."""
    import select
    import signal
    import time

    y, _ = recording
    pcm = np.round(y[: 12 * SR] * 32767).astype(np.int16)
    # A stall timeout longer than the wait below: the interrupt, not the
    # stall, ends the stream even when the process is slow to go idle.
    proc = _listen_process(model_file, "--stall-timeout", "300")
    try:
        proc.stdin.write(_wav_bytes(pcm, SR, stream=True))
        proc.stdin.flush()
        # The header is printed once the model is loaded and the stream
        # read: an interrupt before it would land in start-up (slow and
        # idle at times while a fresh environment reads its libraries).
        ready, _, _ = select.select([proc.stdout], [], [], 240)
        assert ready, "listen printed no header within 240 s"
        header = proc.stdout.readline()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # until it has read and run the audio
            time.sleep(1.0)
            if _cpu_idle(proc.pid):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out = (header + proc.stdout.read()).decode()
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted" in err
    detector = StreamingDetector(pipe)
    expected = detector.push(pcm) + detector.flush()  # the same int16 samples
    lines = out.splitlines()[1:]
    assert len(lines) == len(expected) > 0


def _cpu_idle(pid, seconds=0.5):
    """Whether process ``pid`` used (almost) no CPU for ``seconds``."""
    import time

    def ticks():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = ticks()
    time.sleep(seconds)
    return ticks() - before <= 1
