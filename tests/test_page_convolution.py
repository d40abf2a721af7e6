"""AppTest of app_pages/1_Convolution.py: the notebook's numbers, stepping, presets, sizes, bad cells.

Stepping happens in the browser: every window position is a frame of one Plotly figure. These tests read
the frames from the figure the page sends (what the browser would show at each position); the browser
tests in tests/e2e/ click through them.
"""

import json
import re
from pathlib import Path

import pytest
from apptest_helpers import run_page

PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "1_Convolution.py"


@pytest.fixture
def at():
    return run_page(PAGE)


def output_table(app):
    return app.table[0].value.astype(float).values.tolist()


def steps_figure(app) -> dict:
    chart = next(el for el in app.get("plotly_chart") if "conv_fig_steps" in el.proto.id)
    return json.loads(chart.proto.spec)


def written_sum(app, position: int = 1) -> str:
    """The figure's written sum (its first annotation) at 1-based window ``position``, as the browser shows it (tags and line breaks removed)."""
    fig = steps_figure(app)
    frame = next(f for f in fig["frames"] if f["name"] == str(position))
    return re.sub(r"<[^>]+>", "", frame["layout"]["annotations"][0]["text"].replace("<br>", " "))


def server_runs(app) -> int:
    line = next(c.value for c in app.caption if "Server runs of this page for you" in c.value)
    return int(re.search(r"for you: (\d+)", line).group(1))


def test_defaults_reproduce_the_notebook(at):
    assert output_table(at) == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert written_sum(at) == ("Output cell (row 1, column 1) = "
                               "1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 = 4")
    assert not at.warning and not at.error


def test_every_window_position_is_a_frame_with_its_sum(at):
    fig = steps_figure(at)
    assert [f["name"] for f in fig["frames"]] == [str(k) for k in range(1, 10)]
    assert re.sub(r"<[^>]+>", "", fig["layout"]["annotations"][0]["text"]) == written_sum(at, 1)  # shown first
    assert written_sum(at, 2).startswith("Output cell (row 1, column 2)")
    assert written_sum(at, 2).endswith("= 3")
    assert written_sum(at, 5).endswith("= 4")
    steps = fig["layout"]["sliders"][0]["steps"]
    assert [s["args"][0] for s in steps] == [[str(k)] for k in range(1, 10)]
    assert all(s["method"] == "animate" for s in steps)  # the slider moves in the browser, no rerun


def test_stepping_needs_no_server_run_but_a_setting_does(at):
    assert server_runs(at) == 1
    assert not [b for b in at.button if b.key in ("conv_next", "conv_prev", "conv_play")]  # no server-side stepper
    at.selectbox(key="conv_padding").select("same").run()
    assert server_runs(at) == 2


def test_last_step_confirms_tensorflow(at):
    assert written_sum(at, 9).startswith("Output cell (row 3, column 3)")
    (ok,) = at.success
    assert "equals TensorFlow's `tf.nn.conv2d`" in ok.value and "difference 0" in ok.value


def test_kernel_preset_changes_the_output(at):
    at.selectbox(key="conv_k_preset").select("Sobel x").run()
    assert not at.exception
    assert output_table(at) == [[3, 0, -3], [4, 3, -2], [4, 2, -3]]


def test_same_padding_and_stride_follow_the_formula(at):
    at.selectbox(key="conv_padding").select("same").run()
    assert len(output_table(at)) == 5 and len(output_table(at)[0]) == 5
    at.slider(key="conv_stride").set_value(2).run()
    table = output_table(at)
    assert (len(table), len(table[0])) == (3, 3)
    formulas = [m.value for m in at.markdown if m.value.startswith("- H′")]
    assert formulas == ["- H′ = ⌊(5 + 1 + 1 − 1·(3 − 1) − 1) / 2⌋ + 1 = **3**"]


def test_blank_cell_is_refused_and_keeps_its_value(at):
    key = f"conv_x_editor_{at.session_state['conv_x_ver']}"
    at.session_state[key] = {"edited_rows": {1: {"3": None}}}
    at.run()
    assert not at.exception
    (warning,) = at.warning
    assert "Input cell (row 2, column 3) is blank" in warning.value and "keeps its previous value 1" in warning.value
    assert output_table(at)[0][1] == 3  # computed with the kept value
    key = f"conv_x_editor_{at.session_state['conv_x_ver']}"  # the editor was rebuilt showing the kept value
    at.session_state[key] = {"edited_rows": {1: {"3": "7"}}}
    at.run()
    assert not at.warning and output_table(at)[0][1] == 9  # 3 + 1·7 − 1 (cell (2,3) was 1)


def test_size_past_the_limit_and_kernel_too_large(at):
    at.number_input(key="conv_x_rows").set_value(30).run()
    assert not at.exception
    assert "Input Rows was left empty or out of range: it stays 5" in at.warning[0].value
    assert at.number_input(key="conv_x_rows").value == 5 and at.session_state["conv_x_current"].shape == (5, 5)
    at.number_input(key="conv_k_rows").set_value(7).run()
    assert not at.exception
    assert "kernel does not fit" in at.error[0].value


def test_true_convolution_flips_the_kernel(at):
    at.selectbox(key="conv_k_preset").select("Sobel x").run()
    at.radio(key="conv_mode").set_value("True convolution").run()
    assert output_table(at) == [[-3, 0, 3], [-4, -3, 2], [-4, -2, 3]]


def test_digit_preset_loads_a_real_digit(at):
    at.selectbox(key="conv_x_preset").select("MNIST digit").run()
    assert not at.exception and not at.warning
    assert at.number_input(key="conv_x_rows").value == 14
    table = at.table[0].value.astype(float).values
    assert table.shape == (12, 12) and table.max() > 0
