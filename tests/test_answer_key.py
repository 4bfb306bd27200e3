"""tlcourse.answer_key: one Markdown answer key per chapter, with every exercise and its whole
solution, written all-or-nothing with the errors of `tlcourse assign`."""
import json
import re
import shutil
from pathlib import Path

import pytest

from tlcourse.answer_key import answer_key, write_answer_keys
from tlcourse.assign import AssignError, find_chapters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = [p.stem for p in find_chapters(NOTEBOOKS)]


def _nb(*cells):
    return {"cells": [{"cell_type": t, "metadata": m, "source": s, **({"outputs": [], "execution_count": None} if t == "code" else {})}
                      for t, s, m in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _md(text):
    return ("markdown", text, {})


def _code(text, tags=()):
    return ("code", text, {"tags": list(tags)} if tags else {})


def _exercise(title, label, kind, text="Do it."):
    return (f"````{{exercise-start}} {title}\n:label: ex-{label}\n:class: {kind}\n````\n\n{text}\n\n"
            f"````{{exercise-end}}\n````\n\n````{{solution-start}} ex-{label}\n:class: dropdown\n````")


SOLUTION_END = "\n\n````{solution-end}\n````"


def test_the_key_has_each_exercise_its_text_and_its_whole_solution():
    nb = _nb(
        _md("# Chapter title\n\nIntro prose."), _code("setup()"),
        _md("## Exercises\n\n" + _exercise("Add one", "a", "implement", "Write `f(x)`.")),
        _code("def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n\n\ncheck(f)"),
        _md("Because one is one." + SOLUTION_END + "\n\n" + _exercise("Run it", "b", "experiment")),
        _code("run()", tags=["solution"]),
        _md(SOLUTION_END + "\n\n" + _exercise("Why?", "c", "think", "Explain.")),
        _code("# BEGIN SOLUTION\nanswer = 42\n# END SOLUTION\ncheck(answer)"),
        _md("The model answer." + SOLUTION_END + "\n\n## Summary\n\nNot part of any exercise."),
        _code("after_the_exercises()"),
    )
    key = answer_key(nb, 3, name="notebooks/03-x.ipynb")
    assert key.startswith("# Answer key: chapter 3, Chapter title\n")
    assert "Intro prose" not in key and "setup()" not in key and "Summary" not in key
    assert "after_the_exercises" not in key and "BEGIN SOLUTION" not in key and "END SOLUTION" not in key
    one = key[key.index("## Exercise 3.1 (implement): Add one"):key.index("## Exercise 3.2")]
    assert one == ("## Exercise 3.1 (implement): Add one\n\nWrite `f(x)`.\n\n### Solution 3.1\n\n"
                   "```python\ndef f(x):\n    return x + 1\n\n\ncheck(f)\n```\n\nBecause one is one.\n\n")
    assert "## Exercise 3.2 (experiment): Run it\n\nDo it.\n\n### Solution 3.2\n\n```python\nrun()\n```" in key
    assert ("## Exercise 3.3 (think): Why?\n\nExplain.\n\n### Solution 3.3 (model answer)\n\n"
            "```python\nanswer = 42\ncheck(answer)\n```\n\nThe model answer.\n") in key
    assert "dropdown" not in key and "solution-start" not in key and "exercise-end" not in key


@pytest.mark.parametrize("cells, message", [
    ([_md("# No exercises"), _code("x = 1")], "no exercises found"),
    ([_md(_exercise("A", "a", "implement") + SOLUTION_END)], r"exercise 1\.1 \(A\) has no solution"),
    ([_md("````{exercise-start} A\n:label: ex-a\n````\n\n````{exercise-end}\n````")], "has no kind"),
    ([_md("````{exercise-start} A\n:class: think\n")], "unclosed"),
])
def test_bad_notebooks_are_named_with_the_fix(cells, message):
    with pytest.raises(AssignError, match=message) as info:
        answer_key(_nb(*cells), 1, name="notebooks/99-x.ipynb")
    assert "99-x.ipynb" in str(info.value)


def _solutions(md):
    """From a chapter's Markdown source: {label: (kind, solution code lines, solution prose lines)}."""
    text = md.read_text()
    kinds = dict(re.findall(r"\{exercise-start\}[^\n]*\n:label: (\S+)\n:class: (\S+)", text))
    found = {}
    for label, body in re.findall(r"\{solution-start\} (\S+)\n(?::[^\n]*\n)*`+\n(.*?)`+\{solution-end\}", text, re.S):
        code = re.findall(r"```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*(.*?)```", body, re.S)
        marked = [block for cell in code for block in re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", cell, re.S)]
        code_lines = [line.strip() for block in marked for line in block.split("\n") if line.strip()]
        prose = re.sub(r"```\{code-cell\}.*?```", "", body, flags=re.S)
        prose_lines = [line.strip() for line in prose.split("\n") if line.strip()]
        found[label] = (kinds[label], code_lines, prose_lines)
    assert set(found) == set(kinds), md.name
    return found


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys") / "answers"
    written = write_answer_keys(out, NOTEBOOKS)
    assert list(written) == CHAPTERS
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}-answers.md" for stem in CHAPTERS]
    return {stem: path.read_text() for stem, path in written.items()}


@pytest.mark.parametrize("stem", CHAPTERS)
def test_every_chapter_key_holds_every_exercise_and_solution(stem, keys):
    key, chapter = keys[stem], int(stem[:2])
    solutions = _solutions(ROOT / "book" / f"{stem}.md")
    headings = re.findall(r"^## Exercise (\d+\.\d+) \((\w+)\): ", key, re.M)
    assert headings == [(f"{chapter}.{i}", kind) for i, (kind, _, _) in enumerate(solutions.values(), 1)]
    assert "BEGIN SOLUTION" not in key and "END SOLUTION" not in key
    for label, (kind, code, prose) in solutions.items():
        assert code or prose, label
        for line in code + prose:  # the solution code between the markers, and the solution's prose
            assert line in key, (stem, label, line)
        if kind == "think":
            assert prose, f"{label}: a think exercise without a model answer"
        if kind == "implement":
            assert code, f"{label}: no solution code found between the markers"


def test_key_of_chapter_one_has_the_think_answer(keys):
    key = keys["01-what-is-transfer"]
    assert "### Solution 1.4 (model answer)" in key and '"sst2_to_amazon": {"differs": "domain adaptation"' in key
    assert "The ambiguities: ImageNet" in key and "count_a.update(tokens)" in key
    assert "checks.transfer.js_divergence(js_divergence)" in key  # the self-check calls are kept


def test_errors_write_nothing(tmp_path):
    out = tmp_path / "answers"
    with pytest.raises(AssignError, match="does not exist"):
        write_answer_keys(out, tmp_path / "missing")
    with pytest.raises(AssignError, match="unknown chapter '42'; available: 01-what-is-transfer"):
        write_answer_keys(out, NOTEBOOKS, ["42"])
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(NOTEBOOKS / "01-what-is-transfer.ipynb", bad)
    (bad / "02-plain.ipynb").write_text(json.dumps(_nb(_md("# Chapter 2"), _code("x = 1"))))
    with pytest.raises(AssignError, match="02-plain.ipynb: no exercises found"):
        write_answer_keys(out, bad)
    (bad / "02-plain.ipynb").write_text("{not json")
    with pytest.raises(AssignError, match="02-plain.ipynb: not a readable notebook"):
        write_answer_keys(out, bad)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".answers")]


def test_chosen_chapters_and_refusing_to_overwrite(tmp_path):
    out = tmp_path / "answers"
    assert list(write_answer_keys(out, NOTEBOOKS, ["1", "peft"])) == ["01-what-is-transfer", "06-peft"]
    with pytest.raises(AssignError, match="not empty"):
        write_answer_keys(out, NOTEBOOKS, ["2"])
    assert sorted(p.name for p in out.iterdir()) == ["01-what-is-transfer-answers.md", "06-peft-answers.md"]
    written = write_answer_keys(out, NOTEBOOKS, ["02"], force=True)  # replaces the folder
    assert sorted(p.name for p in out.iterdir()) == ["02-word-embeddings-answers.md"]
    assert written["02-word-embeddings"] == out / "02-word-embeddings-answers.md"
    assert "## Exercise 2.1 (implement): Subsampling" in written["02-word-embeddings"].read_text()
