"""The plots the chapters share: training histories, curves with error bars, bars, 2-D scatters.

Every function draws on a given matplotlib ``Axes`` (or a new figure), labels its axes, sets a
title, and returns the ``Axes`` so a chapter can add to it. :func:`summarize` turns learning-curve
records (one per condition, label budget and seed) into the curves :func:`plot_curves` draws;
:func:`seed_table`, :func:`mean_se` and :func:`paired_effect` compare conditions seed by seed.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .train import History


def _axes(ax=None, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(
    history: History,
    metrics: Sequence[str] | None = None,
    ax=None,
    title: str = "Training",
    smooth: int = 1,
):
    """Training loss per step (moving average over ``smooth`` steps) and evaluation metrics on a
    twin axis."""
    ax = _axes(ax)
    loss = np.asarray(history.loss, dtype=float)
    if smooth > 1 and len(loss) >= smooth:
        loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
    ax.plot(
        history.steps[len(history.steps) - len(loss) :], loss, label="training loss", color="C0"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    names = list(metrics if metrics is not None else history.metrics)
    if names:
        ax2 = ax.twinx()
        for i, name in enumerate(names, start=1):
            ax2.plot(
                history.eval_steps, history.metrics[name], marker="o", color=f"C{i}", label=name
            )
        ax2.set_ylabel(", ".join(names))
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best")
    return ax


def summarize(
    records: list[dict], key: str = "accuracy"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Learning-curve records (dicts with ``condition``, ``budget``, ``seed`` and ``key``) as the
    curves :func:`plot_curves` draws: ``condition -> (mean over seeds, std over seeds)`` per budget,
    budgets in increasing order."""
    budgets = sorted({r["budget"] for r in records})
    out = {}
    for cond in dict.fromkeys(r["condition"] for r in records):
        vals = [
            [r[key] for r in records if r["condition"] == cond and r["budget"] == b]
            for b in budgets
        ]
        out[cond] = (np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals]))
    return out


def seed_table(records: list[dict], condition: str, key: str = "accuracy") -> np.ndarray:
    """``records[key]`` of one condition as an array ``(seeds, budgets)``, budgets in increasing
    order: the rows pair runs that saw the same labelled rows, so differences between two
    conditions can be taken seed by seed."""
    budgets = sorted({r["budget"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    value = {(r["budget"], r["seed"]): r[key] for r in records if r["condition"] == condition}
    return np.array([[value[b, s] for b in budgets] for s in seeds])


def mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its standard error, ``std(ddof=1) / sqrt(seeds)``."""
    values = np.asarray(values, dtype=float)
    return values.mean(0), values.std(0, ddof=1) / np.sqrt(len(values))


def paired_effect(
    runs: pd.DataFrame,
    better: str,
    than: str,
    by: str | None = "sentences",
    value: str = "accuracy",
    column: str = "start",
) -> pd.DataFrame:
    """How far ``better`` is ahead of ``than`` (two values of ``column``: starts, conditions, ...)
    at each value of ``by``, seed by seed.

    The two trained on the same data at each seed, so the comparison is paired: per seed the
    difference ``d_s``; the table gives both means, the mean difference, its standard error
    ``sd(d_s) / sqrt(n)`` over the ``n`` seeds, and their ratio ``z``. With ``by=None`` there is
    one row, named ``"better - than"``.
    """
    wide = runs.pivot_table(index=[by, "seed"] if by else "seed", columns=column, values=value)
    if by is None:
        by = "pair"
        wide.index = pd.MultiIndex.from_product(
            [[f"{better} - {than}"], wide.index], names=[by, "seed"]
        )
    diff = (wide[better] - wide[than]).groupby(level=by)
    table = pd.DataFrame(
        {
            better: wide[better].groupby(level=by).mean(),
            than: wide[than].groupby(level=by).mean(),
            "difference": diff.mean(),
            "SE": diff.std(ddof=1) / np.sqrt(diff.count()),
            "seeds": diff.count(),
        }
    )
    table["z"] = table["difference"] / table["SE"]
    return table


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ax=None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
    hline: tuple[float, str] | None = None,
):
    """One line per entry of ``curves`` (``name -> (means, stds)``), with shaded ±1 standard
    deviation."""
    ax = _axes(ax)
    for i, (name, (mean, std)) in enumerate(curves.items()):
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name, color=f"C{i}")
        ax.fill_between(x, mean - std, mean + std, alpha=0.12, color=f"C{i}")
    if hline is not None:
        ax.axhline(hline[0], ls=":", color="grey", label=hline[1])
    if logx:
        ax.set_xscale("log")
        ax.set_xticks(list(x), [str(v) for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_bars(
    values: Mapping[str, float],
    errors: Mapping[str, float] | None = None,
    ax=None,
    ylabel: str = "",
    title: str = "",
    fmt: str = "{:.3f}",
):
    """A labelled bar per entry, with optional error bars and the value printed on each bar."""
    ax = _axes(ax)
    names = list(values)
    heights = [values[n] for n in names]
    yerr = [errors[n] for n in names] if errors is not None else None
    bars = ax.bar(names, heights, yerr=yerr, capsize=4, color=[f"C{i}" for i in range(len(names))])
    ax.bar_label(bars, labels=[fmt.format(h) for h in heights], padding=2)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=20)
    return ax


def plot_embedding_2d(
    points: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    ax=None,
    title: str = "2-D projection",
    method: str = "PCA",
):
    """Scatter of 2-D points with a text label each; ``groups`` colours the points by group."""
    points = np.asarray(points, float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            "plot_embedding_2d expects points of shape (n, 2), "
            f"got {points.shape}; project first (e.g. pca_2d)."
        )
    if len(labels) != len(points):
        raise ValueError(f"plot_embedding_2d: {len(points)} points but {len(labels)} labels.")
    ax = _axes(ax, figsize=(6, 6))
    keys = list(dict.fromkeys(groups)) if groups is not None else [None]
    for i, key in enumerate(keys):
        mask = np.ones(len(points), bool) if key is None else np.asarray([g == key for g in groups])
        ax.scatter(points[mask, 0], points[mask, 1], color=f"C{i}", label=key, s=25)
    for (px, py), text in zip(points, labels):
        ax.annotate(text, (px, py), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_title(title)
    if groups is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project rows onto their two leading principal components (centred SVD)."""
    x = np.asarray(vectors, float)
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def show_source(obj) -> None:
    """Display the source of a function or class from ``tlcourse``, syntax-highlighted.

    Chapters use this instead of copying code into cells, so the text the reader sees is the code
    that runs (and that the tests check).
    """
    import inspect

    from IPython.display import Code, display

    display(Code(inspect.getsource(obj), language="python"))
