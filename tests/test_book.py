"""The book's sources: every chapter has its notebook twin, in sync, committed without outputs,
listed in the table of contents, and carrying the contract's furniture (CONVENTIONS.md)."""
import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_chapter_has_a_twin_and_every_twin_a_chapter():
    assert CHAPTERS, "no chapters found in book/"
    assert [p.stem for p in CHAPTERS] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_twin_is_in_sync(md):
    source = jupytext.read(md)
    twin = jupytext.read(ROOT / "notebooks" / f"{md.stem}.ipynb")
    assert _cells(source) == _cells(twin), f"{md.name} and its notebook differ: run `make sync`"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{nb_path.name} has outputs: run `make sync`"


def _toc_files(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                yield value
            else:
                yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def test_toc_lists_existing_files_and_every_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = list(_toc_files(toc))
    for f in files:
        assert (ROOT / f"{f}.md").is_file() or (ROOT / f"{f}.ipynb").is_file(), f"_toc.yml lists missing {f}"
    for md in CHAPTERS:
        assert f"book/{md.stem}" in files, f"{md.name} is not in _toc.yml"
    # Sphinx numbers chapters by their place in the numbered parts; exercise numbers (N.M) and
    # `tlcourse assign` use the file's NN. Both agree when the numbered files run 01, 02, ... in order.
    numbered = [f for part in toc["parts"] if part.get("numbered") for f in _toc_files(part)]
    assert [int(f.split("/")[-1][:2]) for f in numbered] == list(range(1, len(numbered) + 1)), numbered


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_contract(md):
    text = md.read_text()
    code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S))
    assert re.search(r":::\{admonition\} Runtime", text), "no Runtime admonition"
    assert "tlcourse.setup(" in code and "hide-output" in text, "no setup cell"
    assert "assert " in code, "no claim check"
    assert "{exercise-start}" in text or "{exercise}" in text, "no exercise"
    assert "{cite}" in text, "no citations"
    assert "{bibliography}" not in text, "chapters cite into the one bibliography on book/references.md"
    assert not re.search(r"from_pretrained\(\s*['\"][\w.-]+/[\w.-]+['\"]", code), "loads from the hub directly"
    starts = re.findall(r"\{exercise-start\}[^\n]*\n((?::\w+:[^\n]*\n)*)", text)
    for options in starts:
        assert re.search(r":class:.*\b(implement|experiment|think)\b", options), f"an exercise without a kind: {options!r}"
    solutions = len(re.findall(r"\{solution-start\}", text))
    assert solutions == len(starts), f"{len(starts)} exercises but {solutions} solutions"


# A section that runs an experiment from the chapter module or draws a plot shows a result: it
# must check it (CONVENTIONS.md, "Claim checks"). One assert somewhere in the chapter is not enough.
_EXPERIMENT = re.compile(
    r"\bch\.\w*(run|table|curve|sweep|pretrain|train|fit|probe|tagging|effect)\w*\(|plt\.show\(\)"
)


def _unchecked_sections(text: str) -> list[str]:
    out = []
    for section in re.split(r"\n## ", text)[1:]:
        title = section.splitlines()[0]
        if title.startswith(("Exercises", "Summary", "References")):
            continue
        code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", section, re.S))
        if _EXPERIMENT.search(code) and "assert " not in code:
            out.append(title)
    return out


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_every_section_with_a_result_checks_it(md):
    assert not _unchecked_sections(md.read_text())


def test_the_section_rule_catches_an_unchecked_result():
    checked = "# T\n\n## Runs\n\n```{code-cell} ipython3\nruns = ch.transfer_runs(cfg)\nassert runs.gain > 0\n```\n"
    assert _unchecked_sections(checked) == []
    assert _unchecked_sections(checked.replace("assert runs.gain > 0", "print(runs)")) == ["Runs"]
    plotted = "# T\n\n## Plot\n\n```{code-cell} ipython3\nplt.plot(x)\nplt.show()\n```\n"
    assert _unchecked_sections(plotted) == ["Plot"]


_CPU_ONLY = re.compile(r'if run\.profile == "cpu":(?![^\n]*\n(?:    [^\n]*\n)*else:)|run\.profile != "cpu" or ')


def _unqualified_cpu_claims(nb) -> list[str]:
    """Code cells with a claim asserted only in the cpu profile (an ``if run.profile == "cpu":``
    without ``else``, or ``assert run.profile != "cpu" or ...``) whose neighbouring prose (the
    markdown just before and just after) never says that it is a `cpu` profile finding."""
    cells, out = nb.cells, []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not _CPU_ONLY.search(cell.source):
            continue
        before = next((c.source for c in reversed(cells[:i]) if c.cell_type == "markdown"), "")
        after = next((c.source for c in cells[i + 1:] if c.cell_type == "markdown"), "")
        if "`cpu` profile" not in before + after:
            out.append(cell.source.splitlines()[0])
    return out


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_claims_checked_in_one_profile_say_so_in_the_prose(md):
    assert not _unqualified_cpu_claims(jupytext.read(md))


def test_the_profile_rule_catches_an_unqualified_claim():
    def nb(prose, code):
        return jupytext.reads(f"{prose}\n\n```{{code-cell}} ipython3\n{code}\n```\n\nMore text.\n",
                              fmt="md:myst")

    guarded = 'x = 1\nif run.profile == "cpu":\n    assert x == 1'
    assert _unqualified_cpu_claims(nb("In the `cpu` profile x is one.", guarded)) == []
    assert _unqualified_cpu_claims(nb("x is one.", guarded)) == ["x = 1"]
    assert _unqualified_cpu_claims(nb("x is one.", 'assert run.profile != "cpu" or x == 1')) != []
    both = 'x = 1\nif run.profile == "cpu":\n    assert x == 1\nelse:\n    assert x == 2'
    assert _unqualified_cpu_claims(nb("x is one.", both)) == []   # each profile checks its own claim


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell defines, names it reads) — magics and shell lines are skipped."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    defined, read = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return defined, read


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_need_only_the_setup_cell(nb_path):
    """CONVENTIONS.md: a student can jump from the setup cell to the exercises. Every name the
    exercise section reads is a builtin or is defined in the setup cell or the section itself,
    never by the chapter's experiment cells. (``make student-check`` runs exactly that notebook.)"""
    import builtins

    from tlcourse.assign import exercises_only

    nb = exercises_only(json.loads(nb_path.read_text()), name=nb_path.name)
    code = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb["cells"] if c["cell_type"] == "code"]
    available = set(dir(builtins))
    for source in code:
        available |= _names(source)[0]
    missing = {name for source in code[1:] for name in _names(source)[1]} - available
    assert not missing, (f"{nb_path.name}: the exercises read {sorted(missing)}, computed by the chapter's "
                         f"experiments; load or recompute them in the exercise (package, data, cache only)")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_instructors_page_lists_each_chapters_exercises_and_graded_checks(nb_path):
    """book/instructors.md's table: every exercise of the chapter, with its kind, and the number of
    checks an nbgrader assignment of the chapter autogrades (what `tlcourse assign` finds)."""
    from tlcourse.assign import make_student_notebook
    from tlcourse.nbgrader import make_nbgrader_notebook

    nb = json.loads(nb_path.read_text())
    chapter = int(nb_path.stem[:2])
    _, exercises = make_student_notebook(nb, chapter, name=nb_path.name)
    _, graded = make_nbgrader_notebook(nb, chapter, name=nb_path.name)
    page = (ROOT / "book" / "instructors.md").read_text(encoding="utf-8")
    row = next((line for line in page.splitlines() if line.startswith(f"| {{doc}}`{nb_path.stem}`")), None)
    assert row, f"book/instructors.md has no row for {nb_path.stem}"
    cells = [c.strip() for c in row.strip("|").split("|")]
    listed = re.findall(r"(\d+\.\d+) (implement|experiment|think)", cells[2])
    assert listed == [(e.number, e.kind) for e in exercises], (cells[2], exercises)
    assert cells[3] == str(len(graded)), f"{nb_path.stem}: {len(graded)} autograded checks, the page says {cells[3]}"


def test_chapter_subset_toc_keeps_the_front_matter_and_the_chosen_chapters(tmp_path):
    """`make book-nosolutions CHAPTERS=02,06`: the table of contents it builds from (an unknown
    chapter is an error that names the chapters there are, and writes nothing)."""
    import subprocess
    import sys

    script = ROOT / "book" / "_ext" / "chapter_subset.py"
    out = tmp_path / "toc.yml"
    done = subprocess.run([sys.executable, str(script), "--toc", str(ROOT / "_toc.yml"), "--out", str(out),
                           "02", "peft"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    files = list(_toc_files(yaml.safe_load(out.read_text())))
    assert [f for f in files if re.search(r"/\d\d-", f)] == ["book/02-word-embeddings", "book/06-peft"]
    assert {"book/intro", "book/instructors", "book/references"} <= set(files)
    bad = subprocess.run([sys.executable, str(script), "--toc", str(ROOT / "_toc.yml"), "--out",
                          str(tmp_path / "bad.yml"), "02,13"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "13" in bad.stderr and "06-peft" in bad.stderr
    assert not (tmp_path / "bad.yml").exists()
