"""convviz.figures: the figures draw what the step records say."""

import numpy as np
import plotly.graph_objects as go
import pytest

from convviz import figures
from convviz.ops import conv2d_steps, padding_amounts
from convviz.presets import NOTEBOOK_INPUT, NOTEBOOK_KERNEL


def rects(fig):
    return [s for s in fig.layout.shapes if s.type == "rect"]


def test_format_number():
    assert figures.format_number(4.0) == "4"
    assert figures.format_number(-0.25) == "-0.25"
    assert figures.format_number(1 / 9) == "0.11"
    assert figures.format_number(float("nan")) == ""


def test_padded_input_outlines_each_tap_and_shades_padding():
    x = NOTEBOOK_INPUT
    pads = (padding_amounts(5, 3, padding=1), padding_amounts(5, 3, padding=1))
    step = conv2d_steps(x, NOTEBOOK_KERNEL, padding=1, dilation_rate=2)[0]
    fig = figures.padded_input_figure(x, pads, step)
    taps = [s for s in rects(fig) if s.line.dash is None]
    assert len(taps) == 9
    centers = sorted((int(s.y0 + 0.5), int(s.x0 + 0.5)) for s in taps)
    assert centers == sorted((r, c) for r in (0, 2, 4) for c in (0, 2, 4))  # dilation leaves gaps
    padding_trace, values_trace = fig.data
    pad_z = np.array(padding_trace.z, dtype=float)
    assert pad_z.shape == (7, 7) and np.isfinite(pad_z[0]).all() and np.isnan(pad_z[1:6, 1:6]).all()
    assert values_trace.text[1][1] == "1" and values_trace.text[0][0] == ""
    assert "padded to 7×7" in fig.layout.title.text


def test_no_padding_trace_without_padding_and_numbers_can_be_hidden():
    step = conv2d_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)[4]
    fig = figures.padded_input_figure(NOTEBOOK_INPUT, ((0, 0), (0, 0)), step, show_numbers=False)
    assert len(fig.data) == 1 and fig.data[0].text is None


def test_products_and_kernel():
    step = conv2d_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)[1]
    fig = figures.products_figure(step)
    np.testing.assert_array_equal(np.array(fig.data[0].z), step.products)
    assert fig.data[0].zmin == -fig.data[0].zmax  # diverging scale centred on 0
    assert figures.kernel_figure(NOTEBOOK_KERNEL).data[0].text[0] == ["1", "0", "1"]


def test_output_fills_in_row_major_and_highlights_current():
    values = np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]], dtype=float)
    fig = figures.output_figure(values, filled=4, current=(1, 0))
    shown = np.array(fig.data[1].z, dtype=float)
    assert np.isfinite(shown.ravel()[:4]).all() and np.isnan(shown.ravel()[4:]).all()
    assert fig.data[1].text[1] == ["2", "", ""]
    (box,) = rects(fig)
    assert (box.x0, box.y0) == (-0.5, 0.5)


def test_map_grid_places_every_map():
    maps = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)
    fig = figures.map_grid_figure(maps, columns=2, show_numbers=True, shared_scale=True)
    custom = np.array(fig.data[0].customdata, dtype=float)
    indices = set(custom[..., 0][custom[..., 0] > 0].astype(int).tolist())
    assert indices == {1, 2, 3, 4, 5}
    assert sorted(float(v) for v in custom[..., 1].ravel() if np.isfinite(v)) == sorted(maps.ravel().tolist())
    assert [a.text for a in fig.layout.annotations] == ["#1", "#2", "#3", "#4", "#5"]
    with pytest.raises(ValueError, match="got shape"):
        figures.map_grid_figure(np.zeros((3, 3)))


def test_channel_window_outlines_window_in_each_channel():
    x = np.repeat(NOTEBOOK_INPUT[:, :, None], 4, axis=2)
    step = conv2d_steps(x, np.ones((3, 3, 4)))[2]
    fig = figures.channel_window_figure(x, step, [0, 1, 2])
    assert isinstance(fig, go.Figure) and len(rects(fig)) == 27
