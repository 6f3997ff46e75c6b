import os
import stat

import pytest

from sklearn_sed._atomic import atomic_path
from sklearn_sed.datasets import read_strong_tsv, write_events_tsv


def test_atomic_path_replaces_on_success_with_normal_permissions(tmp_path):
    """Check the target gets the new content and umask-based permissions."""
    target = tmp_path / "x.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
        assert target.read_text() == "old"  # untouched until the block ends
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["x.txt"]


def test_atomic_path_keeps_old_file_and_cleans_up_on_error(tmp_path):
    """Check an error inside the block leaves the old file and no temporary."""
    target = tmp_path / "events.tsv"
    write_events_tsv(target, {"a.wav": [(0.0, 1.0, "Dog")]})
    with pytest.raises(TypeError):
        write_events_tsv(target, {"a.wav": [(0.0, None, "Dog")]})  # bad offset
    assert read_strong_tsv(target) == {"a.wav": [(0.0, 1.0, "Dog")]}
    assert os.listdir(tmp_path) == ["events.tsv"]


@pytest.mark.slow  # subprocess; runs in CI (make test)
def test_stale_temporary_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """Check a writer killed with SIGKILL leaves a temporary that the next write
    of the same target removes (and a live writer's temporary is kept)."""
    import signal
    import subprocess
    import sys
    import textwrap

    target = tmp_path / "model.sed"
    script = textwrap.dedent(
        f"""
        import os, signal
        from sklearn_sed._atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            open(tmp, "wb").write(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    stale = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert len(stale) == 1
    live = tmp_path / f".model.sed.tmp-{os.getppid()}-abc"  # a running process
    live.write_bytes(b"busy")
    other = tmp_path / ".other.sed.tmp-999999999-abc"  # another target's
    other.write_bytes(b"other")
    with atomic_path(target) as tmp, open(tmp, "w") as f:
        f.write("new")
    assert sorted(os.listdir(tmp_path)) == sorted(["model.sed", live.name, other.name])
