"""Student notebooks from the chapter notebooks: solutions out, stubs and self-checks in.

The chapter notebooks mark their exercises the way the book renders them (sphinx-exercise's gated
directives ``exercise-start``/``exercise-end`` and ``solution-start``/``solution-end``, with the
kind in ``:class:`` — ``implement``, ``experiment`` or ``think``) and mark solution *code* with
``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines, or by tagging a whole cell ``solution``.

:func:`make_student_notebook` turns one notebook into its student version:

* code between the markers (or a ``solution``-tagged cell) becomes
  ``raise NotImplementedError("Exercise N.M")`` at the same indentation; everything else in a
  solution's code cells stays, so self-check calls are kept;
* an exercise directive becomes a plain heading ("Exercise 1.2 (implement): title") that Jupyter
  and Colab render; the prose of a solution (its dropdown) is removed, except a *think* exercise's
  model answer when ``think_answers="keep"``;
* a code cell tagged ``exercise-listing`` (it shows, with ``viz.show_source``, the reference of
  a function that an exercise asks for; a second tag ``exercise:LABEL`` names that exercise) keeps
  its place, but its source becomes a one-line note that says which exercise asks for it;
* outputs are cleared.

:func:`walk` is the parse both this module and :mod:`tlcourse.answer_key` read a notebook with.

:func:`assign` does this for a set of chapters and writes all of them or nothing.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ._fs import atomic_dir

KINDS = ("implement", "experiment", "think")
_FENCE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})"
    r"\{(?P<name>exercise-start|exercise-end|solution-start|solution-end)\}"
    r"\s*(?P<arg>.*)$"
)
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
_CHAPTER = re.compile(r"^(?P<num>\d\d)-(?P<slug>[\w-]+)$")
LISTING_TAG = "exercise-listing"  # a code cell listing the reference of an exercise's function
_LISTING_EXERCISE = "exercise:"  # its second tag, ``exercise:LABEL``: the exercise's label
_SHOW_SOURCE = re.compile(r"^\s*(?:viz\.)?show_source\(\s*(?P<name>[\w.]+)\s*\)\s*$")


class AssignError(ValueError):
    """Bad input to ``tlcourse assign``: the message says which file or option and what to do."""


@dataclass
class Exercise:
    number: str  # "1.2"
    title: str
    kind: str
    label: str


@dataclass
class Piece:
    """A run of one cell's content in one region of the notebook (see :func:`walk`)."""

    index: int  # the cell's position in the notebook
    cell_type: str  # "markdown", "code" (or "raw")
    text: str  # the source; for markdown, the lines of the run, directive lines left out
    region: str  # "prose", "exercise" (an exercise's text) or "solution"
    exercise: Exercise | None  # the latest exercise started, if any
    tags: tuple[str, ...] = ()


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _marked(source: str, tags: Iterable[str] = ()) -> bool:
    """Whether a code cell holds solution code (marker lines, or the ``solution`` tag)."""
    return "solution" in tags or any(_BEGIN.match(line) for line in source.split("\n"))


def _without_markers(source: str) -> str:
    return "\n".join(
        line for line in source.split("\n") if not (_BEGIN.match(line) or _END.match(line))
    )


def _directive(lines: list[str], start: int) -> tuple[str, str, dict[str, str], int]:
    """(name, argument, options, index after the closing fence) of the fenced directive at
    ``start``."""
    m = _FENCE.match(lines[start])
    fence, options, i = m["fence"], {}, start + 1
    while i < len(lines) and lines[i].strip() != fence:
        opt = re.match(r"^:(\w[\w-]*):\s*(.*)$", lines[i].strip())
        if opt:
            options[opt[1]] = opt[2].strip()
        i += 1
    if i == len(lines):
        raise AssignError(f"unclosed {{{m['name']}}} directive (no closing {fence})")
    return m["name"], m["arg"].strip(), options, i + 1


def _stub_code(source: str, number: str | None, where: str) -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION block by a NotImplementedError stub; returns
    (code, blocks)."""
    out, blocks, inside = [], 0, None
    for line in source.split("\n"):
        begin = _BEGIN.match(line)
        if begin:
            if inside is not None:
                raise AssignError(f"{where}: '# BEGIN SOLUTION' inside another solution block")
            if number is None:
                raise AssignError(
                    f"{where}: '# BEGIN SOLUTION' outside any "
                    "exercise (put it after an exercise-start)"
                )
            inside = begin["indent"]
            out.append(f'{inside}raise NotImplementedError("Exercise {number}")  # your code here')
            blocks += 1
        elif _END.match(line):
            if inside is None:
                raise AssignError(
                    f"{where}: '# END SOLUTION' without a matching '# BEGIN SOLUTION'"
                )
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise AssignError(f"{where}: '# BEGIN SOLUTION' without a matching '# END SOLUTION'")
    return "\n".join(out), blocks


def _new_exercise(arg: str, options: dict[str, str], number: str, where: str) -> Exercise:
    kind = next((k for k in options.get("class", "").split() if k in KINDS), None)
    if kind is None:
        raise AssignError(
            f"{where}: exercise {arg!r} has no kind: add ':class: implement' "
            f"(or experiment, think) to its exercise-start"
        )
    return Exercise(number, arg, kind, options.get("label", ""))


def walk(nb: dict, chapter: int, name: str = "notebook") -> Iterator[Piece]:
    """The notebook's content in order, as :class:`Piece` runs tagged with their region and their
    exercise (numbered ``chapter.M`` in order). The directive lines themselves are not yielded.

    Raises :class:`AssignError` on an exercise without a kind or an unclosed directive.
    """
    count, current, region = 0, None, "prose"
    for index, cell in enumerate(nb["cells"]):
        where = f"{name}, cell {index + 1}"
        if cell["cell_type"] != "markdown":
            yield Piece(
                index, cell["cell_type"], _source(cell), region, current, tuple(_tags(cell))
            )
            continue
        lines, run, i = _source(cell).split("\n"), [], 0
        while i <= len(lines):
            if i < len(lines) and not _FENCE.match(lines[i]):
                run.append(lines[i])
                i += 1
                continue
            if run:
                yield Piece(index, "markdown", "\n".join(run), region, current)
                run = []
            if i == len(lines):
                break
            try:
                directive, arg, options, i = _directive(lines, i)
            except AssignError as err:
                raise AssignError(f"{where}: {err}") from None
            if directive == "exercise-start":
                count += 1
                current = _new_exercise(arg, options, f"{chapter}.{count}", where)
                region = "exercise"
            elif directive == "solution-start":
                region = "solution"
            else:  # exercise-end, solution-end
                region = "prose"


def _listing_note(cell: dict, numbers: dict[str, str] | None, where: str) -> str:
    """The note that replaces an ``exercise-listing`` cell of a student notebook."""
    names = []
    for line in _source(cell).split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        call = _SHOW_SOURCE.match(line)
        if call is None:
            raise AssignError(
                f"{where}: a cell tagged {LISTING_TAG!r} may hold only viz.show_source(...) calls "
                f"of the functions an exercise asks for; move {line.strip()!r} to a cell of its own"
            )
        names.append(call["name"])
    if not names:
        raise AssignError(
            f"{where}: a cell tagged {LISTING_TAG!r} has no viz.show_source(...) call"
        )
    labels = [t[len(_LISTING_EXERCISE) :] for t in _tags(cell) if t.startswith(_LISTING_EXERCISE)]
    number = None
    if labels and numbers is not None:  # None: the notebook did not parse; its error comes later
        if labels[0] not in numbers:
            raise AssignError(
                f"{where}: tag 'exercise:{labels[0]}' names no exercise of this notebook "
                f"(labels: {', '.join(sorted(numbers)) or 'none'})"
            )
        number = numbers[labels[0]]
    plural = len(names) > 1
    listed = ", ".join(names[:-1]) + " and " + names[-1] if plural else names[0]
    who = f"exercise {number}" if number else "an exercise of this chapter"
    return (
        f"# The {'listings' if plural else 'listing'} of {listed} "
        f"{'are' if plural else 'is'} not shown here: "
        f"{who} asks you to write {'them' if plural else 'it'}."
    )


def make_student_notebook(
    nb: dict, chapter: int, think_answers: str = "drop", name: str = "notebook"
) -> tuple[dict, list[Exercise]]:
    """The student version of a notebook (a JSON dict) and the exercises found in it."""
    if think_answers not in ("keep", "drop"):
        raise AssignError(f"think_answers must be 'keep' or 'drop', got {think_answers!r}")
    student = copy.deepcopy(nb)
    numbers: dict[str, str] | None = None  # exercise label -> number, for the listings' notes
    if any(LISTING_TAG in _tags(c) for c in nb["cells"] if c["cell_type"] == "code"):
        try:  # a listing comes before its exercise: number the exercises first
            numbers = {
                p.exercise.label: p.exercise.number
                for p in walk(nb, chapter, name)
                if p.exercise is not None and p.exercise.label
            }
        except AssignError:
            numbers = None  # the loop below reports the problem where it meets it
    exercises: list[Exercise] = []
    current: Exercise | None = None  # the exercise whose directive or solution we are in
    in_solution = False
    stubs = 0
    cells = []
    for index, cell in enumerate(student["cells"]):
        where = f"{name}, cell {index + 1}"
        if cell["cell_type"] == "code":
            tags = _tags(cell)
            if LISTING_TAG in tags:
                note = _listing_note(cell, numbers, where)
                cell["source"], cell["outputs"], cell["execution_count"] = note, [], None
                cells.append(cell)
                continue
            number = current.number if current else None
            if current is not None and current.kind == "think" and think_answers == "keep":
                number = None  # a think exercise's answer is shown: only the marker lines go
                code = _without_markers(_source(cell))
                cell["source"], cell["outputs"], cell["execution_count"] = code, [], None
                cells.append(cell)
                continue
            marked = _marked(_source(cell), tags)
            if in_solution and current is not None and current.kind == "think" and not marked:
                continue  # a think exercise's model answer, its code included, is not handed out
            if "solution" in tags:
                if number is None:
                    raise AssignError(f"{where}: a cell tagged 'solution' outside any exercise")
                code, blocks = (
                    f'raise NotImplementedError("Exercise {number}")  # your code here',
                    1,
                )
            else:
                code, blocks = _stub_code(_source(cell), number, where)
            stubs += blocks
            cell["source"], cell["outputs"], cell["execution_count"] = code, [], None
            cells.append(cell)
            continue
        if cell["cell_type"] != "markdown":
            cells.append(cell)
            continue
        lines, kept, i = _source(cell).split("\n"), [], 0
        while i < len(lines):
            if not _FENCE.match(lines[i]):
                keep_think = (
                    current is not None and current.kind == "think" and think_answers == "keep"
                )
                if not in_solution or keep_think:
                    kept.append(lines[i])
                i += 1
                continue
            try:
                directive, arg, options, i = _directive(lines, i)
            except AssignError as err:
                raise AssignError(f"{where}: {err}") from None
            if directive == "exercise-start":
                current = _new_exercise(arg, options, f"{chapter}.{len(exercises) + 1}", where)
                exercises.append(current)
                kept.append(f"### Exercise {current.number} ({current.kind}): {arg}")
            elif directive == "solution-start":
                in_solution = True
                if current is not None and current.kind == "think" and think_answers == "keep":
                    kept.append("**Model answer:**")
            elif directive == "solution-end":
                in_solution = False
        cell["source"] = "\n".join(kept).strip("\n")
        if cell["source"]:
            cells.append(cell)
    if not exercises:
        raise AssignError(
            f"{name}: no exercises found (no exercise-start directive): nothing to assign"
        )
    if stubs == 0 and any(e.kind == "implement" for e in exercises):
        raise AssignError(
            f"{name}: no solution markers: wrap solution code in '# BEGIN SOLUTION' / "
            f"'# END SOLUTION' lines, or tag the solution cell 'solution'"
        )
    student["cells"] = cells
    student.setdefault("metadata", {})["tlcourse"] = {
        "student": True,
        "think_answers": think_answers,
    }
    return student, exercises


def _section_heading(cell: dict, title: str | None = None) -> bool:
    """Whether a markdown cell holds a level-2 heading (``## title``, or any when ``title`` is
    None)."""
    if cell["cell_type"] != "markdown":
        return False
    heads = [line[3:].strip() for line in _source(cell).split("\n") if line.startswith("## ")]
    return bool(heads) and (title is None or title in heads)


def exercises_only(nb: dict, name: str = "notebook") -> dict:
    """The chapter's title, its setup cell and its "## Exercises" section, nothing else.

    Every exercise runs right after the setup cell (it needs the package, the data and the artefact
    cache, never a variable from the chapter's experiments), so this is a complete notebook: a
    student who wants only the exercises runs it in seconds, and ``make student-check`` runs it.
    """
    cells = nb["cells"]
    setup = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), None)
    start = next((i for i, c in enumerate(cells) if _section_heading(c, "Exercises")), None)
    if setup is None or start is None:
        raise AssignError(f"{name}: needs a setup code cell and a '## Exercises' section")
    end = next((i for i in range(start + 1, len(cells)) if _section_heading(cells[i])), len(cells))
    title = [c for c in cells[:setup] if c["cell_type"] == "markdown"][:1]
    trimmed = copy.deepcopy(nb)
    trimmed["cells"] = copy.deepcopy(title + [cells[setup]] + cells[start:end])
    return trimmed


def find_chapters(source: Path, chapters: Iterable[str] | None = None) -> list[Path]:
    """The chapter notebooks of ``source`` chosen by number ("1", "01"), slug or file stem; all by
    default."""
    if not source.is_dir():
        raise AssignError(
            f"notebook folder {source} does not exist "
            "(run from the repository root, or pass --source)"
        )
    available = sorted(p for p in source.glob("*.ipynb") if _CHAPTER.match(p.stem))
    if not available:
        raise AssignError(f"no chapter notebooks (NN-slug.ipynb) in {source}")
    if not chapters:
        return available
    chosen = []
    for wanted in chapters:
        matches = [
            p
            for p in available
            if wanted in (p.stem, _CHAPTER.match(p.stem)["slug"])
            or (wanted.isdigit() and int(wanted) == int(p.stem[:2]))
        ]
        if not matches:
            raise AssignError(
                f"unknown chapter {wanted!r}; available: {', '.join(p.stem for p in available)}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def check_out(out: Path, force: bool) -> None:
    """Refuse to write into a folder that holds something, unless ``force``."""
    if out.exists() and any(out.iterdir()) and not force:
        raise AssignError(
            f"output folder {out} is not empty; choose another or pass --force to replace it"
        )


def read_notebook(path: Path) -> dict:
    """A notebook's JSON, or an :class:`AssignError` that names the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise AssignError(f"{path}: not a readable notebook ({err})") from None


def assign(
    out: Path,
    source: Path = Path("notebooks"),
    chapters: Iterable[str] | None = None,
    think_answers: str = "drop",
    force: bool = False,
    only_exercises: bool = False,
) -> dict[str, list[Exercise]]:
    """Write the student notebooks of ``chapters`` to ``out``; all of them, or nothing on any error.

    ``only_exercises`` keeps the setup cell and the exercise section alone (:func:`exercises_only`).
    """
    paths = find_chapters(source, chapters)
    out = Path(out)
    check_out(out, force)
    built, report = {}, {}
    for path in paths:
        nb = read_notebook(path)
        student, exercises = make_student_notebook(
            nb, int(path.stem[:2]), think_answers, name=str(path)
        )
        if only_exercises:
            student = exercises_only(student, name=str(path))
        built[path.name], report[path.stem] = student, exercises
    # Everything was built in memory; now write to a temporary folder and move it into place.
    with atomic_dir(out) as tmp:
        for filename, student in built.items():
            (tmp / filename).write_text(
                json.dumps(student, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    return report
