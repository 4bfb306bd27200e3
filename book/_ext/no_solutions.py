"""The book without solutions (graded courses): ``tlcourse_hide_solutions: true``.

What such a build changes, and where (``make book-nosolutions``; ``make book-check`` builds it too):

* **Solutions.** sphinx-exercise's own ``hide_solutions`` does not handle the gated
  ``solution-start`` / ``solution-end`` form that the chapters use (it drops the start but leaves the
  end node and the content in between). :class:`RemoveSolutions` runs after sphinx-exercise has
  merged each gated pair into one ``solution_node`` and removes those nodes, code cells and outputs
  included: they are in no page, no search index entry, no image of ``_images``.
* **Listings of what an exercise asks for.** A code cell tagged ``exercise-listing`` shows the
  reference code of a function that an exercise asks the student to write
  (``viz.show_source(...)``); its output is replaced by a note ("The listing of ``X`` is not shown:
  an exercise asks you to write it", linked to the exercise when the cell is also tagged
  ``exercise:LABEL``). The normal build shows the listing.
* **Downloads.** No page source and no executed notebook is copied into the build
  (``html_copy_source`` and ``html_show_sourcelink`` are forced off, ``_sources/`` is removed); the
  theme's download menu offers the chapter's *student* notebook (``student/NN-slug.ipynb`` in the
  build, solutions replaced by stubs) and "print to PDF". The executed notebooks that myst-nb keeps
  next to the HTML (``<build>/jupyter_execute``) are replaced by the student notebooks too.
* **Launch and repository buttons** open the student notebooks of the *student repository*
  (``tlcourse_student_repository``, below): Colab opens
  ``<colab>/github/<org>/<repo>/blob/<branch>/<path>/NN-slug.ipynb`` and Binder
  ``<binder>/v2/gh/<org>/<repo>/<branch>?urlpath=lab/tree/<path>/NN-slug.ipynb``; the repository
  and issue buttons point at that repository; "show source" and "edit" buttons are dropped.
* **A leak scan** (``leakscan.py``) searches every text file of the build (HTML, ``searchindex.js``,
  notebooks, ...) for every solution's distinctive lines once the build is written, and fails the
  build (an extension error) if it finds one (``tlcourse_leak_scan: false`` turns it off).

Settings (``sphinx: config:`` in ``_config.yml``):

``tlcourse_hide_solutions``
    ``false`` (the public book) or ``true`` (this build).
``tlcourse_student_repository``
    Where an instructor publishes the student notebooks (``tlcourse assign --out student/``, then
    commit that folder): ``{url: https://github.com/ORG/REPO, branch: main, path: student}``. An
    empty or missing ``url`` means the course's own repository (``repository: url`` of
    ``_config.yml``), an empty ``branch`` its branch, and ``path`` defaults to ``student``; so by
    default the buttons open ``student/NN-slug.ipynb`` of the course repository.
``tlcourse_student_notebooks``
    The folder of student notebooks to ship in the build (``make book-nosolutions`` writes them with
    ``tlcourse assign``). Empty: the build makes them itself from ``notebooks/NN-slug.ipynb`` with
    :func:`tlcourse.assign.make_student_notebook`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from docutils import nodes
from sphinx import addnodes
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx_exercise.nodes import solution_node

LOGGER = logging.getLogger(__name__)
STUDENT_DIR = "student"  # the student notebooks' folder in the HTML output
LISTING_TAG = "exercise-listing"
_CHAPTER = re.compile(r"^book/(?P<stem>\d\d-[\w-]+)$")
_SHOW = re.compile(r"show_source\(\s*([\w.]+)")


class RemoveSolutions(SphinxTransform):
    default_priority = 500  # after sphinx_exercise.transforms.MergeGatedSolutions (priority 10)

    def apply(self) -> None:
        if not self.config.tlcourse_hide_solutions:
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


class HideExerciseListings(SphinxTransform):
    """The output of a cell tagged ``exercise-listing`` becomes a note (no-solutions build only)."""

    default_priority = 501

    def apply(self) -> None:
        if not self.config.tlcourse_hide_solutions:
            return
        for cell in list(self.document.findall(nodes.container)):
            if cell.get("nb_element") != "cell_code":
                continue
            tags = (cell.get("cell_metadata") or {}).get("tags", [])
            if LISTING_TAG not in tags:
                continue
            code = "".join(
                child.astext()
                for child in cell.children
                if child.get("nb_element") == "cell_code_source"
            )
            shown = _SHOW.search(code)
            for child in list(cell.children):
                if child.get("nb_element") == "cell_code_output":
                    cell.remove(child)
            note = nodes.paragraph()
            if shown:
                note += [nodes.Text("The listing of "), nodes.literal(shown[1], shown[1])]
            else:
                note += nodes.Text("This listing")
            note += nodes.Text(" is not shown: an exercise asks you to write it")
            label = next((t.split(":", 1)[1] for t in tags if t.startswith("exercise:")), None)
            if label:
                ref = addnodes.pending_xref(
                    "",
                    refdomain="std",
                    reftype="ref",
                    reftarget=label.lower(),
                    refexplicit=False,
                    refwarn=True,
                    refdoc=self.env.docname,
                )
                ref += nodes.inline(label, label)
                note += [nodes.Text(" ("), ref, nodes.Text(").")]
            else:
                note += nodes.Text(".")
            box = nodes.container(
                nb_element="cell_code_output", classes=["cell_output", "exercise-listing-note"]
            )
            box += note
            cell += box


# --- the student notebooks and the buttons -----------------------------------------------------


def student_repository(app) -> dict:
    """{url, branch, path, provider, org, repo} of the student notebooks' repository."""
    opts = app.config.html_theme_options or {}
    given = dict(app.config.tlcourse_student_repository or {})
    url = (given.get("url") or opts.get("repository_url") or "").strip().rstrip("/")
    branch = given.get("branch") or (opts.get("repository_branch") if not given.get("url") else "")
    path = given.get("path", STUDENT_DIR)
    path = "" if path is None else str(path).strip("/")
    if not url:
        raise ExtensionError("tlcourse_student_repository: no url, and no repository: url either")
    provider_url, org, repo = (
        (url.rsplit("/", 2) + ["", ""])[:3] if url.count("/") >= 2 else (url, "", "")
    )
    provider = next(
        (p for p in ("github", "gitlab", "bitbucket") if p in provider_url.lower()), "git"
    )
    return {
        "url": url,
        "branch": branch or "main",
        "path": path,
        "provider": provider,
        "org": org,
        "repo": repo,
    }


def _student_sources(app) -> dict[str, Path]:
    """{chapter stem: student notebook file} given by ``tlcourse_student_notebooks``, else {}."""
    folder = app.config.tlcourse_student_notebooks
    if not folder:
        return {}
    folder = Path(app.confdir, folder) if not Path(folder).is_absolute() else Path(folder)
    if not folder.is_dir():
        raise ExtensionError(
            f"tlcourse_student_notebooks: {folder} is not a folder (make it with "
            "`tlcourse assign --out DIR`)"
        )
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]-*.ipynb"))}


def student_notebook(app, stem: str) -> dict | None:
    """The student notebook of chapter ``stem`` (JSON), or None when there is none."""
    cache = app.__dict__.setdefault("_tlcourse_students", {})
    if stem in cache:
        return cache[stem]
    sources = app._tlcourse_student_sources
    nb = None
    if sources:
        if stem in sources:
            nb = json.loads(sources[stem].read_text(encoding="utf-8"))
    else:
        twin = Path(app.srcdir) / "notebooks" / f"{stem}.ipynb"
        if twin.is_file():
            from tlcourse.assign import make_student_notebook

            nb, _ = make_student_notebook(
                json.loads(twin.read_text(encoding="utf-8")), int(stem[:2]), name=str(twin)
            )
    if nb is not None and not (nb.get("metadata", {}).get("tlcourse", {}).get("student")):
        raise ExtensionError(f"{stem}.ipynb is not a student notebook (made by `tlcourse assign`)")
    cache[stem] = nb
    return nb


def launch_urls(app, relpath: str) -> dict[str, str]:
    """{button text: URL} opening ``relpath`` of the student repository."""
    repo = student_repository(app)
    launch = (app.config.html_theme_options or {}).get("launch_buttons", {}) or {}
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}.get(
        launch.get("notebook_interface", "classic"), "tree"
    )
    urls = {}
    colab = (launch.get("colab_url") or "").strip("/")
    if colab and repo["provider"] == "github":
        urls["Colab"] = (
            f"{colab}/github/{repo['org']}/{repo['repo']}/blob/{repo['branch']}/{relpath}"
        )
    binder = (launch.get("binderhub_url") or "").strip("/")
    if binder:
        if repo["provider"] == "github":
            base = f"{binder}/v2/gh/{repo['org']}/{repo['repo']}/{repo['branch']}"
        elif repo["provider"] == "gitlab":
            base = f"{binder}/v2/gl/{repo['org']}%2F{repo['repo']}/{repo['branch']}"
        else:
            base = f"{binder}/v2/git/{quote(repo['url'], safe='')}/{repo['branch']}"
        urls["Binder"] = f"{base}?urlpath={ui}/{relpath}"
    return urls


def _repository_button_url(repo: dict) -> str:
    if repo["provider"] == "github" and repo["path"]:
        return f"{repo['url']}/tree/{repo['branch']}/{repo['path']}"
    return repo["url"]


def student_buttons(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``, after the theme (501) and colab_twin (900) made the buttons."""
    if not app.config.tlcourse_hide_solutions or "header_buttons" not in context:
        return
    chapter = _CHAPTER.match(pagename)
    nb = student_notebook(app, chapter["stem"]) if chapter else None
    if chapter and nb is None:
        LOGGER.warning(
            f"{pagename}: no student notebook {chapter['stem']}.ipynb: its launch and download "
            "buttons are left out (see tlcourse_student_notebooks)",
            type="tlcourse",
            subtype="student",
        )
    repo = student_repository(app)
    relpath = "/".join(
        p for p in (repo["path"], f"{chapter['stem']}.ipynb" if chapter else "") if p
    )
    urls = launch_urls(app, relpath) if nb is not None else {}

    def fix(buttons: list) -> list:
        kept = []
        for button in buttons:
            label = button.get("label", "")
            if button.get("type") == "group":
                if label == "launch-buttons" and nb is None:
                    continue
                button["buttons"] = fix(button.get("buttons", []))
                if label == "download-buttons" and nb is not None:
                    button["buttons"].insert(
                        0,
                        {
                            "type": "link",
                            "url": context["pathto"](f"{STUDENT_DIR}/{chapter['stem']}.ipynb", 1),
                            "text": ".ipynb",
                            "icon": "fas fa-code",
                            "tooltip": "Download the student notebook",
                            "label": "download-student-notebook-button",
                        },
                    )
                if button["buttons"]:
                    kept.append(button)
            elif label in (
                "download-notebook-button",
                "download-source-button",
                "source-file-button",
                "source-edit-button",
            ):
                continue  # the full sources: not in this book
            elif label == "source-repository-button":
                button["url"] = _repository_button_url(repo)
                kept.append(button)
            elif label == "source-issues-button":
                if repo["provider"] != "github":
                    continue
                button["url"] = (
                    f"{repo['url']}/issues/new?title=Issue%20on%20page%20%2F{pagename}.html"
                )
                kept.append(button)
            elif button.get("type") == "link" and button.get("text") in (
                "Colab",
                "Binder",
                "JupyterHub",
                "Deepnote",
                "JupyterLite",
            ):
                if button["text"] in urls:
                    button["url"] = urls[button["text"]]
                    kept.append(button)
                # other launchers would open the full notebook: left out
            else:
                kept.append(button)
        return kept

    context["header_buttons"][:] = fix(context["header_buttons"])


def config_inited(app, config) -> None:
    app._tlcourse_student_sources = {}
    if not config.tlcourse_hide_solutions:
        return
    # No page source, no executed notebook in the build (the theme copies a notebook to _sources/
    # for its download button only when the sources are copied).
    config.html_copy_source = False
    config.html_show_sourcelink = False
    app._tlcourse_student_sources = _student_sources(app)


def write_students(app, exception) -> None:
    """``build-finished``: the student notebooks into the build, no full sources left, leak scan."""
    if (
        exception is not None
        or not app.config.tlcourse_hide_solutions
        or app.builder.format != "html"
    ):
        return
    out = Path(app.outdir)
    shutil.rmtree(out / "_sources", ignore_errors=True)  # from an earlier build with sources
    target = out / STUDENT_DIR
    shutil.rmtree(target, ignore_errors=True)
    chapters = sorted(m["stem"] for d in app.env.found_docs if (m := _CHAPTER.match(d)))
    written = {}
    for stem in chapters:
        nb = student_notebook(app, stem)
        if nb is None:
            continue
        target.mkdir(parents=True, exist_ok=True)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        (target / f"{stem}.ipynb").write_text(text, encoding="utf-8")
        written[stem] = text
    # myst-nb's executed notebooks next to the HTML: the student notebooks take their place
    executed = out.parent / "jupyter_execute" / "book"
    for path in sorted(executed.glob("[0-9][0-9]-*.ipynb")) if executed.is_dir() else []:
        if path.stem in written:
            path.write_text(written[path.stem], encoding="utf-8")
        else:
            path.unlink()
    LOGGER.info(f"tlcourse: {len(written)} student notebooks in {target}")
    if app.config.tlcourse_leak_scan:
        scan_for_leaks(app, [out] + ([executed.parent] if executed.parent.is_dir() else []))


def scan_for_leaks(app, folders: list[Path]) -> None:
    import leakscan  # book/_ext is on sys.path (local_extensions)

    book = Path(app.srcdir) / "book"
    lines = leakscan.solution_lines(book)
    leaks, read = [], 0
    for folder in folders:
        found, n = leakscan.scan(folder, lines)
        leaks += [leakscan.Leak(str(folder / leak.path), leak.line) for leak in found]
        read += n
    if leaks:
        raise ExtensionError(
            f"solution text in the no-solutions build ({len(leaks)} lines):\n{leakscan.report(leaks)}"
        )
    LOGGER.info(f"tlcourse: leak scan: {len(lines)} solution lines, {read} files, none found")


def setup(app):
    app.add_config_value("tlcourse_hide_solutions", False, "env")
    app.add_config_value("tlcourse_student_repository", {}, "html", types=[dict])
    app.add_config_value("tlcourse_student_notebooks", "", "html", types=[str])
    app.add_config_value("tlcourse_leak_scan", True, "html", types=[bool])
    app.add_transform(RemoveSolutions)
    app.add_transform(HideExerciseListings)
    app.connect("config-inited", config_inited, priority=900)
    app.connect("html-page-context", student_buttons, priority=950)
    app.connect("build-finished", write_students)
    app.setup_extension("chapter_subset")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
