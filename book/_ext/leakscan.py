"""Find solution text in a built book: every text file of a folder, searched for every solution.

The solutions come from the chapters' sources (``book/NN-slug.md``), the way ``tlcourse assign``
and the no-solutions build see them:

* solution *code*: the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (anywhere), the
  lines of a code cell tagged ``solution``, and the code cells without markers of a *think*
  exercise's solution (its model answer; the student notebooks drop them). The other code of a
  solution (the self-check calls, the code around the markers, the code that uses the student's
  function) is handed out in the student notebooks, so it is not looked for;
* solution *prose*: the Markdown lines inside ``solution-start`` / ``solution-end``, split at roles
  (``{cite}`...```, ``{ref}`...```: they render as other text).

A line is looked for when it is distinctive: at least ``MIN_CHARS`` characters, and not found in the
text outside the solutions (any page of the book, code included). Text is compared as its sequence
of words (``\\w+``, lower case), so that HTML tags and syntax highlighting, entities, JSON escapes
and Markdown emphasis do not hide a line.

Files searched: every file under the folder that is text (UTF-8, no NUL byte); binary files (images,
pickled doctrees, fonts) are skipped. HTML is compared without its tags, JSON strings and JavaScript
string escapes are decoded.

    python book/_ext/leakscan.py BUILD_FOLDER [--book book]   # exit status 1 on a leak

(used by ``make book-check`` and by the no-solutions build itself, see ``no_solutions.py``).
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_CHARS = 25  # a shorter line (``return js``, ``for tokens in texts_a:``) is not distinctive
_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}\s*(?P<arg>.*)$")
_BEGIN = re.compile(r"^\s*# BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_WORD = re.compile(r"\w+")
_SHOW = re.compile(r"show_source\(\s*([\w.]+)")
_IMPORT = re.compile(
    r"^\s*from (?P<module>tlcourse(?:\.[\w.]+)?) import (?P<names>[\w ,]+?)\s*(?:#.*)?$"
)
_TAG = re.compile(r"<[^>]*>")
_JS_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.S)
_JS_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
SKIP_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".pdf",
    ".pickle",
    ".doctree",
    ".woff",
    ".woff2",
    ".ttf",
    ".eot",
    ".otf",
    ".inv",
    ".db",
    ".zip",
    ".gz",
    ".pt",
}


@dataclass(frozen=True)
class SolutionLine:
    label: str  # the solution's exercise label (ex-js), or the file when outside any exercise
    source: str  # book/01-what-is-transfer.md:511
    text: str  # the line as written
    words: str  # its normalised form, what is searched for


@dataclass(frozen=True)
class Leak:
    path: str
    line: SolutionLine


def normalise(text: str) -> str:
    """The words of ``text``, lower case, one space apart."""
    return " ".join(_WORD.findall(text.lower()))


def _fragments(prose: str) -> list[str]:
    """A Markdown line's pieces that render as written (roles and link targets cut out)."""
    prose = _LINK.sub(r"\1", prose)
    return [part for part in _ROLE.split(prose)]


def _parse(md: Path) -> tuple[list[tuple[str, int, str, str]], list[str], list[str]]:
    """([(label, line number, kind, text)] of the solutions, [lines outside them], [objects whose
    listing the page shows]) of one page. ``kind`` is ``code`` (looked for) or ``prose``."""
    lines = md.read_text(encoding="utf-8").split("\n")
    inside: list[tuple[str, int, str, str]] = []
    outside: list[str] = []
    listings: list[str] = []
    kinds: dict[str, str] = {}  # exercise label -> implement / experiment / think
    solution = None  # label of the solution directive we are in
    exercise = None  # label of the last exercise
    cell = None  # None outside a code cell, else its fence
    cell_tags: list[str] = []
    marked = False  # between BEGIN / END SOLUTION
    cell_marked = False  # the code cell has solution markers (or the ``solution`` tag)
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line.strip()) if cell is None else None
        if fence and fence["name"] in ("exercise-start", "solution-start"):
            options = {}
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence["fence"]:
                opt = re.match(r"^:(\w[\w-]*):\s*(.*)$", lines[j].strip())
                if opt:
                    options[opt[1]] = opt[2]
                j += 1
            if fence["name"] == "exercise-start":
                exercise = options.get("label", f"{md.name}:{i + 1}")
                kinds[exercise] = next(
                    (
                        k
                        for k in options.get("class", "").split()
                        if k in ("implement", "experiment", "think")
                    ),
                    "",
                )
                outside.append(fence["arg"])  # the exercise's title is shown
            else:
                solution = fence["arg"].strip() or exercise
            i = j + 1
            continue
        if fence and fence["name"] in ("exercise-end", "solution-end"):
            if fence["name"] == "solution-end":
                solution = None
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence["fence"]:
                j += 1
            i = j + 1
            continue
        if fence and fence["name"] == "code-cell":
            cell, cell_tags = fence["fence"], []
            j = i + 1
            while j < len(lines) and lines[j].startswith(":"):  # the cell's options
                tags = re.match(r"^:tags:\s*\[(.*)\]", lines[j])
                if tags:
                    cell_tags = [t.strip(" '\"") for t in tags[1].split(",")]
                j += 1
            end = next((k for k in range(j, len(lines)) if lines[k].strip() == cell), len(lines))
            cell_marked = "solution" in cell_tags or any(_BEGIN.match(x) for x in lines[j:end])
            i = j
            continue
        if cell is not None and line.strip() == cell:
            cell, marked = None, False
            i += 1
            continue
        label = solution or exercise or md.name
        if cell is not None:
            if _BEGIN.match(line):
                marked = True
            elif _END.match(line):
                marked = False
            elif (
                marked
                or "solution" in cell_tags
                # a think exercise's model answer: its unmarked code cells are not handed out
                or (solution is not None and kinds.get(solution) == "think" and not cell_marked)
            ):
                inside.append((label, i + 1, "code", line))
            else:
                outside.append(line)
                shown = _SHOW.search(line)
                if shown and solution is None and "exercise-listing" not in cell_tags:
                    listings.append(shown[1])
        elif solution is not None:
            inside.append((label, i + 1, "prose", line))
        else:
            outside.append(line)
        i += 1
    return inside, outside, listings


def _listing(target: str, imports: dict[str, Path]) -> list[str]:
    """The source lines of ``viz.show_source(target)`` (``bow.BagOfWords``, ``ch.make_model``) as
    the chapter's imports resolve it in the package; [] when it cannot be found."""
    head, *names = target.split(".")
    path = imports.get(head)
    if path is None or not path.is_file() or not names:
        return []
    source = path.read_text(encoding="utf-8")
    body = ast.parse(source).body
    node = None
    for depth, name in enumerate(names):
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n.name == name
            ),
            None,
        )
        if node is None and depth == 0:  # re-exported: ``from ..tagging import encode_tags``
            for imp in (n for n in body if isinstance(n, ast.ImportFrom) and n.level and n.module):
                if any((a.asname or a.name) == name for a in imp.names):
                    base = path.parent
                    for _ in range(imp.level - 1):
                        base = base.parent
                    module = base.joinpath(*imp.module.split("."))
                    module = (
                        module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
                    )
                    return _listing(".".join(["_", *names]), {"_": module})
        if node is None:
            return []
        body = node.body
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return source.split("\n")[start - 1 : node.end_lineno]


def _imports(texts: list[str], package: Path) -> dict[str, Path]:
    """{name: module file} of the chapter's ``from tlcourse[.x] import a, b as c`` lines."""
    found = {}
    for line in texts:
        m = _IMPORT.match(line)
        if not m:
            continue
        base = package.joinpath(*m["module"].split(".")[1:])
        for item in m["names"].split(","):
            parts = item.split()
            if not parts:
                continue
            name, alias = parts[0], parts[-1]
            module = base / name
            found[alias] = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
    return found


def solution_lines(book: Path, package: Path | None = None) -> list[SolutionLine]:
    """The distinctive lines of every solution in ``book/*.md`` (see the module's docstring).

    The code that the pages show with ``viz.show_source(...)`` (found in ``package``, default: the
    ``tlcourse`` folder next to ``book``) counts as text outside the solutions, except the listings
    of cells tagged ``exercise-listing`` (the no-solutions build removes them)."""
    book = Path(book)
    package = Path(package) if package else book.resolve().parent / "tlcourse"
    found, public = [], []
    for md in sorted(book.glob("*.md")):
        inside, outside, listings = _parse(md)
        found += [(md, *item) for item in inside]
        public += outside
        imports = _imports(outside, package)
        for target in listings:
            public += _listing(target, imports)
    public_text = " " + normalise("\n".join(public).replace("\n", " \n ")) + " "
    public_lines = {normalise(line) for line in public}
    result, seen = [], set()
    for md, label, number, kind, text in found:
        pieces = _fragments(text) if kind == "prose" else [text]
        for piece in pieces:
            words = normalise(piece)
            if len(piece.strip()) < MIN_CHARS or len(words) < MIN_CHARS - 5 or words in seen:
                continue
            if words in public_lines or f" {words} " in public_text:
                continue  # also outside the solutions: not a leak when it shows up
            seen.add(words)
            rel = f"{md.parent.name}/{md.name}:{number}"
            result.append(SolutionLine(label, rel, text.strip(), words))
    return result


def _decode_js(text: str) -> str:
    def one(m: re.Match) -> str:
        esc = m.group(1)
        if esc[0] in "ux" and len(esc) > 1:
            return chr(int(esc[1:], 16))
        return _JS_SIMPLE.get(esc, esc)

    return _JS_ESCAPE.sub(one, text)


def _json_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_json_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


def file_text(path: Path) -> str | None:
    """The text of ``path`` as a reader would see it (None for a binary file)."""
    if path.suffix.lower() in SKIP_SUFFIXES:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if b"\0" in raw[:65536]:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    forms = [text]
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm", ".xml", ".svg"):
        forms.append(html.unescape(_TAG.sub(" ", text)))
    if suffix in (".json", ".ipynb"):
        try:
            forms.append("\n".join(_json_strings(json.loads(text))))
        except ValueError:
            pass
    if suffix in (".js", ".json", ".ipynb", ".map", ".txt"):
        forms.append(_decode_js(text))
    if "&" in text and suffix not in (".html", ".htm"):
        forms.append(html.unescape(text))
    return "\n".join(forms)


def text_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def scan(folder: Path, lines: list[SolutionLine]) -> tuple[list[Leak], int]:
    """(the solution lines found in the text files under ``folder``, how many files were read)."""
    leaks, read = [], 0
    folder = Path(folder)
    for path in text_files(folder):
        text = file_text(path)
        if text is None:
            continue
        read += 1
        words = normalise(text)
        vocabulary = set(words.split())
        padded = f" {words} "
        for line in lines:
            if all(w in vocabulary for w in line.words.split()) and f" {line.words} " in padded:
                leaks.append(Leak(str(path.relative_to(folder)), line))
    return leaks, read


def report(leaks: list[Leak], limit: int = 30) -> str:
    out = [
        f"{leak.path}: {leak.line.label} ({leak.line.source}): {leak.line.text}" for leak in leaks
    ]
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="build output folders to search")
    parser.add_argument(
        "--book",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the folder of the chapters' .md sources (default: book/)",
    )
    args = parser.parse_args(argv)
    lines = solution_lines(args.book)
    if not lines:
        print(f"leakscan: no solution lines found in {args.book}/*.md", file=sys.stderr)
        return 2
    status = 0
    for folder in args.folders:
        if not folder.is_dir():
            print(f"leakscan: {folder} is not a folder (build first)", file=sys.stderr)
            return 2
        leaks, read = scan(folder, lines)
        if leaks:
            print(
                f"leakscan: {len(leaks)} solution lines found in {folder}:\n{report(leaks)}",
                file=sys.stderr,
            )
            status = 1
        else:
            labels = len({line.label for line in lines})
            print(
                f"leakscan: {folder}: no solution text ({len(lines)} lines of {labels} "
                f"solutions searched for in {read} text files)"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
