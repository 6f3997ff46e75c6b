"""One way to write files atomically: a temporary file, fsync, then rename.

Every file the library writes (model files, checkpoints, feature stores, TSV
files) goes through :func:`atomic_path`, so a crash in the middle of a write
never leaves a half-written file in place of a good one, nor a temporary file
behind after an error.
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path, *, suffix=""):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    suffix : str, default=""
        Ending of the temporary file's name (some writers need ``.npy``).

    Yields
    ------
    tmp : str
        Where to write. It is fsynced and renamed over ``path`` when the block
        ends normally, and removed when it raises.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_sed._atomic import atomic_path
    >>> target = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with atomic_path(target) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(target).read()
    'done'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the permissions a plain
    # open() would, so that shared model and TSV files stay readable.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
