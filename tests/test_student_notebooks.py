"""Student notebooks (``tlcourse assign --exercises-only``) run on their own: the setup cell, then the
exercise section, and the only errors they raise are the stubs' ``NotImplementedError("Exercise N.M")``.

This is also the test that every chapter's exercise section runs after the setup cell alone: a
stub-free cell that needed a variable from the chapter's experiments would stop with a NameError.
Each notebook takes seconds (the setup cell's imports, then the exercises up to their stubs), so the
whole set is run by ``make student-check`` in about a minute.
"""
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tlcourse.assign import assign

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_exercises_run_after_the_setup_cell_alone(chapter, tmp_path):
    report = assign(tmp_path / "student", ROOT / "notebooks", [chapter], only_exercises=True)
    nb = nbformat.read(tmp_path / "student" / f"{chapter}.ipynb", as_version=4)
    start = time.perf_counter()
    # Run where the chapter runs (relative paths behave the same), keep going past errors.
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    errors, stub_reports, first_exercise = [], 0, None
    for index, cell in enumerate(nb.cells):
        if first_exercise is None and cell.cell_type == "markdown" and "### Exercise " in cell.source:
            first_exercise = index
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                errors.append((index, out.ename, out.evalue))
            elif out.output_type == "stream" and "not implemented yet (Exercise " in out.text:
                stub_reports += 1  # a self-check ran on a stub and said so, without raising
    assert first_exercise is not None
    numbers = {e.number for e in report[chapter]}
    unexpected = [e for e in errors if e[1] != "NotImplementedError" or e[2].removeprefix("Exercise ") not in numbers]
    assert not unexpected, f"errors other than the exercise stubs: {unexpected}"
    assert all(i > first_exercise for i, _, _ in errors), errors
    stubbed = {e[2].removeprefix("Exercise ") for e in errors}
    assert errors or stub_reports, "no stub was reached: the exercises did not run"
    print(f"{chapter}: {time.perf_counter() - start:.0f} s, {len(errors)} cells stopped at stubs "
          f"{sorted(stubbed)}, {stub_reports} self-checks reported stubs")
