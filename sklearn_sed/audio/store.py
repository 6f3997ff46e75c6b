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

import errno
import json
import os
import time

import numpy as np

from sklearn_sed._atomic import atomic_path
from sklearn_sed._json import to_jsonable

try:  # POSIX; elsewhere concurrent writers of one store are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

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
    >>> from sklearn_sed.audio.store import FeatureView
    >>> view = FeatureView(np.arange(24.0).reshape(4, 3, 2))
    >>> sub = view[np.array([3, 1])]
    >>> sub.shape, np.asarray(sub)[0, 0].tolist()
    ((2, 3, 2), [18.0, 19.0])
    """

    ndim = 3
    #: Marks a lazily read store: input checks keep it as it is instead of
    #: reading it into memory (duck typing, so that the checks need not
    #: import this module).
    lazy_rows = True

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


class _CommitLock:
    """Exclusive lock on ``path + ".lock"``, taken by :meth:`acquire`.

    Held from :meth:`acquire` until the ``with`` block ends.
    """

    def __init__(self, path):
        self.path = path + ".lock"
        self._file = None

    def __enter__(self):
        return self

    def acquire(self):
        self._file = open(self.path, "a")
        if fcntl is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()  # releases the lock
        return False


def _identity(st):
    """Return what ties a settings file to its data file (inode, size, mtime)."""
    return {"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


#: Parameters that do not change the features (a store stays valid), and the
#: checkpoint's place on disk (its SHA-256 is compared instead).
_NEUTRAL_PARAMS = ("n_jobs", "verbose", "device", "batch_size", "checkpoint")


def _fitted(extractor, name):
    """Return a fitted attribute of the extractor or of its steps, or None."""
    for obj in (
        extractor,
        getattr(extractor, "logmel_", None),
        getattr(extractor, "embedding_", None),
    ):
        if obj is not None and getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return None


def _settings(extractor):
    params = {
        k: v
        for k, v in extractor.get_params(deep=True).items()
        if k.rpartition("__")[2] not in _NEUTRAL_PARAMS and not hasattr(v, "get_params")
    }
    return to_jsonable(
        {
            "params": params,
            "data_min_": _fitted(extractor, "data_min_"),
            "data_max_": _fitted(extractor, "data_max_"),
            "checkpoint_sha256_": _fitted(extractor, "checkpoint_sha256_"),
        }
    )


def _fit_unless_fitted(extractor, X):
    """Fit a LogMelExtractor as before; fit any other extractor once."""
    if getattr(extractor, "scaling", None) == "dataset":
        if not hasattr(extractor, "data_min_"):
            extractor.fit(X)
    elif not hasattr(extractor, "n_frames_"):
        extractor.fit(X)


def extract_to_store(extractor, X, path, *, dtype="float32"):
    """Extract features of ``X`` into a memory-mapped ``.npy`` store.

    Parameters
    ----------
    extractor : LogMelExtractor, PretrainedEmbedding or FusedFeatures
        Fitted extractor (fitted on ``X`` first when it is not): anything
        with ``iter_transform``, ``n_frames_`` and ``get_feature_names_out``.
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
    _fit_unless_fitted(extractor, X)
    check_is_fitted(extractor, "n_frames_")
    n_features = len(extractor.get_feature_names_out())
    path = os.fspath(path)
    n_clips = len(X)
    # The data and its settings are committed as one unit: the settings name
    # the data file's identity, and both renames happen under one lock, so a
    # crash between them or two writers at once leave a pair that open_store
    # recognises as not belonging together, never one it accepts.
    with _CommitLock(path) as lock:
        with atomic_path(path, suffix=".npy") as data_tmp:
            out = np.lib.format.open_memmap(
                data_tmp,
                mode="w+",
                dtype=dtype,
                shape=(n_clips, extractor.n_frames_, n_features),
            )
            _reserve(data_tmp)
            start = 0
            for chunk in extractor.iter_transform(X):
                out[start : start + len(chunk)] = chunk
                start += len(chunk)
            out.flush()
            del out
            meta = {
                "n_clips": n_clips,
                "clips": _clips_key(X),
                "dtype": dtype,
                "data_file": _identity(os.stat(data_tmp)),
                **_settings(extractor),
            }
            with atomic_path(path + ".json") as tmp:
                with open(tmp, "w") as f:
                    json.dump(meta, f, indent=1)
                lock.acquire()
        # Opened under the lock: another writer of other settings committing
        # right after this one cannot make this call return (or refuse) its
        # features; the open file stays this commit's after a later rename.
        return open_store(path, extractor)


def _reserve(path):
    """Allocate the disk blocks of a new memory-mapped file now.

    A memory map of a sparse file on a full disk is killed by SIGBUS at the
    first page that cannot be written; reserving the blocks first turns that
    into an ``OSError`` ("No space left on device") before any work, and the
    temporary file is removed.
    """
    size = os.path.getsize(path)
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - not Linux
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # e.g. tmpfs variants
            return
        raise OSError(
            exc.errno,
            f"No space left for the {size}-byte feature store in "
            f"{os.path.dirname(os.path.abspath(path))!r} ({exc.strerror}); "
            "free some space or choose another folder",
        ) from None
    finally:
        os.close(fd)


def _clips_key(X):
    """Hash what the clips are: paths, sizes and modification times, or bytes.

    A store opened for another clip list is then refused.
    """
    import joblib

    items = []
    for item in X:
        if isinstance(item, (str, os.PathLike)):
            try:
                st = os.stat(item)
                items.append((os.fspath(item), st.st_size, st.st_mtime_ns))
            except OSError:
                items.append((os.fspath(item), None, None))
        else:
            items.append(joblib.hash(np.asarray(item)))
    return joblib.hash(items)


def _open_matching(path, *, attempts=100):
    """Open the data file and the settings that belong to it.

    A writer renames the settings, then the data; a reader between the two
    sees a pair that does not match and tries again.
    """
    for _ in range(attempts):
        with open(path + ".json") as f:
            meta = json.load(f)
        fh = open(path, "rb")
        expected = meta.get("data_file") if isinstance(meta, dict) else None
        if expected is None or _identity(os.fstat(fh.fileno())) == expected:
            return meta, fh
        fh.close()
        time.sleep(0.01)
    raise ValueError(
        f"Feature store {path!r}: its settings file {path + '.json'!r} does not "
        "belong to its data (an extraction was interrupted between the two, or "
        "is running now). Extract it again."
    )


def open_store(path, extractor=None, *, lazy=True, X=None):
    """Memory-map a feature store, checking it matches ``extractor``.

    Parameters
    ----------
    path : str or os.PathLike
        Store written by :func:`extract_to_store`.
    extractor : LogMelExtractor, PretrainedEmbedding or FusedFeatures, default=None
        When given, its settings, learnt range and checkpoint hash must
        equal the store's.
    lazy : bool, default=True
        Return a :class:`FeatureView` (cross-validation folds stay on disk)
        instead of the bare memory map.
    X : list of str or list of ndarray, default=None
        When given, the clips the store must hold: a store extracted from
        another clip list (other files, or files changed since) is refused.

    Returns
    -------
    features : FeatureView or numpy.memmap of shape (n_clips, n_frames, n_mels)
        Read-only.

    Raises
    ------
    ValueError
        If the settings differ (the message lists them), the clips differ
        from ``X``, or the data file is not a float feature array of the
        size its header states.
    """
    path = os.fspath(path)
    if not os.path.isfile(path) or not os.path.isfile(path + ".json"):
        raise FileNotFoundError(
            f"Feature store {path!r} (or its settings file {path + '.json'!r}) "
            "does not exist. Consider extract_to_store."
        )
    meta, fh = _open_matching(path)
    with fh:
        array = _memmap(fh, path)
    if X is not None and meta.get("clips") != _clips_key(X):
        raise ValueError(
            f"Feature store {path!r} holds other clips than X (another list, or "
            "files changed since it was extracted). Consider extract_to_store "
            "with this X."
        )
    if extractor is not None:
        mine = _settings(extractor)
        diff = sorted(
            k
            for k in set(mine["params"]) | set(meta["params"])
            if mine["params"].get(k) != meta["params"].get(k)
            and k.rpartition("__")[2] not in _NEUTRAL_PARAMS  # older stores had some
        )
        diff += [
            k
            for k in ("data_min_", "data_max_", "checkpoint_sha256_")
            if mine[k] != meta.get(k)
        ]
        if diff:
            raise ValueError(
                f"Feature store {path!r} was extracted with other settings: "
                f"{', '.join(diff)} differ. Consider extracting it again with this "
                "extractor."
            )
    return FeatureView(array) if lazy else array


def _memmap(fh, path):
    """Memory-map the ``.npy`` data of an open file (the very inode opened).

    Only a 3-D float16 or float32 array whose bytes are all in the file is
    mapped: an object array would be read as pointers, and a truncated file
    would kill the reader with SIGBUS.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        read_header = {
            (1, 0): fmt.read_array_header_1_0,
            (2, 0): fmt.read_array_header_2_0,
        }[version]
        shape, fortran, dtype = read_header(fh)
    except (ValueError, KeyError, OSError, SyntaxError) as exc:
        raise ValueError(
            f"Feature store {path!r} is not a .npy array ({exc}). Extract it again."
        ) from None
    if dtype not in (np.float16, np.float32) or len(shape) != 3:
        raise ValueError(
            f"Feature store {path!r} holds a {dtype} array of shape {shape}; a "
            "store is a 3-D float16 or float32 array. Extract it again."
        )
    needed = fh.tell() + int(np.prod(shape)) * dtype.itemsize
    if os.fstat(fh.fileno()).st_size < needed:
        raise ValueError(
            f"Feature store {path!r} is truncated: its header states {needed} "
            f"bytes, the file has {os.fstat(fh.fileno()).st_size}. Extract it "
            "again."
        )
    return np.memmap(
        fh,
        dtype=dtype,
        mode="r",
        shape=shape,
        offset=fh.tell(),
        order="F" if fortran else "C",
    )
