"""The ``tlcourse`` command (installed with the package). Sub-commands:

``tlcourse assign``    student notebooks for a course: solutions replaced by stubs
                       (see tlcourse.assign); ``--format nbgrader``: nbgrader source notebooks
                       with autograded self-checks (tlcourse.nbgrader); ``--answer-key``: the
                       answer keys (tlcourse.answer_key)
``tlcourse download``  the course data bundle's folders, fetched ahead of time into the download
                       cache (see tlcourse.data.bundle)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .assign import AssignError, assign


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlcourse", description="Tools for the tlcourse workbook."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "assign",
        help="write student notebooks (solutions replaced by stubs)",
        description="Turn the chapter notebooks into student notebooks: solution code becomes "
        "a NotImplementedError stub, solution dropdowns are removed, self-checks stay.",
    )
    p.add_argument(
        "--chapters",
        nargs="+",
        metavar="CH",
        help="chapters by number (1 or 01), slug (what-is-transfer) or file stem; default: all",
    )
    p.add_argument(
        "--source",
        type=Path,
        default=Path("notebooks"),
        help="folder of chapter notebooks (default: notebooks)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("student"), help="output folder (default: student)"
    )
    p.add_argument(
        "--format",
        choices=("student", "nbgrader"),
        default="student",
        help="student notebooks (default), or an nbgrader course folder: OUT/source/<chapter>/ "
        "with solution cells and autograded self-check cells, and OUT/nbgrader_config.py",
    )
    p.add_argument(
        "--answer-key",
        action="store_true",
        help="write the chapters' answer keys to OUT instead of student notebooks",
    )
    p.add_argument(
        "--think-answers",
        choices=("keep", "drop"),
        default="drop",
        help="keep the model answers of 'think' exercises, or drop them (default; "
        "always with --format nbgrader)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--exercises-only",
        action="store_true",
        help="keep only each chapter's setup cell and exercise section (runs in seconds; "
        "always with --format nbgrader)",
    )
    d = sub.add_parser(
        "download",
        help="download the course data (all datasets, or NAMES) ahead of time",
        description="Fetch the course data bundle's folders into the download cache "
        "($TLCOURSE_DATA_CACHE) from $TLCOURSE_DATA_URL (default: the course's release), so that "
        "the chapters run offline afterwards.",
    )
    d.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="datasets (sst2, rte, ud, ...) or data folders (glue_rte); default: all",
    )
    return parser


def _download(names: list[str]) -> int:
    from .data import DataCorruptError, DataNotFoundError, UnknownDataError, download
    from .data.bundle import bundle_url, download_cache

    print(f"tlcourse download: from {bundle_url()} into {download_cache()}")
    try:
        fetched = download(names or None)
    except (DataNotFoundError, DataCorruptError, UnknownDataError) as err:
        print(f"tlcourse download: error: {err}", file=sys.stderr)
        return 2
    for name, folder in fetched.items():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{name}: {folder} ({size / 1e6:.1f} MB)")
    return 0


def _assign(args: argparse.Namespace) -> int:
    try:
        if args.answer_key:
            if args.format != "student":
                raise AssignError("--answer-key writes answer keys: leave out --format")
            from .answer_key import write_answer_keys

            keys = write_answer_keys(args.out, args.source, args.chapters, args.force)
            for chapter, path in keys.items():
                print(f"{path}: answer key of {chapter}")
        elif args.format == "nbgrader":
            if args.think_answers == "keep":
                raise AssignError("--think-answers keep is for --format student only")
            from .nbgrader import assign_nbgrader

            graded = assign_nbgrader(args.out, args.source, args.chapters, args.force)
            for stem, checks in graded.items():
                points = sum(c.points for c in checks)
                names = ", ".join(f"{c.exercise} {c.check}" for c in checks)
                path = args.out / "source" / stem / f"{stem}.ipynb"
                print(f"{path}: {len(checks)} autograded checks, {points:g} points ({names})")
        else:
            report = assign(
                args.out,
                args.source,
                args.chapters,
                args.think_answers,
                args.force,
                only_exercises=args.exercises_only,
            )
            for chapter, exercises in report.items():
                kinds = ", ".join(f"{e.number} {e.kind}" for e in exercises)
                print(f"{args.out / (chapter + '.ipynb')}: {len(exercises)} exercises ({kinds})")
    except AssignError as err:
        print(f"tlcourse assign: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "download":
        return _download(args.names)
    if args.command == "assign":
        return _assign(args)
    return 0


if __name__ == "__main__":  # python -m tlcourse.cli
    sys.exit(main())
