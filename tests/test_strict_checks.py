"""The book's own solutions must pass their self-checks: with ``TLCOURSE_STRICT_CHECKS=1`` (set by
``make test``'s nbval run and by the book builds) a check that does not pass raises, so the cell and
the build fail; for a student (no flag) it only prints its hint."""

import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tlcourse import checks

ROOT = Path(__file__).resolve().parents[1]


def _wrong_mix(layers, w, gamma):  # forgets the softmax
    return gamma * torch.tensordot(w, layers, dims=([0], [0]))


def _right_mix(layers, w, gamma):
    return gamma * torch.tensordot(torch.softmax(w, 0), layers, dims=([0], [0]))


def test_a_failing_check_raises_only_in_strict_mode(monkeypatch):
    monkeypatch.delenv("TLCOURSE_STRICT_CHECKS", raising=False)
    assert not checks.elmo.scalar_mix(_wrong_mix)  # a student sees the hint, no exception
    monkeypatch.setenv("TLCOURSE_STRICT_CHECKS", "1")
    with pytest.raises(checks.CheckFailed, match="NOT YET scalar_mix"):
        checks.elmo.scalar_mix(_wrong_mix)
    assert checks.elmo.scalar_mix(_right_mix)  # a passing check still just returns


def test_a_solution_failing_its_check_fails_the_notebook_cell(tmp_path, monkeypatch):
    """What nbval sees: the cell that calls the check errors in a real kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import torch\nfrom tlcourse import checks"),
        nbformat.v4.new_code_cell(
            "def mix(layers, w, gamma):\n"
            "    return gamma * torch.tensordot(w, layers, dims=([0], [0]))\n\n\n"
            "checks.elmo.scalar_mix(mix)"
        ),
    ]
    monkeypatch.setenv("TLCOURSE_STRICT_CHECKS", "1")
    with pytest.raises(CellExecutionError, match="CheckFailed"):
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()


def test_make_runs_the_book_in_strict_mode():
    makefile = (ROOT / "Makefile").read_text()
    recipe = lambda target: re.search(rf"^{target}:.*?(?=^\S)", makefile, re.M | re.S).group(0)  # noqa: E731
    assert "TLCOURSE_STRICT_CHECKS=1" in recipe("nbval"), (
        "nbval must run the chapters in strict mode"
    )
    assert "TLCOURSE_STRICT_CHECKS=1" in recipe("book"), (
        "make book must run the chapters in strict mode"
    )
    assert "TLCOURSE_STRICT_CHECKS=1 $(BIN)jupyter-book build" in recipe("book-check"), (
        "the strict book build must run in strict mode (should it execute a chapter nbval left out)"
    )
    assert "TLCOURSE_STRICT_CHECKS" not in recipe("student-check"), "students' stubs must not raise"


def _draws():
    import random

    import numpy as np

    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def _seed_all(seed=0):
    import random

    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_running_a_check_between_two_experiment_steps_changes_nothing(monkeypatch):
    import torch.nn.functional as F

    monkeypatch.delenv("TLCOURSE_STRICT_CHECKS", raising=False)

    def gathered(h, y, head):  # the reference solution of exercise 4.3
        return F.cross_entropy(head(h[y != -100]), y[y != -100])

    _seed_all()
    _draws()
    without = _draws()
    _seed_all()
    _draws()
    assert checks.bert.gathered_loss(gathered) and checks.elmo.scalar_mix(_right_mix)  # seed and draw inside
    assert _draws() == without
    # the same checks unwrapped move torch's global generator: the wrapper is what keeps it
    _seed_all()
    _draws()
    checks.bert.gathered_loss.__wrapped__(gathered)
    assert _draws() != without


def test_every_public_check_keeps_the_global_rng():
    import inspect

    found = [(m.__name__, n) for m in checks.CHAPTER_MODULES for n, f in vars(m).items()
             if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == m.__name__
             and f.__annotations__.get("return") == "CheckResult"]
    assert len(found) >= 30
    assert all(getattr(getattr(__import__(m, fromlist=[n]), n), "keeps_global_rng", False) for m, n in found)
