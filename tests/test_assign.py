"""tlcourse assign: stubs, directives, options, and clear all-or-nothing errors."""
import json
import shutil
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from tlcourse.assign import AssignError, assign, make_student_notebook
from tlcourse.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _nb(*cells):
    return {"cells": [{"cell_type": t, "metadata": m, "source": s, **({"outputs": [1], "execution_count": 3} if t == "code" else {})}
                      for t, s, m in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _text(nb):
    """All cell sources, as the student sees them (not JSON-escaped)."""
    return "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"])


def _md(text):
    return ("markdown", text, {})


def _code(text, tags=()):
    return ("code", text, {"tags": list(tags)} if tags else {})


EXERCISE = "````{exercise-start} Title %s\n:label: ex-%s\n:class: %s\n````\n\nDo it.\n\n````{exercise-end}\n````"
SOLUTION_START = "````{solution-start} ex-%s\n:class: dropdown\n````"
SOLUTION_END = "Why it works.\n\n````{solution-end}\n````"


def test_markers_become_indented_stubs_and_checks_stay():
    nb = _nb(
        _md("Intro\n\n" + EXERCISE % ("A", "a", "implement") + "\n\n" + SOLUTION_START % "a"),
        _code("def f(x):\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n    # END SOLUTION\n\n\ncheck(f)"),
        _md(SOLUTION_END + "\n\n" + EXERCISE % ("B", "b", "experiment") + "\n\n" + SOLUTION_START % "b"),
        _code("run_experiment()", tags=["solution"]),
        _md(SOLUTION_END),
    )
    student, exercises = make_student_notebook(nb, chapter=3)
    assert [(e.number, e.kind, e.title) for e in exercises] == [("3.1", "implement", "Title A"), ("3.2", "experiment", "Title B")]
    sources = [c["source"] for c in student["cells"]]
    assert sources[0] == "Intro\n\n### Exercise 3.1 (implement): Title A\n\nDo it."
    assert sources[1] == 'def f(x):\n    raise NotImplementedError("Exercise 3.1")  # your code here\n\n\ncheck(f)'
    assert sources[2] == "### Exercise 3.2 (experiment): Title B\n\nDo it."
    assert sources[3] == 'raise NotImplementedError("Exercise 3.2")  # your code here'
    assert len(sources) == 4  # the last cell held only solution prose: gone
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in student["cells"] if c["cell_type"] == "code")
    assert "Why it works" not in _text(student) and "x + 1" not in _text(student)


def test_think_answers_keep_or_drop():
    nb = _nb(_md(EXERCISE % ("T", "t", "think") + "\n" + SOLUTION_START % "t"),
             _code("# BEGIN SOLUTION\nanswer = 42\n# END SOLUTION\ncheck(answer)"), _md(SOLUTION_END))
    dropped, _ = make_student_notebook(nb, 1, "drop")
    kept, _ = make_student_notebook(nb, 1, "keep")
    assert "answer = 42" not in _text(dropped) and "Why it works" not in _text(dropped)
    assert kept["cells"][1]["source"] == "answer = 42\ncheck(answer)"
    assert "**Model answer:**" in kept["cells"][0]["source"] and "Why it works" in kept["cells"][2]["source"]
    with pytest.raises(AssignError, match="must be 'keep' or 'drop'"):
        make_student_notebook(nb, 1, "maybe")


def test_a_think_answer_without_markers_is_dropped_with_its_code():
    # an unmarked code cell inside a think exercise's solution is the model answer: dropped, not run
    nb = _nb(_md(EXERCISE % ("T", "t", "think") + "\n" + SOLUTION_START % "t"),
             _code("experiment = run_the_answer()"), _md(SOLUTION_END))
    dropped, _ = make_student_notebook(nb, 1, "drop")
    kept, _ = make_student_notebook(nb, 1, "keep")
    assert "run_the_answer" not in _text(dropped)
    assert [c["source"] for c in kept["cells"] if c["cell_type"] == "code"] == ["experiment = run_the_answer()"]


@pytest.mark.parametrize("cells, message", [
    ([_md("No exercises here."), _code("x = 1")], "no exercises found"),
    ([_md(EXERCISE % ("A", "a", "implement")), _code("x = 1")], "no solution markers"),
    ([_md("````{exercise-start} A\n:label: ex-a\n````\n\n````{exercise-end}\n````")], "has no kind"),
    ([_md(EXERCISE % ("A", "a", "implement")), _code("# BEGIN SOLUTION\nx = 1")], "without a matching '# END SOLUTION'"),
    ([_md(EXERCISE % ("A", "a", "implement")), _code("x = 1\n# END SOLUTION")], "without a matching '# BEGIN SOLUTION'"),
    ([_code("# BEGIN SOLUTION\nx\n# END SOLUTION"), _md(EXERCISE % ("A", "a", "implement"))], "outside any exercise"),
    ([_md("````{exercise-start} A\n:class: think\n")], "unclosed"),
])
def test_bad_notebooks_are_named_with_the_fix(cells, message):
    with pytest.raises(AssignError, match=message) as info:
        make_student_notebook(_nb(*cells), 1, name="notebooks/99-x.ipynb")
    assert "99-x.ipynb" in str(info.value)


def test_chapter_one_student_notebook(tmp_path):
    report = assign(tmp_path / "out", ROOT / "notebooks", ["1"])
    assert [(e.number, e.kind) for e in report["01-what-is-transfer"]] == [
        ("1.1", "implement"), ("1.2", "implement"), ("1.3", "experiment"), ("1.4", "think"), ("1.5", "implement")]
    nb = json.loads((tmp_path / "out" / "01-what-is-transfer.ipynb").read_text())
    text = _text(nb)
    for solution_line in ["count_a.update(tokens)", "queues = [list(rng.permutation", "gentle_cfg =", '"sst2_to_amazon": {']:
        assert solution_line not in text
    for kept in ["checks.transfer.js_divergence(js_divergence)", "checks.transfer.label_budgets(label_budgets)",
                 "checks.transfer.taxonomy(answers)", "### Exercise 1.4 (think)"]:
        assert kept in text
    assert "solution-start" not in text and "The ambiguities" not in text
    # Every code cell is still valid (IPython) Python.
    transform = TransformerManager().transform_cell
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            compile(transform(cell["source"]), "<cell>", "exec")


def test_cli_errors_write_nothing(tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["assign", "--source", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
    assert main(["assign", "--source", str(ROOT / "notebooks"), "--chapters", "42", "--out", str(out)]) == 2
    assert "unknown chapter '42'; available: 01-what-is-transfer" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(ROOT / "notebooks" / "01-what-is-transfer.ipynb", bad)
    (bad / "02-plain.ipynb").write_text(json.dumps(_nb(_md("# Chapter 2"), _code("x = 1"))))
    assert main(["assign", "--source", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "02-plain.ipynb: no exercises found" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".student")]  # nothing partial


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["assign", "--source", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    assert "01-what-is-transfer.ipynb: 5 exercises (1.1 implement, 1.2 implement, 1.3 experiment, 1.4 think, 1.5 implement)" in capsys.readouterr().out
    assert main(["assign", "--source", str(ROOT / "notebooks"), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["assign", "--source", str(ROOT / "notebooks"), "--out", str(out), "--force", "--think-answers", "keep"]) == 0
    assert '"sst2_to_amazon": {' in _text(json.loads((out / "01-what-is-transfer.ipynb").read_text()))


def _listing(*names, label="a", tags=None):
    return _code("\n".join(f"viz.show_source({n})" for n in names),
                 tags=tags or ["exercise-listing", f"exercise:ex-{label}"])


def test_an_exercise_listing_becomes_a_note_that_names_its_exercise():
    nb = _nb(
        _md("# Chapter"), _listing("mod.first"), _code("viz.show_source(mod.other)"),
        _listing("mod.proto", "mod.logits", label="b"),
        _md(EXERCISE % ("A", "a", "implement") + "\n\n" + SOLUTION_START % "a"),
        _code("def first():\n    # BEGIN SOLUTION\n    pass\n    # END SOLUTION"), _md(SOLUTION_END),
        _md(EXERCISE % ("B", "b", "implement") + "\n\n" + SOLUTION_START % "b"),
        _code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION"), _md(SOLUTION_END),
        _listing("mod.late", tags=["exercise-listing"]),
    )
    student, _ = make_student_notebook(nb, 6)
    sources = [c["source"] for c in student["cells"]]
    assert sources[1] == "# The listing of mod.first is not shown here: exercise 6.1 asks you to write it."
    assert sources[2] == "viz.show_source(mod.other)"  # an untagged listing stays
    assert sources[3] == ("# The listings of mod.proto and mod.logits are not shown here: "
                          "exercise 6.2 asks you to write them.")
    assert sources[-1] == ("# The listing of mod.late is not shown here: "
                           "an exercise of this chapter asks you to write it.")
    assert all(c["outputs"] == [] for c in student["cells"] if c["cell_type"] == "code")
    assert "exercise-listing" in student["cells"][1]["metadata"]["tags"]  # the book build drops it too


@pytest.mark.parametrize("cell, message", [
    (_code("viz.show_source(mod.f)\nmod.f(1)", tags=["exercise-listing"]), "may hold only viz.show_source"),
    (_code("# nothing listed", tags=["exercise-listing"]), "has no viz.show_source"),
    (_listing("mod.f", label="nope"), "'exercise:ex-nope' names no exercise of this notebook"),
])
def test_a_bad_exercise_listing_is_named_with_the_fix(cell, message):
    nb = _nb(cell, _md(EXERCISE % ("A", "a", "implement")), _code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION"))
    with pytest.raises(AssignError, match=message) as info:
        make_student_notebook(nb, 1, name="notebooks/99-x.ipynb")
    assert "99-x.ipynb, cell 1" in str(info.value)


def _listed(nb):
    """The names that the notebook's exercise-listing cells show, and their exercises' labels."""
    import re

    return [(re.findall(r"show_source\(([\w.]+)\)", "".join(c["source"])),
             [t.split(":", 1)[1] for t in c["metadata"]["tags"] if t.startswith("exercise:")])
            for c in nb["cells"] if "exercise-listing" in c.get("metadata", {}).get("tags", [])]


def test_student_notebooks_do_not_list_what_an_exercise_asks_for(tmp_path):
    report = assign(tmp_path / "out", ROOT / "notebooks")
    for stem, exercises in report.items():
        chapter = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
        student = _text(json.loads((tmp_path / "out" / f"{stem}.ipynb").read_text()))
        numbers = {e.label: e.number for e in exercises}
        for names, labels in _listed(chapter):
            assert names and len(labels) == 1 and labels[0] in numbers, (stem, names, labels)
            for name in names:
                assert f"show_source({name})" not in student, (stem, name)
            assert f"{' and '.join(names)} " in student and f"exercise {numbers[labels[0]]} asks you" in student
    ch6 = _text(json.loads((tmp_path / "out" / "06-peft.ipynb").read_text()))
    assert "show_source(lora.LoRALinear)" not in ch6
    assert "# The listing of lora.LoRALinear is not shown here: exercise 6.1 asks you to write it." in ch6
    assert "viz.show_source(adapters.training_memory)" in ch6  # a listing no exercise asks for stays
    ch1 = json.loads((ROOT / "notebooks" / "01-what-is-transfer.ipynb").read_text())
    assert [names for names, _ in _listed(ch1)] == [["bow.unigram_js_divergence"], ["data.label_budget_indices"]]
