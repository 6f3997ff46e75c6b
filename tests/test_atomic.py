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
