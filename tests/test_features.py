import numpy as np
import pytest
import soundfile as sf
import torch

from sklearn_sed import LogMelExtractor, log_mel_spectrogram
from sklearn_sed.audio.features import load_audio
from tests.conftest import SMALL_FEATURES


def test_paper_settings_give_1024_by_64():
    """Check a 10 s clip at 44.1 kHz gives the paper's 1024 x 64 map in [0, 1]."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 441000)).astype(np.float32) * 0.1
    F = LogMelExtractor().fit_transform(X)
    assert F.shape == (2, 1024, 64)
    assert F.dtype == np.float32
    assert F.min() == 0.0
    assert F.max() == 1.0


def test_short_clip_is_padded_long_clip_is_cut():
    """Check clips are fixed to `duration` seconds."""
    ext = LogMelExtractor(
        **SMALL_FEATURES,
        scaling=None,
    )
    F = ext.fit_transform([np.ones(4000, np.float32), np.ones(20000, np.float32)])
    assert F.shape == (2, 65, 16)
    # The padded half of the first clip sits at the top_db floor.
    assert np.allclose(F[0, -10:], F[0].max() - 80.0)


def test_function_twin_matches_transformer_db():
    """Check the transformer without scaling equals log_mel_spectrogram."""
    y = np.random.default_rng(1).normal(size=8000).astype(np.float32)
    kw = dict(sr=8000, n_fft=256, win_length=160, hop_length=125, n_mels=16, fmax=4000)
    F = LogMelExtractor(duration=1.0, scaling=None, **kw).fit_transform([y])
    np.testing.assert_allclose(F[0], log_mel_spectrogram(y, **kw), rtol=1e-6)


def test_dataset_scaling_learns_range_clip_scaling_does_not():
    """Check "dataset" uses the training range and "clip" each clip's own."""
    kw = SMALL_FEATURES
    rng = np.random.default_rng(0)
    loud = rng.normal(size=(1, 8000)).astype(np.float32)
    quiet = 0.01 * loud
    ext = LogMelExtractor(**kw).fit(np.vstack([loud, quiet]))
    assert ext.transform(quiet).max() < 0.9  # quiet stays quiet
    per_clip = LogMelExtractor(scaling="clip", **kw).fit_transform(quiet)
    assert per_clip.max() == pytest.approx(1.0)


def test_resampling_and_stereo_file(tmp_path):
    """Check a stereo 22.05 kHz file is down-mixed and resampled."""
    sr = 22050
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1)
    path = tmp_path / "x.wav"
    sf.write(path, stereo * 0.5, sr, subtype="PCM_16")
    y = load_audio(path, sr=8000)
    assert y.ndim == 1
    assert abs(len(y) - 8000) <= 1


def test_per_item_rate_tuple():
    """Check a (waveform, rate) tuple is resampled to sr."""
    ext = LogMelExtractor(
        **SMALL_FEATURES,
        scaling=None,
    )
    y16 = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    a = ext.fit_transform([(y16, 16000)])
    assert a.shape == (1, 65, 16)


def test_parallel_extraction_equals_serial():
    """Check n_jobs=2 gives the same features as n_jobs=1."""
    kw = SMALL_FEATURES
    X = np.random.default_rng(0).normal(size=(40, 8000)).astype(np.float32)
    a = LogMelExtractor(n_jobs=1, **kw).fit_transform(X)
    b = LogMelExtractor(n_jobs=2, verbose=1, **kw).fit_transform(X)
    np.testing.assert_array_equal(a, b)


def test_missing_file_message(tmp_path):
    """Check a missing file is named in the error."""
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        LogMelExtractor(scaling="clip").fit_transform([str(tmp_path / "nope.wav")])


def test_non_audio_file_message(tmp_path):
    """Check a file that is not audio is named in the error."""
    path = tmp_path / "fake.wav"
    path.write_text("not audio")
    with pytest.raises(ValueError, match="could not be decoded"):
        load_audio(path)


def test_nan_audio_message():
    """Check NaN samples are refused with the clip's index."""
    X = np.zeros((2, 8000), np.float32)
    X[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"X\[1\] must hold finite values"):
        LogMelExtractor(sr=8000, fmax=4000, duration=1.0).fit_transform(X)


def test_bad_fmax_message():
    """Check fmax above Nyquist is refused."""
    with pytest.raises(ValueError, match=r"fmax <= sr / 2"):
        LogMelExtractor(sr=8000).fit_transform(np.zeros((1, 8000), np.float32))


@pytest.mark.parametrize(
    "kw",
    [
        dict(
            sr=44100,
            n_fft=1024,
            hop_length=431,
            win_length=882,
            n_mels=64,
            fmin=0.0,
            fmax=16000.0,
        ),
        dict(
            sr=8000,
            n_fft=255,
            hop_length=100,
            win_length=200,
            n_mels=20,
            fmin=50.0,
            fmax=4000.0,
        ),
        dict(
            sr=16000,
            n_fft=512,
            hop_length=160,
            win_length=512,
            n_mels=40,
            fmin=0.0,
            fmax=8000.0,
        ),
        # More filters than bins: librosa leaves some filters empty, which
        # no band of the banded filter product holds.
        pytest.param(
            dict(
                sr=16000,
                n_fft=256,
                hop_length=128,
                win_length=256,
                n_mels=128,
                fmin=0.0,
                fmax=8000.0,
            ),
            marks=pytest.mark.filterwarnings("ignore:Empty filters detected"),
        ),
        # Runs of 16 empty filters: whole bands left out, whose levels must
        # be librosa's floor, not what the output held before.
        pytest.param(
            dict(
                sr=16000,
                n_fft=32,
                hop_length=16,
                win_length=32,
                n_mels=256,
                fmin=0.0,
                fmax=8000.0,
            ),
            marks=pytest.mark.filterwarnings("ignore:Empty filters detected"),
        ),
    ],
    ids=["paper", "odd-n_fft", "full-band", "empty-filters", "empty-bands"],
)
def test_log_mel_equals_librosa_melspectrogram(kw):
    """Check the fast clip-by-clip mel path equals librosa's melspectrogram in dB
    (centred frames, zero padding), for one clip and for a batch; the filter
    product runs band by band (16 filters each, the last band short at 20 and
    40 filters, empty filters left out)."""
    import librosa

    rng = np.random.default_rng(0)
    y = (rng.normal(size=(2, kw["sr"] // 2)) * 0.1).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=y, power=2.0, **kw)
    ref_db = np.swapaxes(10 * np.log10(np.maximum(ref, 1e-10)), -1, -2)
    ours = log_mel_spectrogram(y, top_db=None, **kw)
    assert ours.shape == ref_db.shape
    np.testing.assert_allclose(ours, ref_db, atol=1e-3)
    np.testing.assert_allclose(
        log_mel_spectrogram(y[1], top_db=None, **kw), ref_db[1], atol=1e-3
    )


def test_log_mel_of_a_long_clip_equals_librosa_across_fft_steps():
    """The paper's settings on 6 s (614 frames): the real FFTs run in steps of
    256 frames, the last one short; every step's frames land in their rows."""
    import librosa

    from sklearn_sed.audio.features import _FRAMES_PER_STEP

    kw = dict(
        sr=44100, n_fft=1024, hop_length=431, win_length=882, n_mels=64,
        fmin=0.0, fmax=16000.0,
    )  # fmt: skip
    y = (np.random.default_rng(1).normal(size=6 * 44100) * 0.1).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=y, power=2.0, **kw)
    ref_db = 10 * np.log10(np.maximum(ref, 1e-10)).T
    assert len(ref_db) > 2 * _FRAMES_PER_STEP
    assert len(ref_db) % _FRAMES_PER_STEP  # the last step is short
    np.testing.assert_allclose(
        log_mel_spectrogram(y, top_db=None, **kw), ref_db, atol=1e-3
    )


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_load_audio_equals_soundfile_for_every_sample_format(tmp_path, subtype):
    """Check load_audio (with its own int16 conversion for PCM_16 files) gives
    exactly soundfile's float32 samples, and stereo files their channel mean."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, size=(4410, 2))
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, 44100, subtype=subtype)
    ref = sf.read(path, dtype="float32")[0].mean(axis=1)
    y = load_audio(path, sr=44100)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, ref)
    sf.write(path, x[:, 0], 44100, subtype=subtype)
    np.testing.assert_array_equal(
        load_audio(path, sr=44100), sf.read(path, dtype="float32")[0]
    )


def test_features_bit_identical_across_torch_thread_counts():
    """Check the torch STFT path gives the same bits with 1 and 2 threads, so
    that stored features do not depend on the machine's core count."""
    import torch

    y = (np.random.default_rng(0).normal(size=(3, 44100)) * 0.1).astype(np.float32)
    before = torch.get_num_threads()
    try:
        out = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            out[n] = log_mel_spectrogram(y)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(out[1], out[2])


def test_extractor_names_its_bands_and_refuses_data_frame_output():
    """Check get_feature_names_out names the mel bands (last axis), set_output
    accepts NumPy and refuses pandas with the reason, also through a Pipeline."""
    from sklearn.pipeline import make_pipeline as sk_make_pipeline

    from sklearn_sed import LogMelExtractor

    ext = LogMelExtractor(n_mels=16)
    names = ext.get_feature_names_out()
    assert names.tolist() == [f"mel{i}" for i in range(16)]
    assert ext.set_output(transform="default") is ext
    with pytest.raises(ValueError, match="3-D"):
        ext.set_output(transform="pandas")
    with pytest.raises(ValueError, match="3-D"):
        sk_make_pipeline(LogMelExtractor()).set_output(transform="pandas")


def test_load_audio_reads_a_stretch_exactly(tmp_path):
    """Check offset/duration read the same samples as slicing the whole file,
    and a stretch past the end is empty (no error)."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, 8000 * 3) * 32767).astype(np.int16)
    sf.write(tmp_path / "a.wav", x, 8000, subtype="PCM_16")
    whole = load_audio(tmp_path / "a.wav", sr=8000)
    part = load_audio(tmp_path / "a.wav", sr=8000, offset=1.25, duration=0.5)
    np.testing.assert_array_equal(part, whole[10000:14000])
    tail = load_audio(tmp_path / "a.wav", sr=8000, offset=2.5)
    np.testing.assert_array_equal(tail, whole[20000:])
    assert load_audio(tmp_path / "a.wav", sr=8000, offset=5.0).size == 0


def test_extractor_device_cpu_is_the_default_computation():
    X = np.random.default_rng(3).normal(size=(3, 8000)).astype(np.float32) * 0.1
    default = LogMelExtractor(**SMALL_FEATURES).fit_transform(X)
    named = LogMelExtractor(**SMALL_FEATURES, device=torch.device("cpu"))
    np.testing.assert_array_equal(named.fit_transform(X), default)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_extractor_on_cuda_without_a_gpu_says_so_and_how_to_fix():
    X = np.zeros((1, 8000), np.float32)
    with pytest.raises(ValueError, match=r"device='cuda'.*no CUDA device.*'cpu'"):
        LogMelExtractor(**SMALL_FEATURES, device="cuda").fit(X)


def test_extractor_with_an_unknown_device_name_is_refused():
    X = np.zeros((1, 8000), np.float32)
    with pytest.raises(ValueError, match=r"device must name a torch device"):
        LogMelExtractor(**SMALL_FEATURES, device="gpu0").fit(X)


def test_extractor_leaves_torch_and_blas_thread_settings_as_they_were():
    from threadpoolctl import threadpool_info

    X = np.random.default_rng(4).normal(size=(40, 8000)).astype(np.float32) * 0.1
    torch_before = torch.get_num_threads()
    blas_before = [i["num_threads"] for i in threadpool_info()]
    LogMelExtractor(**SMALL_FEATURES).fit_transform(X)
    assert torch.get_num_threads() == torch_before
    assert [i["num_threads"] for i in threadpool_info()] == blas_before


def test_extractor_on_worker_threads_equals_one_clip_at_a_time(monkeypatch):
    import sklearn_sed.audio.features as features

    X = np.random.default_rng(5).normal(size=(40, 8000)).astype(np.float32) * 0.1
    threaded = LogMelExtractor(**SMALL_FEATURES).fit_transform(X)
    monkeypatch.setattr(features, "cpu_count", lambda: 1)
    serial = LogMelExtractor(**SMALL_FEATURES).fit_transform(X)
    np.testing.assert_array_equal(threaded, serial)
    in_processes = LogMelExtractor(**SMALL_FEATURES, n_jobs=2).fit_transform(X)
    np.testing.assert_array_equal(in_processes, serial)
