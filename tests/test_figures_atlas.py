"""Tests of convviz.figures_atlas (the Filter atlas page's Plotly builders), on a hand-made atlas."""

import numpy as np
import pytest

from convviz import figures_atlas as fa
from convviz.atlas import ClassImages, ReceptiveField, Synthesis, TopPatches

from apptest_helpers import plotly_values


def _patches(filters=5, k=9, size=4, start=-1):
    rng = np.random.default_rng(0)
    rf = ReceptiveField("conv2", (size, size), (2, 2), (start, start), (12, 12, filters))
    positions = rng.integers(0, 12, (filters, k, 2))
    values = np.sort(rng.uniform(0, 4, (filters, k)))[:, ::-1].astype(np.float32)
    return TopPatches(layer="conv2", field=rf, values=values,
                      digits=rng.integers(0, 100, (filters, k)), labels=rng.integers(0, 10, (filters, k)),
                      positions=positions, crops=rng.integers(0, 256, (filters, k, size, size)).astype(np.uint8),
                      images=rng.integers(0, 256, (filters, k, 28, 28)).astype(np.uint8))


def _synthesis(count):
    rng = np.random.default_rng(1)
    return Synthesis(images=rng.uniform(0, 0.5, (count, 28, 28)).astype(np.float32),
                     start=np.zeros(count, np.float32), end=np.linspace(1, 2, count).astype(np.float32))


def test_patches_figure_tiles_each_filters_nine_patches_with_one_label_each():
    patches = _patches()
    fig = fa.patches_figure(patches, columns=3)
    heatmap, points = fig.data
    canvas = plotly_values(heatmap.z)
    block = 3 * 4 + 2  # three 4x4 patches and two one-pixel gaps
    assert canvas.shape == (2 * block + 2, 3 * block + 2 * 2)  # 2 rows of blocks, gap 2 between blocks
    np.testing.assert_allclose(canvas[:4, :4], patches.crops[0, 0] / 255)  # filter 0's strongest, top left
    np.testing.assert_allclose(canvas[5:9, 10:14], patches.crops[0, 5] / 255)  # its sixth: row 2, column 3
    np.testing.assert_allclose(canvas[block + 2:block + 6, block + 2:block + 6], patches.crops[4, 0] / 255)  # filter 4
    assert np.isnan(canvas[4]).all()  # the gap between patch rows
    assert len(points.x) == 5 * 9 and heatmap.hoverinfo == "skip"
    assert points.x[5] == pytest.approx(11.5) and points.y[5] == pytest.approx(6.5)
    top, left, bottom, right = patches.boxes()[0, 5]
    assert f"activation {patches.values[0, 5]:.3f}" in points.text[5] and "patch 6 of 9" in points.text[5]
    assert f"test digit #{patches.digits[0, 5]} (a {patches.labels[0, 5]})" in points.text[5]
    assert f"rows {top}–{bottom - 1}, columns {left}–{right - 1}" in points.text[5]
    assert list(fig.layout.yaxis.ticktext) == ["0–2", "3–4"]
    assert fig.layout.yaxis.scaleanchor == "x" and "conv2" in fig.layout.title.text


def test_a_patch_past_the_edge_says_so_and_columns_are_checked():
    patches = _patches(filters=1, start=-1)
    fig = fa.patches_figure(patches)
    for text, box in zip(fig.data[1].text, patches.boxes()[0]):
        assert ("past the digit's edge" in text) == bool(min(box[:2]) < 0 or max(box[2:]) > 28)
    assert fa.square_columns(32) == 6 and fa.square_columns(64) == 8 and fa.square_columns(1000) == 16
    with pytest.raises(ValueError, match="columns must be an integer >= 1, got columns=0"):
        fa.patches_figure(patches, columns=0)


def test_synthesis_figure_stretches_each_image_to_its_maximum():
    s = _synthesis(6)
    fig = fa.synthesis_figure(s, "conv1", columns=4)
    canvas = plotly_values(fig.data[0].z)
    assert canvas.shape == (2 * 28 + 2, 4 * 28 + 3 * 2)
    np.testing.assert_allclose(canvas[:28, :28], s.images[0] / s.images[0].max(), rtol=1e-6)
    assert np.nanmax(canvas[30:, 30:58]) == pytest.approx(1.0)
    assert len(fig.data[1].text) == 6 and "conv1 filter 5" in fig.data[1].text[5] and "2.000 on this image" in \
        fig.data[1].text[5]


def test_filter_figure_outlines_each_patch_clipped_to_its_digit():
    patches = _patches(filters=2, start=-1)
    fig = fa.filter_figure(patches, 1, _synthesis(2))
    canvas = plotly_values(fig.data[0].z)
    assert canvas.shape == (28, 10 * 28 + 8 * 3 + 9)  # nine digits, then a triple gap and the synthesised image
    np.testing.assert_allclose(canvas[:, :28], patches.images[1, 0] / 255)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 9
    for i, (rect, (top, left, bottom, right)) in enumerate(zip(rects, patches.boxes()[1])):
        assert rect.x0 == pytest.approx(i * 31 + max(left, 0) - 0.5)
        assert rect.x1 == pytest.approx(i * 31 + min(right, 28) - 0.5)
        assert rect.y0 == pytest.approx(max(top, 0) - 0.5) and rect.y1 == pytest.approx(min(bottom, 28) - 0.5)
    labels = [a.text for a in fig.layout.annotations]
    assert labels[:9] == [f"{v:.2f}" for v in patches.values[1]] and labels[-1] == "synthesised"
    assert len(fig.data[1].text) == 10
    without = fa.filter_figure(patches, 0)
    assert plotly_values(without.data[0].z).shape == (28, 9 * 28 + 8 * 3)
    with pytest.raises(ValueError, match="filter_index must be from 0 to 1, got filter_index=2"):
        fa.filter_figure(patches, 2)


def test_class_figure_labels_the_ten_classes():
    classes = ClassImages(synthesis=_synthesis(10), probabilities=np.full(10, 0.97, np.float32))
    fig = fa.class_figure(classes)
    assert [a.text for a in fig.layout.annotations] == [str(c) for c in range(10)]
    assert "probability of 3: 97.0%" in fig.data[1].text[3]
    assert plotly_values(fig.data[0].z).shape == (28, 10 * 28 + 9 * 3)
