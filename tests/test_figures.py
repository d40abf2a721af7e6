"""convviz.figures: the figures draw what the step records say."""

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from convviz import figure_animation, figures
from convviz.geometry import padding_amounts
from convviz.ops import conv2d_steps
from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL


def test_format_number():
    assert figures.format_number(4.0) == "4"
    assert figures.format_number(-0.25) == "-0.25"
    assert figures.format_number(1 / 9) == "0.11"
    assert figures.format_number(float("nan")) == ""


def conv_figure(padding=0, dilation=1, bias=0.0, x=NOTEBOOK_INPUT, kernel=NOTEBOOK_KERNEL, **kw):
    steps = conv2d_steps(x, kernel, padding=padding, dilation_rate=dilation, bias=bias)
    h, w = np.shape(x)
    kh, kw_ = np.shape(kernel)
    pads = (padding_amounts(h, kh, padding=padding, dilation_rate=dilation),
            padding_amounts(w, kw_, padding=padding, dilation_rate=dilation))
    return figures.conv_steps_figure(x, pads, steps, **kw), steps


def squares(path: str) -> list[tuple[int, int]]:
    """(row, col) of each ``M{c-0.5},{r-0.5}H{c+0.5}V{r+0.5}H{c-0.5}Z`` square of a taps path."""
    found = re.findall(r"M(-?[\d.]+),(-?[\d.]+)H(-?[\d.]+)V(-?[\d.]+)H(-?[\d.]+)Z", path)
    assert "".join(f"M{a},{b}H{c}V{d}H{e}Z" for a, b, c, d, e in found) == path, path  # absolute commands only
    for x0, y0, x1, y1, x2 in found:
        assert float(x1) - float(x0) == 1 and float(y1) - float(y0) == 1 and x2 == x0  # a unit square
    return sorted((int(float(r) + 0.5), int(float(c) + 0.5)) for c, r, *_ in found)


def written(layout) -> str:
    """The written sum a layout or frame shows (``annotations[0]``)."""
    return layout.annotations[0].text


N_MOVING = 5
"""Moving shapes of the Convolution figure before the product squares: window, taps, output cell, two covers."""


def test_every_position_is_a_frame_and_the_first_is_drawn():
    fig, steps = conv_figure()
    assert [f.name for f in fig.frames] == [str(k) for k in range(1, 10)]
    assert written(fig.layout) == written(fig.frames[0].layout)
    assert "Output cell (row 1, column 1)" in written(fig.layout) and written(fig.layout).endswith("= <b>4</b>")
    assert fig.layout.annotations[0].xref == "x domain"  # on an axis: plotly.js redraws it with the shapes
    for frame, step in zip(fig.frames, steps):
        assert not frame.data  # a frame changes the layout only: applied without a redraw
        cells = frame.layout.shapes[N_MOVING:]
        assert [c.label.text for c in cells] == [figures.format_number(v) for v in step.products.ravel()]
        assert all(set(c.to_plotly_json()) == {"fillcolor", "label"} for c in cells)  # places and fonts: once, in the layout
    placed = fig.layout.shapes[N_MOVING:]
    assert [(s.y0 + 0.5, s.x0 + 0.5) for s in placed] == [(r, c) for r in range(3) for c in range(3)]
    assert all(s.xref == "x3" and s.yref == "y3" for s in placed)
    # the signed scale: a product of 1 (the largest) is the darkest red, with white text; 0 is the pale middle
    reds = {s.label.text: (s.fillcolor, s.label.font.color) for s in placed}
    assert reds["1"] == ("#67001f", "white") and reds["0"][1] == "#444"
    slider = fig.layout.sliders[0]
    assert [list(step.args[0]) for step in slider.steps] == [[str(k)] for k in range(1, 10)]
    assert all(step.args[1]["frame"]["redraw"] is False for step in slider.steps)
    assert slider.transition.duration == 0  # the handle jumps: plotly.js's 150 ms glide cost ~10 repaints a step


def test_dilated_taps_are_outlined_one_by_one_and_padding_is_shaded():
    fig, steps = conv_figure(padding=1, dilation=2)
    assert squares(fig.frames[0].layout.shapes[1].path) == sorted((r, c) for r in (0, 2, 4) for c in (0, 2, 4))
    padding_trace, values_trace = fig.data[:2]
    pad_z = np.array(padding_trace.z, dtype=float)
    assert pad_z.shape == (7, 7) and np.isfinite(pad_z[0]).all() and np.isnan(pad_z[1:6, 1:6]).all()
    assert values_trace.text[1][1] == "1" and values_trace.text[0][0] == ""
    assert "padded to 7×7" in fig.layout.xaxis.title.text
    window5 = re.sub(r"<[^>]+>", "", written(fig.frames[4].layout))  # window 5, checked by hand
    assert window5 == "Output cell (row 2, column 2) = 1·1 + 1·0 + 0·1 + 0·0 + 1·1 + 1·0 + 0·1 + 1·0 + 0·1 = 2"


def test_the_output_fills_in_and_the_current_cell_is_outlined():
    fig, _ = conv_figure()
    shapes = fig.frames[3].layout.shapes  # position 4: output cell (1, 0)
    current, rest_of_row, rows_below = shapes[2], shapes[3], shapes[4]
    assert (current.x0, current.y0, current.x1, current.y1) == (-0.5, 0.5, 0.5, 1.5)
    assert (rest_of_row.x0, rest_of_row.x1, rest_of_row.y0, rest_of_row.y1) == (0.5, 2.5, 0.5, 1.5)
    assert rest_of_row.visible and rows_below.visible and (rows_below.y0, rows_below.y1) == (1.5, 2.5)
    last = fig.frames[-1].layout.shapes
    # the map is complete: both covers have no area (a frame never hides a shape with visible=False: plotly.js
    # applies frames without a redraw and kept drawing such a shape where it last was)
    assert all(c.visible is not False and (c.x0 == c.x1 or c.y0 == c.y1) for c in last[3:5])
    assert fig.layout.shapes[3].fillcolor == "#eeeeee"  # styles are sent once, in the layout


def test_play_pause_and_reset():
    fig, _ = conv_figure()
    play, pause, reset = fig.layout.updatemenus[0].buttons
    assert [b.label for b in (play, pause, reset)] == ["▶ Play", "Pause", "Reset"]
    assert play.args[0] is None and play.args[1]["fromcurrent"] is True  # every frame, from the current position
    assert play.args[1]["frame"] == {"duration": 500, "redraw": False}  # 2 steps/s by default
    assert list(reset.args[0]) == ["1"]
    fast, _ = conv_figure(steps_per_second=4.0)
    assert fast.layout.updatemenus[0].buttons[0].args[1]["frame"]["duration"] == 250


def test_bias_is_written_and_bad_arguments_raise():
    fig, _ = conv_figure(bias=-0.5)
    assert "+ (-0.5) = <b>3.5</b>" in written(fig.layout)
    with pytest.raises(ValueError, match="steps_per_second must be > 0, got steps_per_second=0"):
        conv_figure(steps_per_second=0)
    with pytest.raises(ValueError, match="at least one window position"):
        figures.conv_steps_figure(NOTEBOOK_INPUT, ((0, 0), (0, 0)), [])


def test_long_sums_wrap():
    assert figure_animation.wrap_terms(["1·1", "1·0"], width=5) == "1·1 +<br>1·0"
    kernel = np.ones((7, 7))
    fig, _ = conv_figure(x=np.ones((7, 7)), kernel=kernel)
    assert written(fig.layout).count("<br>") >= 3
    assert fig.layout.margin.t > 80  # room for every line


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


def test_stacked_figure_outlines_the_window_in_each_channel_and_writes_the_channel_sums():
    x = np.repeat(NOTEBOOK_INPUT[:, :, None], 4, axis=2)
    kernel = np.repeat(NOTEBOOK_KERNEL[:, :, None], 4, axis=2)
    steps = conv2d_steps(x, kernel)
    out = np.array([s.value for s in steps]).reshape(3, 3)
    fig = figures.stacked_steps_figure(x, kernel, steps, out, [0, 1, 2])
    assert len(fig.frames) == 9 and "4 + 4 + 4 + 4 = <b>16</b>" in written(fig.layout)
    # the written sum comes first; the channel labels keep their places after it (a frame updates index 0 only)
    assert [a.text for a in fig.layout.annotations[1:]] == ["channel 1", "channel 2", "channel 3"]
    assert all(len(f.layout.annotations) == 1 for f in fig.frames)
    path = fig.frames[2].layout.shapes[0].path  # position 3: columns 2-4 in each of the 3 channels (6 wide apart)
    starts = sorted({float(v) for v in re.findall(r"M(-?[\d.]+),-0.5H", path)})
    assert starts == [1.5, 7.5, 13.5]
    depthwise = figures.stacked_steps_figure(x, kernel, steps, out, [0], depthwise=True)
    assert "channel 1: 4" in written(depthwise.layout) and "no sum" not in written(depthwise.layout)
    with pytest.raises(ValueError, match="channels must list 1 to 8"):
        figures.stacked_steps_figure(x, kernel, steps, out, [5])
