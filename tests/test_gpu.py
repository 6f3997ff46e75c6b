"""The library on a CUDA device: training, inference, model files, features.

Every test here is marked ``gpu``: skipped where torch sees no CUDA device
(CI, the development machines), run on an accelerator with
``python -m pytest -m gpu tests/test_gpu.py``. The CPU-side checks of the
same code paths (device names, a file that records ``device="cuda"``) live
beside the features and persistence tests and always run.
"""

import numpy as np
import pytest
import torch

import sklearn_sed
from sklearn_sed import LogMelExtractor, PseudoLabelSchedule, PseudoLabelSED
from tests.conftest import TINY_FEATURES, TINY_SED

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_and_cpu_models(tiny_dataset):
    """The same recipe fitted once on the GPU and once on the CPU."""
    d = tiny_dataset
    args = d["F"], d["y_weak"], d["y_strong"]
    gpu = PseudoLabelSED(**TINY_SED, device="cuda").fit(*args)
    cpu = PseudoLabelSED(**TINY_SED, device="cpu").fit(*args)
    return gpu, cpu


def test_fit_on_gpu_keeps_the_weights_on_the_gpu_and_runs_both_stages(
    gpu_and_cpu_models,
):
    gpu, _ = gpu_and_cpu_models
    assert next(gpu.net_.module_.parameters()).device.type == "cuda"
    stages = set(gpu.net_.history[:, "stage"])
    assert stages == {1, 2}
    assert np.isfinite(gpu.net_.history[:, "train_loss"]).all()


def test_gpu_training_matches_cpu_training_in_quality(gpu_and_cpu_models, tiny_dataset):
    """cuDNN's kernels differ from the CPU's, so the weights differ in the
    last bits and training drifts; the detectors must be equally good."""
    gpu, cpu = gpu_and_cpu_models
    d = tiny_dataset
    from sklearn_sed import event_based_f1

    f_gpu = event_based_f1(d["y_test"], gpu.predict_events(d["F_test"]))
    f_cpu = event_based_f1(d["y_test"], cpu.predict_events(d["F_test"]))
    assert abs(f_gpu - f_cpu) <= 0.15, (f_gpu, f_cpu)


def test_predict_on_gpu_returns_numpy_arrays_of_the_documented_shapes(
    gpu_and_cpu_models, tiny_dataset
):
    gpu, _ = gpu_and_cpu_models
    F = tiny_dataset["F_test"]
    frames = gpu.predict_frames(F)
    assert isinstance(frames, np.ndarray)
    assert frames.dtype == np.float32
    assert frames.shape[0] == len(F)
    assert frames.shape[2] == len(gpu.classes_)
    clips = gpu.predict_proba(F)
    np.testing.assert_allclose(clips, frames.max(axis=1), atol=1e-6)


def test_model_saved_on_gpu_loads_on_cpu_with_the_same_events(
    gpu_and_cpu_models, tiny_dataset, tmp_path
):
    """cuDNN runs float32 convolutions in TF32 by default, so the GPU's
    probabilities differ from the CPU's by about 1e-3; the decisions agree
    wherever a probability is not within that band of its threshold."""
    gpu, _ = gpu_and_cpu_models
    F = tiny_dataset["F_test"]
    sklearn_sed.save(gpu, tmp_path / "gpu.sed")
    cpu = sklearn_sed.load(tmp_path / "gpu.sed", device="cpu")
    assert next(cpu.net_.module_.parameters()).device == torch.device("cpu")
    p_gpu, p_cpu = gpu.predict_frames(F), cpu.predict_frames(F)
    np.testing.assert_allclose(p_cpu, p_gpu, atol=5e-3)
    threshold = np.asarray(gpu.threshold_)
    clear = np.abs(p_gpu - threshold) > 5e-3
    np.testing.assert_array_equal(
        (p_gpu > threshold)[clear], (p_cpu > threshold)[clear]
    )
    if clear.all():  # no decision near its threshold: identical events
        assert cpu.predict_events(F) == gpu.predict_events(F)


def test_bfloat16_autocast_on_gpu_trains_and_predicts_close_to_float32(
    gpu_and_cpu_models, tiny_dataset
):
    gpu, _ = gpu_and_cpu_models
    F = tiny_dataset["F_test"]
    fp32 = gpu.predict_frames(F)
    d = tiny_dataset
    bf16 = PseudoLabelSED(
        **{
            **TINY_SED,
            "max_epochs": 2,
            "pseudo_labels": PseudoLabelSchedule(max_iter=1),
        },
        device="cuda",
        train_dtype="bfloat16",
    ).fit(d["F"], d["y_weak"], d["y_strong"])
    assert np.isfinite(bf16.net_.history[:, "train_loss"]).all()
    # Autocast inference of the float32-trained model: bfloat16 keeps 8 bits
    # of mantissa, so probabilities agree to about 1e-2.
    gpu.set_params(inference_dtype="bfloat16")
    try:
        auto = gpu.predict_frames(F)
    finally:
        gpu.set_params(inference_dtype="float32")
    assert auto.dtype == np.float32
    assert np.abs(auto - fp32).max() < 0.05
    assert np.abs(auto - fp32).max() > 0  # autocast did run in bfloat16


def test_log_mel_extractor_on_gpu_equals_the_cpu_extractor(tiny_dataset):
    audio = tiny_dataset["audio"][:20]  # more than one chunk of 16 clips
    cpu = LogMelExtractor(**TINY_FEATURES).fit(audio)
    gpu = LogMelExtractor(**TINY_FEATURES, device="cuda").fit(audio)
    assert gpu.data_min_ == pytest.approx(cpu.data_min_, abs=1e-3)
    assert gpu.data_max_ == pytest.approx(cpu.data_max_, abs=1e-3)
    np.testing.assert_allclose(gpu.transform(audio), cpu.transform(audio), atol=1e-4)


def test_log_mel_extractor_on_gpu_at_the_paper_settings_equals_cpu():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal((3, 441000))).astype(np.float32)
    cpu = LogMelExtractor(scaling=None).fit_transform(y)
    gpu = LogMelExtractor(scaling=None, device="cuda").fit_transform(y)
    assert gpu.shape == (3, 1024, 64)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)  # dB
