"""The notebooks in examples/ run from top to bottom (their assert cells check every number)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def _nbclient():
    try:
        import nbclient
        import nbformat
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("nbclient is missing on CI: pip install -e '.[test]'")
        pytest.skip("nbclient not installed")
    return nbclient, nbformat


def test_both_languages_are_there():
    assert {p.name for p in NOTEBOOKS} >= {"bce_from_scratch.en.ipynb", "bce_from_scratch.zh.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nbclient, nbformat = _nbclient()
    notebook = nbformat.read(path, as_version=4)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = src + (os.pathsep + env_path if env_path else "")
    try:
        client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
        if not env_path:
            del os.environ["PYTHONPATH"]
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type == "execute_result"]
    markdown = [o["data"]["text/markdown"] for o in shown if "text/markdown" in o["data"]]
    assert markdown, "the worked example and the relations display as Markdown"
    for text in markdown:
        assert "$`" not in text  # $…$ and $$…$$ only: Jupyter, nbconvert and GitHub render them
