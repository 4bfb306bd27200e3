"""Remove every solution from the book when ``tlcourse_hide_solutions`` is true (graded courses).

sphinx-exercise's own ``hide_solutions`` does not handle the gated ``solution-start`` /
``solution-end`` form that the chapters use (it drops the start but leaves the end node and the
content in between). This transform runs after sphinx-exercise has merged each gated pair into one
``solution_node`` and removes those nodes, code cells and outputs included.
"""
from __future__ import annotations

from sphinx.transforms import SphinxTransform
from sphinx_exercise.nodes import solution_node


class RemoveSolutions(SphinxTransform):
    default_priority = 500  # after sphinx_exercise.transforms.MergeGatedSolutions (priority 10)

    def apply(self) -> None:
        if not self.config.tlcourse_hide_solutions:
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


def setup(app):
    app.add_config_value("tlcourse_hide_solutions", False, "env")
    app.add_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
