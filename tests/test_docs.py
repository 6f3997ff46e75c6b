import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # executes the documentation; runs in CI (make test)
@pytest.mark.parametrize("page", ["docs/sklearn.md", "docs/extending.md", "README.md"])
def test_docs_examples_run_as_written(page, tmp_path, monkeypatch):
    """Check every python block of the page runs, in order, in one namespace."""
    monkeypatch.chdir(tmp_path)  # examples may write files
    text = (ROOT / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"no python block in {page}"
    namespace = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page} block {i} failed:\n{block}") from exc
