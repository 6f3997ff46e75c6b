import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest
import torch

import sklearn_sed
from sklearn_sed import Decoder, PseudoLabelSchedule

# The recipes train with compile="auto": the training probe would compile each
# tiny test network in a child process. Tests of the probe switch it on with a
# cache folder of their own (tests/test_fast_path.py); everywhere else "auto"
# trains float32 and eager, and no test writes to the user's cache folder.
os.environ["SKLEARN_SED_PROBE"] = "off"
if "SKLEARN_SED_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="sklearn-sed-test-cache-")
    os.environ["SKLEARN_SED_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)  # left no trace


@pytest.fixture(scope="package")
def demo_run(tmp_path_factory):
    """`sklearn-sed demo` at a tiny size, run once in a child process.

    Its own interpreter, with every default resolved as on this machine: an
    abort there is a signal, not the end of the test run. The tests of the
    main job share it (the demo takes some 13 s).

    Returns
    -------
    proc : subprocess.CompletedProcess
        The finished child, its output captured as text.
    out : pathlib.Path
        The demo's output folder.
    """
    out = tmp_path_factory.mktemp("demo")
    code = "import sys; from sklearn_sed.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["demo", "--n-train", "8", "--n-valid", "4", "--n-dev", "4"]
    argv += ["--max-epochs", "2", "--max-iter", "1", "--output-dir", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return proc, out


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="needs --runslow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)  # noqa: NPY002 - seeds libraries using the global RNG
    torch.manual_seed(0)


# Settings of a tiny, fast feature extractor and network used across tests.
TINY_FEATURES = dict(
    sr=16000,
    duration=2.0,
    n_fft=512,
    win_length=320,
    hop_length=125,
    n_mels=32,
    fmax=8000,
)
# An 8 kHz, 1 s extractor for unit tests of the features themselves.
SMALL_FEATURES = dict(
    sr=8000,
    duration=1.0,
    n_fft=256,
    win_length=160,
    hop_length=125,
    n_mels=16,
    fmax=4000,
)
TINY_DATA = dict(duration=2.0, sr=16000, n_classes=2, max_events=2)
TINY_SED = dict(
    n_filters=8,
    n_blocks=1,
    max_epochs=15,
    pseudo_labels=PseudoLabelSchedule(max_iter=3, delta=0.1),
    batch_size=16,
    duration=2.0,
    optimizer=torch.optim.Adam,
    lr=0.003,
    decoder=Decoder(median_filter_sec=0.2),
    random_state=0,
)

# The cheapest training that still runs both stages (one epoch each).
FAST_SED = dict(
    n_filters=2,
    n_blocks=1,
    max_epochs=1,
    pseudo_labels=PseudoLabelSchedule(max_iter=1),
    duration=2.0,
    random_state=0,
    batch_size=16,
)
# The parameter objects above are shared by every estimator built from these
# dicts: tests replace them (``set_params(decoder=Decoder(...))``), never
# set their fields in place.


def make_tiny_dataset(n_train=64, n_test=24):
    """Features and labels of a tiny two-class problem: half the training
    clips weak, the test clips strong; the same on every call."""
    from sklearn_sed import LogMelExtractor
    from sklearn_sed.datasets import make_domestic_soundscapes

    X, y_weak, y_strong = make_domestic_soundscapes(
        n_train, weak_fraction=0.5, random_state=0, **TINY_DATA
    )
    X_test, _, y_test = make_domestic_soundscapes(
        n_test, weak_fraction=0.0, random_state=1, **TINY_DATA
    )
    ext = LogMelExtractor(**TINY_FEATURES)
    return {
        "audio": X,
        "F": ext.fit_transform(X),
        "y_weak": y_weak,
        "y_strong": y_strong,
        "audio_test": X_test,
        "F_test": ext.transform(X_test),
        "y_test": y_test,
    }


@pytest.fixture(scope="package")
def tiny_dataset():
    """:func:`make_tiny_dataset` once per test run (do not mutate)."""
    return make_tiny_dataset()


@pytest.fixture(scope="package")
def fitted_sed(tiny_dataset):
    """A PseudoLabelSED fitted on the tiny dataset (do not mutate)."""
    from sklearn_sed import PseudoLabelSED

    d = tiny_dataset
    return PseudoLabelSED(**TINY_SED).fit(d["F"], d["y_weak"], d["y_strong"])


# -- model files to alter (tests/test_model_file_attacks.py, test_hostile_round4.py)
MANIFEST = "sklearn_sed.json"


@pytest.fixture(scope="module")
def model_bytes(tiny_dataset, tmp_path_factory):
    """The bytes of a saved pipeline and its members (do not mutate)."""
    from sklearn_sed import LogMelExtractor, PseudoLabelSED
    from sklearn_sed.pipeline import make_pipeline

    d = tiny_dataset
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST_SED))
    pipe.fit(d["audio"][:12], d["y_weak"][:12], d["y_strong"][:12])
    path = tmp_path_factory.mktemp("model") / "model.sed"
    sklearn_sed.save(pipe, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return path.read_bytes(), members


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """Write ``members`` (name: bytes) as a ZIP file at ``path``."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def with_manifest(members, tmp_path, change):
    """Write a model file whose manifest ``change`` altered in place."""
    manifest = json.loads(members[MANIFEST])
    change(manifest)
    members = {**members, MANIFEST: json.dumps(manifest).encode()}
    return write_zip(tmp_path / "altered.sed", members)


def sed_entry(manifest):
    """The PseudoLabelSED step of a manifest."""
    return next(s for s in manifest["steps"] if s["type"] == "PseudoLabelSED")
