"""Class-balanced, nested, seeded subsets of a labelled dataset: the label budgets of every learning
curve.

Chapter 1 introduces them (a learning curve should measure *more labels*, not *different labels*);
the later chapters draw their few-label training sets the same way.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def label_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of row indices that interleaves the classes (round robin over shuffled
    classes).

    Any prefix of it is class-balanced, which is what makes label budgets nested *and* balanced.
    """
    labels = np.asarray(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    for rank in range(max(len(p) for p in per_class)):
        order.extend(int(p[rank]) for p in per_class if rank < len(p))
    return np.asarray(order, dtype=np.int64)


def label_budget_indices(
    labels: Sequence[int], budgets: Iterable[int], seed: int
) -> dict[int, np.ndarray]:
    """Row indices for each label budget: class-balanced (counts differ by at most one), nested
    (a smaller budget is a subset of a larger one), and reproducible for a given ``seed``.

    Nesting means a learning curve measures *more labels*, not *different labels* (exercise 1.2).
    """
    labels = np.asarray(labels)
    budgets = list(budgets)
    if any(b <= 0 or b > len(labels) for b in budgets):
        raise ValueError(
            f"label budgets must lie in 1..{len(labels)} (the number of rows), got {budgets}."
        )
    order = label_order(labels, np.random.default_rng(seed))
    return {b: order[:b].copy() for b in budgets}


def stratified_split(
    labels: np.ndarray, test_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(test, rest)``: a class-balanced ``test`` of ``test_size`` rows and all other
    rows."""
    rng = np.random.default_rng(seed)
    order = label_order(labels, rng)
    return np.sort(order[:test_size]), np.sort(order[test_size:])


def budget_subset(dataset, budget: int, seed: int):
    """A class-balanced, seeded subset of ``budget`` rows of a ``datasets.Dataset`` with a ``label``
    column (the first ``budget`` rows of :func:`label_budget_indices`' order, kept in dataset
    order)."""
    rows = label_budget_indices(np.asarray(dataset["label"]), [budget], seed)[budget]
    return dataset.select(sorted(rows.tolist()))
