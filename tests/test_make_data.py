"""The helpers of ``benchmarks.make_data``: extra strong clips, weak groups."""

import os

import numpy as np
import soundfile as sf

from benchmarks import make_data
from sklearn_sed.datasets import read_strong_tsv


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


def _tiny_shared_data(root):
    """A manifest of short tones: Dog in 4 groups, Cat in 2 (one held out
    for validation, so its one training group stays strong only), and
    backgrounds and distractors; plus a DCASE validation TSV."""
    sr = 44100
    sounds = root / "domestic-sounds"
    sounds.mkdir(parents=True)
    header = "path,role,desed_class,group,duration_s,active_onset_s,active_offset_s"
    lines = [header]
    specs = [("fg", "Dog", f"d{g}", 440 + 50 * g) for g in range(4)]
    specs += [("fg", "Cat", f"c{g}", 900 + 50 * g) for g in range(2)]
    specs += [("background", "", f"b{g}", 0) for g in range(4)]
    specs += [("distractor", "", f"x{g}", 2000 + 50 * g) for g in range(4)]
    rng = np.random.RandomState(0)
    for role, label, group, freq in specs:
        t = np.arange(sr) / sr
        y = 0.3 * np.sin(2 * np.pi * freq * t) if freq else 0.01 * rng.randn(sr)
        name = f"{group}.wav"
        sf.write(sounds / name, y, sr)
        lines.append(f"{name},{role},{label},{group},1.0,0.0,1.0")
    (sounds / "manifest.csv").write_text("\n".join(lines) + "\n")
    meta = root / "desed-metadata" / "validation"
    meta.mkdir(parents=True)
    (meta / "validation.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0.0\t1.0\tDog\na.wav\t2.0\t3.0\tCat\nb.wav\t1.0\t2.0\tDog\n"
    )


def test_weak_sources_disjoint_keeps_validation_and_moves_weak_recordings(
    tmp_path,
):
    """Check ``--weak-sources disjoint`` leaves the validation clips as they
    were and mixes the weak clips without the groups that the strong clips
    use: Cat's one training group gives shared weak clips a Cat label and
    disjoint ones none."""
    _tiny_shared_data(tmp_path / "data")
    out = {}
    for mode in ("shared", "disjoint"):
        out[mode] = tmp_path / mode
        argv = ["--data", str(tmp_path / "data"), "--output", str(out[mode])]
        argv += ["--n-strong", "3", "--n-weak", "12", "--n-valid", "2"]
        argv += ["--n-unlabeled", "2"]  # the default, 1,000, takes 8 s
        assert make_data.main([*argv, "--weak-sources", mode]) == 0

    def weak_labels(folder):
        rows = (folder / "metadata" / "weak.tsv").read_text().splitlines()[1:]
        return {label for row in rows for label in row.split("\t")[1].split(",")}

    for mode in out:
        assert sorted(os.listdir(out[mode] / "audio" / "weak"))[-1] == (
            "soundscape_0011.wav"
        )
    valid = [(out[m] / "metadata" / "validation.tsv").read_text() for m in out]
    assert valid[0] == valid[1]
    assert "Cat" in weak_labels(out["shared"])
    assert weak_labels(out["disjoint"]) == {"Dog"}
