"""The ``tlcourse`` command (installed with the package). Sub-commands:

``tlcourse assign``  student notebooks for a course: solutions replaced by stubs
                     (see tlcourse.assign)
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
        "--think-answers",
        choices=("keep", "drop"),
        default="drop",
        help="keep the model answers of 'think' exercises, or drop them (default)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--exercises-only",
        action="store_true",
        help="keep only each chapter's setup cell and exercise section (runs in seconds)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "assign":
        try:
            report = assign(
                args.out,
                args.source,
                args.chapters,
                args.think_answers,
                args.force,
                only_exercises=args.exercises_only,
            )
        except AssignError as err:
            print(f"tlcourse assign: error: {err}", file=sys.stderr)
            return 2
        for chapter, exercises in report.items():
            kinds = ", ".join(f"{e.number} {e.kind}" for e in exercises)
            print(f"{args.out / (chapter + '.ipynb')}: {len(exercises)} exercises ({kinds})")
    return 0


if __name__ == "__main__":  # python -m tlcourse.cli
    sys.exit(main())
