"""Answer keys for instructors: every exercise of a chapter with its full solution, as Markdown.

The chapter notebooks hold the solutions the book shows in its dropdowns; the student notebooks
(:mod:`tlcourse.assign`) leave them out. An instructor who grades, or who hands out the notebooks
without the book, wants them on one page: :func:`answer_key` writes that page for one notebook,

* the chapter's title, then for each exercise its number, kind and title as a heading;
* the exercise's text, as the book shows it;
* its solution: every solution code cell whole (the ``# BEGIN SOLUTION`` / ``# END SOLUTION``
  marker lines left out, the self-check calls kept) in a ``python`` fence, and the solution's prose
  (a *think* exercise's model answer included), in the order of the notebook.

:func:`write_answer_keys` does this for a set of chapters and writes all of them or nothing, with
the same errors as ``tlcourse assign``. The notebooks are parsed by :func:`tlcourse.assign.walk`,
so an exercise has the same number here as in the student notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ._fs import atomic_dir
from .assign import (
    AssignError,
    Exercise,
    Piece,
    _marked,
    _without_markers,
    check_out,
    find_chapters,
    read_notebook,
    walk,
)

SUFFIX = "-answers.md"  # 01-what-is-transfer.ipynb -> 01-what-is-transfer-answers.md


@dataclass
class _Entry:
    exercise: Exercise
    text: list[Piece] = field(default_factory=list)
    solution: list[Piece] = field(default_factory=list)


def _block(piece: Piece) -> str:
    """A piece as Markdown: prose as it is, code in a ``python`` fence without marker lines."""
    if piece.cell_type == "markdown":
        return piece.text.strip("\n")
    code = _without_markers(piece.text).strip("\n")
    if not code.strip():
        return ""
    fence = "`" * max(3, 1 + max((len(r) for r in code.split("\n") if set(r) == {"`"}), default=0))
    return f"{fence}python\n{code}\n{fence}"


def _title(nb: dict, chapter: int) -> str:
    """The chapter's title: the first level-1 heading of the notebook."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = cell["source"]
            source = "".join(source) if isinstance(source, list) else source
            for line in source.split("\n"):
                if line.startswith("# "):
                    return line[2:].strip()
    return f"Chapter {chapter}"


def _entries(nb: dict, chapter: int, name: str) -> list[_Entry]:
    entries: dict[str, _Entry] = {}
    for piece in walk(nb, chapter, name):
        if piece.exercise is None:
            continue
        entry = entries.setdefault(piece.exercise.number, _Entry(piece.exercise))
        if piece.region == "exercise":
            entry.text.append(piece)
        elif piece.region == "solution" or (
            piece.cell_type == "code" and _marked(piece.text, piece.tags)
        ):
            entry.solution.append(piece)
    return list(entries.values())


def answer_key(nb: dict, chapter: int, name: str = "notebook") -> str:
    """The answer key of one chapter notebook (a JSON dict), as one Markdown document.

    Raises :class:`~tlcourse.assign.AssignError` for a notebook without exercises, an exercise
    without a solution, or the directive problems :func:`tlcourse.assign.walk` reports.
    """
    entries = _entries(nb, chapter, name)
    if not entries:
        raise AssignError(
            f"{name}: no exercises found (no exercise-start directive): nothing to assign"
        )
    parts = [
        f"# Answer key: chapter {chapter}, {_title(nb, chapter)}",
        f"For instructors, not for students: the {len(entries)} exercises of {Path(name).name} "
        "with the solutions the book shows (solution code whole, its self-checks included).",
    ]
    for entry in entries:
        ex = entry.exercise
        solution = [b for b in map(_block, entry.solution) if b]
        if not solution:
            raise AssignError(
                f"{name}: exercise {ex.number} ({ex.title}) has no solution: put one between "
                f"its solution-start and solution-end"
            )
        parts.append(f"## Exercise {ex.number} ({ex.kind}): {ex.title}")
        parts.extend(b for b in map(_block, entry.text) if b)
        parts.append(
            f"### Solution {ex.number}" + (" (model answer)" if ex.kind == "think" else "")
        )
        parts.extend(solution)
    return "\n\n".join(parts) + "\n"


def write_answer_keys(
    out: Path,
    source: Path = Path("notebooks"),
    chapters: Iterable[str] | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Write ``NN-slug-answers.md`` for each chapter of ``chapters`` (all by default) to ``out``;
    all of them, or nothing on any error. Returns ``{chapter stem: path written}``.

    Raises :class:`~tlcourse.assign.AssignError` as ``tlcourse assign`` does: an unknown chapter,
    a notebook without exercises, or an ``out`` that is not empty without ``force``.
    """
    paths = find_chapters(Path(source), chapters)
    out = Path(out)
    check_out(out, force)
    keys = {}
    for path in paths:
        keys[path.stem] = answer_key(read_notebook(path), int(path.stem[:2]), name=str(path))
    # Everything was built in memory; now write to a temporary folder and move it into place.
    with atomic_dir(out) as tmp:
        for stem, text in keys.items():
            (tmp / f"{stem}{SUFFIX}").write_text(text, encoding="utf-8")
    return {stem: out / f"{stem}{SUFFIX}" for stem in keys}
