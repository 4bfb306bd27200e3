"""tlcourse.viz: the paired comparison of two starts seed by seed."""
import numpy as np
import pandas as pd
import pytest

from tlcourse import viz


def test_paired_effect_is_the_mean_and_standard_error_of_per_seed_differences():
    runs = pd.DataFrame({"start": ["x"] * 3 + ["y"] * 3, "sentences": [50] * 6, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.60, 0.62, 0.70, 0.55, 0.58, 0.64]})
    row = viz.paired_effect(runs, "x", "y").loc[50]
    d = np.array([0.05, 0.04, 0.06])
    assert row["difference"] == pytest.approx(d.mean())
    assert row["SE"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert row["z"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(3)))
    assert row["x"] == pytest.approx(0.64) and row["seeds"] == 3


def test_paired_effect_of_conditions_without_grouping_is_one_named_row():
    runs = pd.DataFrame({"condition": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.60, 0.62, 0.70, 0.55, 0.58, 0.64]})
    table = viz.paired_effect(runs, "a", "b", by=None, column="condition")
    assert list(table.index) == ["a - b"]
    d = np.array([0.05, 0.04, 0.06])
    assert table.loc["a - b", "difference"] == pytest.approx(d.mean())
    assert table.loc["a - b", "SE"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert table.loc["a - b", "seeds"] == 3
