"""AppTest of the Convolution page's "Transposed" mode: switched by its key, sizes and labels, TensorFlow's line,
bad settings (output padding, an output over the limit) with the learner's matrices kept."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import rerun, run_page

from convviz.geometry import MAX_TRANSPOSED_SIDE
from convviz.examples import NOTEBOOK_INPUT

PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "1_Convolution.py"


@pytest.fixture
def at():
    app = run_page(PAGE)
    rerun(app.radio(key="conv_direction").set_value("Transposed"))
    return app


def figure(app) -> dict:
    chart = next(el for el in app.get("plotly_chart") if "conv_fig_transposed" in el.proto.id)
    return json.loads(chart.proto.spec)


def written(app, position: int) -> str:
    frame = next(f for f in figure(app)["frames"] if f["name"] == str(position))
    return re.sub(r"<[^>]+>", "", frame["layout"]["annotations"][0]["text"].replace("<br>", " "))


def size_lines(app) -> list[int]:
    """The H′ and W′ the formula lines give (the bold number at the end)."""
    lines = [m.value for m in app.markdown if re.match(r"- [HW]′ =", m.value)]
    return [int(re.search(r"\*\*(\d+)\*\*$", line).group(1)) for line in lines]


def table_label(app) -> tuple[int, int]:
    line = next(m.value for m in app.markdown if m.value.startswith("**The finished output**"))
    return tuple(int(v) for v in re.search(r"\((\d+)×(\d+), after cropping\)", line).groups())


def server_runs(app) -> int:
    line = next(c.value for c in list(app.caption) + list(app.info) if "Server runs of this page for you" in c.value)
    return int(re.search(r"for you: (\d+)", line).group(1))


def canvas_cells(fig: dict) -> tuple[int, int]:
    x, y = fig["layout"]["xaxis4"]["range"], fig["layout"]["yaxis4"]["range"]
    return round(y[0] - y[1]), round(x[1] - x[0])


def check_labels(app) -> tuple[int, int]:
    """Every size the page writes equals what it draws: formula, table label, table, the figure's kept frame."""
    fig = figure(app)
    h_out, w_out = size_lines(app)
    assert table_label(app) == (h_out, w_out)
    assert (app.table[0] if app.table else app.dataframe[-1]).value.shape == (h_out, w_out)  # a dataframe over 16
    kept = fig["layout"]["shapes"][-1]
    assert (round(kept["y1"] - kept["y0"]), round(kept["x1"] - kept["x0"])) == (h_out, w_out)
    ch, cw = canvas_cells(fig)
    assert fig["layout"]["xaxis4"]["title"]["text"].startswith(f"Output before cropping {ch}×{cw}")
    return h_out, w_out


def test_the_mode_shows_the_scatter_of_the_notebook_input(at):
    assert not at.error and not at.warning
    fig = figure(at)
    assert len(fig["frames"]) == 25  # one step per input cell
    assert written(at, 1).startswith("Input cell (row 1, column 1) = 1: 1 · kernel lands on rows 1–3, columns 1–3")
    assert written(at, 7).startswith("Input cell (row 2, column 2) = 1: 1 · kernel lands on rows 2–4, columns 2–4")
    assert check_labels(at) == (7, 7)
    (ok,) = at.success
    assert "equals TensorFlow's `tf.nn.conv2d_transpose`" in ok.value and "difference 0" in ok.value
    assert "All 25 input cells' steps are in your browser" in next(c.value for c in at.caption if "browser" in c.value)


def test_changing_the_stride_changes_the_size_and_tensorflow_agrees(at):
    runs = server_runs(at)
    at.slider(key="conv_stride").set_value(2).run()
    assert server_runs(at) == runs + 1
    assert [m.value for m in at.markdown if m.value.startswith("- H′")] == [
        "- H′ = (5 − 1)·2 − (0 + 0) + 1·(3 − 1) + 1 + 0 = **11**"]
    assert check_labels(at) == (11, 11)
    assert written(at, 2).startswith("Input cell (row 1, column 2) = 1: 1 · kernel lands on rows 1–3, columns 3–5")
    at.number_input(key="conv_output_padding").set_value(1).run()
    at.selectbox(key="conv_padding").select("1").run()
    assert check_labels(at) == (10, 10)  # (5-1)*2 - 2 + 2 + 1 + 1
    assert "output padding 1+1" in figure(at)["layout"]["xaxis4"]["title"]["text"]
    (ok,) = at.success
    assert "✅ equals TensorFlow's `tf.nn.conv2d_transpose`" in ok.value


def test_dilation_and_same_padding_agree_with_tensorflow(at):
    at.slider(key="conv_stride").set_value(3).run()
    at.slider(key="conv_dilation").set_value(2).run()
    at.selectbox(key="conv_padding").select("same").run()
    assert check_labels(at) == (15, 15)
    (ok,) = at.success
    assert "✅ equals" in ok.value and "zeros between the taps" in ok.value


def test_bad_output_padding_gives_a_message_and_keeps_the_matrices(at):
    at.number_input(key="conv_output_padding").set_value(1).run()  # stride 1
    assert not at.exception
    (error,) = at.error
    assert "output_padding must be smaller than strides" in error.value
    assert "output_padding=1 with strides=1" in error.value
    assert "Your input and kernel are kept" in error.value
    assert not [el for el in at.get("plotly_chart") if "conv_fig_transposed" in el.proto.id]
    assert np.array_equal(at.session_state["conv_x_current"], NOTEBOOK_INPUT)
    at.slider(key="conv_stride").set_value(2).run()  # the fix named in the message
    assert not at.error and check_labels(at) == (12, 12)


def test_an_output_over_the_limit_is_refused_and_nothing_is_lost(at):
    at.number_input(key="conv_k_rows").set_value(7).run()
    at.number_input(key="conv_k_cols").set_value(7).run()
    at.number_input(key="conv_x_rows").set_value(16).run()
    at.slider(key="conv_stride").set_value(4).run()
    (error,) = at.error
    assert f"MAX_TRANSPOSED_SIDE={MAX_TRANSPOSED_SIDE}" in error.value and "67 cells" in error.value
    assert at.session_state["conv_x_current"].shape == (16, 5)
    assert at.session_state["conv_k_current"].shape == (7, 7)
    assert np.array_equal(at.session_state["conv_x_current"][:5], NOTEBOOK_INPUT)
    at.slider(key="conv_stride").set_value(2).run()
    assert not at.error and check_labels(at) == (37, 15)


def test_forward_mode_comes_back_with_its_settings(at):
    at.radio(key="conv_direction").set_value("Forward").run()
    assert at.table[0].value.astype(float).values.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert [el for el in at.get("plotly_chart") if "conv_fig_steps" in el.proto.id]
    assert np.array_equal(at.session_state["conv_k_current"], [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
