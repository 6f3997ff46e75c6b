import numpy as np
import pytest

from sklearn_sed.datasets import (
    load_desed,
    make_domestic_soundscapes,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
    write_events_tsv,
)


def test_make_domestic_soundscapes_shapes_and_labels():
    """Check sizes, label consistency and the weak fraction."""
    X, y_weak, y_strong = make_domestic_soundscapes(
        10, duration=1.0, sr=8000, weak_fraction=0.3, random_state=0
    )
    assert X.shape == (10, 8000)
    assert X.dtype == np.float32
    assert np.abs(X).max() <= 1.0
    assert sum(s is None for s in y_strong) == 3
    for weak, events in zip(y_weak, y_strong, strict=True):
        if events is not None:
            assert weak == sorted({e[2] for e in events})
            for onset, offset, _ in events:
                assert 0 <= onset < offset <= 1.0


def test_make_domestic_soundscapes_is_reproducible():
    """Check one random_state gives the same data."""
    a = make_domestic_soundscapes(3, duration=1.0, sr=8000, random_state=5)
    b = make_domestic_soundscapes(3, duration=1.0, sr=8000, random_state=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]


def test_strong_tsv_round_trip_with_empty_file(tmp_path):
    """Check writing then reading a strong TSV keeps events and empty files."""
    events = {"a.wav": [(0.5, 1.25, "Dog"), (2.0, 3.0, "Speech")], "b.wav": []}
    write_events_tsv(tmp_path / "x.tsv", events)
    assert read_strong_tsv(tmp_path / "x.tsv") == events


def test_weak_and_unlabeled_readers(tmp_path):
    """Check comma-separated weak labels and the unlabelled list."""
    (tmp_path / "w.tsv").write_text("filename\tevent_labels\na.wav\tSpeech,Dog\n")
    (tmp_path / "u.tsv").write_text("filename\nc.wav\nd.wav\n")
    assert read_weak_tsv(tmp_path / "w.tsv") == {"a.wav": ["Dog", "Speech"]}
    assert read_unlabeled_tsv(tmp_path / "u.tsv") == ["c.wav", "d.wav"]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("a.wav\t2.0\t1.0\tDog", r"x\.tsv:3: onset must be < offset"),
        ("a.wav\tx\t1.0\tDog", r"x\.tsv:3: onset and offset must be numbers"),
        ("a.wav\t0.0\t1.0\tCow", r"x\.tsv:3: event_label 'Cow' is not one of"),
        ("a.wav\t0\t1\tDog\textra", r"x\.tsv:3: 5 tab-separated cells"),
    ],
)
def test_strong_tsv_errors_name_file_and_line(tmp_path, line, match):
    """Check malformed rows are reported with file and line."""
    path = tmp_path / "x.tsv"
    path.write_text(f"filename\tonset\toffset\tevent_label\nb.wav\t0\t1\tDog\n{line}\n")
    with pytest.raises(ValueError, match=match):
        read_strong_tsv(path)


def test_empty_tsv_and_bad_header(tmp_path):
    """Check an empty file and a wrong header are refused."""
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        read_strong_tsv(tmp_path / "e.tsv")
    (tmp_path / "h.tsv").write_text("file\tstart\n")
    with pytest.raises(ValueError, match="header must be"):
        read_strong_tsv(tmp_path / "h.tsv")


def test_load_desed_aligns_and_checks_audio(tmp_path):
    """Check X, y_weak, y_strong are aligned and missing audio is named."""
    (tmp_path / "s.tsv").write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t0\t1\tDog\nb.wav\t\t\t\n"
    )
    (tmp_path / "w.tsv").write_text("filename\tevent_labels\nc.wav\tCat\n")
    for name in ("a.wav", "b.wav", "c.wav"):
        (tmp_path / name).write_bytes(b"")
    X, y_weak, y_strong = load_desed(tmp_path, tmp_path / "s.tsv", tmp_path / "w.tsv")
    assert [p.split("/")[-1] for p in X] == ["a.wav", "b.wav", "c.wav"]
    assert y_weak == [["Dog"], [], ["Cat"]]
    assert y_strong == [[(0.0, 1.0, "Dog")], [], None]
    (tmp_path / "c.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"w\.tsv: 1 listed audio file"):
        load_desed(tmp_path, tmp_path / "s.tsv", tmp_path / "w.tsv")


def test_missing_audio_error_names_the_tsv_kind_and_files(tmp_path):
    """Check load_desed's MissingAudioError carries what a caller needs to word
    the fix: the TSV, its kind, the folder, the missing names, the count."""
    from sklearn_sed.datasets import MissingAudioError

    (tmp_path / "w.tsv").write_text("filename\tevent_labels\nc.wav\tCat\nd.wav\tDog\n")
    (tmp_path / "d.wav").write_bytes(b"")
    with pytest.raises(MissingAudioError) as info:
        load_desed(weak_tsv=tmp_path / "w.tsv", weak_audio_dir=tmp_path)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert (err.tsv, err.kind, err.folder) == (
        str(tmp_path / "w.tsv"),
        "weak",
        str(tmp_path),
    )
    assert err.missing == ["c.wav"]
    assert err.n_listed == 2


def test_return_events_gives_the_hidden_truth_of_the_weak_clips():
    """The events returned with return_events=True are the strong labels where
    they are given and, for weak-only clips, the events that
    weak_fraction=0.0 would have given: weak_fraction only hides labels."""
    kw = dict(duration=1.0, sr=8000, random_state=3)
    X, y_weak, y_strong, events = make_domestic_soundscapes(
        12, weak_fraction=0.5, return_events=True, **kw
    )
    X_all, _, y_all = make_domestic_soundscapes(12, weak_fraction=0.0, **kw)
    np.testing.assert_array_equal(X, X_all)
    assert events == y_all
    assert sum(s is None for s in y_strong) == 6
    for weak, strong, ev in zip(y_weak, y_strong, events, strict=True):
        assert strong is None or strong == ev
        assert weak == sorted({e[2] for e in ev})


# Strict label files: nothing is read as something else.


def test_a_quote_starting_a_filename_is_a_plain_character(tmp_path):
    """Check a filename starting with '"' does not merge the rows after it
    into one field (CSV quoting), and that such a name round-trips."""
    path = tmp_path / "ref.tsv"
    rows = ['"a.wav\t1.0\t2.0\tDog', "b.wav\t1.0\t2.0\tCat", "c.wav\t0.5\t1.5\tDog"]
    path.write_text("filename\tonset\toffset\tevent_label\n" + "\n".join(rows) + "\n")
    events = read_strong_tsv(path)
    assert list(events) == ['"a.wav', "b.wav", "c.wav"]
    write_events_tsv(tmp_path / "out.tsv", events)
    assert read_strong_tsv(tmp_path / "out.tsv") == events


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "weak.tsv"
    path.write_bytes("\ufefffilename\tevent_labels\na.wav\tDog,Cat\n".encode())
    assert read_weak_tsv(path) == {"a.wav": ["Cat", "Dog"]}


def test_a_weak_clip_listed_twice_is_refused_with_both_lines(tmp_path):
    """Check one label per row (the clip listed again) is refused, where the
    reader kept only the last row's label."""
    path = tmp_path / "weak.tsv"
    path.write_text("filename\tevent_labels\na.wav\tDog\nb.wav\tCat\na.wav\tCat\n")
    with pytest.raises(
        ValueError, match=r"weak.tsv:4: 'a.wav' is listed again \(first at line 2\)"
    ):
        read_weak_tsv(path)


def test_tab_separated_weak_labels_are_refused(tmp_path):
    """Check labels separated by tabs (all but the first were dropped) are
    refused, naming the line and the fix."""
    path = tmp_path / "weak.tsv"
    path.write_text("filename\tevent_labels\na.wav\tDog\tCat\n")
    with pytest.raises(ValueError, match=r"weak.tsv:2: 3 tab-separated cells.*commas"):
        read_weak_tsv(path)


@pytest.mark.parametrize(
    "header",
    [
        "filename\tonset\toffset\tevent_label\tconfidence",
        "filename\tonset\tonset\tevent_label",
    ],
)
def test_extra_or_repeated_columns_are_refused(tmp_path, header):
    path = tmp_path / "strong.tsv"
    path.write_text(header + "\na.wav\t1\t2\tDog\t0.9\n")
    with pytest.raises(ValueError, match=r"strong\.tsv:1: the header must be"):
        read_strong_tsv(path)


def test_a_clip_in_the_strong_and_the_weak_tsv_is_refused(tmp_path):
    """Check a clip listed in both label files (trained twice with two
    labels) is refused, naming both files."""
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "strong.tsv").write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t1\t2\tDog\n"
    )
    (tmp_path / "weak.tsv").write_text("filename\tevent_labels\na.wav\tCat\n")
    with pytest.raises(
        ValueError, match=r"'a.wav' is listed in .*strong.tsv.*weak.tsv"
    ):
        load_desed(
            tmp_path,
            strong_tsv=tmp_path / "strong.tsv",
            weak_tsv=tmp_path / "weak.tsv",
        )
