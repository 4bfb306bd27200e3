"""The book that CI keeps is the book nbval tested: the strict builds reused nbval's outputs.

Run by ``make book-check`` right after its two builds (marker ``book``). ``make nbval`` stores each
chapter it ran in the book's jupyter-cache with ``executed_by: nbval`` (conftest.py); had a build
executed a chapter again, myst-nb would have replaced that record with its own. So: every chapter's
record is still nbval's, the builds read it (their execution data carries its runtime), and the
HTML shows outputs and plots.
"""
import os
import pickle
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
BUILDS = [ROOT / "_build" / "check" / "_build", ROOT / "_build" / "check-nosolutions" / "_build"]
pytestmark = pytest.mark.book


def _records():
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook

    cache = get_cache(os.environ.get("TLCOURSE_NB_CACHE", str(ROOT / "_build" / ".jupyter_cache")))
    records = {}
    for md in CHAPTERS:
        nb = read_myst_markdown_notebook(md.read_text(encoding="utf-8"))
        try:
            records[md.stem] = cache.match_cache_notebook(nb)
        except KeyError:
            pytest.fail(f"{md.name}: no executed notebook in the jupyter-cache (did `make nbval` pass?)")
    return records


@pytest.fixture(scope="module")
def records():
    for build in BUILDS:
        if not (build / "html").is_dir():
            pytest.skip(f"no book build at {build} (run `make book-check`)")
    return _records()


def test_every_chapter_comes_from_nbval(records):
    executed_again = {name: r.data for name, r in records.items() if r.data.get("executed_by") != "nbval"}
    assert not executed_again, f"the book build executed these chapters again: {executed_again}"


@pytest.mark.parametrize("build", BUILDS, ids=["strict", "no-solutions"])
def test_the_builds_read_the_cached_outputs(records, build):
    with open(build / ".doctrees" / "environment.pickle", "rb") as handle:
        env = pickle.load(handle)
    for name, record in records.items():
        exec_data = env.nb_metadata[f"book/{name}"]["exec_data"]
        assert exec_data["succeeded"], (name, exec_data)
        # A cache hit reports the runtime stored with the record; an execution reports its own.
        assert exec_data["runtime"] == record.data["execution_seconds"], (name, exec_data)


@pytest.mark.parametrize("build", BUILDS, ids=["strict", "no-solutions"])
def test_the_html_shows_outputs_and_plots(records, build):
    for md in CHAPTERS:
        html = (build / "html" / "book" / f"{md.stem}.html").read_text(encoding="utf-8")
        assert html.count('class="cell_output') >= 5, f"{md.name}: the page has (almost) no outputs"
    chapter1 = (build / "html" / "book" / f"{CHAPTERS[0].stem}.html").read_text(encoding="utf-8")
    plots = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.png)"', chapter1)
    # the learning curves, and (with solutions) the plot of exercise 1.3
    expected = 1 if "nosolutions" in str(build) else 2
    assert len(plots) >= expected, f"chapter 1 shows {len(plots)} plots, expected {expected}"
    for src in plots:
        assert (build / "html" / "book" / src).resolve().is_file(), src
