"""ci/run_cells.py: a notebook's code cells in order without Jupyter (the GPU machines' runner)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_cells", ROOT / "ci" / "run_cells.py")
run_cells = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_cells)


def _notebook(tmp_path, cells):
    nb = {"cells": [{"cell_type": kind, "metadata": {"tags": tags}, "source": src} for kind, tags, src in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "00-toy.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_cells_run_in_order_claims_are_recorded_and_other_errors_stop(tmp_path, capsys):
    path = _notebook(tmp_path, [
        ("code", [], "try:\n    import json\nexcept ImportError:\n    %pip install json\nprint('tlcourse 0 | profile gpu | device cuda | seed 0')\nx = 2"),
        ("markdown", [], "text"),
        ("code", ["hide-input"], "assert x == 3, x\nprint('Checked: never')"),
        ("code", ["hide-input"], "assert x == 2\nprint('Checked: x is two')"),
        ("code", [], "display(x + 1)\ny = open('here.txt', 'w')"),  # runs from the notebook's folder
        ("code", [], "1 / 0"),
        ("code", [], "print('not reached')"),
    ])
    summary = run_cells.run(path)
    assert (summary["profile"], summary["device"], summary["cells"]) == ("gpu", "cuda", 6)
    assert summary["claims_passed"] == 1 and [r["cell"] for r in summary["claims_failed"]] == [1]
    assert summary["claims_failed"][0]["error"] == "AssertionError: 2"
    assert summary["records"][2]["checked"] == ["Checked: x is two"]
    assert summary["stopped_at"] == 4 and len(summary["records"]) == 5 and (tmp_path / "here.txt").exists()
    assert "3" in capsys.readouterr().out
    assert run_cells.main([str(path), "--json", str(tmp_path / "s.json")]) == 1
    assert json.loads((tmp_path / "s.json").read_text())["stopped_at"] == 4
