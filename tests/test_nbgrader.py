"""``tlcourse assign --format nbgrader``: the source notebooks' nbgrader metadata, the errors, and
(``-m notebook``) chapter 6 end to end through nbgrader itself: ``generate_assignment`` accepts the
source, and ``autograde`` gives the reference solution every point, the release's stubs none, and
each planted mistake exactly the points of the checks it does not break."""
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import nbformat
import pytest
from nbgrader.nbgraderformat import SCHEMA_VERSION, MetadataValidator

from tlcourse.assign import AssignError
from tlcourse.cli import main
from tlcourse.nbgrader import assign_nbgrader, make_nbgrader_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
CH6 = "06-peft"


def _load(stem):
    return json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))


def _nbg(cell):
    return cell["metadata"].get("nbgrader")


def _kind(cell):
    meta = _nbg(cell)
    if meta is None:
        return "plain"
    return "test" if meta["grade"] else "solution" if meta["solution"] else "locked"


def _validate(nb):
    """nbformat's schema and nbgrader's own cell metadata validator (schema 3, unique grade_ids)."""
    node = nbformat.from_dict(nb)
    nbformat.validate(node)
    MetadataValidator().validate_nb(node)


def test_chapter_six_source_notebook(tmp_path):
    nb, graded = make_nbgrader_notebook(_load(CH6), 6, name=CH6)
    _validate(nb)
    assert SCHEMA_VERSION == 3  # the installed nbgrader's, the one tlcourse.nbgrader writes
    cells = nb["cells"]
    kinds = [_kind(c) for c in cells]
    assert kinds.count("solution") == 4 and kinds.count("test") == 4
    assert [(g.exercise, g.check, g.points) for g in graded] == [
        ("6.1", "lora.lora_forward", 1), ("6.2", "lora.adapter_forward", 1),
        ("6.3", "lora.prepend_prompt", 1), ("6.5", "lora.plan_lora", 1)]
    ids = [_nbg(c)["grade_id"] for c in cells if _nbg(c)]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[\w-]+", i) for i in ids)
    assert len({c["id"] for c in cells}) == len(cells)
    # Title and setup cell locked; every markdown cell locked; the setup cell is the first code cell.
    assert kinds[:2] == ["locked", "locked"] and cells[1]["cell_type"] == "code"
    assert all(kinds[i] == "locked" for i, c in enumerate(cells) if c["cell_type"] == "markdown")
    for cell, kind in zip(cells, kinds):
        meta, src = _nbg(cell), cell["source"]
        if kind == "solution":  # markers in nbgrader's spelling, the check gone from the cell
            assert meta == {"grade": False, "grade_id": meta["grade_id"], "locked": False,
                            "schema_version": 3, "solution": True}
            assert re.search(r"^    ### BEGIN SOLUTION$", src, re.M) and "### END SOLUTION" in src
            assert "checks." not in src
        elif kind == "test":  # locked, graded, one point, an assertion on the check's result
            assert meta["locked"] and meta["points"] == 1 and not meta["solution"]
            assert re.search(r"^assert checks\.lora\.(\w+)\(\1\), ", src, re.M), src
        assert cell.get("outputs", []) == []
    assert kinds[kinds.index("test") - 1] == "solution"  # the test follows its solution
    text = "\n".join(c["source"] for c in cells)
    assert "(x @ A.T) @ B.T * (alpha / r)" in text  # the source keeps the solutions...
    assert "At initialisation $B = 0$" not in text and "solution-start" not in text  # not the prose
    # Code after a check stays, ungraded, after the test cell.
    after = cells[[_nbg(c) and _nbg(c)["grade_id"] for c in cells].index("ex6-5-plan_lora") + 1]
    assert _kind(after) == "plain" and after["source"].startswith("for budget in")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_makes_a_valid_source_notebook(chapter):
    nb, graded = make_nbgrader_notebook(_load(chapter), int(chapter[:2]), name=chapter)
    _validate(nb)
    assert graded and len(graded) == sum(_kind(c) == "test" for c in nb["cells"])
    assert not any("# BEGIN SOLUTION" in line and "###" not in line
                   for c in nb["cells"] for line in c["source"].split("\n"))


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": text,
            "outputs": [], "execution_count": None}


def _exercise(n, kind):
    return (f"````{{exercise-start}} Title {n}\n:label: ex-{n}\n:class: {kind}\n````\n\nDo it.\n\n"
            f"````{{exercise-end}}\n````\n\n````{{solution-start}} ex-{n}\n:class: dropdown\n````")


def _chapter(*exercise_cells):
    cells = [_md("# Chapter 1"), _code("from tlcourse import checks"), _md("## Exercises")]
    for cell in exercise_cells:
        cells.append(cell)
    cells += [_md("Why.\n\n````{solution-end}\n````"), _md("## Summary\n\nThe end.")]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
            "display_name": "Python 3"}}, "nbformat": 4, "nbformat_minor": 5}


def test_split_rules():
    nb = _chapter(
        _md(_exercise("a", "implement")),
        _code("def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n\n\n"
              "checks.m.f(f)\nprint(f(1))\nchecks.m.g(f)  # again (a comment)"),
        _md("````{solution-end}\n````\n\n" + _exercise("b", "experiment")),
        _code("run()", tags=["solution"]),
        _md("````{solution-end}\n````\n\n" + _exercise("c", "implement")),
        _code("answer = 42", tags=["solution"]),
        _code("checks.m.h(answer)"),  # a check outside a solution cell: left alone, not graded
    )
    source, graded = make_nbgrader_notebook(nb, 1)
    _validate(source)
    assert [(g.exercise, g.check, g.grade_id) for g in graded] == [
        ("1.1", "m.f", "ex1-1-f"), ("1.1", "m.g", "ex1-1-g")]
    got = [(_kind(c), c["source"]) for c in source["cells"] if c["cell_type"] == "code"]
    assert got == [
        ("locked", "from tlcourse import checks"),
        ("solution", "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        ("test", '# Autograded (1 point): the self-check of Exercise 1.1\n'
                 'assert checks.m.f(f), "not passed yet: see the hint above"'),
        ("plain", "print(f(1))"),
        ("test", '# Autograded (1 point): the self-check of Exercise 1.1\n'
                 'assert checks.m.g(f), "not passed yet: see the hint above"'),
        ("solution", "run()"),  # a tagged cell: nbgrader replaces all of it
        ("solution", "answer = 42"),
        ("plain", "checks.m.h(answer)"),
    ]
    assert [_nbg(c)["grade_id"] for c in source["cells"] if _kind(c) == "solution"] == [
        "ex1-1-solution", "ex1-2-solution", "ex1-3-solution"]
    assert "## Summary" not in "\n".join(c["source"] for c in source["cells"])


def _source_folder(tmp_path, *notebooks):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, nb in notebooks:
        (folder / name).write_text(json.dumps(nb))
    return folder


@pytest.mark.parametrize("nb, message", [
    (_chapter(_md(_exercise("t", "think")), _code("print('answer')")),
     "no self-check (checks.<module>.<name>(...)) in a solution cell: nothing for nbgrader to grade"),
    (_chapter(_md("No exercise here.")), "no exercises found"),
    ({"cells": [_md("# Only prose")], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
     "needs a setup code cell and a '## Exercises' section"),
])
def test_bad_chapters_write_nothing(tmp_path, nb, message):
    source = _source_folder(tmp_path, ("01-good.ipynb", _load(CH6)), ("02-bad.ipynb", nb))
    out = tmp_path / "course"
    with pytest.raises(AssignError, match=re.escape(message)):
        assign_nbgrader(out, source)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notebooks"]


def test_cli_nbgrader_layout_and_errors(tmp_path, capsys):
    out = tmp_path / "course"
    args = ["assign", "--source", str(NOTEBOOKS), "--chapters", "6", "--out", str(out)]
    assert main(args + ["--format", "nbgrader"]) == 0
    assert (f"{out}/source/06-peft/06-peft.ipynb: 4 autograded checks, 4 points (6.1 lora.lora_forward"
            in capsys.readouterr().out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "nbgrader_config.py", "source", "source/06-peft", "source/06-peft/06-peft.ipynb"]
    compile((out / "nbgrader_config.py").read_text(), "nbgrader_config.py", "exec")
    before = (out / "source/06-peft/06-peft.ipynb").read_text()
    # The output folder exists: refused, untouched.
    assert main(args + ["--format", "nbgrader"]) == 2
    assert "not empty; choose another or pass --force" in capsys.readouterr().err
    assert (out / "source/06-peft/06-peft.ipynb").read_text() == before
    assert main(args + ["--format", "nbgrader", "--force"]) == 0
    # Unknown format: argparse's error, nothing written.
    other = tmp_path / "other"
    with pytest.raises(SystemExit) as exit_:
        main(["assign", "--format", "otter", "--out", str(other)])
    assert exit_.value.code == 2 and "invalid choice: 'otter'" in capsys.readouterr().err
    for extra, message in [(["--think-answers", "keep"], "--think-answers keep is for --format student"),
                           (["--answer-key"], "--answer-key writes answer keys: leave out --format"),
                           (["--chapters", "42"], "unknown chapter '42'")]:
        assert main(["assign", "--format", "nbgrader", "--source", str(NOTEBOOKS), "--out", str(other)]
                    + extra) == 2
        assert message in capsys.readouterr().err
    assert not other.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["course"]


def test_cli_answer_key_calls_write_answer_keys(tmp_path, capsys, monkeypatch):
    calls = []

    def write_answer_keys(out, source, chapters, force):
        calls.append((out, source, chapters, force))
        return {"06-peft": out / "06-peft.ipynb"}

    monkeypatch.setitem(sys.modules, "tlcourse.answer_key",
                        types.SimpleNamespace(write_answer_keys=write_answer_keys))
    out = tmp_path / "keys"
    assert main(["assign", "--answer-key", "--chapters", "6", "--out", str(out), "--force"]) == 0
    assert calls == [(out, Path("notebooks"), ["6"], True)]
    assert f"{out}/06-peft.ipynb: answer key of 06-peft" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# End to end with nbgrader: chapter 6's assignment, generated, submitted four times, autograded.
# ---------------------------------------------------------------------------------------------

# Planted mistakes: each replaces one solution cell (its grade_id) with a wrong implementation, the
# same mistakes the checks' hints name (tests/test_ch06_checks.py has the plan_lora ones). Two
# submissions carry two mistakes each in different exercises (each autograde run starts a kernel and
# the chapter's setup cell, ~20 s on 2 cores): each must lose exactly the points of those two checks.
MISTAKES = {
    "no_alpha_over_r": ("ex6-1-solution", "def lora_forward(x, weight, bias, A, B, alpha):\n"
                        "    return x @ weight.T + bias + (x @ A.T) @ B.T"),
    "no_residual": ("ex6-2-solution", "def adapter_forward(h, down_w, down_b, up_w, up_b):\n"
                    "    return torch.nn.functional.gelu(h @ down_w.T + down_b) @ up_w.T + up_b"),
    "prompt_after_input": ("ex6-3-solution", "def prepend_prompt(prompt, embeds, attention_mask):\n"
                           "    b, n = embeds.shape[0], prompt.shape[0]\n"
                           "    embeds = torch.cat([embeds, prompt.expand(b, -1, -1)], dim=1)\n"
                           "    return embeds, torch.cat([attention_mask, attention_mask.new_ones(b, n)], 1)"),
    "rank_rounded_up": ("ex6-5-solution", "def plan_lora(budget, shapes, r_tuned, alpha, lr_tuned):\n"
                        "    per_rank = sum(d_out + d_in for d_out, d_in in shapes)\n"
                        "    return -(-budget // per_rank), alpha, lr_tuned"),
}
PLANTED = {"planted_6.1_6.3": ("no_alpha_over_r", "prompt_after_input"),
           "planted_6.2_6.5": ("no_residual", "rank_rounded_up")}


def _nbgrader(course, *args):
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    env.pop("TLCOURSE_STRICT_CHECKS", None)  # a student's run: checks report, they do not raise
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done.stderr


@pytest.mark.notebook
def test_nbgrader_end_to_end_on_chapter_six(tmp_path):
    from nbgrader.api import Gradebook

    start = time.perf_counter()
    course = tmp_path / "course"
    graded = assign_nbgrader(course, NOTEBOOKS, [CH6])[CH6]
    _nbgrader(course, "generate_assignment", CH6, "--force")
    release = json.loads((course / "release" / CH6 / f"{CH6}.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in release["cells"])
    assert text.count("raise NotImplementedError()") == 4 and "BEGIN SOLUTION" not in text
    for solution_line in ["(x @ A.T) @ B.T * (alpha / r)", "torch.nn.functional.gelu(h @ down_w.T",
                          "attention_mask.new_ones(b, n)", "budget // per_rank"]:
        assert solution_line not in text
    assert text.count("assert checks.lora.") == 4
    # Submissions: the source (solutions), the release as is (stubs), two with planted mistakes.
    source = json.loads((course / "source" / CH6 / f"{CH6}.ipynb").read_text())
    submissions = {"reference": source, "stub": release}
    for student, mistakes in PLANTED.items():
        nb = json.loads(json.dumps(source))
        for grade_id, code in (MISTAKES[m] for m in mistakes):
            cell = next(c for c in nb["cells"] if (_nbg(c) or {}).get("grade_id") == grade_id)
            cell["source"] = code
        submissions[student] = nb
    for student, nb in submissions.items():
        folder = course / "submitted" / student / CH6
        folder.mkdir(parents=True)
        (folder / f"{CH6}.ipynb").write_text(json.dumps(nb))
    _nbgrader(course, "autograde", CH6, "--force")
    points = {g.grade_id: g.points for g in graded}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {}
        for student in submissions:
            submission = gb.find_submission(CH6, student)
            assert submission.max_score == sum(points.values()) == 4
            scores[student] = {g.name: g.auto_score for nb in submission.notebooks for g in nb.grades}
    expected = {"reference": points, "stub": {gid: 0 for gid in points}}
    for student, mistakes in PLANTED.items():
        broken = tuple(MISTAKES[m][0].replace("-solution", "-") for m in mistakes)
        expected[student] = {gid: 0 if gid.startswith(broken) else p for gid, p in points.items()}
    assert all(0 < sum(row.values()) < 4 for s, row in expected.items() if s in PLANTED)
    columns = list(points)
    print(f"\nnbgrader autograde, {CH6} ({time.perf_counter() - start:.0f} s end to end)")
    print(f"{'submission':<20}" + "".join(f"{c:>24}" for c in columns) + f"{'total':>8}")
    for student, row in scores.items():
        print(f"{student:<20}" + "".join(f"{row[c]:>24g}" for c in columns) + f"{sum(row.values()):>8g}")
    assert scores == expected
