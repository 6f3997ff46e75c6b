"""The API reference builds from the docstrings with no warning at all: a
broken cross-reference, a docstring numpydoc cannot parse, or an object the
reference names that no longer exists fails this test."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # executes the documentation; runs in CI (make test)
def test_api_reference_builds_without_a_warning(tmp_path):
    sphinx_cmd = pytest.importorskip("sphinx.cmd.build")
    pytest.importorskip("numpydoc")
    warnings = tmp_path / "warnings.txt"
    status = sphinx_cmd.build_main(
        [
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            "-w",
            str(warnings),
            "-d",
            str(tmp_path / "doctrees"),
            str(ROOT / "docs" / "api"),
            str(tmp_path / "html"),
        ]
    )
    assert status == 0, warnings.read_text()
    assert (
        tmp_path / "html" / "generated" / "sklearn_sed.PseudoLabelSED.html"
    ).is_file()
