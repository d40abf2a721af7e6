"""AppTest of app_pages/5_Backpropagation.py: the seed example's gradients, stepping frames, η, bad input, the demo.

Stepping happens in the browser (every position is a frame of one Plotly figure); these tests read the frames
the page sends. tests/e2e/test_pages.py plays them in Chromium.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import plotly_values, run_page

PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "5_Backpropagation.py"


@pytest.fixture
def at():
    return run_page(PAGE)


def figure(app, key: str) -> dict:
    chart = next(el for el in app.get("plotly_chart") if el.proto.id.endswith(f"-{key}"))
    return json.loads(chart.proto.spec)


def frame(app, key: str, position: int) -> dict:
    return next(f for f in figure(app, key)["frames"] if f["name"] == str(position))


def title(app, key: str, position: int) -> str:
    """The figure's title at 1-based ``position``, as the browser shows it (tags removed, line breaks as spaces)."""
    text = frame(app, key, position)["layout"]["annotations"][0]["text"]
    return re.sub(r"<[^>]+>", "", text.replace("<br>", " "))


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_defaults_seed_example_with_mse_against_threes(at):
    assert not at.warning and not at.error
    spec = figure(at, "bp_fig_g")["data"][0]  # grad_output = 2(y - t)/9, y = 4 3 4 / 2 4 3 / 2 3 4, t = 3
    np.testing.assert_allclose(plotly_values(spec["z"]), 2 / 9 * np.array([[1, 0, 1], [-1, 1, 0], [-1, 0, 1]]))
    loss = next(m.value for m in at.markdown if m.value.startswith("**Loss**"))
    assert "= (1² + 0² + 1² + (-1)² + 1² + 0² + (-1)² + 0² + 1²) / 9 = **0.6667**" in loss
    (tf_line, went_down) = texts(at.success)
    assert "Every gradient equals TensorFlow's (`tf.GradientTape` on `tf.nn.convolution`)" in tf_line
    assert "max absolute difference 0 " in tf_line
    assert "went down" in went_down
    assert any("db = Σ grad_output = 0.22 + 0 + 0.22 + (-0.22) + 0.22 + 0 + (-0.22) + 0 + 0.22 = **0.4444**" in m.value
               for m in at.markdown)


def test_dk_frames_add_grad_times_patch_and_write_the_followed_weights_sum(at):
    fig = figure(at, "bp_fig_dk")
    assert [f["name"] for f in fig["frames"]] == [str(k) for k in range(1, 10)]
    assert title(at, "bp_fig_dk", 1).endswith("Weight (row 1, column 1): dK = 0.22·1 = 0.22")
    # position 4: window (row 2, column 1), grad_output there is -2/9; its patch is rows 2-4, columns 1-3
    fourth = frame(at, "bp_fig_dk", 4)
    assert title(at, "bp_fig_dk", 4).startswith("Window (row 2, column 1): dK += grad_output (row 2, column 1) · "
                                                 "patch = -0.22 · patch")
    contribution, running = (plotly_values(d["z"]) for d in fourth["data"])
    np.testing.assert_allclose(contribution, -2 / 9 * np.array([[0, 1, 1], [0, 0, 1], [0, 0, 1]]), atol=1e-6)
    assert fourth["traces"] == [3, 4]
    last = title(at, "bp_fig_dk", 9)
    assert last.endswith("dK = 0.22·1 + 0·1 + 0.22·1 + -0.22·0 + 0.22·1 + 0·1 + -0.22·0 + 0·0 + 0.22·1 = 0.89")
    final = plotly_values(frame(at, "bp_fig_dk", 9)["data"][1]["z"])
    assert final[0, 0] == pytest.approx(8 / 9, abs=1e-6)


def test_dx_scatter_and_gather_frames(at):
    assert len(figure(at, "bp_fig_scatter")["frames"]) == 9
    assert title(at, "bp_fig_scatter", 2) == ("Output cell (row 1, column 2) sends 0 back: dX += 0 · kernel on its "
                                              "window (every tap on the input)")
    gather = figure(at, "bp_fig_gather")
    assert len(gather["frames"]) == 25  # one per input cell
    assert gather["layout"]["xaxis2"]["title"]["text"] == "Kernel, flipped"
    assert title(at, "bp_fig_gather", 1) == "dX (row 1, column 1) = 0·1 + 0·0 + 0·1 + 0·0 + 0·1 + 0·0 + 0·1 + 0·0 + " \
                                            "0.22·1 = 0.22"
    # the last scatter total is the finished gather map
    scatter_total = plotly_values(frame(at, "bp_fig_scatter", 9)["data"][0]["z"])
    gathered = plotly_values(gather["data"][4]["z"])
    np.testing.assert_allclose(scatter_total, gathered, atol=1e-6)


def test_typed_grad_output_of_ones_gives_the_sum_of_the_patches(at):
    at.radio(key="bp_loss").set_value("grad_output typed in directly").run()
    assert not at.exception and not at.warning
    final = plotly_values(frame(at, "bp_fig_dk", 9)["data"][1]["z"])
    assert final.tolist() == [[6, 7, 6], [4, 7, 7], [4, 6, 6]]
    assert title(at, "bp_fig_dk", 9).endswith("= 6")
    assert any("L = Σ grad_output · y (here L = **29**)" in m.value for m in at.markdown)


def test_learning_rate_small_large_and_bad(at):
    at.number_input(key="bp_lr").set_value(0.5).run()
    (warning,) = texts(at.warning)
    assert "η = 0.5 is too large here: the loss went **up** from 0.6667 to 1.7613" in warning
    for bad, message in ((0.0, "learning_rate must be > 0, got learning_rate=0.0"),
                         (-1.0, "learning_rate must be > 0"), (1e9, "learning_rate must be <= 100")):
        at.number_input(key="bp_lr").set_value(bad).run()
        assert not at.exception
        (warning,) = texts(at.warning)
        assert message in warning and "nothing else changed" in warning
        assert figure(at, "bp_fig_dk")["frames"]  # the rest of the page is still there
    at.number_input(key="bp_lr").set_value(0.05).run()
    assert not at.warning and any("went down by 0.1024" in s for s in texts(at.success))


def test_nan_cell_gives_a_warning_and_keeps_the_other_edits(at):
    key = f"bp_x_editor_{at.session_state['bp_x_ver']}"
    at.session_state[key] = {"edited_rows": {0: {"1": 5}, 1: {"3": None}}}
    at.run()
    assert not at.exception
    (warning,) = texts(at.warning)
    # the editor refuses the blank cell (it keeps its previous value, 1) and applies the good edit at once
    assert "Input cell (row 2, column 3) is blank" in warning and "keeps its previous value 1" in warning
    assert "your other edits are kept" in warning
    assert title(at, "bp_fig_dk", 1).endswith("dK = 1.11·5 = 5.56")  # x(1,1) = 5: y(1,1) = 8, g = 2·5/9
    assert any(c.proto.id.endswith("-bp_fit_fig_curves") for c in at.get("plotly_chart"))  # the demo still runs
    at.session_state[key] = {"edited_rows": {0: {"1": 5}, 1: {"3": 1}}}
    at.run()
    assert not at.warning
    assert title(at, "bp_fig_dk", 1).endswith("dK = 1.11·5 = 5.56")


def test_target_of_the_wrong_size_is_said_and_can_be_resized(at):
    at.selectbox(key="bp_padding").select("same").run()
    (warning,) = texts(at.warning)
    assert "The target is 3×3 but the output is 5×5" in warning
    at.button(key="bp_resize_ref").click().run()
    assert not at.warning and not at.exception
    assert plotly_values(figure(at, "bp_fig_t")["data"][0]["z"]).shape == (5, 5)
    loss = next(m.value for m in at.markdown if m.value.startswith("**Loss**"))
    assert "+ … (8 more terms) +" in loss and loss.count("²") == 1 + 17  # mean((y − t)²), then 17 of the 25 squares


def test_demo_defaults_learn_sobel_x_within_1e3_in_under_500_steps(at):
    (info,) = texts(at.info)
    assert info.startswith("Step 0: max |K − K*| = 2.05")
    at.button(key="bp_fit_end").click().run()
    (learned,) = [s for s in texts(at.success) if s.startswith("Learned")]
    reached = int(re.search(r"at step \*\*(\d+)\*\*", learned).group(1))
    error = float(re.search(r"max \|K − K\*\| = ([\d.e-]+) ≤ 0.001", learned).group(1))
    assert reached < 500 and error <= 1e-3
    assert "after 500 steps" in learned
    target = plotly_values(figure(at, "bp_fit_fig_target")["data"][0]["z"])
    learned_kernel = plotly_values(figure(at, "bp_fit_fig_learned")["data"][0]["z"])
    assert target.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert np.abs(learned_kernel - target).max() < 1e-3


def test_demo_play_steps_on_the_server_and_stop(at):
    at.button(key="bp_fit_play").click().run()
    assert "Step 20:" in texts(at.info)[0]
    at.run()
    assert "Step 40:" in texts(at.info)[0]
    at.button(key="bp_fit_stop").click().run()
    assert "Step 40:" in texts(at.info)[0]  # stopped: a rerun takes no step
    at.run()
    assert "Step 40:" in texts(at.info)[0] and at.button(key="bp_fit_play")


def test_demo_bad_settings_and_divergence(at):
    for bad in (0, 10**6):
        at.number_input(key="bp_fit_steps").set_value(bad).run()
        (warning,) = texts(at.warning)
        assert f"Steps must be a whole number from 1 to 5000, got {bad}" in warning
        assert at.button(key="bp_fit_play").disabled and not at.exception
    at.number_input(key="bp_fit_steps").set_value(500).run()
    at.number_input(key="bp_fit_lr").set_value(-0.5).run()
    assert "learning_rate must be > 0, got learning_rate=-0.5" in texts(at.warning)[0]
    at.number_input(key="bp_fit_lr").set_value(20.0).run()
    at.button(key="bp_fit_end").click().run()
    (error,) = texts(at.error)
    assert "The loss blew up at step" in error and "lower η" in error


def test_starts_from_the_convolution_pages_input_and_kernel_when_edited_there():
    edits = {"conv_x_current": np.arange(36.0).reshape(6, 6) % 3,  # as the Convolution page keeps edits
             "conv_k_current": np.array([[1.0, -1.0], [0.0, 2.0]])}
    app = run_page(PAGE, session_state=edits)
    assert not app.warning
    y = plotly_values(figure(app, "bp_fig_y")["data"][0]["z"])
    assert y.shape == (5, 5) and y[0, 0] == 0 - 1 + 0 + 2 * 1  # the target (all 3s) was made 5×5 to match
    blank = {"conv_x_current": np.full((5, 5), np.nan)}  # a blank cell there: the seed's example here
    bad = run_page(PAGE, session_state=blank)
    assert title(bad, "bp_fig_dk", 1).endswith("dK = 0.22·1 = 0.22")


def test_bias_is_bounded_and_huge_values_still_match_tensorflow(at):
    """A bias past the cells' limit is refused by the widget (it once reached -inf and a traceback); cells at the
    limit give gradients near 1e18, equal to TensorFlow's up to float64 rounding (not a false alarm)."""
    bias = at.number_input(key="bp_bias")
    assert bias.min == -1e9 and bias.max == 1e9
    bias.set_value(1e9).run()
    assert not at.exception
    assert any("Every gradient equals TensorFlow's" in s for s in texts(at.success))
    key = f"bp_x_editor_{at.session_state['bp_x_ver']}"
    at.session_state[key] = {"edited_rows": {r: {str(c): "1e9" for c in range(1, 6)} for r in range(5)}}
    at.run()
    assert not at.exception and not at.error
    (line,) = [s for s in texts(at.success) if "TensorFlow" in s]
    assert "so up to" in line and "is rounding" in line
