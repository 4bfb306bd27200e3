"""Execute a chapter notebook's code cells in order, in this process, without Jupyter.

For machines that have the chapters' libraries but no Jupyter (the GPU machines the course borrows
for its ``gpu`` profile runs). Each code cell runs in one shared namespace, from ``notebooks/``
as under nbval; IPython-only lines (``%pip`` in the Colab branch of the setup cell) become ``pass``.
A claim cell (collapsed with ``hide-input`` and asserting) that fails is recorded and the run goes
on; any other error stops it. The summary (``--json``) holds the notebook, the profile and device
the setup cell printed, the wall time of every cell and of the whole notebook, and each claim
cell's outcome.

    TLCOURSE_PROFILE=gpu python ci/run_cells.py notebooks/07-meta-learning.ipynb --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

MAGIC = re.compile(r"^(\s*)[%!].*$", re.M)


def code_cells(path: Path) -> list[dict]:
    """The notebook's code cells: ``source`` (IPython lines made ``pass``) and ``claim``."""
    cells = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tags = cell.get("metadata", {}).get("tags", [])
        cells.append(
            {
                "source": MAGIC.sub(r"\1pass", source),
                "claim": "hide-input" in tags and "assert " in source,
            }
        )
    return cells


def display(*objects) -> None:
    """What a notebook's ``display(...)`` shows, as text (no IPython here)."""
    for obj in objects:
        print(obj.to_string() if hasattr(obj, "to_string") else repr(obj))


class Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy (the cell's printed output)."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text):
        self.stream.write(text)
        self.kept.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()


def run(path: Path) -> dict:
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = code_cells(path)
    namespace: dict = {"__name__": "__main__", "display": display}
    records, began, stopped = [], time.perf_counter(), None
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        for i, cell in enumerate(cells):
            out, t0, error = Tee(sys.stdout), time.perf_counter(), None
            print(f"--- cell {i}{' (claim)' if cell['claim'] else ''}", flush=True)
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(cell["source"], f"<{path.stem} cell {i}>", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - recorded, then judged below
                error = f"{type(exc).__name__}: {exc}"[:2000]
                traceback.print_exc()
            records.append(
                {
                    "cell": i,
                    "claim": cell["claim"],
                    "seconds": round(time.perf_counter() - t0, 2),
                    "error": error,
                    "checked": [
                        line for line in out.kept.getvalue().splitlines() if "Checked" in line
                    ],
                    "output": out.kept.getvalue()[-1500:] if i < 2 or error else "",
                }
            )
            if error and not cell["claim"]:
                stopped = i
                break
    finally:
        os.chdir(cwd)
    setup = "".join(r["output"] for r in records[:2])
    return {
        "notebook": path.name,
        "profile": (re.search(r"profile (\w+)", setup) or [None, None])[1],
        "device": (re.search(r"device (\S+)", setup) or [None, None])[1],
        "seconds": round(time.perf_counter() - began, 1),
        "cells": len(cells),
        "stopped_at": stopped,
        "claims_failed": [r for r in records if r["claim"] and r["error"]],
        "claims_passed": sum(1 for r in records if r["claim"] and not r["error"]),
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)
    summary = run(args.notebook.resolve())
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    failed = summary["claims_failed"]
    print(
        f"{summary['notebook']}: profile {summary['profile']}, device {summary['device']}, "
        f"{summary['seconds']:.0f} s; claim cells passed {summary['claims_passed']}, "
        f"failed {len(failed)}"
        + (
            f"; stopped at cell {summary['stopped_at']}"
            if summary["stopped_at"] is not None
            else ""
        )
    )
    for r in failed:
        print(f"  claim cell {r['cell']}: {r['error'][:300]}")
    return 0 if not failed and summary["stopped_at"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
