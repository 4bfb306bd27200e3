"""A book of selected chapters: its table of contents, and its numbers and links kept right.

``make book-nosolutions CHAPTERS=02,06`` builds the book for part of a course. The command line
writes a table of contents with those chapters only, plus the front matter (the introduction, the
preface, the instructors' page and the references, which the chapters' citations need)::

    python book/_ext/chapter_subset.py --toc _toc.yml --out _build/_toc.sub.yml 02 06

Chapters are chosen by number (``2`` or ``02``), slug (``word-embeddings``) or file stem, as with
``tlcourse assign --chapters``; an unknown one is an error that lists the chapters there are, and
writes nothing.

As a Sphinx extension (loaded by ``no_solutions``), with ``tlcourse_chapter_subset: true`` in the
configuration of such a build:

* each chapter keeps its number in the whole book (chapter 6 stays "6.", its exercises "6.1", ...,
  as in the student notebooks), where Sphinx would number the selected chapters 1, 2, ...;
* a reference to a page or label of a chapter that was left out renders as that target's title,
  without a link and without a warning (references to anything else still warn).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from docutils import nodes

FRONT = ("book/intro", "book/preface", "book/instructors", "book/references")
_CHAPTER = re.compile(r"^(?:.*/)?(?P<num>\d\d)-(?P<slug>[\w-]+)$")
_LABEL = re.compile(r"^\((?P<label>[^)]+)\)=\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$")


class SubsetError(ValueError):
    pass


def _files(toc: dict) -> list[str]:
    found = [toc["root"]] if "root" in toc else []
    for part in toc.get("parts", []):
        found += [c["file"] for c in part.get("chapters", []) if "file" in c]
    found += [c["file"] for c in toc.get("chapters", []) if "file" in c]
    return found


def select(toc: dict, wanted: list[str]) -> tuple[dict, list[str]]:
    """(the table of contents with the chapters ``wanted`` and the front matter, their files)."""
    chapters = [f for f in _files(toc) if _CHAPTER.match(f)]
    if not wanted:
        raise SubsetError("no chapters given (e.g. CHAPTERS=02,06)")
    chosen = []
    for item in wanted:
        matches = [
            f
            for f in chapters
            if item in (f, f.rsplit("/", 1)[-1], _CHAPTER.match(f)["slug"])
            or (item.isdigit() and int(item) == int(_CHAPTER.match(f)["num"]))
        ]
        if not matches:
            names = ", ".join(f.rsplit("/", 1)[-1] for f in chapters)
            raise SubsetError(f"unknown chapter {item!r}; available: {names}")
        chosen += [m for m in matches if m not in chosen]
    keep = set(chosen) | set(FRONT)
    out = {k: v for k, v in toc.items() if k not in ("parts", "chapters")}
    if "parts" in toc:
        out["parts"] = []
        for part in toc["parts"]:
            entries = [c for c in part.get("chapters", []) if c.get("file") in keep]
            if entries:
                out["parts"].append({**part, "chapters": entries})
    if "chapters" in toc:
        out["chapters"] = [c for c in toc["chapters"] if c.get("file") in keep]
    return out, chosen


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(description="A table of contents with selected chapters.")
    parser.add_argument("chapters", nargs="*", help="numbers, slugs or stems (commas work too)")
    parser.add_argument("--toc", type=Path, default=Path("_toc.yml"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    wanted = [c for item in args.chapters for c in item.split(",") if c.strip()]
    try:
        toc, chosen = select(yaml.safe_load(args.toc.read_text(encoding="utf-8")), wanted)
    except SubsetError as err:
        print(f"chapter_subset: error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Derived from {args.toc} by book/_ext/chapter_subset.py: {' '.join(chosen)}\n"
    args.out.write_text(header + yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    print(f"{args.out}: {', '.join(chosen)} and the front matter")
    return 0


# --- the Sphinx side ---------------------------------------------------------------------------


def _chapter_number(docname: str) -> int | None:
    m = _CHAPTER.match(docname)
    return int(m["num"]) if m and docname.startswith("book/") else None


def _shift(value, offset: int):
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], int):
        return type(value)([value[0] + offset, *value[1:]])
    return value


def renumber(app, env) -> list[str]:
    """``env-get-updated``, after Sphinx numbered the sections and figures: chapter NN is NN."""
    if not app.config.tlcourse_chapter_subset:
        return []
    for docname, secnums in env.toc_secnumbers.items():
        real = _chapter_number(docname)
        top = secnums.get("")
        if real is None or not top or top[0] == real:
            continue
        offset = real - top[0]
        for anchor, number in list(secnums.items()):
            secnums[anchor] = _shift(number, offset)
        for node in env.tocs[docname].findall(nodes.reference):
            if node.get("secnumber"):
                node["secnumber"] = _shift(node["secnumber"], offset)
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = _shift(title["secnumber"], offset)
        for numbers in env.toc_fignumbers.get(docname, {}).values():
            for key, number in list(numbers.items()):
                numbers[key] = _shift(number, offset)
    return []


def _targets(srcdir: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """{("doc", docname) or ("label", label): (docname, title)} of every page of book/."""
    found = {}
    for md in sorted((srcdir / "book").glob("*.md")):
        docname = f"book/{md.stem}"
        lines = md.read_text(encoding="utf-8").split("\n")
        pending = None
        for i, line in enumerate(lines):
            heading = _HEADING.match(line)
            if heading and not line.startswith("#|"):
                title = heading["title"]
                found.setdefault(("doc", docname), (docname, title))
                if pending:
                    found[("label", pending)] = (docname, title)
                    pending = None
            label = _LABEL.match(line)
            if label:
                pending = label["label"]
            if re.match(r"^(`{3,}|:{3,})\{exercise-start\}", line):
                j = i + 1
                while j < len(lines) and not re.match(r"^(`{3,}|:{3,})\s*$", lines[j]):
                    opt = re.match(r"^:label:\s*(\S+)", lines[j])
                    if opt:
                        found[("label", opt[1])] = (docname, line.split("}", 1)[1].strip())
                    j += 1
    return found


def left_out_reference(app, env, node, contnode):
    """``missing-reference``: a target in a chapter this build left out renders as its title."""
    if not app.config.tlcourse_chapter_subset:
        return None
    if not hasattr(app, "_tlcourse_targets"):
        app._tlcourse_targets = _targets(Path(app.srcdir))
    targets = app._tlcourse_targets
    reftype, target = node.get("reftype"), node.get("reftarget", "")
    if reftype == "doc" or (reftype == "myst" and target.endswith(".md")):
        from sphinx.util import docname_join

        key = ("doc", docname_join(node.get("refdoc", ""), target.removesuffix(".md")))
    elif reftype in ("ref", "numref", "myst"):
        key = (
            ("label", target.lower()) if ("label", target.lower()) in targets else ("label", target)
        )
    else:
        return None
    if key not in targets or targets[key][0] in env.found_docs:
        return None  # not a page of the book, or a page of this build: a real broken reference
    text = contnode.astext() if node.get("refexplicit") else targets[key][1]
    return nodes.inline(text, text, classes=["tlcourse-not-in-this-book"])


def setup(app):
    app.add_config_value("tlcourse_chapter_subset", False, "env")
    app.connect("env-get-updated", renumber)
    app.connect("missing-reference", left_out_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main())
