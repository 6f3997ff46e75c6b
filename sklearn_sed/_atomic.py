"""One way to write files atomically: a temporary file, fsync, then rename.

Every file the library writes (model files, checkpoints, feature stores, TSV
files) goes through :func:`atomic_path`, so a crash in the middle of a write
never leaves a half-written file in place of a good one, nor a temporary file
behind after an error. A process killed outright (SIGKILL, power loss) cannot
clean up: its temporary file, ``.<target name>.tmp-<pid>-<random>`` beside the
target, stays until the next write of the same target, which removes the
temporaries of that target whose writing process no longer runs.
"""

import contextlib
import glob
import os
import stat
import tempfile

__all__ = ["atomic_path"]


def _temp_prefix(path):
    return f".{os.path.basename(path)[:120]}.tmp-"


def _process_runs(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid: leave the file
    return True


def remove_stale_temporaries(path):
    """Remove temporaries of ``path`` left by writers that no longer run.

    Parameters
    ----------
    path : str or os.PathLike
        The target file.

    Returns
    -------
    removed : list of str
        The files removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = os.path.join(folder, glob.escape(_temp_prefix(path)))
    removed = []
    for tmp in glob.glob(prefix + "*"):
        pid = os.path.basename(tmp)[len(_temp_prefix(path)) :].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_runs(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


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
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{_temp_prefix(path)}{os.getpid()}-", suffix=suffix, dir=folder
    )
    os.close(fd)
    # mkstemp makes the file private (0600). A file replaced keeps its own
    # permissions (a private model stays private); a new one gets those a
    # plain open() would give, so that shared model and TSV files stay
    # readable.
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
