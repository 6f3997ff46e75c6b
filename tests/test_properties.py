"""Property-based tests (hypothesis) of labels, post-processing and TSV files."""

import string

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_sed.datasets import read_strong_tsv, write_events_tsv
from sklearn_sed.decoding.decode import decode_events
from sklearn_sed.labels import events_to_frames, frames_to_events

CLASSES = ["Dog", "Speech", "Vacuum cleaner"]  # a label with a space
DURATION = 10.0
N_FRAMES = 128
FRAME = DURATION / N_FRAMES


@st.composite
def events(draw, max_events=6):
    out = []
    for _ in range(draw(st.integers(0, max_events))):
        onset = draw(st.floats(0, DURATION - 0.01, allow_nan=False))
        offset = draw(st.floats(onset + 0.01, DURATION, allow_nan=False))
        out.append((onset, offset, draw(st.sampled_from(CLASSES))))
    return out


@given(events())
@settings(max_examples=200, deadline=None)
def test_events_frames_events_round_trip_within_one_frame(evs):
    """Check events -> frames -> events keeps every boundary within one frame."""
    frames = events_to_frames(
        evs, classes=CLASSES, n_frames=N_FRAMES, duration=DURATION
    )
    decoded = frames_to_events(frames, classes=CLASSES, duration=DURATION)
    for onset, offset, label in evs:
        # Each event is covered by one decoded event of its class ...
        assert any(
            lab == label and d_on <= onset + 1e-9 and d_off >= offset - 1e-9
            for d_on, d_off, lab in decoded
        )
    # ... whose boundaries lie within one frame of the events it covers.
    for d_on, d_off, lab in decoded:
        members = [e for e in evs if e[2] == lab and e[0] < d_off and e[1] > d_on]
        assert members
        assert min(e[0] for e in members) - d_on < FRAME + 1e-9
        assert d_off - max(e[1] for e in members) < FRAME + 1e-9


@given(events())
@settings(max_examples=100, deadline=None)
def test_frame_encoding_is_order_invariant(evs):
    """Check the frame matrix does not depend on the order of the events."""
    a = events_to_frames(evs, classes=CLASSES, n_frames=N_FRAMES, duration=DURATION)
    b = events_to_frames(
        evs[::-1], classes=CLASSES, n_frames=N_FRAMES, duration=DURATION
    )
    np.testing.assert_array_equal(a, b)


@given(
    st.lists(st.floats(0, 1), min_size=3 * 16, max_size=3 * 16),
    st.floats(0.05, 0.95),
    st.floats(0, 3),
    st.sampled_from(["threshold_first", "filter_first"]),
)
@settings(max_examples=200, deadline=None)
def test_postprocessing_events_are_valid(values, threshold, filt, order):
    """Check post-processing never makes events outside the clip or with
    onset >= offset, whatever the scores and settings."""
    probs = np.asarray(values).reshape(1, 16, 3)
    (evs,) = decode_events(
        probs,
        classes=CLASSES,
        duration=DURATION,
        threshold=threshold,
        median_filter_sec=filt,
        order=order,
    )
    for onset, offset, label in evs:
        assert 0.0 <= onset < offset <= DURATION
        assert label in CLASSES


LABEL = (
    st.text(string.ascii_letters + string.digits + " _-", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)


@given(
    st.dictionaries(
        st.text(
            string.ascii_letters + string.digits + "_-", min_size=1, max_size=8
        ).map(lambda s: s + ".wav"),
        st.lists(
            st.tuples(st.integers(0, 9000), st.integers(1, 1000), LABEL), max_size=4
        ),
        max_size=5,
    )
)
@settings(max_examples=100, deadline=None)
def test_tsv_round_trip(tmp_path_factory, table):
    """Check write_events_tsv -> read_strong_tsv round-trips any valid table,
    labels with spaces and files without events included."""
    table = {
        name: [(a / 1000, (a + d) / 1000, lab) for a, d, lab in evs]
        for name, evs in table.items()
    }
    path = tmp_path_factory.mktemp("tsv") / "x.tsv"
    write_events_tsv(path, table)
    back = read_strong_tsv(path, classes=None)
    assert list(back) == list(table)
    for name, evs in table.items():
        assert len(back[name]) == len(evs)
        for (a, b, lab), (a2, b2, lab2) in zip(evs, back[name], strict=True):
            assert abs(a - a2) < 1e-9
            assert abs(b - b2) < 1e-9
            assert lab == lab2


_VALID_STRONG = (
    b"filename\tonset\toffset\tevent_label\n"
    b"a.wav\t0.5\t1.25\tDog\nb.wav\t\t\t\nc.wav\t3\t9.5\tSpeech\n"
)
_VALID_WEAK = b"filename\tevent_labels\na.wav\tDog,Speech\nb.wav\t\n"


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from([_VALID_STRONG, _VALID_WEAK]),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete"]),
            st.integers(0, 200),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzzed_tsv_reads_cleanly_or_raises_value_error(
    tmp_path_factory, source, edits
):
    """Fuzz: bytes flipped, inserted or deleted anywhere in a strong or weak
    TSV (including invalid UTF-8, NUL bytes, tabs and newlines) give either a
    clean read or ValueError, never another exception type."""
    from sklearn_sed.datasets import read_weak_tsv

    raw = bytearray(source)
    for kind, pos, chunk in edits:
        pos = pos % (len(raw) + 1)
        if kind == "flip" and pos < len(raw):
            raw[pos] ^= chunk[0] or 1
        elif kind == "insert":
            raw[pos:pos] = chunk
        else:
            del raw[pos : pos + len(chunk)]
    path = tmp_path_factory.mktemp("tsv") / "fuzz.tsv"
    path.write_bytes(bytes(raw))
    for reader in (read_strong_tsv, read_weak_tsv):
        for classes in (None, ("Dog", "Speech")):
            try:
                reader(path, classes=classes)
            except ValueError as exc:
                assert "fuzz.tsv" in str(exc)  # noqa: PT017 (names the file)
