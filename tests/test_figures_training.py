"""Tests of convviz.figures_training (Plotly builders for the Train page)."""

import numpy as np
import pytest

from convviz import figures_training as ft
from convviz import metrics


def _snapshot(batches=10, bpe=4, epochs=3, tests=2):
    rng = np.random.default_rng(0)
    return {"batch_loss": list(2.3 * np.exp(-np.arange(batches) / 5) + rng.uniform(0, 0.1, batches)),
            "batch_accuracy": list(np.linspace(0.1, 0.9, batches)),
            "epoch_test_loss": [0.5, 0.3][:tests], "epoch_test_accuracy": [0.85, 0.9][:tests],
            "batches_per_epoch": bpe, "epochs": epochs, "epoch": tests, "batch": 2}


def test_metric_figure_lines_up_batches_and_epochs():
    snap = _snapshot()
    fig = ft.metric_figure(snap, "loss")
    raw, smooth, test = fig.data
    np.testing.assert_allclose(raw.x, np.arange(1, 11) / 4)  # batch i at epoch i / batches_per_epoch
    np.testing.assert_allclose(raw.y, snap["batch_loss"], atol=1e-5)  # rounded to 5 decimals
    np.testing.assert_allclose(smooth.y, metrics.ema(snap["batch_loss"]), atol=1e-5)
    assert list(test.x) == [1, 2] and list(test.y) == [0.5, 0.3]
    assert fig.layout.uirevision == "loss" and tuple(fig.layout.xaxis.range) == pytest.approx((0, 3.06))
    acc = ft.metric_figure(snap, "accuracy")
    assert acc.layout.yaxis.tickformat == ".0%" and list(acc.data[2].y) == [0.85, 0.9]
    empty = ft.metric_figure({"batch_loss": [], "batches_per_epoch": 0, "epochs": 1}, "loss")
    assert len(empty.data[0].x) == 0
    with pytest.raises(ValueError, match="metric='f1'"):
        ft.metric_figure(snap, "f1")


def test_long_curves_are_thinned_to_a_bounded_size():
    n = 5000
    snap = {"batch_loss": list(np.linspace(2.0, 0.1, n)), "batches_per_epoch": 100, "epochs": 50}
    fig = ft.metric_figure(snap, "loss")
    raw, smooth, _ = fig.data
    assert len(raw.x) == len(smooth.x) == ft.MAX_CURVE_POINTS
    assert raw.x[0] == pytest.approx(0.01) and raw.x[-1] == pytest.approx(50.0)  # the first and the last batch
    assert raw.y[0] == pytest.approx(2.0) and raw.y[-1] == pytest.approx(0.1)
    full = metrics.ema(np.linspace(2.0, 0.1, n), 0.9)  # smoothed over every batch, then thinned
    assert smooth.y[-1] == pytest.approx(full[-1], abs=1e-5)
    assert len(fig.to_json()) < 40_000
    np.testing.assert_array_equal(ft.thinned(5, 10), np.arange(5))
    np.testing.assert_array_equal(ft.thinned(11, 3), [0, 5, 10])
    with pytest.raises(ValueError, match="max_points=1"):
        ft.thinned(10, 1)


def test_kernel_grid_is_signed_and_symmetric():
    k = np.random.default_rng(1).normal(size=(3, 3, 1, 10))
    fig = ft.kernel_grid_figure(k, columns=5)
    heat = fig.data[0]
    bound = np.abs(k).max()
    assert heat.zmin == pytest.approx(-bound) and heat.zmax == pytest.approx(bound) and heat.zmid == 0
    assert np.asarray(heat.z).shape == (2 * 4 - 1, 5 * 4 - 1)
    np.testing.assert_allclose(np.asarray(heat.z)[0:3, 4:7], k[:, :, 0, 1])
    with pytest.raises(ValueError, match=r"got \(3, 3, 10\)"):
        ft.kernel_grid_figure(k[:, :, 0])


def test_confusion_matrix_and_figure():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 2, 2, 0, 0]
    cm = metrics.confusion_matrix(y_true, y_pred, classes=3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 2, 0], [2, 0, 2]])
    fig = ft.confusion_figure(cm)
    assert "66.7% correct" in fig.layout.title.text  # 6 of 9
    diag, off = fig.data
    assert list(diag.y) == ["0 (66.7%)", "1 (100.0%)", "2 (50.0%)"]
    np.testing.assert_allclose(np.diag(np.asarray(diag.z, float)), [2 / 3, 1.0, 0.5])  # coloured by accuracy
    assert np.asarray(off.z, float)[2, 0] == 2 and np.isnan(np.asarray(off.z, float)[0, 2])
    notes = {(a.x, a.y): (a.text, a.font.color) for a in fig.layout.annotations}
    assert notes[("0", "2 (50.0%)")] == ("2", "white")  # the largest mistake: dark red, white text
    assert notes[("1", "1 (100.0%)")] == ("2", "white") and notes[("1", "0 (66.7%)")] == ("1", "black")
    assert len(notes) == 5  # one per non-empty cell
    with pytest.raises(ValueError, match="same length"):
        metrics.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="y_pred must be in"):
        metrics.confusion_matrix([0], [10])
    with pytest.raises(ValueError, match="square"):
        ft.confusion_figure(np.zeros((2, 3)))




@pytest.mark.parametrize("height", [300, 360, 480])
def test_the_legend_hangs_below_the_epoch_title_with_room_for_two_rows(height):
    """The legend used to sit at y=-0.25 anchored at its bottom: wrapped into two rows at 1280x800 it grew upwards
    over the "epoch" title. Now its top is below the tick labels and the title, and two rows fit in the margin."""
    fig = ft.metric_figure(_snapshot(), "loss", height=height)
    layout = fig.layout
    plot_px = height - layout.margin.t - layout.margin.b
    top_px = -layout.legend.y * plot_px  # pixels below the plot's bottom edge
    assert layout.legend.yanchor == "top" and layout.legend.orientation == "h"
    assert top_px >= 18 + layout.xaxis.title.standoff + 20 + 4  # tick labels, standoff, "epoch" (12 px font), a gap
    assert top_px + 2 * 20 <= layout.margin.b  # two rows of the legend stay inside the figure
    assert [trace.name for trace in fig.data] == ["training batch", "smoothed", "test set (per epoch)"]
