"""nbgrader *source* notebooks from the chapter notebooks: ``tlcourse assign --format nbgrader``.

A course that grades with `nbgrader <https://nbgrader.readthedocs.io>`_ (0.9, cell metadata schema
3) gets one assignment per chapter, named after the chapter's file stem, in nbgrader's layout::

    OUT/nbgrader_config.py                    the course root: run nbgrader in OUT
    OUT/source/06-peft/06-peft.ipynb          the source version, with the solutions

The notebook is the chapter's exercise section alone (:func:`tlcourse.assign.exercises_only`: the
title, the setup cell, "## Exercises"; every exercise runs after the setup cell, so a submission is
graded in seconds) with the exercises parsed as for student notebooks
(:func:`tlcourse.assign.make_student_notebook`):

* a code cell with solution code keeps it, its ``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines
  written in nbgrader's spelling (``### BEGIN SOLUTION``), and becomes a *solution* cell (a cell
  tagged ``solution`` is one as a whole); ``nbgrader generate_assignment`` puts nbgrader's stub in
  place of the solution code for the release;
* each self-check call in it, ``checks.<module>.<name>(fn)`` on a line of its own, moves to an
  *autograded test* cell of its own, locked, worth ``points``:
  ``assert checks.lora.lora_forward(lora_forward), ...``. A check returns a falsy result when the
  function is wrong or a stub (and raises under ``TLCOURSE_STRICT_CHECKS=1``), so the assertion
  fails and the cell scores 0: the points are exactly the checks that pass. Code after a check
  (using the function, printing) stays, in an ordinary cell after the test cell;
* markdown cells and the setup cell are locked (read-only; nbgrader restores them when grading);
  other code cells stay as they are, editable and ungraded.

Only ``tlcourse.checks`` give points, so ``nbgrader autograde`` gives the whole grade. *Think* and
*experiment* exercises keep their question (a locked cell) and lose their model answer, as in a
student notebook; they are not graded, unless their solution code has a self-check (which is
graded like any other). A chapter whose solution cells hold no self-check is an error: nbgrader
would have nothing to grade.

``nbgrader_config.py`` is not strictly needed (nbgrader's course root defaults to the working
folder); it marks the course root and raises nbgrader's 30 s per-cell execution limit, which the
setup cell (imports, a model download on a first run) can exceed.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ._fs import atomic_dir
from .assign import (
    _BEGIN,
    _END,
    AssignError,
    _source,
    check_out,
    exercises_only,
    find_chapters,
    make_student_notebook,
    read_notebook,
)

SCHEMA_VERSION = 3  # nbgrader's cell metadata schema (nbgrader 0.9's)
_CHECK = re.compile(r"^(?:tlcourse\.)?checks\.\w+\.\w+\(")
_STUB = re.compile(r'NotImplementedError\("Exercise (?P<number>[\d.]+)"\)')
_ORIGIN = "tlcourse_origin"  # a temporary cell metadata key: the cell's index in the chapter
CONFIG = '''\
# The nbgrader course root, written by `tlcourse assign --format nbgrader`: run nbgrader here,
# e.g. `nbgrader generate_assignment 06-peft`, then `nbgrader autograde 06-peft`.
c = get_config()  # noqa: F821

# The setup cell imports torch and transformers and may download a model: more than nbgrader's
# default 30 s per cell.
c.Execute.timeout = 600
'''


@dataclass
class GradedCheck:
    """One autograded test cell: the exercise, the check it calls, its grade_id and points."""

    exercise: str  # "6.1"
    check: str  # "lora.lora_forward"
    grade_id: str
    points: float


def _meta(
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: float | None = None,
) -> dict:
    """nbgrader's cell metadata (schema 3)."""
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _cell(cell_type: str, source: str, nbgrader: dict | None = None) -> dict:
    cell = {"cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    if nbgrader is not None:
        cell["metadata"]["nbgrader"] = nbgrader
    return cell


def _nbgrader_markers(line: str) -> str:
    """A ``# BEGIN SOLUTION`` / ``# END SOLUTION`` line in nbgrader's spelling, same indentation."""
    indent = line[: len(line) - len(line.lstrip())]
    if _BEGIN.match(line):
        return f"{indent}### BEGIN SOLUTION"
    if _END.match(line):
        return f"{indent}### END SOLUTION"
    return line


def _check_call(line: str) -> tuple[str, str] | None:
    """``("lora.lora_forward", "checks.lora.lora_forward(fn)")`` when ``line`` is a self-check call
    on its own (a trailing comment allowed), else None."""
    if not _CHECK.match(line):
        return None
    try:
        body = ast.parse(line).body
    except SyntaxError:
        return None
    if (
        len(body) != 1
        or not isinstance(body[0], ast.Expr)
        or not isinstance(body[0].value, ast.Call)
    ):
        return None
    module, name = ast.unparse(body[0].value.func).split(".")[-2:]
    return f"{module}.{name}", ast.get_source_segment(line, body[0].value)


def _split_solution(
    code: str, number: str, whole: bool, points: float, ids: set[str]
) -> tuple[list[dict], list[GradedCheck]]:
    """A solution cell's code as nbgrader cells: solution, one test cell per check, the rest."""
    cells, checks, chunk = [], [], []
    prefix = "ex" + number.replace(".", "-")

    def unique(grade_id: str) -> str:
        n, base = 1, grade_id
        while grade_id in ids:
            n += 1
            grade_id = f"{base}-{n}"
        ids.add(grade_id)
        return grade_id

    def flush() -> None:
        text = "\n".join(chunk).strip("\n")
        chunk.clear()
        if not text:
            return
        if whole or any(_BEGIN.match(line) for line in text.split("\n")):
            text = "\n".join(_nbgrader_markers(line) for line in text.split("\n"))
            cells.append(_cell("code", text, _meta(unique(f"{prefix}-solution"), solution=True)))
        else:
            cells.append(_cell("code", text))

    for line in code.split("\n"):
        check = _check_call(line)
        if check is None:
            chunk.append(line)
            continue
        flush()
        name, call = check
        grade_id = unique(f"{prefix}-{name.split('.')[1]}")
        test = (
            f"# Autograded ({points:g} point{'s' if points != 1 else ''}): "
            f"the self-check of Exercise {number}\n"
            f'assert {call}, "not passed yet: see the hint above"'
        )
        meta = _meta(grade_id, grade=True, locked=True, points=points)
        cells.append(_cell("code", test, meta))
        checks.append(GradedCheck(number, name, grade_id, points))
    flush()
    return cells, checks


def make_nbgrader_notebook(
    nb: dict, chapter: int, name: str = "notebook", points: float = 1
) -> tuple[dict, list[GradedCheck]]:
    """The nbgrader source version of a chapter notebook (a JSON dict) and its autograded checks."""
    if points <= 0:
        raise AssignError(f"points per check must be positive, got {points}")
    trimmed = exercises_only(nb, name=name)
    for index, cell in enumerate(trimmed["cells"]):
        cell.setdefault("metadata", {})[_ORIGIN] = index
    student, _ = make_student_notebook(trimmed, chapter, "drop", name=name)
    cells, graded, ids, texts = [], [], set(), 0
    setup_done = False
    for cell in student["cells"]:
        original = trimmed["cells"][cell["metadata"].pop(_ORIGIN)]
        if cell["cell_type"] == "markdown":
            texts += 1
            meta = _meta(f"text-{texts}", locked=True)
            cells.append({**cell, "metadata": {**cell["metadata"], "nbgrader": meta}})
            ids.add(meta["grade_id"])
            continue
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        code = _source(original)
        whole = "solution" in cell["metadata"].get("tags", [])
        stub = _STUB.search(_source(cell))
        if not setup_done:
            setup_done = True
            meta = _meta("setup", locked=True)
            ids.add("setup")
            cells.append({**cell, "metadata": {**cell["metadata"], "nbgrader": meta}})
        elif stub is not None:
            new, checks = _split_solution(code, stub["number"], whole, points, ids)
            for part in new:  # the parts nbgrader does not name keep the chapter's cell id
                if "nbgrader" not in part["metadata"] and cell.get("id"):
                    part["id"] = cell["id"]
            cells.extend(new)
            graded.extend(checks)
        else:
            cells.append(cell)
    if not graded:
        raise AssignError(
            f"{name}: no self-check (checks.<module>.<name>(...)) in a solution cell: nothing for "
            "nbgrader to grade; use --format student for this chapter"
        )
    used: set[str] = set()
    for cell in cells:  # nbformat 4.5 cell ids, unique: the grade_id, else the chapter's id
        wanted = cell["metadata"].get("nbgrader", {}).get("grade_id") or cell.get("id") or "cell"
        cell_id, n = wanted, 1
        while cell_id in used:
            n += 1
            cell_id = f"{wanted}-{n}"
        used.add(cell_id)
        cell["id"] = cell_id
    source = copy.deepcopy(student)
    source["cells"] = cells
    source["nbformat"], source["nbformat_minor"] = 4, max(5, source.get("nbformat_minor", 5))
    source["metadata"]["tlcourse"] = {"nbgrader": "source", "chapter": chapter}
    return source, graded


def assign_nbgrader(
    out: Path,
    source: Path = Path("notebooks"),
    chapters: Iterable[str] | None = None,
    force: bool = False,
    points: float = 1,
) -> dict[str, list[GradedCheck]]:
    """Write the nbgrader course folder ``out`` for ``chapters``: all of it, or nothing on an error.

    Returns the autograded checks of each assignment (the chapter's file stem)."""
    paths = find_chapters(source, chapters)
    out = Path(out)
    check_out(out, force)
    built, report = {}, {}
    for path in paths:
        built[path.stem], report[path.stem] = make_nbgrader_notebook(
            read_notebook(path), int(path.stem[:2]), name=str(path), points=points
        )
    with atomic_dir(out) as tmp:
        (tmp / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
        for stem, notebook in built.items():
            folder = tmp / "source" / stem
            folder.mkdir(parents=True)
            (folder / f"{stem}.ipynb").write_text(
                json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    return report
