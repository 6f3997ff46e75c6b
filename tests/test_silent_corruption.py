"""Input that used to pass silently and wrongly: each is now an error or right.

Truncated audio, overflowing waveforms, steps that disagree on a shared
setting, unlabelled clips taken for "no event", repeated classes, partly
missing frame labels, unsigned and multi-channel arrays, bad sample rates,
and a fit that reseeded the caller's torch random generator.
"""

import numpy as np
import pytest
import soundfile as sf
import torch

from sklearn_sed import Decoder, LogMelExtractor, PseudoLabelSED
from sklearn_sed.audio.features import audio_info, load_audio
from sklearn_sed.labels import combine_labels, encode_weak_labels
from sklearn_sed.pipeline import make_pipeline
from tests.conftest import FAST_SED, SMALL_FEATURES, TINY_FEATURES


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "full.wav"
    x = 0.3 * np.sin(np.arange(16000) * 0.05)
    sf.write(path, x, 16000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_wav_is_an_error_naming_the_file(wav, tmp_path, keep):
    """Check a WAV whose header promises more samples than it holds raises,
    on every path that reads audio (features and long-file inference)."""
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"cut\.wav.*truncated"):
        load_audio(cut, sr=16000)
    with pytest.raises(ValueError, match="truncated"):
        audio_info(cut)
    assert load_audio(wav, sr=16000).shape == (16000,)  # the full file reads


def test_long_file_inference_refuses_truncated_wav(wav, tmp_path, tiny_dataset):
    from sklearn_sed.inference import predict_file_frames

    d = tiny_dataset
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST_SED))
    pipe.fit(d["audio"][:8], d["y_weak"][:8], d["y_strong"][:8])
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[:20000])
    with pytest.raises(ValueError, match="truncated"):
        predict_file_frames(pipe, cut)


def test_header_only_and_empty_files_are_errors(wav, tmp_path):
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0), 16000, subtype="PCM_16")
    with pytest.raises(ValueError, match="holds no samples"):
        audio_info(header_only)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.wav"):
        load_audio(empty)


@pytest.mark.parametrize("method", ["fit", "fit_transform"])
def test_overflowing_clip_is_named(method):
    """Check audio scaled by 1e20 is refused with the clip's index, instead of
    a fitted range of inf and all-zero features."""
    clips = [0.1 * np.sin(np.arange(8000) * 0.01 * k) for k in (1, 2, 3)]
    clips[1] = clips[1] * 1e20
    with pytest.raises(ValueError, match=r"X\[1\].*overflows"):
        getattr(LogMelExtractor(**SMALL_FEATURES), method)(clips)


def test_pipeline_refuses_steps_that_disagree_on_duration(tiny_dataset):
    d = tiny_dataset
    pipe = make_pipeline(
        LogMelExtractor(**TINY_FEATURES),
        PseudoLabelSED(**{**FAST_SED, "duration": 1.0}),
    )
    with pytest.raises(ValueError, match="disagree on duration"):
        pipe.fit(d["audio"][:8], d["y_weak"][:8], d["y_strong"][:8])


def test_unlabelled_clip_is_not_a_clip_without_events():
    with pytest.raises(ValueError, match="neither a weak nor a strong label"):
        combine_labels(None, [[(0.0, 1.0, "Dog")], None])
    y = combine_labels(None, [[(0.0, 1.0, "Dog")], []])
    assert y[1].weak == ()
    assert y[1].events == []


def test_combine_labels_takes_an_indicator_matrix():
    y = combine_labels(np.array([[1, 0], [0, 0]]), [None, []], classes=["Cat", "Dog"])
    assert [c.weak for c in y] == [("Cat",), ()]
    with pytest.raises(ValueError, match="pass classes"):
        combine_labels(np.array([[1, 0]]))


def test_repeated_classes_are_refused():
    with pytest.raises(ValueError, match="must not repeat"):
        encode_weak_labels(np.array([[1, 0]]), classes=["a", "a"])
    with pytest.raises(ValueError, match="must not repeat"):
        encode_weak_labels([["a"]], classes=["a", "b", "a"])


def test_partly_nan_frame_labels_are_refused(tiny_dataset):
    """Check a strong frame-label row with some NaN is refused, not dropped."""
    d = tiny_dataset
    F = d["F"][:8]
    probe = PseudoLabelSED(**FAST_SED).fit(F, d["y_weak"][:8], d["y_strong"][:8])
    frames = np.zeros((8, probe.n_frames_out_, len(probe.classes_)))
    frames[1:] = np.nan
    frames[0, 3, 0] = np.nan  # clip 0: known frames but one hole
    with pytest.raises(ValueError, match=r"y_strong\[0\] is partly NaN"):
        PseudoLabelSED(**FAST_SED).fit(F, np.zeros((8, 2)), frames)


def test_unsigned_audio_is_centred():
    """Check uint8 audio at its midpoint (128) is silence, as soundfile reads it."""
    ext = LogMelExtractor(**{**SMALL_FEATURES, "scaling": None})
    silent_u8 = np.full(8000, 128, dtype=np.uint8)
    tone = (128 + 100 * np.sin(np.arange(8000) * 0.05)).astype(np.uint8)
    as_float = (tone.astype(np.float32) - 128) / 128
    np.testing.assert_allclose(
        ext.fit_transform([silent_u8]), ext.fit_transform([np.zeros(8000)])
    )
    np.testing.assert_allclose(
        ext.fit_transform([tone]), ext.fit_transform([as_float]), atol=1e-4
    )


def test_samples_by_channels_array_is_refused():
    """Check an (n, 2) array as soundfile.read returns it is not n clips."""
    stereo = np.zeros((16000, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"samples x channels"):
        LogMelExtractor(**SMALL_FEATURES).fit_transform(stereo)


@pytest.mark.parametrize("rate", [0, float("nan"), -8000])
def test_bad_rate_in_waveform_pair_is_named(rate):
    with pytest.raises(ValueError, match=r"X\[0\].*rate"):
        LogMelExtractor(**SMALL_FEATURES).fit_transform([(np.zeros(8000), rate)])


def test_fit_leaves_the_callers_torch_random_state_alone(tiny_dataset):
    d = tiny_dataset
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    PseudoLabelSED(**FAST_SED).fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    torch.testing.assert_close(torch.rand(3), expected)


def test_wrong_length_threshold_fails_at_fit(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, decoder=Decoder(threshold=[0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="threshold"):
        sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])


def test_prediction_leaves_torch_random_state_alone(fitted_sed, tiny_dataset):
    """Check a prediction (skorch's data loader draws a seed) does not move
    torch's global generator, so validation between epochs cannot change the
    rest of a training."""
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fitted_sed.predict_frames(tiny_dataset["F_test"][:2])
    assert torch.equal(torch.rand(3), expected)
