"""Every chapter's ``gpu`` profile on the CPU, shrunk: ``TLCOURSE_PROFILE=gpu TLCOURSE_SMOKE=1``.

Each notebook runs top to bottom in its own kernel with the gpu profile's switches (its models,
methods, branches of the cells) and the chapter's ``smoke`` sizes (a few steps, a few rows), so that no
gpu-only code waits for a GPU to crash. A few steps learn nothing, so the claims cannot hold: the
kernel drops the ``assert`` statements of the notebook's cells (an IPython AST transformer, nothing
in the package), and the exercises' self-checks print without raising (no
``TLCOURSE_STRICT_CHECKS``). Chapter 5's T5 v1.1 is a one-layer random copy of its architecture
(``toy_t5.save_toy_t5_v1_1``); ``test_t5.py`` covers the fallback when it cannot be loaded.
``make smoke`` runs these two at a time, one thread each.
"""
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from toy_t5 import save_toy_t5_v1_1

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))

NO_ASSERTS = """\
import ast as _ast
class _NoAsserts(_ast.NodeTransformer):  # a smoke run: after a few steps no claim holds
    def visit_Assert(self, node):
        return _ast.copy_location(_ast.Pass(), node)
get_ipython().ast_transformers.append(_NoAsserts())
"""

pytestmark = pytest.mark.smoke


def is_claim(cell):
    """A claim check: a collapsed cell (``hide-input``) that asserts and prints "Checked: ..."."""
    return (cell.cell_type == "code" and "hide-input" in cell.metadata.get("tags", [])
            and "assert " in cell.source)


def cell_seconds(cell):
    from datetime import datetime
    ex = cell.metadata.get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds() if start and end else 0.0


@pytest.fixture(scope="session")
def toy_t5(tmp_path_factory):
    return save_toy_t5_v1_1(tmp_path_factory.mktemp("toy-t5-v1_1-small"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_gpu_profile_runs(path, toy_t5, monkeypatch):
    monkeypatch.setenv("TLCOURSE_PROFILE", "gpu")
    monkeypatch.setenv("TLCOURSE_SMOKE", "1")
    monkeypatch.delenv("TLCOURSE_STRICT_CHECKS", raising=False)
    monkeypatch.setenv("TLCOURSE_MODEL_T5_V1_1_SMALL", str(toy_t5))
    # one artefact cache for the smoke runs (chapter 3 reuses chapter 2's vectors when they are
    # there), apart from the real chapters' (the smoke sizes are other keys anyway)
    monkeypatch.setenv("TLCOURSE_CACHE", os.environ.get("TLCOURSE_SMOKE_CACHE", str(ROOT / "_build" / "smoke-cache")))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if is_claim(cell):
            cell.metadata.setdefault("tags", []).append("raises-exception")
    nb.cells.insert(0, nbformat.v4.new_code_cell(NO_ASSERTS))
    began = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(i, o["ename"], o["evalue"][:300]) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for o in cell.outputs if o.output_type == "error"]
    for e in errors:
        print("claim cell error:", e)
    setup = "".join(o.get("text", "") for cell in nb.cells[:12] if cell.cell_type == "code" for o in cell.outputs)
    assert "profile gpu" in setup and "smoke run" in setup, setup[:2000]
    if path.stem == "05-t5":  # the gpu profile's own model, not the offline fallback
        text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
        assert "T5ForConditionalGeneration from t5-v1_1-small" in text and "cannot be loaded" not in text
    print(f"{path.name}: gpu profile, smoke sizes: {time.perf_counter() - began:.0f} s; slowest cells (s): "
          + ", ".join(f"{i}: {t:.0f}" for t, i in sorted(((cell_seconds(c), i) for i, c in enumerate(nb.cells)), reverse=True)[:5]))
