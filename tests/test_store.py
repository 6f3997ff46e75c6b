import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sklearn_sed import LogMelExtractor, PseudoLabelSED
from sklearn_sed.labels import combine_labels
from sklearn_sed.metrics import event_f1_scorer
from sklearn_sed.store import FeatureView, extract_to_store, open_store
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
        PseudoLabelSED(**FAST_SED),
        {"threshold": [0.3, 0.6]},
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
    PseudoLabelSED(n_filters=1, n_blocks=1, max_epochs=1, pseudo_label=False,
                   batch_size=32, random_state=0, duration=1.0).fit(X, y_weak)
    numpy_peak = tracemalloc.get_traced_memory()[1]
    done.append(1); t.join()
    print(max(peak), numpy_peak)
""")


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
