"""Repository-wide pytest set-up, for the unit tests and for nbval's notebook runs alike.

* Every Python subprocess (notebook kernels included) gets ``tests/netguard`` on its path, whose
  ``sitecustomize`` refuses non-loopback connections, UDP datagrams and name resolution with an
  error that is not an ``OSError``; the pytest process loads the same guard here (and pytest-socket's
  ``--allow-hosts``, in pyproject.toml's pytest options, on top).
* Offline switches for the Hugging Face libraries, forced on (a user's ``HF_HUB_OFFLINE=0`` must not
  let a test download), ``TLCOURSE_DATA`` defaulting to the course's ``../shared/data`` beside
  the repository when it is not set, and the data bundle's URL and cache defaulting to a dead
  loopback port and the build folder.
"""
import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GUARD = ROOT / "tests" / "netguard"

os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH", "")]))
_spec = importlib.util.spec_from_file_location("tlcourse_netguard", GUARD / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # guard this process too
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
# Set but empty (`TLCOURSE_DATA= make nbval DATA_PATH=download`) means "no data directory": the
# chapters then get their data through the course data bundle, as on Colab.
if "TLCOURSE_DATA" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["TLCOURSE_DATA"] = str(ROOT.parent / "shared" / "data")
# The data bundle: never the real release from a test (nothing listens on the discard port 9, so a
# download fails at once, on loopback); downloads land in the build folder. CI's download path and
# tests/test_bundle.py set both to a local server and a fresh folder.
os.environ.setdefault("TLCOURSE_DATA_URL", "http://127.0.0.1:9/")
os.environ.setdefault("TLCOURSE_DATA_CACHE", str(ROOT / "_build" / "test-data-cache"))


# ---------------------------------------------------------------------------------------------
# nbval → jupyter-cache: each chapter is executed once per CI run (under nbval), and the book
# builds reuse those outputs instead of executing again. With TLCOURSE_NB_CACHE set (the Makefile's
# nbval target sets it to the book build's jupyter-cache), a notebook whose every cell passed is
# stored there, keyed like myst-nb keys the chapter's Markdown source (same code cells, same
# kernelspec), and marked ``executed_by: nbval`` so a test can tell that the build reused it.
# ---------------------------------------------------------------------------------------------
import time  # noqa: E402

import pytest  # noqa: E402

_NB_RUNS: dict = {}  # notebook path -> {"failed": bool, "start": float, "cells": [(seconds, index)]}
_SLOWEST: list = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not hasattr(item, "test_outputs") or not os.environ.get("TLCOURSE_NB_CACHE"):
        return
    state = _NB_RUNS.setdefault(str(item.parent.fspath), {"failed": False, "start": time.time()})
    report = outcome.get_result()
    if report.failed or report.skipped:
        state["failed"] = True
    elif call.when == "call":
        item.cell.outputs = item.test_outputs or []
        state.setdefault("cells", []).append((round(report.duration, 1), item.cell_num))


def pytest_runtest_teardown(item, nextitem):
    if not hasattr(item, "test_outputs") or not os.environ.get("TLCOURSE_NB_CACHE"):
        return
    if nextitem is not None and nextitem.parent is item.parent:
        return  # the notebook is not finished yet
    state = _NB_RUNS.pop(str(item.parent.fspath), {"failed": True})
    if state["failed"]:
        return
    seconds = time.time() - state["start"]
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        # the notebook's time as it finishes (make nbval runs them in one session), past the capture
        with capture.global_and_fixture_disabled():
            reporter.write("\n")  # after the progress dots
            reporter.write_line(f"{os.path.relpath(str(item.parent.fspath), ROOT)}: {seconds:.0f} s")
    import copy

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = copy.deepcopy(item.parent.nb)
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
    source = ROOT / "book" / (Path(str(item.parent.fspath)).stem + ".md")
    data = {"executed_by": "nbval", "execution_seconds": round(seconds, 1)}
    slowest = sorted(state.get("cells", []), reverse=True)[:5]
    # Where a chapter's time goes: its slowest code cells (0-based code-cell index), in the summary.
    _SLOWEST.append(f"{source.stem}: slowest cells " + ", ".join(f"#{n} {t:.0f} s" for t, n in slowest))
    get_cache(os.environ["TLCOURSE_NB_CACHE"]).cache_notebook_bundle(
        CacheBundleIn(nb, str(source), data=data), check_validity=False, overwrite=True)


def pytest_terminal_summary(terminalreporter):
    for line in _SLOWEST:
        terminalreporter.write_line(line)
