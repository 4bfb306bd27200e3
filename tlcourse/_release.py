"""Where a student's notebook installs the course package from: this repository at this version.

Each chapter's first cell installs ``tlcourse`` when it is missing (Colab) with one line,
``%pip install -q "tlcourse[EXTRAS] @ git+REPOSITORY_URL@RELEASE_REF"``, so that a notebook runs
against the package it was written for, not whatever the default branch holds later. The two
settings live here; ``python -m tlcourse._release --write`` (run by ``make sync``) rewrites every
chapter's line from them, and the tests check that the chapters and their notebook twins agree.

``REPOSITORY_URL`` must equal ``repository.url`` in ``_config.yml`` (the launch buttons' repository;
a fork changes both). ``RELEASE_REF`` is the git tag of this version, ``v<__version__>``: push that
tag when the version is released (``git tag v0.1.0 && git push origin v0.1.0``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import __version__

REPOSITORY_URL = "https://github.com/tlcourse/tlcourse"
RELEASE_REF = f"v{__version__}"

# The install line of a chapter's first cell; group "extras" is kept when the line is rewritten.
INSTALL_LINE = re.compile(
    r'%pip install -q "tlcourse\[(?P<extras>[a-z0-9,_-]*)\] @ '
    r'git\+(?P<url>[^"@]+)(?:@(?P<ref>[^"]*))?"'
)
CHAPTERS = "book/[0-9][0-9]-*.md"


def install_line(extras: str) -> str:
    """The chapter's ``%pip install`` line for ``extras`` (e.g. ``"offline,peers"``)."""
    return f'%pip install -q "tlcourse[{extras}] @ git+{REPOSITORY_URL}@{RELEASE_REF}"'


def rewrite(text: str) -> str:
    """``text`` with every install line pointing at ``REPOSITORY_URL`` and ``RELEASE_REF``."""
    return INSTALL_LINE.sub(lambda m: install_line(m["extras"]), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tlcourse._release",
        description="Point every chapter's install line at REPOSITORY_URL@RELEASE_REF.",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite book/NN-*.md in place")
    action.add_argument("--check", action="store_true", help="exit 1 when a chapter differs")
    args = parser.parse_args(argv)
    chapters = sorted(args.root.glob(CHAPTERS))
    if not chapters:
        parser.error(f"no chapters ({CHAPTERS}) under {args.root}")
    stale = []
    for path in chapters:
        text = path.read_text(encoding="utf-8")
        if not INSTALL_LINE.search(text):
            print(f"{path}: no install line", file=sys.stderr)
            return 1
        new = rewrite(text)
        if new != text:
            stale.append(path)
            if args.write:
                path.write_text(new, encoding="utf-8")
    verb = "rewrote" if args.write else "out of date"
    for path in stale:
        print(f"{verb}: {path}")
    if args.write and stale:
        print("now regenerate the notebooks: make sync (jupytext --sync book/NN-*.md)")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
