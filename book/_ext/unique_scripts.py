"""Each page loads each script once.

sphinx-thebe 0.3.1 adds its inline configuration (``const THEBE_JS_URL = ...``) to every page twice,
and the second ``const`` declaration is a JavaScript error on every page of the book
(tests/test_browser.py fails on console errors). Identical scripts are dropped from the page's list.
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        attributes = tuple(sorted((k, str(v)) for k, v in attributes.items()))
        key = (str(getattr(script, "filename", script) or ""), attributes)  # None and "": inline
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
