"""Student notebooks (``tlcourse assign``) run: up to the first exercise stub without error, and the
only errors they raise are the stubs' ``NotImplementedError("Exercise N.M")``.

Executes every chapter once more (about a minute each in the cpu profile, with the artefact cache
warm from the nbval run), so it is marked ``notebook`` and run by ``make student-check``.
"""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tlcourse.assign import assign

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_notebook_runs_to_its_stubs(chapter, tmp_path):
    report = assign(tmp_path / "student", ROOT / "notebooks", [chapter])
    nb = nbformat.read(tmp_path / "student" / f"{chapter}.ipynb", as_version=4)
    # Run where the chapter runs (relative paths behave the same), keep going past errors.
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
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
    assert errors or stub_reports, "no stub was reached: the exercises did not run"
    print(f"{chapter}: {len(errors)} cells stopped at stubs {sorted(e[2] for e in errors)}, {stub_reports} self-checks reported stubs")
