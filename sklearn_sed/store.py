"""On-disk feature store: extract once, train from a memory map batch by batch.

The DCASE2019 training set is 2,045 + 1,578 + 14,412 clips, and a 1024 x 64
float32 map is 256 KiB: 4.6 GB for all. :func:`extract_to_store` writes the
features chunk by chunk into a ``.npy`` file (float32 or float16) with a JSON
sidecar recording the extractor's settings and scaling; :func:`open_store`
memory-maps it read-only and refuses it when the settings differ from the
extractor at hand. :class:`~sklearn_sed.PseudoLabelSED` keeps a memory map as
it is and reads it one batch at a time, so peak memory stays flat as the
number of clips grows, and every fit and grid-search fold reuses the store.
"""

import json
import os

import numpy as np

from sklearn_sed._atomic import atomic_path

__all__ = ["FeatureView", "extract_to_store", "open_store"]


class FeatureView:
    """Lazy row selection of a feature store: indexing returns another view.

    scikit-learn's cross-validation indexes ``X[train]`` for every fold; on a
    plain memory map that copies the fold into memory. A view keeps the
    selected row numbers only, and rows are read when a batch is taken
    (``np.asarray(view[batch])``) or a single clip is indexed (``view[i]``).

    Parameters
    ----------
    array : numpy.memmap or ndarray of shape (n_clips, n_frames, n_mels)
        The store.
    indices : ndarray of int, default=None
        Selected rows; all rows when None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.store import FeatureView
    >>> view = FeatureView(np.arange(24.0).reshape(4, 3, 2))
    >>> sub = view[np.array([3, 1])]
    >>> sub.shape, np.asarray(sub)[0, 0].tolist()
    ((2, 3, 2), [18.0, 19.0])
    """

    ndim = 3

    def __init__(self, array, indices=None):
        self.array = array
        self.indices = np.arange(len(array)) if indices is None else np.asarray(indices)

    @property
    def shape(self):
        """(n_selected, n_frames, n_mels)."""
        return (len(self.indices), *self.array.shape[1:])

    @property
    def dtype(self):
        """Storage dtype."""
        return self.array.dtype

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.array[self.indices[key]])
        return FeatureView(self.array, self.indices[key])

    def __array__(self, dtype=None, copy=None):
        rows = self.indices
        if len(rows) and np.all(np.diff(rows) == 1):  # contiguous: one slice
            out = np.asarray(self.array[rows[0] : rows[-1] + 1])
        else:
            out = np.asarray(self.array[rows])
        return out if dtype is None else out.astype(dtype)


def _settings(extractor):
    from sklearn_sed.persistence import _jsonable

    params = extractor.get_params()
    for name in ("n_jobs", "verbose"):  # do not change the features
        params.pop(name)
    return _jsonable(
        {
            "params": params,
            "data_min_": getattr(extractor, "data_min_", None),
            "data_max_": getattr(extractor, "data_max_", None),
        }
    )


def extract_to_store(extractor, X, path, *, dtype="float32"):
    """Extract features of ``X`` into a memory-mapped ``.npy`` store.

    Parameters
    ----------
    extractor : LogMelExtractor
        Fitted extractor (fitted on ``X`` first when it is not).
    X : list of str or list of ndarray
        Audio clips.
    path : str or os.PathLike
        ``.npy`` file to write; its settings go to ``path + ".json"``.
    dtype : {"float32", "float16"}, default="float32"
        Storage type; float16 halves the disk and page-cache footprint.

    Returns
    -------
    features : FeatureView of shape (n_clips, n_frames, n_mels)
        The store, opened read-only (see :func:`open_store`).
    """
    from sklearn.utils.validation import check_is_fitted

    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16'. Got {dtype!r}.")
    if extractor.scaling == "dataset" and not hasattr(extractor, "data_min_"):
        extractor.fit(X)
    if extractor.scaling != "dataset" and not hasattr(extractor, "n_frames_"):
        extractor.fit(X)
    check_is_fitted(extractor, "n_frames_")
    path = os.fspath(path)
    n_clips = len(X)
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(
            tmp,
            mode="w+",
            dtype=dtype,
            shape=(n_clips, extractor.n_frames_, extractor.n_mels),
        )
        start = 0
        for chunk in extractor.iter_transform(X):
            out[start : start + len(chunk)] = chunk
            start += len(chunk)
        out.flush()
        del out
    meta = {"n_clips": n_clips, "dtype": dtype, **_settings(extractor)}
    with atomic_path(path + ".json") as tmp, open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    return open_store(path, extractor)


def open_store(path, extractor=None, *, lazy=True):
    """Memory-map a feature store, checking it matches ``extractor``.

    Parameters
    ----------
    path : str or os.PathLike
        Store written by :func:`extract_to_store`.
    extractor : LogMelExtractor, default=None
        When given, its settings and learnt range must equal the store's.
    lazy : bool, default=True
        Return a :class:`FeatureView` (cross-validation folds stay on disk)
        instead of the bare memory map.

    Returns
    -------
    features : FeatureView or numpy.memmap of shape (n_clips, n_frames, n_mels)
        Read-only.

    Raises
    ------
    ValueError
        If the settings differ (the message lists them).
    """
    path = os.fspath(path)
    if not os.path.isfile(path) or not os.path.isfile(path + ".json"):
        raise FileNotFoundError(
            f"Feature store {path!r} (or its settings file {path + '.json'!r}) "
            "does not exist. Consider extract_to_store."
        )
    with open(path + ".json") as f:
        meta = json.load(f)
    if extractor is not None:
        mine = _settings(extractor)
        diff = sorted(
            k
            for k in set(mine["params"]) | set(meta["params"])
            if mine["params"].get(k) != meta["params"].get(k)
        )
        diff += [k for k in ("data_min_", "data_max_") if mine[k] != meta[k]]
        if diff:
            raise ValueError(
                f"Feature store {path!r} was extracted with other settings: "
                f"{', '.join(diff)} differ. Consider extracting it again with this "
                "extractor."
            )
    array = np.load(path, mmap_mode="r")
    return FeatureView(array) if lazy else array
