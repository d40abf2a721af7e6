"""Browser test of the Convolution page's "Transposed" mode in headless Chromium: open it, step with the slider and
Play, check what each panel shows against convviz's records, and that no step reran the page on the server."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

from .test_pages import (assert_no_errors, click_slider, figure_button, open_page, position, server_runs,  # noqa: E402
                         stepper_text, table_after, wait_for_run)

pytestmark = pytest.mark.e2e

KEY = "conv_fig_transposed"
BAND_TRACE = 4
"""The figure's traces: input, kernel, the products' (empty) axes, the finished canvas, the band a frame changes."""

_BAND_JS = """(key) => {
    const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const band = el._fullData[4];
    const cover = el._fullLayout.shapes[3];
    return {y0: band.y0, z: band.z.map(r => Array.from(r)), cover: [cover.visible, cover.y0]};
}"""


def switch_to_transposed(page: Page) -> None:
    page.locator(".st-key-conv_direction").get_by_text("Transposed", exact=True).click()
    wait_for_run(page)
    expect(stepper_text(page, KEY)).to_have_count(1)


def test_transposed_mode_steps_in_the_browser_without_a_server_run(page: Page):
    from convviz.backprop import conv2d_transpose_steps
    from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL

    tc = conv2d_transpose_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)
    open_page(page, "/Convolution", "Convolution")
    switch_to_transposed(page)
    assert_no_errors(page)
    line = stepper_text(page, KEY)
    expect(line).to_contain_text("Input cell (row 1, column 1) = 1: 1 · kernel lands on rows 1–3, columns 1–3")
    cells = table_after(page, "after cropping):")
    assert np.array(cells, dtype=float).tolist() == tc.output.tolist()
    expect(page.get_by_text("The finished output (7×7, after cropping)")).to_be_visible()
    expect(page.locator("[data-testid=stAlertContentSuccess]")).to_contain_text(
        "equals TensorFlow's tf.nn.conv2d_transpose")
    runs = server_runs(page)
    page.evaluate("""() => { window.__e2e_runs = 0; new MutationObserver(() => {
        const s = document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state');
        if (s === 'running') window.__e2e_runs += 1; }).observe(document.querySelector('[data-testid=stApp]'),
        {attributes: true, attributeFilter: ['data-test-script-state']}); }""")

    # step 7 is input cell (row 2, column 2): it lands on rows 2-4, columns 2-4; the panels agree with the records
    click_slider(page, 7, KEY)
    expect(line).to_contain_text("Input cell (row 2, column 2) = 1: 1 · kernel lands on rows 2–4, columns 2–4")
    now = position(page, KEY, cell_shape=0, trace=BAND_TRACE)
    assert now["active"] == 6 and now["window"] == [0.5, 0.5, 1.5, 1.5]  # the input cell's outline
    assert now["products"] == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    band = page.evaluate(_BAND_JS, KEY)
    assert band["y0"] == 1 and np.array(band["z"]).tolist() == tc.canvas_totals[6][1:4].tolist()
    assert band["cover"] == [True, 3.5]  # rows 5-7 not reached yet
    click_slider(page, 2, KEY)
    expect(line).to_contain_text("Input cell (row 1, column 2) = 1: 1 · kernel lands on rows 1–3, columns 2–4")
    shapes_drawn = position(page, KEY, cell_shape=0)["drawn"]

    # Play: every panel at the same step, mid-play and at the end
    figure_button(page, "Reset", KEY).click()
    expect(line).to_contain_text("Input cell (row 1, column 1)")
    figure_button(page, "Play", KEY).click()
    expect(line).to_contain_text("Input cell (row 3,", timeout=30_000)
    mid = position(page, KEY, cell_shape=0)
    band = page.evaluate(_BAND_JS, KEY)
    i, j = divmod(mid["active"], 5)
    assert mid["title"].startswith(f"Input cell (row {i + 1}, column {j + 1}) = ")
    assert mid["window"] == [j - 0.5, i - 0.5, j + 0.5, i + 0.5] and band["y0"] == i
    expect(line).to_contain_text("Input cell (row 5, column 5) = 0", timeout=30_000)
    end = position(page, KEY, cell_shape=0)
    assert end["active"] == 24 and end["drawn"] == shapes_drawn
    assert np.array(page.evaluate(_BAND_JS, KEY)["z"]).tolist() == tc.canvas_totals[-1][4:7].tolist()

    # none of that asked the server
    assert server_runs(page) == runs
    assert page.evaluate("window.__e2e_runs") == 0

    # a setting does: stride 2 spreads the landings apart, one run
    page.locator(".st-key-conv_stride input[type=range]").press("ArrowRight")
    wait_for_run(page)
    expect(page.get_by_text("The finished output (11×11, after cropping)")).to_be_visible()
    assert server_runs(page) == runs + 1
    click_slider(page, 2, KEY)
    expect(line).to_contain_text(re.compile(r"Input cell \(row 1, column 2\) = 1: .* rows 1–3, columns 3–5"))
    assert_no_errors(page)


def test_transposed_mode_bad_output_padding_gives_a_message(page: Page):
    open_page(page, "/Convolution", "Convolution")
    switch_to_transposed(page)
    page.locator(".st-key-conv_output_padding input").fill("1")
    page.locator(".st-key-conv_output_padding input").press("Enter")
    wait_for_run(page)
    expect(page.locator("[data-testid=stAlertContentError]")).to_contain_text(
        "output_padding must be smaller than strides")
    assert not page.locator("[data-testid=stException]").count()
