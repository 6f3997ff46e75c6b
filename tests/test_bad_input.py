"""Every bad input gets a clear message; unusual but legal input works."""

import numpy as np
import pytest
import soundfile as sf

from sklearn_sed import LogMelExtractor, PseudoLabelSED
from sklearn_sed.audio.features import load_audio
from tests.conftest import FAST_SED, SMALL_FEATURES


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 48000])
@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "FLOAT"),
        ("FLAC", "PCM_16"),
        ("FLAC", "PCM_24"),
        ("OGG", "VORBIS"),
    ],
)
def test_audio_formats_rates_and_depths_are_read(tmp_path, sr, fmt, subtype):
    """Check WAV/FLAC/OGG at 8-48 kHz, 8/16/24-bit/float, stereo, are read,
    down-mixed and resampled."""
    t = np.arange(sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, np.stack([tone, tone], axis=1), sr, format=fmt, subtype=subtype)
    y = load_audio(path, sr=8000)
    assert abs(len(y) - 8000) <= 2
    assert 0.3 < np.abs(y).max() < 0.7
    F = LogMelExtractor(**SMALL_FEATURES, scaling="clip").fit_transform([str(path)])
    assert F.shape == (1, 65, 16)


def test_truncated_file_is_named(tmp_path):
    """Check a truncated audio file gives an error naming it."""
    path = tmp_path / "cut.flac"
    sf.write(path, np.random.default_rng(0).normal(size=8000) * 0.1, 8000)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.flac"):
        LogMelExtractor(**SMALL_FEATURES).fit_transform([str(path)])


def test_silent_and_dc_offset_clips_work():
    """Check a silent clip and a clip with a DC offset give finite features."""
    X = np.zeros((2, 8000), np.float32)
    X[1] = 0.3 + 0.01 * np.random.default_rng(0).normal(size=8000)
    F = LogMelExtractor(**SMALL_FEATURES).fit_transform(X)
    assert np.isfinite(F).all()
    assert F.min() >= 0
    assert F.max() <= 1


def test_empty_clip_is_refused():
    """Check an empty waveform is refused with its index."""
    with pytest.raises(ValueError, match=r"X\[1\] is an empty clip"):
        LogMelExtractor(**SMALL_FEATURES).fit_transform([np.ones(10), np.zeros(0)])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_refused(bad):
    """Check NaN or infinite feature values are refused before training."""
    X = np.random.default_rng(0).random((2, 32, 8), dtype=np.float32)
    X[1, 3, 2] = bad
    with pytest.raises(ValueError, match="X must hold finite values"):
        PseudoLabelSED(**FAST_SED).fit(X, [["a"], ["b"]])


def test_wrong_dtype_is_refused():
    """Check non-numeric features are refused."""
    with pytest.raises(TypeError, match="X must hold numbers"):
        PseudoLabelSED(**FAST_SED).fit(np.full((2, 32, 8), "x"), [["a"], ["b"]])


def test_events_outside_the_clip_are_clipped_with_warning(tiny_dataset):
    """Check negative onsets and offsets past the clip warn and are clipped."""
    F = tiny_dataset["F"][:2]
    with pytest.warns(UserWarning, match="clipped to the clip"):
        sed = PseudoLabelSED(**FAST_SED).fit(
            F, [["a"], ["b"]], [[(-1.0, 0.5, "a")], [(1.5, 9.0, "b")]]
        )
    assert sed.n_strong_ == 2


def test_no_strong_clip_warns_and_trains(tiny_dataset):
    """Check training with weak labels only says what it does."""
    with pytest.warns(UserWarning, match="No clip has strong labels"):
        sed = PseudoLabelSED(**FAST_SED).fit(
            tiny_dataset["F"][:4], [["a"], ["b"], [], ["a"]]
        )
    assert sed.n_strong_ == 0


def test_no_weak_clip_skips_stage_two(tiny_dataset):
    """Check that with strong clips only, stage 2 is skipped with a warning."""
    with pytest.warns(UserWarning, match="stage 2 has nothing"):
        sed = PseudoLabelSED(**FAST_SED).fit(
            tiny_dataset["F"][:2], None, [[(0.0, 1.0, "a")], []]
        )
    assert sed.n_iter_ == 0


def test_a_none_weak_label_is_refused_as_ambiguous(tiny_dataset):
    """Check a None weak label is refused, naming -1 (unlabelled) and []."""
    with pytest.raises(ValueError, match=r"is None, which is ambiguous.*-1"):
        PseudoLabelSED(**FAST_SED).fit(tiny_dataset["F"][:2], [["a"], None])


def test_y_strong_length_mismatch(tiny_dataset):
    """Check y_strong of the wrong length is refused."""
    with pytest.raises(ValueError, match="y_strong has 1 entries but X has 2"):
        PseudoLabelSED(**FAST_SED).fit(tiny_dataset["F"][:2], [["a"], ["b"]], [None])


def test_other_frame_count_at_predict_is_refused(fitted_sed):
    """Check features of another duration or sample rate are refused at predict."""
    X = np.random.default_rng(0).random((1, 100, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="differ in duration, sample rate"):
        fitted_sed.predict(X)


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("gpu0", r"device must name a torch device such as 'cpu'"),
        ("meta", r"device='meta' cannot train or predict. Use 'cpu'"),
    ],
)
def test_detector_device_that_cannot_train_is_refused_before_training(
    tiny_dataset, device, match
):
    """Check PseudoLabelSED names a bad device and the fix, as the extractor
    and the command line do (one check, ``_device.check_device``)."""
    d = tiny_dataset
    with pytest.raises(ValueError, match=match):
        PseudoLabelSED(**FAST_SED, device=device).fit(
            d["F"][:4], d["y_weak"][:4], d["y_strong"][:4]
        )


@pytest.mark.parametrize(
    ("fmt", "ext"),
    [("WAV", "wav"), ("AIFF", "aiff"), ("W64", "w64"), ("RF64", "rf64"), ("AU", "au")],
)
def test_every_format_that_declares_its_length_is_checked_for_truncation(
    tmp_path, fmt, ext
):
    """Check a truncated AIFF, Wave64, RF64 or AU file is refused as a WAV is,
    instead of being read as shorter audio."""
    path = tmp_path / f"cut.{ext}"
    sf.write(path, np.zeros(8000, dtype=np.float32), 8000, format=fmt, subtype="PCM_16")
    load_audio(path, sr=8000)  # whole: fine
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(ValueError, match="is truncated"):
        load_audio(path, sr=8000)


def test_only_the_used_stretch_of_a_long_file_is_read(tmp_path, monkeypatch):
    """Check the extractor reads at most its clip (plus a small margin) of a
    long file, not the whole file."""
    import sklearn_sed.audio.reading as features

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(8000 * 60, dtype=np.float32), 8000)
    asked = []
    real = features.load_audio

    def spy(p, *, sr, offset=0.0, duration=None):
        asked.append(duration)
        return real(p, sr=sr, offset=offset, duration=duration)

    monkeypatch.setattr(features, "load_audio", spy)
    LogMelExtractor(**SMALL_FEATURES, scaling="clip").transform([str(path)])
    assert asked == [pytest.approx(SMALL_FEATURES["duration"] + 0.1)]


def test_a_training_clip_longer_than_a_clip_is_refused(tmp_path):
    """Check Pipeline.fit refuses a 60 s file among 1 s training clips (it
    would be cut while its weak label describes all of it)."""
    from sklearn_sed import make_pipeline

    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, 0.1 * np.ones(8000, dtype=np.float32), 8000)
    sf.write(long, 0.1 * np.ones(8000 * 60, dtype=np.float32), 8000)
    pipe = make_pipeline(
        LogMelExtractor(**SMALL_FEATURES),
        PseudoLabelSED(**{**FAST_SED, "duration": 1.0}),
    )
    with pytest.raises(ValueError, match=r"X\[1\] is 60.0 s long"):
        pipe.fit([str(short), str(long)], [["a"], ["b"]])


def test_an_all_silent_training_set_is_refused():
    """Check fitting the min-max scaling on silence (no range: every real
    clip would saturate to 1) is refused."""
    with pytest.raises(ValueError, match="same log-mel level"):
        LogMelExtractor(**SMALL_FEATURES).fit(np.zeros((4, 8000), dtype=np.float32))


def test_samples_by_channels_array_is_not_read_as_clips():
    """Check a (500, 2) array (a recording as soundfile.read returns it) is
    refused instead of read as 500 clips."""
    with pytest.raises(ValueError, match="samples x channels"):
        LogMelExtractor(**SMALL_FEATURES).fit(np.zeros((500, 2), dtype=np.float32))
