"""tlcourse.viz: the paired comparison of two starts seed by seed; what each plot draws (its lines, bars,
points, error bars, labels and scales, read back from the Axes); pca_2d against the covariance's
eigenvectors; show_source shows the code itself."""
import inspect
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from tlcourse import viz  # noqa: E402
from tlcourse.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


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


# ---- the plots ---------------------------------------------------------------------------------

def test_plot_curves_draws_each_mean_with_its_error_bars_band_and_labels():
    x = [10, 100, 1000]
    curves = {"a": ([0.5, 0.6, 0.7], [0.01, 0.02, 0.03]), "b": ([0.4, 0.45, 0.65], [0.05, 0.0, 0.1])}
    ax = viz.plot_curves(x, curves, xlabel="labels", ylabel="accuracy", title="Curves", hline=(0.25, "chance"))
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in bars] == ["a", "b"]
    for c, (mean, std) in zip(bars, curves.values()):
        line, _, (ranges,) = c.lines
        assert list(line.get_xdata()) == x and np.allclose(line.get_ydata(), mean)
        # one vertical segment per point, from mean - std to mean + std
        segments = np.array(ranges.get_segments())
        assert np.allclose(segments[:, :, 0], np.array(x)[:, None])
        assert np.allclose(segments[:, :, 1], np.stack([np.subtract(mean, std), np.add(mean, std)], 1))
    assert len(ax.collections) == 2 * 2  # the error bars' lines and the shaded band of each curve
    chance = [line for line in ax.lines if line.get_label() == "chance"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.25, 0.25]
    assert ax.get_legend_handles_labels()[1] == ["chance", "a", "b"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("labels", "accuracy", "Curves")
    assert ax.get_xscale() == "linear"


def test_plot_curves_on_a_log_axis_labels_the_budgets_themselves():
    x = [10, 100, 1000]
    fig, given = plt.subplots()
    ax = viz.plot_curves(x, {"a": ([0.5, 0.6, 0.7], [0.0, 0.0, 0.0])}, ax=given, logx=True)
    assert ax is given and ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == x and [t.get_text() for t in ax.get_xticklabels()] == ["10", "100", "1000"]


def test_plot_bars_heights_are_the_values_with_their_error_bars_and_printed_values():
    values, errors = {"teacher": 0.9, "half": 0.85, "bag": 0.7}, {"teacher": 0.01, "half": 0.02, "bag": 0.05}
    ax = viz.plot_bars(values, errors, ylabel="accuracy", title="Students", fmt="{:.2f}")
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [p.get_height() for p in bars] == list(values.values())
    assert [t.get_text() for t in ax.get_xticklabels()] == list(values)
    assert [t.get_text() for t in ax.texts] == ["0.90", "0.85", "0.70"]
    segments = np.array(bars.errorbar.lines[2][0].get_segments())  # one vertical segment per bar: value +- error
    lo_hi = [[v - errors[k], v + errors[k]] for k, v in values.items()]
    assert np.allclose(segments[:, :, 1], lo_hi)
    assert len({tuple(p.get_facecolor()) for p in bars}) == 3  # a colour per bar
    assert (ax.get_ylabel(), ax.get_title()) == ("accuracy", "Students")


def test_plot_bars_without_errors_draws_no_error_bars():
    ax = viz.plot_bars({"a": 0.5, "b": 0.25})
    (bars,) = ax.containers
    assert bars.errorbar is None and [p.get_height() for p in bars] == [0.5, 0.25]
    assert [t.get_text() for t in ax.texts] == ["0.500", "0.250"]


def test_plot_history_draws_the_smoothed_loss_and_the_metrics_on_a_twin_axis():
    history = History(steps=[1, 2, 3, 4, 5], loss=[5.0, 4.0, 2.0, 2.0, 0.0], eval_steps=[2, 4],
                      metrics={"accuracy": [0.5, 0.7], "f1": [0.4, 0.6]})
    ax = viz.plot_history(history, title="Run", smooth=2)
    (loss,) = ax.lines
    # the mean of each two consecutive losses, drawn at the later step
    assert loss.get_label() == "training loss"
    assert list(loss.get_xdata()) == [2, 3, 4, 5] and np.allclose(loss.get_ydata(), [4.5, 3.0, 2.0, 1.0])
    twin = [a for a in ax.figure.axes if a is not ax]
    assert len(twin) == 1 and twin[0].get_ylabel() == "accuracy, f1"
    assert [(m.get_label(), list(m.get_xdata()), list(m.get_ydata())) for m in twin[0].lines] == [
        ("accuracy", [2, 4], [0.5, 0.7]), ("f1", [2, 4], [0.4, 0.6])]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss", "accuracy", "f1"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("step", "loss", "Run")


def test_plot_history_of_chosen_or_no_metrics():
    history = History(steps=[1, 2, 3], loss=[3.0, 2.0, 1.0], eval_steps=[3], metrics={"accuracy": [0.8], "f1": [0.7]})
    ax = viz.plot_history(history, metrics=["f1"])
    assert [m.get_label() for m in ax.figure.axes[1].lines] == ["f1"]
    bare = viz.plot_history(History(steps=[1, 2, 3], loss=[3.0, 2.0, 1.0]), smooth=5)  # fewer steps than smooth
    assert len(bare.figure.axes) == 1 and bare.get_legend() is None
    assert list(bare.lines[0].get_xdata()) == [1, 2, 3] and list(bare.lines[0].get_ydata()) == [3.0, 2.0, 1.0]


def test_plot_embedding_2d_draws_a_labelled_point_per_row_coloured_by_group():
    points = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    ax = viz.plot_embedding_2d(points, ["w", "x", "y", "z"], groups=["g", "h", "g", "h"], method="t-SNE")
    assert [c.get_label() for c in ax.collections] == ["g", "h"]
    assert np.allclose(ax.collections[0].get_offsets(), points[[0, 2]])
    assert np.allclose(ax.collections[1].get_offsets(), points[[1, 3]])
    assert not np.allclose(ax.collections[0].get_facecolor(), ax.collections[1].get_facecolor())
    texts = [(t.get_text(), tuple(t.xy)) for t in ax.texts]
    assert texts == [("w", (0, 1)), ("x", (2, 3)), ("y", (4, 5)), ("z", (6, 7))]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t-SNE 1", "t-SNE 2")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["g", "h"]
    one = viz.plot_embedding_2d(points, list("abcd"))  # no groups: one colour, no legend
    assert len(one.collections) == 1 and np.allclose(one.collections[0].get_offsets(), points)
    assert one.get_legend() is None and one.get_title() == "2-D projection"


def test_plot_embedding_2d_explains_points_it_cannot_draw():
    with pytest.raises(ValueError, match=r"shape \(n, 2\), got \(4, 3\); project first"):
        viz.plot_embedding_2d(np.zeros((4, 3)), list("abcd"))
    with pytest.raises(ValueError, match="4 points but 3 labels"):
        viz.plot_embedding_2d(np.zeros((4, 2)), list("abc"))


# ---- pca_2d and show_source --------------------------------------------------------------------

def test_pca_2d_projects_onto_the_two_leading_eigenvectors_of_the_covariance():
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    vectors = rng.normal(size=(200, 4)) * [5.0, 0.3, 2.0, 1.0] @ rotation + 10.0  # spreads 5, 2, 1, 0.3; off-centre
    got = viz.pca_2d(vectors)
    centred = vectors - vectors.mean(0)
    values, vecs = np.linalg.eigh(np.cov(centred, rowvar=False))  # ascending eigenvalues
    expected = centred @ vecs[:, [-1, -2]]
    assert got.shape == (200, 2)
    for j in range(2):  # each component up to its sign
        sign = np.sign(got[:, j] @ expected[:, j])
        np.testing.assert_allclose(got[:, j], sign * expected[:, j], atol=1e-9)
    np.testing.assert_allclose(got.var(0, ddof=1), values[[-1, -2]])  # the two largest variances, in order
    assert abs(np.corrcoef(got.T)[0, 1]) < 1e-9 and np.allclose(got.mean(0), 0)
    np.testing.assert_allclose(np.abs(viz.pca_2d(vectors - 10.0)), np.abs(got), atol=1e-9)  # a shift changes nothing


def _source_in_file(path, first_line):
    """The text of a top-level definition, from its first line to the next top-level line."""
    lines = Path(path).read_text().splitlines(keepends=True)
    start = lines.index(first_line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace())
    return "".join(lines[start:end]).rstrip("\n") + "\n"


def test_show_source_displays_the_functions_code_as_python(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    viz.show_source(viz.pca_2d)
    (code,) = shown
    assert isinstance(code, IPython.display.Code) and code.language == "python"
    assert code.data == _source_in_file(viz.__file__, "def pca_2d(vectors: np.ndarray) -> np.ndarray:\n")


def test_show_source_outside_a_notebook_prints_the_class_source(capsys):
    viz.show_source(History)
    out = capsys.readouterr().out
    assert out == inspect.getsource(History) + "\n"
    assert out.startswith("@dataclass\nclass History:") and "def log_eval(self, step: int" in out
