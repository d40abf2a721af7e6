"""Tests of convviz.figures_training (Plotly builders for the Train and Draw pages)."""

import numpy as np
import pytest

from convviz import figures_training as ft
from convviz.preprocess import digit_stages


def _snapshot(batches=10, bpe=4, epochs=3, tests=2):
    rng = np.random.default_rng(0)
    return {"batch_loss": list(2.3 * np.exp(-np.arange(batches) / 5) + rng.uniform(0, 0.1, batches)),
            "batch_accuracy": list(np.linspace(0.1, 0.9, batches)),
            "epoch_test_loss": [0.5, 0.3][:tests], "epoch_test_accuracy": [0.85, 0.9][:tests],
            "batches_per_epoch": bpe, "epochs": epochs, "epoch": tests, "batch": 2}


def test_ema():
    np.testing.assert_allclose(ft.ema([3.0, 3.0, 3.0, 3.0]), 3.0)  # bias correction: no pull towards 0
    np.testing.assert_allclose(ft.ema([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0])
    out = ft.ema([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and out[1] == pytest.approx(0.5 * 10 / (1 - 0.25))
    assert ft.ema([]).shape == (0,)
    with pytest.raises(ValueError, match="weight=1.0"):
        ft.ema([1.0], 1.0)


def test_metric_figure_lines_up_batches_and_epochs():
    snap = _snapshot()
    fig = ft.metric_figure(snap, "loss")
    raw, smooth, test = fig.data
    np.testing.assert_allclose(raw.x, np.arange(1, 11) / 4)  # batch i at epoch i / batches_per_epoch
    np.testing.assert_allclose(raw.y, snap["batch_loss"], atol=1e-5)  # rounded to 5 decimals
    np.testing.assert_allclose(smooth.y, ft.ema(snap["batch_loss"]), atol=1e-5)
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
    full = ft.ema(np.linspace(2.0, 0.1, n), 0.9)  # smoothed over every batch, then thinned
    assert smooth.y[-1] == pytest.approx(full[-1], abs=1e-5)
    assert len(fig.to_json()) < 40_000
    np.testing.assert_array_equal(ft.thinned(5, 10), np.arange(5))
    np.testing.assert_array_equal(ft.thinned(11, 3), [0, 5, 10])
    with pytest.raises(ValueError, match="max_points=1"):
        ft.thinned(10, 1)


def test_tile():
    images = np.arange(5 * 2 * 3).reshape(5, 2, 3)
    canvas, index = ft.tile(images, columns=3, gap=1)
    assert canvas.shape == (2 * 3 - 1, 3 * 4 - 1)
    np.testing.assert_array_equal(canvas[0:2, 4:7], images[1])
    np.testing.assert_array_equal(canvas[3:5, 4:7], images[4])
    assert np.isnan(canvas[2]).all() and np.isnan(canvas[3:5, 8:]).all()  # gap row, unused slot
    assert index[3, 4] == 4 and index[2, 0] == -1
    with pytest.raises(ValueError, match=r"got \(2, 3\)"):
        ft.tile(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="columns=0"):
        ft.tile(images, columns=0)


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


def test_feature_maps_figure():
    maps = np.random.default_rng(2).uniform(0, 3, (6, 6, 12))
    heat = ft.feature_maps_figure(maps, columns=8, title="conv1").data[0]
    assert np.asarray(heat.z).shape == (2 * 7 - 1, 8 * 7 - 1)
    assert heat.zmin == 0 and heat.zmax == pytest.approx(maps.max())
    with pytest.raises(ValueError, match="height, width, filters"):
        ft.feature_maps_figure(maps[0])


def test_confusion_matrix_and_figure():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 2, 2, 0, 0]
    cm = ft.confusion_matrix(y_true, y_pred, classes=3)
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
        ft.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="y_pred must be in"):
        ft.confusion_matrix([0], [10])
    with pytest.raises(ValueError, match="square"):
        ft.confusion_figure(np.zeros((2, 3)))


def test_misclassified_most_confident_first():
    y_true = np.array([1, 2, 3, 4])
    y_pred = np.array([1, 5, 6, 7])
    probs = np.zeros((4, 10))
    probs[0, 1], probs[1, 5], probs[2, 6], probs[3, 7] = 0.9, 0.4, 0.8, 0.6
    out = ft.misclassified(y_true, y_pred, probs, limit=2)
    assert out == [{"index": 2, "true": 3, "predicted": 6, "confidence": 0.8},
                   {"index": 3, "true": 4, "predicted": 7, "confidence": 0.6}]
    assert ft.misclassified(y_true[:1], y_pred[:1], probs[:1]) == []
    with pytest.raises(ValueError, match="lengths differ"):
        ft.misclassified(y_true, y_pred[:2], probs)


def test_probability_figure_highlights_the_top_class():
    p = np.full(10, 0.02)
    p[7] = 0.82
    bar = ft.probability_figure(p).data[0]
    assert bar.marker.color[7] != bar.marker.color[0]
    assert len(set(bar.marker.color)) == 2 and bar.text[7] == "82.0%"
    with pytest.raises(ValueError, match="classes"):
        ft.probability_figure(np.zeros((2, 5)))


def test_stages_and_saliency_figures():
    gray = np.zeros((100, 80), np.float32)
    gray[10:60, 30:40] = 1.0
    s = digit_stages(gray)
    fig = ft.stages_figure(s)
    assert len([t for t in fig.data if t.type == "heatmap"]) == 4
    assert fig.layout.annotations[0].text == "1. input 80x100"
    assert ft.stages_figure(s, naive=np.zeros((28, 28))).layout.annotations[4].text.startswith("naive")
    with pytest.raises(ValueError, match="blank"):
        ft.stages_figure(digit_stages(np.zeros((5, 5))))
    sal = ft.saliency_figure(s.image, np.arange(784.0).reshape(28, 28))
    assert np.nanmax(np.asarray(sal.data[1].z, float)) == pytest.approx(1.0)  # scaled to its maximum
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        ft.saliency_figure(s.image, np.zeros((27, 28)))
