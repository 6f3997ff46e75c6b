import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

import sklearn_sed
from sklearn_sed import Augment, LogMelExtractor, PseudoLabelSED
from sklearn_sed.pipeline import make_pipeline
from tests.conftest import FAST_SED, TINY_FEATURES


@pytest.fixture(scope="module")
def fitted_pipe(tiny_dataset):
    """A fitted extractor + detector pipeline (do not mutate)."""
    d = tiny_dataset
    pipe = make_pipeline(
        LogMelExtractor(**TINY_FEATURES),
        PseudoLabelSED(**FAST_SED, augment=Augment(time_shift=0.1)),
    )
    return pipe.fit(d["audio"][:16], d["y_weak"][:16], d["y_strong"][:16])


@pytest.fixture
def saved(fitted_pipe, tmp_path):
    path = tmp_path / "model.sed"
    sklearn_sed.save(fitted_pipe, path)
    return path


def test_pipeline_round_trip_identical(fitted_pipe, saved, tiny_dataset):
    """Check a saved pipeline loads with identical frames and events."""
    X = tiny_dataset["audio_test"]
    loaded = sklearn_sed.load(saved)
    np.testing.assert_array_equal(
        loaded.predict_frames(X), fitted_pipe.predict_frames(X)
    )
    assert loaded.predict_events(X) == fitted_pipe.predict_events(X)
    assert loaded[0].data_min_ == fitted_pipe[0].data_min_
    assert loaded[-1].pseudo_label_history_ == fitted_pipe[-1].pseudo_label_history_


def test_estimator_save_method(fitted_sed, tiny_dataset, tmp_path):
    """Check PseudoLabelSED.save / sklearn_sed.load keep predictions."""
    sklearn_sed.save(fitted_sed, tmp_path / "sed.sed")
    loaded = sklearn_sed.load(tmp_path / "sed.sed")
    F = tiny_dataset["F_test"]
    np.testing.assert_array_equal(loaded.predict_proba(F), fitted_sed.predict_proba(F))
    assert list(loaded.classes_) == list(fitted_sed.classes_)
    # The estimator declares its fitted state once; the file holds all of it.
    with zipfile.ZipFile(tmp_path / "sed.sed") as zf:
        names = [n for n in zf.namelist() if n.endswith(".json")]
        entries = [json.loads(zf.read(n)) for n in names]
    fitted = next(e for e in _walk(entries) if e.get("type") == "PseudoLabelSED")
    assert set(fitted["fitted"]) == set(PseudoLabelSED.FITTED_ATTRIBUTES)
    for name in PseudoLabelSED.FITTED_ATTRIBUTES:
        np.testing.assert_equal(
            np.asarray(getattr(loaded, name), dtype=object),
            np.asarray(getattr(fitted_sed, name), dtype=object),
        )


def _walk(value):
    """Yield every dict nested in ``value``."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _payload_pickle(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Payload())


def test_pickle_payload_is_refused_without_running(tmp_path):
    """Check a pickle (joblib-style) file is refused and its payload never runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.sed"
    path.write_bytes(_payload_pickle(marker))
    with pytest.raises(ValueError, match="never unpickles"):
        sklearn_sed.load(path)
    assert not marker.exists()


def _rewrite(src_path, dst_path, edit):
    """Copy a model archive, passing each entry's bytes through ``edit``."""
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(dst_path, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, edit(item.filename, src.read(item.filename)))


def _edit_manifest(change):
    """An ``edit`` for :func:`_rewrite` that changes the JSON manifest."""

    def edit(name, data):
        if name != "sklearn_sed.json":
            return data
        manifest = json.loads(data)
        change(manifest)
        return json.dumps(manifest).encode()

    return edit


def test_pickle_inside_archive_is_refused(saved, tmp_path):
    """Check weights replaced by a pickle payload are refused, not run."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.sed"
    _rewrite(
        saved,
        evil,
        lambda name, data: (
            _payload_pickle(marker) if name.endswith(".safetensors") else data
        ),
    )
    with pytest.raises(ValueError, match="corrupted"):
        sklearn_sed.load(evil)
    assert not marker.exists()


def test_class_outside_allow_list_is_refused(saved, tmp_path):
    """Check a manifest naming e.g. os.system as optimizer is refused."""
    evil = tmp_path / "evil.sed"
    _rewrite(
        saved,
        evil,
        _edit_manifest(
            lambda m: m["steps"][-1]["params"].update(optimizer={"class": "os.system"})
        ),
    )
    with pytest.raises(ValueError, match="not an allowed class"):
        sklearn_sed.load(evil)


def test_truncated_file_gives_clear_error(saved, tmp_path):
    """Check a truncated model file is reported, not a raw traceback."""
    cut = tmp_path / "cut.sed"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        sklearn_sed.load(cut)


def test_newer_format_version_is_refused(saved, tmp_path):
    """Check a file from a newer format version asks for an upgrade."""
    newer = tmp_path / "newer.sed"
    _rewrite(saved, newer, _edit_manifest(lambda m: m.update(format_version=99)))
    with pytest.raises(ValueError, match=r"format version 99.*Consider upgrading"):
        sklearn_sed.load(newer)


def test_failed_save_keeps_the_old_file(saved, fitted_pipe, monkeypatch):
    """Check an error in the middle of a save leaves the previous file intact
    and no temporary file behind."""
    before = saved.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash)
    with pytest.raises(OSError, match="disk full"):
        sklearn_sed.save(fitted_pipe, saved)
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == [saved.name]


@pytest.mark.slow  # subprocess; runs in CI (make test)
def test_sigkill_during_save_keeps_the_old_file(saved, tmp_path):
    """Check a process killed (SIGKILL) half-way through a save leaves the
    previous model loadable."""
    before = saved.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, zipfile
        import sklearn_sed
        model = sklearn_sed.load({str(saved)!r})
        original = zipfile.ZipFile.writestr
        def writestr(self, name, data, *a, **k):
            original(self, name, data, *a, **k)
            if name.endswith(".safetensors"):  # half-way: manifest and weights written
                os.kill(os.getpid(), signal.SIGKILL)
        zipfile.ZipFile.writestr = writestr
        sklearn_sed.save(model, {str(saved)!r})
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=False
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert saved.read_bytes() == before
    sklearn_sed.load(saved)


def test_unsupported_module_is_refused_on_save(tiny_dataset, tmp_path):
    """Check a custom module that the safe format cannot name is refused."""
    from sklearn_sed.networks.resnet import ResNetSED

    class Custom(ResNetSED):
        def __init__(self, n_classes):
            super().__init__(n_classes, n_filters=2, n_blocks=1)

    d = tiny_dataset
    sed = PseudoLabelSED(
        Custom,
        **{k: v for k, v in FAST_SED.items() if k not in ("n_filters", "n_blocks")},
    )
    sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    with pytest.raises(TypeError, match=r"Consider joblib\.dump"):
        sklearn_sed.save(sed, tmp_path / "x.sed")
    assert not os.listdir(tmp_path)


def test_model_saved_with_cuda_device_loads_and_predicts_on_cpu(
    saved, fitted_pipe, tiny_dataset, tmp_path
):
    """Check, without a GPU, that a file recording device="cuda" (as a model
    trained on a GPU does) loads on a CPU-only machine and predicts exactly as
    before: `load` maps the device to the CPU and the weights carry none."""

    def to_cuda(manifest):
        for step in manifest["steps"]:
            if "device" in step.get("params", {}):
                step["params"]["device"] = "cuda:0"
                step["changed"] = True
        assert any(step.pop("changed", False) for step in manifest["steps"])

    gpu_file = tmp_path / "gpu.sed"
    _rewrite(saved, gpu_file, _edit_manifest(to_cuda))
    loaded = sklearn_sed.load(gpu_file)
    assert loaded[-1].device == "cpu"
    assert next(loaded[-1].net_.module_.parameters()).device == torch.device("cpu")
    audio = tiny_dataset["audio"][:4]
    np.testing.assert_array_equal(
        loaded.predict_frames(audio), fitted_pipe.predict_frames(audio)
    )


@pytest.mark.gpu
def test_gpu_trained_model_loads_on_cpu(tiny_dataset, tmp_path):
    """Check a model trained on CUDA loads and predicts on the CPU."""
    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, device="cuda")
    sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    sklearn_sed.save(sed, tmp_path / "gpu.sed")
    cpu = sklearn_sed.load(tmp_path / "gpu.sed", device="cpu")
    assert next(cpu.net_.module_.parameters()).device == torch.device("cpu")
    np.testing.assert_allclose(
        cpu.predict_frames(d["F"][:4]), sed.predict_frames(d["F"][:4]), atol=5e-3
    )


def test_a_file_that_names_the_networks_old_module_still_loads(tiny_dataset, tmp_path):
    """ResNetSED and CRNN moved to sklearn_sed.networks; a file written before
    (naming sklearn_sed.crnn.CRNN) loads and predicts as it did."""
    import functools

    from sklearn_sed.networks import CRNN

    d = tiny_dataset
    module = functools.partial(CRNN, n_filters=4, hidden_size=4, n_mels=32)
    sed = PseudoLabelSED(module, **{**FAST_SED, "n_filters": 2})
    sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    new = tmp_path / "new.sed"
    sklearn_sed.save(sed, new)

    def old_names(manifest):
        spec = manifest["steps"][0]["params"]["module"]
        assert spec["partial"] == "sklearn_sed.networks.crnn.CRNN"
        spec["partial"] = "sklearn_sed.crnn.CRNN"

    old = tmp_path / "old.sed"
    _rewrite(new, old, _edit_manifest(old_names))
    loaded = sklearn_sed.load(old)
    assert loaded.module.func is CRNN
    np.testing.assert_array_equal(
        loaded.predict_frames(d["F"][:4]), sed.predict_frames(d["F"][:4])
    )


def test_save_keeps_the_permissions_of_the_file_it_replaces(tiny_dataset, tmp_path):
    """Check saving over a private (0600) model file leaves it private."""
    import stat

    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED).fit(
        d["F"][:12], d["y_weak"][:12], d["y_strong"][:12]
    )
    path = tmp_path / "m.sed"
    sklearn_sed.save(sed, path)
    path.chmod(0o600)
    sklearn_sed.save(sed, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
