"""Point the Colab and Binder launch buttons at the chapter's notebook twin.

Chapters are written as MyST Markdown (``book/NN-slug.md``); Colab cannot open Markdown, so the
launch links are rewritten to ``notebooks/NN-slug.ipynb``, the paired notebook in the repository.
Runs after sphinx-book-theme has built its buttons (its handler has priority 501).
"""
from __future__ import annotations

from pathlib import PurePosixPath


def _rewrite(node, old: str, new: str) -> None:
    if isinstance(node, dict):
        url = node.get("url")
        # Only the launch links (Colab, Binder: absolute); the download buttons keep their files.
        if isinstance(url, str) and old in url and url.startswith(("https://", "http://")):
            node["url"] = url.replace(old, new)
        for value in node.values():
            _rewrite(value, old, new)
    elif isinstance(node, list):
        for item in node:
            _rewrite(item, old, new)


def twin_links(app, pagename, templatename, context, doctree) -> None:
    if not pagename.startswith("book/") or "header_buttons" not in context:
        return
    stem = PurePosixPath(pagename).name
    for ext in (".md", ".ipynb"):
        _rewrite(context["header_buttons"], f"{pagename}{ext}", f"notebooks/{stem}.ipynb")


def setup(app):
    app.connect("html-page-context", twin_links, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
