"""A chapter installs the package version it was written for: every first cell's install line
points at tlcourse/_release.py's repository and git ref, and that repository is _config.yml's."""
import json
import tomllib
from pathlib import Path

import pytest
import yaml

import tlcourse
from tlcourse import _release

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_repository_is_the_books():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert _release.REPOSITORY_URL == config["repository"]["url"].rstrip("/")
    assert PYPROJECT["project"]["urls"]["Homepage"].rstrip("/") == _release.REPOSITORY_URL


def test_the_ref_is_this_versions_tag():
    assert tlcourse.__version__ == PYPROJECT["project"]["version"]
    assert _release.RELEASE_REF == f"v{PYPROJECT['project']['version']}"


def _first_code_cell_md(path: Path) -> str:
    text = path.read_text()
    start = text.index("```{code-cell}")
    return text[start : text.index("\n```\n", start)]


def _first_code_cell_ipynb(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


@pytest.mark.parametrize(
    "path, first_cell",
    [(p, _first_code_cell_md) for p in CHAPTERS] + [(p, _first_code_cell_ipynb) for p in NOTEBOOKS],
    ids=lambda x: x.name if isinstance(x, Path) else "",
)
def test_first_cell_installs_this_release(path, first_cell):
    cell = first_cell(path)
    lines = list(_release.INSTALL_LINE.finditer(cell))
    assert len(lines) == 1, f"{path.name}: the first code cell has no (or several) install lines"
    found = lines[0]
    assert found["url"] == _release.REPOSITORY_URL and found["ref"] == _release.RELEASE_REF, (
        f"{path.name} installs {found['url']}@{found['ref']}: run `make sync`"
    )
    assert found[0] == _release.install_line(found["extras"])


def test_the_install_line_is_the_only_one_and_rewrite_is_idempotent():
    for path in CHAPTERS:
        text = path.read_text()
        assert text.count("git+") == 1, f"{path.name}: another git install besides the first cell"
        assert _release.rewrite(text) == text
    old = '    %pip install -q "tlcourse[offline,peers] @ git+https://example.org/fork"\n'
    new = _release.rewrite(old)
    assert new == f"    {_release.install_line('offline,peers')}\n"
    assert _release.rewrite(new) == new


def test_check_and_write(tmp_path, capsys):
    (tmp_path / "book").mkdir()
    chapter = tmp_path / "book" / "01-x.md"
    chapter.write_text('x\n    %pip install -q "tlcourse[offline] @ git+https://example.org/a@main"\n')
    assert _release.main(["--root", str(tmp_path), "--check"]) == 1
    assert _release.main(["--root", str(tmp_path), "--write"]) == 0
    assert _release.main(["--root", str(tmp_path), "--check"]) == 0
    assert _release.install_line("offline") in chapter.read_text()
    assert _release.main(["--root", str(ROOT), "--check"]) == 0, capsys.readouterr().out
