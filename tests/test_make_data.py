"""The helpers of ``benchmarks/make_data.py``: extra strong clips, weak groups."""

import os
import sys

import numpy as np
import soundfile as sf

from sklearn_sed.datasets import read_strong_tsv

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
    ),
)
import make_data


def test_balanced_sources_draw_every_class_equally_often():
    """Check each class gets as many rows as the largest one, every
    recording of a class within one repeat of the others."""
    rows = [(f"dog{i}", "Dog", None, None) for i in range(3)]
    rows += [(f"speech{i}", "Speech", None, None) for i in range(10)]
    out = make_data.balanced_sources(rows)
    labels = [r[1] for r in out]
    assert labels.count("Dog") == labels.count("Speech") == 10
    dog = [r[0] for r in out if r[1] == "Dog"]
    counts = [dog.count(f"dog{i}") for i in range(3)]
    assert max(counts) - min(counts) <= 1


def test_augmented_sources_add_copies_of_thin_classes_only(tmp_path):
    """Check thin classes get ``copies`` new WAV files per recording (cut to
    the active region, pitch and time changed) and other classes none."""
    sr = 8000
    t = np.arange(sr) / sr
    paths = []
    for k in range(3):
        path = tmp_path / f"src{k}.wav"
        sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), sr)
        paths.append(str(path))
    rows = [(paths[0], "Dog", 0.25, 0.75)] + [
        (p, "Speech", None, None) for p in paths[1:]
    ]
    out = make_data.augmented_sources(
        rows, str(tmp_path / "aug"), copies=2, thin=2, rng=np.random.RandomState(0)
    )
    new = out[len(rows) :]
    assert [r[1] for r in new] == ["Dog", "Dog"]
    for path, _, onset, offset in new:
        y, rate = sf.read(path)
        assert rate == sr
        assert (onset, offset) == (None, None)
        assert (
            0.5 * sr / 1.25 - 64 <= len(y) <= 0.5 * sr / 0.8 + 64
        )  # the cut, stretched
        assert not np.allclose(y[:100], 0.5 * np.sin(2 * np.pi * 440 * t[:100]))


def test_append_clips_renumbers_after_the_existing_ones(tmp_path):
    """Check the extra clips are moved in after the last existing clip and
    their events appended to the strong TSV under their new names."""
    src, dst = tmp_path / "extra", tmp_path / "strong"
    src.mkdir(), dst.mkdir()
    for i in range(2):
        sf.write(src / f"soundscape_{i:04d}.wav", np.zeros(80), 8000)
    (src / "soundscapes.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "soundscape_0000.wav\t0.100\t0.500\tDog\n"
        "soundscape_0001.wav\t1.000\t2.000\tCat\n"
    )
    tsv = tmp_path / "strong.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\nsoundscape_0000.wav\t0.0\t1.0\tDog\n"
    )
    make_data.append_clips(str(src), str(dst), str(tsv), first=5)
    assert sorted(os.listdir(dst)) == ["soundscape_0005.wav", "soundscape_0006.wav"]
    assert not src.exists()
    table = read_strong_tsv(tsv)
    assert table["soundscape_0005.wav"] == [(0.1, 0.5, "Dog")]
    assert table["soundscape_0006.wav"] == [(1.0, 2.0, "Cat")]
    assert table["soundscape_0000.wav"] == [(0.0, 1.0, "Dog")]


def test_split_weak_groups_takes_half_of_each_class_training_groups():
    """Check the weak groups are training groups only, half of each class's
    (rounded down: a class with one training group gives none), and that the
    split is a function of the random state."""
    rows = [{"desed_class": "Dog", "group": f"dog{i}"} for i in range(5)] + [
        {"desed_class": "Cat", "group": "cat0"},
        {"desed_class": "Cat", "group": "cat1"},
        {"desed_class": "", "group": "bg0"},
    ]
    valid = {"dog4", "cat1"}
    weak = make_data.split_weak_groups(rows, valid, np.random.RandomState(0))
    assert not weak & valid
    assert "bg0" not in weak
    assert len([g for g in weak if g.startswith("dog")]) == 2
    assert not [g for g in weak if g.startswith("cat")]
    again = make_data.split_weak_groups(rows, valid, np.random.RandomState(0))
    assert again == weak
