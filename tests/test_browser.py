"""The book that CI keeps, opened in a browser from disk with the network cut off.

Run by ``make book-check`` right after its two builds (marker ``book``): it builds and executes
nothing, it opens the HTML those builds wrote (``_build/check``, ``_build/check-nosolutions``) in
headless Chromium (Debian's ``/usr/bin/chromium``, or ``TLCOURSE_CHROMIUM``; Playwright cannot
download a browser here) with every request that is not a local file aborted. For every page of the
book: no console error and no failed local request, every image loaded, the maths typeset by the
MathJax that the build ships (no raw ``\\(``, ``\\[``, ``$$`` left), the solution (and exercise)
dropdowns open on a click, an exercise's kind badge does not cover its title, every link to a local
page or anchor resolves; and the no-solutions build has no solution text in it, its launch buttons
(Colab, Binder) open the student notebooks and its download button gives the student notebook
(``student/NN-slug.ipynb`` in the build). ``TLCOURSE_BUILD_ROOT`` (default ``_build``) is the folder
that holds the two builds. A missing browser
or a missing build fails these tests: they only run when asked for (``-m book``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = Path(os.environ.get("TLCOURSE_BUILD_ROOT", ROOT / "_build"))
BUILDS = {
    "strict": BUILD_ROOT / "check" / "_build" / "html",
    "no-solutions": BUILD_ROOT / "check-nosolutions" / "_build" / "html",
}
PAGES = sorted(p.stem for p in (ROOT / "book").glob("*.md"))
CHAPTERS = [p for p in PAGES if re.match(r"\d\d-", p)]
# The two builds differ only in the chapters (their solutions): the prose pages are opened once.
BUILD_PAGES = {"strict": PAGES, "no-solutions": CHAPTERS}
CHROMIUM = os.environ.get("TLCOURSE_CHROMIUM", "/usr/bin/chromium")
# As the machine's own browser probe starts it: no background traffic to Google's hosts.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{")
pytestmark = pytest.mark.book

# What a page shows once loaded, scripts run and MathJax finished (one pass per page).
INSPECT = """() => {
  const text = (root, drop) => {
    const copy = root.cloneNode(true);
    copy.querySelectorAll(drop).forEach(e => e.remove());
    return copy.textContent;
  };
  const main = document.querySelector('main') || document.body;
  const maths = [...document.querySelectorAll('span.math, div.math')];
  return {
    scripts: [...document.scripts].map(s => s.src).filter(Boolean),
    mathjax: !!(window.MathJax && window.MathJax.startup),
    math: maths.length,
    untypeset: maths.filter(e => !e.querySelector('mjx-container'))
      .map(e => e.textContent.slice(0, 80)),
    containers: document.querySelectorAll('mjx-container').length,
    prose: text(main, 'pre, code, script, style, textarea, mjx-container, .highlight'),
    solutionText: [...document.querySelectorAll('div.solution')].map(s =>
      text(s, '.admonition-title, script, style, mjx-container')),
    restText: text(main, 'div.solution, script, style'),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    launch: [...document.querySelectorAll('.dropdown-launch-buttons a[href]')].map(a => a.href),
    downloads: [...document.querySelectorAll('.dropdown-download-buttons a[href]')]
      .map(a => a.href),
    ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name')),
    exercises: document.querySelectorAll('div.exercise').length,
    solutions: document.querySelectorAll('div.solution').length,
  };
}"""

IMAGES = """() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => i.getAttribute('src'))"""


def _rect_overlap(a, b):
    """Area shared by two [x, y, width, height] boxes (0 when they only touch)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _badge_overlaps(cdp):
    """Each exercise title's kind badge (the title's ::after as laid out, its text included) and
    the title's own text, from Chromium's layout snapshot: the titles where the two overlap, how
    many badges were found, how many titles. (A pseudo-element has no DOM box to measure.)"""
    snap = cdp.send("DOMSnapshot.captureSnapshot", {"computedStyles": []})
    strings, doc = snap["strings"], snap["documents"][0]
    nodes, layout = doc["nodes"], doc["layout"]
    parent, names = nodes["parentIndex"], nodes["nodeName"]
    attrs = nodes["attributes"]

    def classes(i):
        pairs = attrs[i]
        for k in range(0, len(pairs), 2):
            if strings[pairs[k]] == "class":
                return strings[pairs[k + 1]].split()
        return []

    titles = {
        i
        for i in range(len(parent))
        if "admonition-title" in classes(i) and parent[i] >= 0 and "exercise" in classes(parent[i])
    }
    kinds = nodes["pseudoType"]
    pseudo = {i: strings[v] for i, v in zip(kinds["index"], kinds["value"])}

    def owner(i):
        """(title, is_badge) for a node inside an exercise title, else None."""
        badge = False
        while i >= 0:
            if pseudo.get(i) == "after":
                badge = True
            if i in titles:
                return i, badge
            if i in pseudo and pseudo[i] != "after":
                return None  # the theme's ::before (the title's tinted background)
            i = parent[i]
        return None

    boxes = {t: {"badge": [], "text": [], "title": ""} for t in titles}
    for node, bounds, text in zip(layout["nodeIndex"], layout["bounds"], layout["text"]):
        found = owner(node)
        if found is None or bounds[2] * bounds[3] == 0:
            continue
        title, is_badge = found
        if is_badge:
            boxes[title]["badge"].append(bounds)
        elif text >= 0 and strings[text].strip():
            boxes[title]["text"].append(bounds)
            boxes[title]["title"] += strings[text]
    overlapping = [
        b["title"].strip()
        for b in boxes.values()
        if any(_rect_overlap(x, y) > 1 for x in b["badge"] for y in b["text"])
    ]
    return overlapping, sum(bool(b["badge"]) for b in boxes.values()), len(titles)


def _open_dropdowns(page):
    """Click each exercise/solution dropdown's title; return those that did not open."""
    closed = []
    dropdowns = page.locator("div.exercise.dropdown, div.solution.dropdown")
    for k in range(dropdowns.count()):
        box = dropdowns.nth(k)
        name = box.locator(".admonition-title").first.inner_text().strip()[:60]
        body = box.locator(":scope > :not(.admonition-title)").first
        if body.is_visible():
            closed.append(f"{name} (open before the click)")
            continue
        box.locator(".admonition-title").first.click()
        try:
            body.wait_for(state="visible", timeout=3000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            closed.append(name)
    return closed


def _inspect_page(context, path, external):
    page = context.new_page()
    external.clear()  # the context's route handler fills it: requests that needed the network
    events = {"console": [], "failed": [], "external": external}
    page.on("console", lambda m: m.type == "error" and events["console"].append(m.text))
    page.on("pageerror", lambda e: events["console"].append(f"uncaught: {e}"))
    page.on(
        "requestfailed",
        lambda r: r.url.startswith("file:") and events["failed"].append(f"{r.url} ({r.failure})"),
    )
    page.goto(path.as_uri(), wait_until="load")
    # MathJax's script is deferred: by "load" it has run (MathJax.startup exists) or it failed.
    page.evaluate("() => window.MathJax?.startup?.promise.then(() => true)")
    report = page.evaluate(INSPECT)
    cdp = context.new_cdp_session(page)
    report["badge_overlaps"], report["badges"], report["exercise_titles"] = _badge_overlaps(cdp)
    cdp.detach()
    report["closed_dropdowns"] = _open_dropdowns(page)
    page.wait_for_load_state("load")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=10000)
    report["broken_images"] = page.evaluate(IMAGES)
    report["images"] = page.evaluate("() => document.images.length")
    report.update({k: list(v) for k, v in events.items()})
    page.close()
    return report


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' -c ci/constraints.txt")
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
            "(or set TLCOURSE_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def reports(browser):
    """{build: {page: report}}, each page of each build opened once, offline."""
    missing = [
        str(BUILDS[b] / "book" / f"{p}.html")
        for b in BUILDS
        for p in BUILD_PAGES[b]
        if not (BUILDS[b] / "book" / f"{p}.html").is_file()
    ]
    if missing:
        pytest.fail(f"no book build to test (run `make book-check`): missing {missing[:3]}")
    result = {}
    for build, html in BUILDS.items():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        external = []

        def offline(route):  # one argument: Playwright passes (route, request) to two
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        context.route("**/*", offline)
        result[build] = {
            page: _inspect_page(context, html / "book" / f"{page}.html", external)
            for page in BUILD_PAGES[build]
        }
        context.close()
    return result


def _problems(reports, build, key):
    return {page: r[key] for page, r in reports[build].items() if r[key]}


@pytest.mark.parametrize("build", BUILDS)
def test_pages_load_without_errors_or_network(reports, build):
    assert not _problems(reports, build, "console"), "console errors"
    assert not _problems(reports, build, "failed"), "local files that failed to load"
    assert not _problems(reports, build, "external"), "requests that need the network"


@pytest.mark.parametrize("build", BUILDS)
def test_every_image_loaded(reports, build):
    assert not _problems(reports, build, "broken_images")
    assert all(reports[build][page]["images"] for page in CHAPTERS), "a chapter without images"


@pytest.mark.parametrize("build", BUILDS)
def test_maths_is_typeset_offline(reports, build):
    for page in CHAPTERS:
        assert reports[build][page]["math"], f"{page}: no maths found: is the page still a chapter?"
    for page, r in reports[build].items():
        local = [s for s in r["scripts"] if "mathjax" in s.lower()]
        assert all(s.startswith("file:") for s in local), (page, local)
        if r["math"]:
            assert r["mathjax"], f"{page}: MathJax did not load from the build ({local})"
        assert not r["untypeset"], f"{page}: maths left untypeset: {r['untypeset'][:3]}"
        assert r["containers"] >= r["math"], (page, r["containers"], r["math"])
        raw = sorted({m.group() for m in RAW_MATH.finditer(r["prose"])})
        assert not raw, f"{page}: raw TeX delimiters in the text: {raw}"


@pytest.mark.parametrize("build", BUILDS)
def test_dropdowns_open_on_click(reports, build):
    assert not _problems(reports, build, "closed_dropdowns")
    for page in CHAPTERS:
        r = reports[build][page]
        assert r["exercises"], f"{page}: no exercises"
        if build == "strict":
            assert r["solutions"], f"{page}: no solutions"


@pytest.mark.parametrize("build", BUILDS)
def test_exercise_badge_does_not_cover_the_title(reports, build):
    assert not _problems(reports, build, "badge_overlaps"), "badge drawn over the exercise title"
    for page in CHAPTERS:
        r = reports[build][page]
        assert r["badges"] == r["exercise_titles"] > 0, (
            f"{page}: {r['badges']} badges for {r['exercise_titles']} exercises"
        )


@pytest.mark.parametrize("build", BUILDS)
def test_internal_links_resolve(reports, build):
    html = BUILDS[build].resolve()
    ids = {
        (BUILDS[build] / "book" / f"{p}.html").resolve(): set(r["ids"])
        for p, r in reports[build].items()
    }
    broken = []
    for page, r in reports[build].items():
        for href in r["links"]:
            url = urlsplit(href)
            if url.scheme != "file":
                continue
            target = Path(unquote(url.path))
            if not target.exists():
                broken.append((page, href))
                continue
            assert html in target.resolve().parents, f"{page} links outside the book: {href}"
            if url.fragment and target.suffix == ".html":
                anchors = ids.get(target.resolve())
                if anchors is None:  # a page the book does not list (genindex, search)
                    anchors = set(re.findall(r'\b(?:id|name)="([^"]+)"', target.read_text("utf-8")))
                if unquote(url.fragment) not in anchors:
                    broken.append((page, href))
    assert not broken, f"{len(broken)} broken links: {broken[:10]}"


def test_no_solution_text_without_solutions(reports):
    strict, bare = reports["strict"], reports["no-solutions"]
    leaked = {page: r["solutions"] for page, r in bare.items() if r["solutions"]}
    assert not leaked, f"solution blocks in the no-solutions build: {leaked}"
    checked = 0
    for page in CHAPTERS:
        r = strict[page]
        # Lines only a solution has (not in the chapter's own text), long enough to be specific.
        lines = {line.strip() for text in r["solutionText"] for line in text.split("\n")}
        lines = {line for line in lines if len(line) >= 30 and line not in r["restText"]}
        found = [line for line in lines if line in bare[page]["restText"]]
        assert not found, f"{page}: solution text in the no-solutions build: {found[:3]}"
        checked += len(lines)
    assert checked > 50, f"only {checked} solution lines to look for: did the solutions move?"


def test_buttons_open_the_student_notebooks_without_solutions(reports):
    for page in CHAPTERS:
        bare, strict = reports["no-solutions"][page], reports["strict"][page]
        assert len(bare["launch"]) == 2, f"{page}: launch buttons {bare['launch']}"
        wrong = [h for h in bare["launch"] if not h.endswith(f"student/{page}.ipynb")]
        assert not wrong, f"{page}: launch buttons that do not open the student notebook: {wrong}"
        assert bare["downloads"], f"{page}: no download of the student notebook"
        wrong = [h for h in bare["downloads"] if not h.endswith(f"/student/{page}.ipynb")]
        assert not wrong, f"{page}: downloads other than the student notebook: {wrong}"
        assert all(h.endswith(f"notebooks/{page}.ipynb") for h in strict["launch"]), strict[
            "launch"
        ]
