import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sklearn_sed import Decoder, LogMelExtractor, PseudoLabelSED
from sklearn_sed.audio.store import FeatureView, extract_to_store, open_store
from sklearn_sed.labels import combine_labels
from sklearn_sed.metrics.scoring import event_f1_scorer
from tests.conftest import FAST_SED, TINY_FEATURES


def test_store_equals_in_memory_features(tiny_dataset, tmp_path):
    """Check a float32 store holds exactly the in-memory features."""
    ext = LogMelExtractor(**TINY_FEATURES).fit(tiny_dataset["audio"])
    store = extract_to_store(ext, tiny_dataset["audio"], tmp_path / "f.npy")
    assert isinstance(store, FeatureView)
    assert isinstance(store.array, np.memmap)
    np.testing.assert_array_equal(
        np.asarray(store), ext.transform(tiny_dataset["audio"])
    )


def test_training_from_float16_store(tiny_dataset, tmp_path):
    """Check PseudoLabelSED trains and predicts from a float16 memory map."""
    d = tiny_dataset
    ext = LogMelExtractor(**TINY_FEATURES)
    store = extract_to_store(
        ext, d["audio"][:16], tmp_path / "f16.npy", dtype="float16"
    )
    assert store.dtype == np.float16
    sed = PseudoLabelSED(**FAST_SED).fit(store, d["y_weak"][:16], d["y_strong"][:16])
    frames = sed.predict_frames(store)
    assert frames.dtype == np.float32
    assert frames.shape[0] == 16


def test_grid_search_folds_stay_on_disk(tiny_dataset, tmp_path, monkeypatch):
    """Check cross-validation folds of a store are lazy views, not copies, and
    a grid search runs on them."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.utils import _safe_indexing

    d = tiny_dataset
    store = extract_to_store(
        LogMelExtractor(**TINY_FEATURES), d["audio"][:16], tmp_path / "f.npy"
    )
    fold = _safe_indexing(store, np.arange(8))
    assert isinstance(fold, FeatureView)
    assert fold.array is store.array
    seen = []
    original = PseudoLabelSED.fit

    def spy(self, X, *args, **kwargs):
        seen.append(type(X).__name__)
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(PseudoLabelSED, "fit", spy)
    GridSearchCV(
        PseudoLabelSED(**FAST_SED, decoder=Decoder()),
        {"decoder__threshold": [0.3, 0.6]},
        cv=KFold(2),
        scoring=event_f1_scorer,
        refit=False,
    ).fit(store, combine_labels(d["y_weak"][:16], d["y_strong"][:16]))
    assert seen == ["FeatureView"] * 4


def test_store_settings_mismatch_is_detected(tiny_dataset, tmp_path):
    """Check a store opened with a different extractor is refused, naming the
    differing settings."""
    ext = LogMelExtractor(**TINY_FEATURES)
    extract_to_store(ext, tiny_dataset["audio"][:4], tmp_path / "f.npy")
    other = LogMelExtractor(**{**TINY_FEATURES, "n_mels": 16}).fit(
        tiny_dataset["audio"][:4]
    )
    with pytest.raises(ValueError, match="n_mels"):
        open_store(tmp_path / "f.npy", other)
    assert open_store(tmp_path / "f.npy", ext).shape[0] == 4
    with pytest.raises(FileNotFoundError, match="extract_to_store"):
        open_store(tmp_path / "missing.npy")


PEAK = textwrap.dedent("""
    import sys, threading, time, tracemalloc
    import numpy as np
    from sklearn_sed import PseudoLabelSED

    def anon():  # resident anonymous memory: excludes the mapped store file
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

    n = int(sys.argv[1]); path = sys.argv[2]
    rng = np.random.default_rng(0)
    store = np.lib.format.open_memmap(path, mode="w+", dtype="float16",
                                      shape=(n, 256, 64))
    for s in range(0, n, 100):
        store[s:s + 100] = rng.random((min(100, n - s), 256, 64), dtype=np.float32)
    store.flush(); del store
    X = np.load(path, mmap_mode="r")
    y_weak = [["a"] if i % 2 else ["b"] for i in range(n)]
    peak, done = [anon()], []
    def watch():
        while not done:
            peak.append(anon()); time.sleep(0.005)
    t = threading.Thread(target=watch); t.start()
    tracemalloc.start()  # traces every NumPy array allocation exactly
    PseudoLabelSED(n_filters=1, n_blocks=1, max_epochs=1, pseudo_labels=None,
                   batch_size=32, random_state=0, duration=1.0).fit(X, y_weak)
    numpy_peak = tracemalloc.get_traced_memory()[1]
    done.append(1); t.join()
    print(max(peak), numpy_peak)
""")


@pytest.mark.slow  # memory; runs in CI (make test)
def test_peak_memory_flat_with_store_size(tmp_path):
    """Check training from a store: 5x more clips (39 MB more float16 data, 79 MB
    as float32 in memory) leaves the peak memory nearly unchanged.

    Two measures: the peak of NumPy allocations (tracemalloc, exact, so held to
    1/16 of a float32 copy) and the sampled peak anonymous RSS, which also sees
    torch but varies by some 20 MB from run to run with the allocator (held to
    half a float32 copy)."""
    rss, numpy_peak = {}, {}
    for n in (300, 1500):
        out = subprocess.run(
            [sys.executable, "-c", PEAK, str(n), str(tmp_path / f"{n}.npy")],
            capture_output=True,
            text=True,
            check=True,
        )
        rss[n], numpy_peak[n] = map(int, out.stdout.strip().splitlines()[-1].split())
    in_memory = (1500 - 300) * 256 * 64 * 4  # what loading as float32 would add
    assert numpy_peak[1500] - numpy_peak[300] < in_memory / 16, numpy_peak
    assert rss[1500] - rss[300] < in_memory / 2, rss


def test_settings_of_another_extraction_are_refused(tiny_dataset, tmp_path):
    """Check a kill between the two renames of a commit (new settings, old data,
    or the reverse) is recognised: open_store refuses the pair."""
    import shutil

    audio = tiny_dataset["audio"][:4]
    path = str(tmp_path / "f.npy")
    ext_a = LogMelExtractor(**TINY_FEATURES)
    extract_to_store(ext_a, audio, path)
    shutil.copy(path + ".json", tmp_path / "a.json")
    ext_b = LogMelExtractor(**{**TINY_FEATURES, "top_db": 40.0})
    extract_to_store(ext_b, audio, path)
    shutil.copy(tmp_path / "a.json", path + ".json")  # settings A, data B
    with pytest.raises(ValueError, match="does not belong to its data"):
        open_store(path, ext_a)


_WRITER = """
import os, sys
import numpy as np
from sklearn_sed import LogMelExtractor
from sklearn_sed.audio.store import extract_to_store
from tests.conftest import TINY_FEATURES
path, top_db, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
clips = [np.sin(np.arange(8000) * 0.01 * (k + 1)).astype(np.float32) for k in range(2)]
ext = LogMelExtractor(**{**TINY_FEATURES, "top_db": top_db, "scaling": "clip"})
n = 0
while not os.path.exists(stop):
    extract_to_store(ext, clips, path)
    n += 1
    open(stop + f".{top_db}", "w").write(str(n))
"""


@pytest.mark.slow  # subprocess; runs in CI (make test)
def test_concurrent_rewrites_never_give_a_reader_the_other_settings(tmp_path):
    """Check two processes re-extracting one store with different settings
    while this one opens it: every open gives the features of the settings it
    asked for, or a clear ValueError, never the other settings' features."""
    import os
    import time

    path = str(tmp_path / "f.npy")
    stop = str(tmp_path / "stop")
    clips = [
        np.sin(np.arange(8000) * 0.01 * (k + 1)).astype(np.float32) for k in range(2)
    ]
    exts = {
        db: LogMelExtractor(**{**TINY_FEATURES, "top_db": db, "scaling": "clip"})
        for db in (30.0, 80.0)
    }
    expected = {db: e.fit(clips).transform(clips) for db, e in exts.items()}
    assert not np.allclose(expected[30.0], expected[80.0])
    extract_to_store(exts[30.0], clips, path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, path, str(db), stop], cwd=root)
        for db in (30.0, 80.0)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(os.path.exists(f"{stop}.{db}") for db in (30.0, 80.0)):
            assert time.monotonic() < deadline, "the writers did not start"
            time.sleep(0.1)
        opened = wrong = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            for db, ext in exts.items():
                try:
                    features = np.asarray(open_store(path, ext))
                except ValueError:
                    continue  # the other settings are on disk now: refused
                opened += 1
                wrong += not np.array_equal(features, expected[db])
    finally:
        open(stop, "w").close()
        for w in writers:
            w.wait(timeout=60)
    rewrites = sum(int(open(f"{stop}.{db}").read()) for db in (30.0, 80.0))
    assert rewrites > 2
    assert opened > 0
    assert wrong == 0


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_extract_to_store_opens_its_features_while_it_holds_the_lock(
    tmp_path, monkeypatch
):
    """Check the store that extract_to_store returns is opened under its commit
    lock: a writer of other settings committing right after it cannot make it
    return (or refuse with a ValueError) the other settings' features, which
    crashed the writers of the concurrent-rewrite test once in a full run."""
    import fcntl

    from sklearn_sed.audio import store as store_module

    path = str(tmp_path / "f.npy")
    held = []
    real_open_store = store_module.open_store

    def spy(p, *args, **kwargs):
        with open(p + ".lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(True)
        return real_open_store(p, *args, **kwargs)

    monkeypatch.setattr(store_module, "open_store", spy)
    clips = [np.sin(np.arange(8000) * 0.01).astype(np.float32)]
    ext = LogMelExtractor(**{**TINY_FEATURES, "scaling": "clip"})
    features = extract_to_store(ext, clips, path)
    assert held == [True]
    np.testing.assert_array_equal(np.asarray(features), ext.transform(clips))


def _small_store(tiny_dataset, tmp_path, n=4):
    d = tiny_dataset
    ext = LogMelExtractor(**TINY_FEATURES)
    path = tmp_path / "f.npy"
    extract_to_store(ext, d["audio"][:n], path)
    return ext, path


def _settings_without_identity(path):
    """Drop the data file's identity from a store's settings, as a store
    written before it was recorded has none (and a hostile one may not)."""
    import json

    meta_path = path.with_name(path.name + ".json")
    meta = json.loads(meta_path.read_text())
    meta.pop("data_file")
    meta_path.write_text(json.dumps(meta))


def test_an_object_array_store_is_refused_not_mapped(tiny_dataset, tmp_path):
    """Check a store whose .npy holds an object array (pointers, were it
    mapped: a segmentation fault) is refused with the file named."""
    _, path = _small_store(tiny_dataset, tmp_path)
    objects = np.empty((4, 2, 2), dtype=object)
    np.save(path, objects, allow_pickle=True)
    _settings_without_identity(path)
    for lazy in (True, False):
        with pytest.raises(ValueError, match="holds a object array"):
            open_store(path, lazy=lazy)


def test_a_truncated_store_is_refused_not_mapped(tiny_dataset, tmp_path):
    """Check a store cut short (reading past its end would be SIGBUS) is
    refused with the sizes."""
    _, path = _small_store(tiny_dataset, tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    _settings_without_identity(path)
    with pytest.raises(ValueError, match="is truncated"):
        open_store(path)


def test_a_store_of_other_clips_is_refused(tiny_dataset, tmp_path):
    """Check open_store(..., X=) refuses a store extracted from another clip
    list instead of returning its old features."""
    d = tiny_dataset
    ext, path = _small_store(tiny_dataset, tmp_path)
    assert len(open_store(path, ext, X=d["audio"][:4])) == 4
    with pytest.raises(ValueError, match="holds other clips than X"):
        open_store(path, ext, X=d["audio"][4:8])


def test_a_full_disk_is_a_clean_error_and_leaves_no_temporary(
    tiny_dataset, tmp_path, monkeypatch
):
    """Check extract_to_store onto a full disk raises "No space left" before
    writing (the memory map was killed by SIGBUS) and leaves no file."""
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left"):
        _small_store(tiny_dataset, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
