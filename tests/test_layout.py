"""The package's layout, checked on its import graph (design/layout.md).

Every module under ``tlcourse/`` is parsed with ``ast``; every import counts, at module level or inside
a function, absolute or relative. The modules fall into four kinds, from the bottom up:

* plumbing: config, data/*, hub, train, text, viz, assign, cli, _fs (and the package's ``__init__``);
* methods: what the book teaches (embeddings, elmo, mlm, lora, ...), one module each;
* chapters: ``tlcourse/chapters/chNN_slug.py``, each chapter's CONFIGS and experiment protocol;
* checks: ``tlcourse/checks/*``, the exercises' self-checks (may import anything).

Invariants: (1) a chapter module never imports another chapter module; (2) plumbing never imports a
method, chapter or checks module, and a method module never imports a chapter or checks module;
(3) no method or plumbing function is annotated with a chapter's config class (they take plain
arguments). A new top-level module must be added to PLUMBING or METHODS below.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tlcourse"

PLUMBING = {"tlcourse", "tlcourse.config", "tlcourse.hub", "tlcourse.train", "tlcourse.text", "tlcourse.viz",
            "tlcourse.assign", "tlcourse.cli", "tlcourse._fs", "tlcourse._release",
            "tlcourse.answer_key", "tlcourse.nbgrader"}
METHODS = {f"tlcourse.{m}" for m in [
    "adapters", "bow", "distill", "elmo", "embeddings", "episodes", "features", "finetune", "glove", "icl", "lora",
    "meta", "multitask",
    "mlm", "probes", "ssl", "strategies", "t5", "t5_train", "tagging", "wordpiece", "wordvectors"]}
# Folders whose every module has one kind.
FOLDERS = {"tlcourse.data": "plumbing", "tlcourse.chapters": "chapter", "tlcourse.checks": "checks"}
CHAPTER_NAME = re.compile(r"^ch\d\d_[a-z0-9_]+$")
# what each kind may not import
FORBIDDEN = {"plumbing": {"method", "chapter", "checks"}, "method": {"chapter", "checks"}, "chapter": {"checks"},
             "checks": set()}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def kind(name: str) -> str | None:
    if name in PLUMBING:
        return "plumbing"
    if name in METHODS:
        return "method"
    for folder, folder_kind in FOLDERS.items():
        if name == folder or name.startswith(folder + "."):
            return folder_kind
    return None


def imports(name: str) -> set[str]:
    """The tlcourse modules that module ``name`` imports, anywhere in its body."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                if not base:
                    raise AssertionError(f"{name}: relative import beyond the package")
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub; ``from mod import thing`` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # ``import tlcourse.data.text.x``: the longest module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_is_read():
    # a smoke test of the parser itself: known edges, relative and absolute, top level and in functions
    assert "tlcourse.bow" in GRAPH["tlcourse.chapters.ch01_transfer"]
    assert "tlcourse.data" in GRAPH["tlcourse.chapters.ch01_transfer"]
    assert "tlcourse.features" in GRAPH["tlcourse.probes"]              # imported inside a method
    assert "tlcourse.data" in GRAPH["tlcourse.config"]                  # imported inside a function
    assert "tlcourse.data.text" in GRAPH["tlcourse.data"]               # ``from .text import ...`` in a package
    assert "tlcourse.bow" in GRAPH["tlcourse.checks.transfer"]          # ``from .. import bow``


def test_every_module_is_classified():
    unclassified = sorted(name for name in MODULES if kind(name) is None)
    assert not unclassified, (f"classify {unclassified} in tests/test_layout.py: a method (what the book teaches) "
                              "or plumbing (shared and general); a chapter's protocol belongs in tlcourse/chapters/")
    stale = sorted((PLUMBING | METHODS) - set(MODULES))
    assert not stale, f"tests/test_layout.py classifies modules that do not exist: {stale}"


def test_chapter_modules_are_named_and_define_configs():
    chapters = [n for n in MODULES if kind(n) == "chapter" and n != "tlcourse.chapters"]
    assert len(chapters) >= 8
    for name in chapters:
        short = name.rpartition(".")[2]
        assert CHAPTER_NAME.match(short), f"{name}: a chapter module is named chNN_slug"
        tree = ast.parse(MODULES[name].read_text())
        assigned = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
        assert "CONFIGS" in assigned, f"{name} defines no CONFIGS (its sizes per profile)"


def test_a_chapter_never_imports_another_chapter():
    bad = [(a, b) for a, targets in GRAPH.items() if kind(a) == "chapter" for b in targets if kind(b) == "chapter"]
    assert not bad, f"chapter modules import other chapters (move what they share to a method or plumbing): {bad}"


@pytest.mark.parametrize("lower", ["plumbing", "method", "chapter"])
def test_imports_point_down(lower):
    bad = [(a, b) for a, targets in GRAPH.items() if kind(a) == lower for b in targets if kind(b) in FORBIDDEN[lower]]
    assert not bad, f"{lower} modules import {sorted(FORBIDDEN[lower])} modules: {bad}"


def test_no_shared_helper_takes_a_chapter_config():
    chapter_classes = {node.name for name, path in MODULES.items() if kind(name) == "chapter"
                       for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
    bad = []
    for name, path in MODULES.items():
        if kind(name) not in ("plumbing", "method"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                for arg in args:
                    words = set(re.findall(r"\w+", ast.unparse(arg.annotation))) if arg.annotation else set()
                    if words & chapter_classes:
                        bad.append(f"{name}.{node.name}({arg.arg}: {ast.unparse(arg.annotation)})")
    assert not bad, f"shared helpers take a chapter's class (pass plain arguments instead): {bad}"
