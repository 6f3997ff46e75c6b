import numpy as np
import pytest
import soundfile as sf

from sklearn_sed.datasets import make_soundscapes, read_strong_tsv

SR = 8000


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Class folders, a background and a distractor (do not mutate)."""
    root = tmp_path_factory.mktemp("sources")
    t = np.arange(SR) / SR
    for label, f in (("Dog", 300.0), ("Cat", 900.0)):
        (root / "fg" / label).mkdir(parents=True)
        # 1 s tone padded with 0.5 s of silence on each side.
        y = np.concatenate(
            [np.zeros(SR // 2), np.sin(2 * np.pi * f * t), np.zeros(SR // 2)]
        )
        sf.write(root / "fg" / label / f"{label}.wav", y * 0.5, SR)
    (root / "bg").mkdir()
    sf.write(
        root / "bg" / "noise.wav",
        np.random.default_rng(0).normal(size=SR * 3) * 0.01,
        SR,
    )
    sf.write(root / "distractor.wav", np.sin(2 * np.pi * 2000 * t) * 0.5, SR)
    return root


def test_labels_are_exact_on_silence(sources):
    """Check the audio is non-silent exactly inside the labelled events."""
    fg = [(str(sources / "fg/Dog/Dog.wav"), "Dog", 0.5, 1.5)]
    X, y = make_soundscapes(
        fg,
        n_clips=4,
        duration=4.0,
        sr=SR,
        events_per_clip=(1, 1),
        noise_db=-120,
        snr_db=(80, 80),
        random_state=0,
    )
    for x, events in zip(X, y, strict=True):
        ((onset, offset, label),) = events
        assert label == "Dog"
        assert offset - onset == pytest.approx(1.0, abs=1e-3)  # active region only
        active = np.flatnonzero(np.abs(x) > 1e-4)
        assert active[0] / SR == pytest.approx(onset, abs=2e-3)
        assert (active[-1] + 1) / SR == pytest.approx(offset, abs=2e-3)


def test_snr_range_is_respected(sources):
    """Check the event-to-background RMS ratio lies in snr_db."""
    fg = [(str(sources / "fg/Cat/Cat.wav"), "Cat", 0.5, 1.5)]
    X, y = make_soundscapes(
        fg,
        str(sources / "bg"),
        n_clips=6,
        duration=3.0,
        sr=SR,
        events_per_clip=(1, 1),
        snr_db=(10, 10),
        random_state=1,
    )
    for x, ((onset, offset, _),) in zip(X, y, strict=True):
        inside = x[int(onset * SR) : int(offset * SR)]
        outside = np.concatenate([x[: int(onset * SR)], x[int(offset * SR) :]])
        ratio_db = 20 * np.log10(
            np.sqrt(np.mean(inside**2) - np.mean(outside**2))
            / np.sqrt(np.mean(outside**2))
        )
        assert ratio_db == pytest.approx(10, abs=1.0)


def test_folder_per_class_distractors_unlabelled(sources):
    """Check class folders give labels and distractors add no label."""
    X, y = make_soundscapes(
        str(sources / "fg"),
        n_clips=5,
        duration=3.0,
        sr=SR,
        events_per_clip=(0, 0),
        distractors=[sources / "distractor.wav"],
        distractors_per_clip=(1, 1),
        random_state=0,
    )
    assert all(events == [] for events in y)
    # The distractor stands well above the -60 dBFS noise floor.
    assert np.all(np.abs(X).max(axis=1) > 0.005)
    _, y = make_soundscapes(
        str(sources / "fg"), n_clips=8, duration=3.0, sr=SR, random_state=0
    )
    assert {e[2] for ev in y for e in ev} <= {"Dog", "Cat"}


def test_long_events_cut_short_events_repeated(sources):
    """Check max_event_sec cuts and short_events='repeat' lengthens events."""
    fg = [(str(sources / "fg/Dog/Dog.wav"), "Dog")]  # 2 s file
    _, y = make_soundscapes(
        fg,
        n_clips=3,
        duration=4.0,
        sr=SR,
        events_per_clip=(1, 1),
        max_event_sec=0.5,
        random_state=0,
    )
    assert all(ev[0][1] - ev[0][0] == pytest.approx(0.5) for ev in y)
    _, y = make_soundscapes(
        fg,
        n_clips=3,
        duration=4.0,
        sr=SR,
        events_per_clip=(1, 1),
        min_event_sec=3.0,
        short_events="repeat",
        random_state=0,
    )
    assert all(ev[0][1] - ev[0][0] == pytest.approx(3.0) for ev in y)


def test_output_dir_writes_wavs_and_tsv(sources, tmp_path):
    """Check WAV files and a DESED strong TSV are written and match."""
    _X, y = make_soundscapes(
        str(sources / "fg"),
        n_clips=3,
        duration=2.0,
        sr=SR,
        output_dir=tmp_path,
        random_state=0,
    )
    table = read_strong_tsv(tmp_path / "soundscapes.tsv", classes=None)
    assert list(table) == [f"soundscape_{i:04d}.wav" for i in range(3)]
    assert list(table.values()) == [[(a, b, c) for a, b, c in ev] for ev in y]
    data, sr = sf.read(tmp_path / "soundscape_0000.wav")
    assert sr == SR
    assert len(data) == 2 * SR


def test_reproducible_with_random_state(sources):
    """Check the same seed gives the same soundscapes."""
    a = make_soundscapes(
        str(sources / "fg"), n_clips=2, duration=2.0, sr=SR, random_state=3
    )
    b = make_soundscapes(
        str(sources / "fg"), n_clips=2, duration=2.0, sr=SR, random_state=3
    )
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_errors_name_the_input(tmp_path):
    """Check a missing folder and an unlabelled foreground are reported."""
    with pytest.raises(FileNotFoundError, match="foreground folder"):
        make_soundscapes(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="needs a class label"):
        make_soundscapes([("x.wav", "")])
