"""Tests of convviz.figures_draw (Plotly builders for the Draw page)."""

import numpy as np
import pytest

from convviz import figures_draw as fd
from convviz.preprocess import digit_stages


def test_feature_maps_figure():
    maps = np.random.default_rng(2).uniform(0, 3, (6, 6, 12))
    heat = fd.feature_maps_figure(maps, columns=8, title="conv1").data[0]
    assert np.asarray(heat.z).shape == (2 * 7 - 1, 8 * 7 - 1)
    assert heat.zmin == 0 and heat.zmax == pytest.approx(maps.max())
    with pytest.raises(ValueError, match="height, width, filters"):
        fd.feature_maps_figure(maps[0])


def test_probability_figure_highlights_the_top_class():
    p = np.full(10, 0.02)
    p[7] = 0.82
    bar = fd.probability_figure(p).data[0]
    assert bar.marker.color[7] != bar.marker.color[0]
    assert len(set(bar.marker.color)) == 2 and bar.text[7] == "82.0%"
    with pytest.raises(ValueError, match="classes"):
        fd.probability_figure(np.zeros((2, 5)))


def test_stages_and_saliency_figures():
    gray = np.zeros((100, 80), np.float32)
    gray[10:60, 30:40] = 1.0
    s = digit_stages(gray)
    fig = fd.stages_figure(s)
    assert len([t for t in fig.data if t.type == "heatmap"]) == 4
    assert fig.layout.annotations[0].text == "1. input 80x100"
    assert fd.stages_figure(s, naive=np.zeros((28, 28))).layout.annotations[4].text.startswith("naive")
    with pytest.raises(ValueError, match="blank"):
        fd.stages_figure(digit_stages(np.zeros((5, 5))))
    sal = fd.saliency_figure(s.image, np.arange(784.0).reshape(28, 28))
    assert np.nanmax(np.asarray(sal.data[1].z, float)) == pytest.approx(1.0)  # scaled to its maximum
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        fd.saliency_figure(s.image, np.zeros((27, 28)))
