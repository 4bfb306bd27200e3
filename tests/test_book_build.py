"""The book that CI keeps is the book nbval tested: the strict builds reused nbval's outputs.

Run by ``make book-check`` right after its two builds (marker ``book``). ``make nbval`` stores each
chapter it ran in the book's jupyter-cache with ``executed_by: nbval`` (conftest.py); had a build
executed a chapter again, myst-nb would have replaced that record with its own. So: every chapter's
record is still nbval's, the builds read it (their execution data carries its runtime), and the
HTML shows outputs and plots. And the no-solutions build hands out no solution: no file of it
(HTML, search index, notebooks, ...) holds a line of a solution (book/_ext/leakscan.py, checked
here to catch a planted one), its download and launch buttons give the student notebooks, and the
listings that exercises ask for are replaced by a note.

``TLCOURSE_BUILD_ROOT`` (default ``_build``) is the folder that holds ``check`` and
``check-nosolutions``.
"""

import json
import os
import pickle
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
BUILD_ROOT = Path(os.environ.get("TLCOURSE_BUILD_ROOT", ROOT / "_build"))
BUILDS = [BUILD_ROOT / "check" / "_build", BUILD_ROOT / "check-nosolutions" / "_build"]
STRICT, BARE = BUILDS
pytestmark = pytest.mark.book

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import leakscan  # noqa: E402  (book/_ext/leakscan.py)


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
            pytest.fail(
                f"{md.name}: no executed notebook in the jupyter-cache (did `make nbval` pass?)"
            )
    return records


@pytest.fixture(scope="module")
def records():
    for build in BUILDS:
        if not (build / "html").is_dir():
            pytest.skip(f"no book build at {build} (run `make book-check`)")
    return _records()


def test_every_chapter_comes_from_nbval(records):
    executed_again = {
        name: r.data for name, r in records.items() if r.data.get("executed_by") != "nbval"
    }
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


# --- the no-solutions build hands out no solution ------------------------------------------------


@pytest.fixture(scope="module")
def solution_lines():
    lines = leakscan.solution_lines(ROOT / "book")
    labels = {line.label for line in lines}
    assert len(lines) > 200 and len(labels) >= 40, (len(lines), len(labels))
    return lines


@pytest.fixture(scope="module")
def bare():
    if not (BARE / "html").is_dir():
        pytest.skip(f"no book build at {BARE} (run `make book-check`)")
    return BARE


def test_the_leak_scan_catches_a_planted_leak(tmp_path, solution_lines):
    code = next(line for line in solution_lines if line.label == "ex-js" and "count_a" in line.text)
    prose = next(
        line
        for line in solution_lines
        if line.label == "ex-budgets" and leakscan.normalise(line.text) == line.words
    )
    build = tmp_path / "_build"
    (build / "html" / "_static").mkdir(parents=True)
    (build / "html" / "book").mkdir()
    # a search index or a script with one solution line in a JSON string (quotes escaped)
    (build / "html" / "_static" / "planted.js").write_text(
        "Search.setIndex(" + json.dumps({"docs": ["x", code.text]}) + ");", encoding="utf-8"
    )
    # a page with a solution's prose, marked up as the theme writes it
    words = prose.text.split()
    marked_up = " ".join(f"<em>{w}</em>" if i % 3 == 0 else w for i, w in enumerate(words))
    (build / "html" / "book" / "page.html").write_text(f"<p>{marked_up}</p>", encoding="utf-8")
    # clean files: the exercise's own text, a binary file
    (build / "html" / "book" / "clean.html").write_text(
        "<p>Write <code>js_divergence(texts_a, texts_b)</code></p>", encoding="utf-8"
    )
    (build / "html" / "image.png").write_bytes(code.text.encode() + b"\0")
    leaks, read = leakscan.scan(build, solution_lines)
    found = {(leak.path, leak.line.label, leak.line.text) for leak in leaks}
    assert found == {
        ("html/_static/planted.js", "ex-js", code.text),
        ("html/book/page.html", "ex-budgets", prose.text),
    }, leakscan.report(leaks)
    assert read == 3  # the .png is not read
    assert leakscan.main([str(build)]) == 1
    (build / "html" / "_static" / "planted.js").unlink()
    (build / "html" / "book" / "page.html").unlink()
    assert leakscan.main([str(build)]) == 0


def test_no_file_of_the_no_solutions_build_holds_a_solution(bare, solution_lines):
    leaks, read = leakscan.scan(bare, solution_lines)  # html/ and jupyter_execute/
    assert not leaks, f"solution text in the no-solutions build:\n{leakscan.report(leaks)}"
    assert read > 100, f"only {read} text files in {bare}"
    assert not (bare / "html" / "_sources").exists(), "page sources in the no-solutions build"


def _hrefs(page: Path) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page.read_text(encoding="utf-8"))


def _student_repository():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    given = config["sphinx"]["config"].get("tlcourse_student_repository") or {}
    url = given.get("url") or config["repository"]["url"]
    branch = given.get("branch") or (
        config["repository"].get("branch") if not given.get("url") else ""
    )
    path = given.get("path", "student")
    org, repo = url.rstrip("/").rsplit("/", 2)[1:]
    return org, repo, branch or "main", path.strip("/")


def test_the_buttons_give_the_student_notebooks(bare):
    org, repo, branch, path = _student_repository()
    for md in CHAPTERS:
        page = bare / "html" / "book" / f"{md.stem}.html"
        hrefs = _hrefs(page)
        notebook = f"{path}/{md.stem}.ipynb" if path else f"{md.stem}.ipynb"
        assert (
            f"https://colab.research.google.com/github/{org}/{repo}/blob/{branch}/{notebook}"
            in hrefs
        )
        assert (
            f"https://mybinder.org/v2/gh/{org}/{repo}/{branch}?urlpath=lab/tree/{notebook}" in hrefs
        )
        assert f"../student/{md.stem}.ipynb" in hrefs, "no download of the student notebook"
        full = [
            h
            for h in hrefs
            if "_sources" in h or "notebooks/" in h or re.search(r"/book/\d\d-.*\.(md|ipynb)", h)
        ]
        assert not full, f"{page.name} links to the full sources: {full}"
        student = json.loads((bare / "html" / "student" / f"{md.stem}.ipynb").read_text("utf-8"))
        assert student["metadata"]["tlcourse"]["student"], md.stem
        assert not any(c.get("outputs") for c in student["cells"]), f"{md.stem}: outputs"
    # the public book keeps its launch buttons on the chapters' notebooks
    strict = _hrefs(STRICT / "html" / "book" / f"{CHAPTERS[0].stem}.html")
    assert any(h.endswith(f"/notebooks/{CHAPTERS[0].stem}.ipynb") and "colab" in h for h in strict)


def test_the_listings_that_exercises_ask_for_are_replaced_by_a_note(bare):
    tagged = 0
    for md in CHAPTERS:
        cells = len(re.findall(r"^:tags:.*\bexercise-listing\b", md.read_text("utf-8"), re.M))
        bare_html = (bare / "html" / "book" / f"{md.stem}.html").read_text("utf-8")
        strict_html = (STRICT / "html" / "book" / f"{md.stem}.html").read_text("utf-8")
        notes = re.findall(r'exercise-listing-note[^>]*>\s*<p>(.*?)</p>', bare_html, re.S)
        assert len(notes) == cells, f"{md.name}: {len(notes)} notes for {cells} exercise listings"
        assert all("is not shown: an exercise asks you to write it" in n for n in notes), notes
        assert "exercise-listing-note" not in strict_html, (
            f"{md.name}: the public book hides a listing"
        )
        tagged += cells
    if not tagged:
        pytest.skip("no cell tagged exercise-listing in book/*.md")
