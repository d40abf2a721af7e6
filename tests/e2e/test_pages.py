"""Browser tests: every page of the running app in headless Chromium, driven like a user would.

Run with ``pytest tests/e2e``. Needs Debian's Chromium (``apt-get install chromium``); see conftest.py.
"""

from __future__ import annotations

import os
import re
import time

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - only without requirements.txt installed
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: `pip install -r requirements.txt` (and `apt-get install chromium`)",
                allow_module_level=True)

from . import strokes
from .plotly_slider import SLIDER_POINTS_JS

pytestmark = pytest.mark.e2e

LOAD_TIMEOUT = 90_000
"""ms for a page's first run (the first one imports TensorFlow and may take 10+ s on 2 cores)."""
CLUSTER_TIMEOUT = 240_000
"""ms for the embedded Dask cluster to start: its workers import TensorFlow at a low CPU priority, which took more
than 30 s at load average 12-16 on the shared 2-core machine (with main's jobs.py as with the split one)."""

ERROR_SELECTORS = ("[data-testid=stException]", "[data-testid=stAlertContentError]")


def wait_for_run(page: Page, timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until the app is connected and its script has finished a run."""
    page.wait_for_selector("[data-testid=stApp][data-test-connection-state=CONNECTED]", timeout=timeout)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)


def open_page(page: Page, path: str, heading: str) -> None:
    """Go to ``path``, wait for a heading containing ``heading`` (case-insensitive) and the end of the script's run."""
    page.goto(path)
    title = page.get_by_role("heading", name=re.compile(re.escape(heading), re.IGNORECASE)).first
    expect(title).to_be_visible(timeout=LOAD_TIMEOUT)
    wait_for_run(page)


def assert_no_errors(page: Page) -> None:
    """No exception box and no error alert anywhere on the page."""
    for selector in ERROR_SELECTORS:
        boxes = page.locator(selector)
        if boxes.count():
            pytest.fail(f"{selector} on {page.url}: {boxes.first.inner_text()[:2000]}", pytrace=False)


def test_home_opens_without_errors(page: Page):
    open_page(page, "/", "ConvViz")
    assert_no_errors(page)
    # the seed notebook's feature map, computed by the app
    expect(page.get_by_text("feature map (3×3)")).to_be_visible()
    for label in ("1 · Convolution", "2 · Stacked channels", "3 · Train", "4 · Draw", "5 · Backpropagation",
                  "6 · Filter atlas"):
        expect(page.get_by_role("link", name=label)).to_be_visible()


SIDEBAR = {"Home": "/", "Convolution": "/Convolution", "Stacked Channels": "/Stacked_Channels", "Train": "/Train",
           "Draw": "/Draw", "Backpropagation": "/Backpropagation", "Filter Atlas": "/Filter_Atlas"}
"""The sidebar's entries in order and their addresses (st.navigation in app.py; the pages kept their old ones)."""


def test_the_sidebar_starts_with_home_whichever_page_opens_first(page: Page):
    open_page(page, "/Draw", "Draw a digit")  # a deep link first: once, with a pages/ folder, it had no "Home"
    links = page.locator("[data-testid=stSidebarNav] a")
    expect(links).to_have_text(list(SIDEBAR))
    paths = [re.sub(r"^https?://[^/]+", "", links.nth(i).get_attribute("href")) for i in range(links.count())]
    assert paths == list(SIDEBAR.values()), paths
    sidebar_link(page, "Home").click()
    expect(page.get_by_role("heading", name=re.compile("ConvViz")).first).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page).to_have_url(re.compile(r"127\.0\.0\.1:\d+/$"))
    wait_for_run(page)
    expect(links.first).to_have_text("Home")
    assert_no_errors(page)


# ----------------------------------------------------------------------------------------- Convolution
# The seed notebook's 5x5 input and 3x3 kernel (the page's defaults), and the sums written out for the
# first and the fourth window position (rows 1-3, columns 0-2 of the input; out cell row 2, column 1).
FIRST_SUM = "Output cell (row 1, column 1) = 1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 = 4"
FOURTH_SUM = "Output cell (row 2, column 1) = 0·1 + 1·0 + 1·1 + 0·0 + 0·1 + 1·0 + 0·1 + 0·0 + 1·1 = 2"


def table_after(page: Page, text: str) -> list[list[str]]:
    """The body cells (``td``; row headers left out) of the ``st.table`` in the same column as the text ``text``."""
    block = page.locator("[data-testid=stVerticalBlock]").filter(has_text=text).last
    table = block.locator("[data-testid=stTable]").first
    expect(table).to_be_visible(timeout=LOAD_TIMEOUT)
    return table.evaluate("t => Array.from(t.querySelectorAll('tbody tr')).map("
                          "r => Array.from(r.querySelectorAll('td')).map(c => c.innerText.trim()))")


def stepper_text(page: Page, key: str = "conv_fig_steps"):
    """The step-through figure's written sum (its first annotation): the current window's sum written out
    ("Output cell (row i, column j) = ...")."""
    return page.locator(f'.st-key-{key} .js-plotly-plot .annotation[data-index="0"] .annotation-text')


def figure_button(page: Page, label: str, key: str = "conv_fig_steps"):
    """One of the Plotly figure's own buttons (Play / Pause / Reset): plotly.js, not Streamlit."""
    return page.locator(f".st-key-{key} .updatemenu-button").filter(has_text=label)


def click_slider(page: Page, position: int, key: str = "conv_fig_steps") -> None:
    """Click the figure's slider rail at 1-based window ``position``."""
    page.locator(f".st-key-{key} .slider-rail-rect").scroll_into_view_if_needed()
    page.mouse.click(*page.evaluate(SLIDER_POINTS_JS, key)[position - 1])


def server_runs(page: Page) -> int:
    """How many times the server has run this page for this session, as the page says under the figure."""
    text = page.locator("[data-testid=stCaptionContainer], [data-testid=stAlertContainer]").filter(
        has_text="Server runs of this page for you").first.inner_text()
    return int(re.search(r"for you: (\d+)", text).group(1))


_POSITION_JS = """([key, cell, trace]) => {
    const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const t = el && el.querySelector('.annotation[data-index="0"] .annotation-text');
    if (!el || !el._fullLayout || !t) return null;
    const s = el._fullLayout.shapes;
    const drawn = Array.from(el.querySelectorAll('.shapelayer .shape-group')).length;
    return {active: el._fullLayout.sliders[0].active, title: t.textContent,
            window: [s[0].x0, s[0].y0, s[0].x1, s[0].y1], cell: [s[cell].x0, s[cell].y0],
            products: s.slice(5).filter(p => p.label && p.label.text !== '').map(p => Number(p.label.text)),
            z: trace === null ? null : el._fullData[trace].z.map(r => Array.from(r)), drawn: drawn};
}"""


def position(page: Page, key: str = "conv_fig_steps", cell_shape: int = 2, trace: int | None = None) -> dict:
    """What the figure shows now, read in one go: slider position (0-based), written sum, the window's outline
    (shape 0), the current cell's outline (shape ``cell_shape``), the labels of the labelled squares after the
    five moving shapes (the Convolution page's products, row-major), the number of shapes drawn, and the numbers
    of trace ``trace`` if given (a heatmap a frame changes)."""
    return page.evaluate(_POSITION_JS, [key, cell_shape, trace])


def cell_box(r0, c0, r1=None, c1=None):
    """Plotly coordinates ``(x0, y0, x1, y1)`` of the cells from (r0, c0) to (r1, c1), as the heatmaps draw them."""
    r1, c1 = (r0 if r1 is None else r1), (c0 if c1 is None else c1)
    return [c0 - 0.5, r0 - 0.5, c1 + 0.5, r1 + 0.5]


def test_convolution_steps_in_the_browser_without_a_server_run(page: Page):
    open_page(page, "/Convolution", "Convolution")
    assert_no_errors(page)
    assert table_after(page, "The finished output feature map") == [["4", "3", "4"], ["2", "4", "3"], ["2", "3", "4"]]
    stepper = stepper_text(page)
    expect(stepper).to_have_text(FIRST_SUM)
    runs = server_runs(page)
    page.evaluate("""() => { window.__e2e_runs = 0; new MutationObserver(() => {
        const s = document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state');
        if (s === 'running') window.__e2e_runs += 1; }).observe(document.querySelector('[data-testid=stApp]'),
        {attributes: true, attributeFilter: ['data-test-script-state']}); }""")

    # step with the slider: positions 2, 3, 4, back to 3, then 4 again
    for k, (row, col) in [(2, (1, 2)), (3, (1, 3)), (4, (2, 1))]:
        click_slider(page, k)
        expect(stepper).to_contain_text(f"Output cell (row {row}, column {col}) =")
    expect(stepper).to_have_text(FOURTH_SUM)
    now = position(page)
    assert now["active"] == 3 and now["window"] == cell_box(1, 0, 3, 2) and now["cell"] == [-0.5, 0.5]
    click_slider(page, 3)
    expect(stepper).to_contain_text("Output cell (row 1, column 3) =")
    click_slider(page, 4)
    expect(stepper).to_have_text(FOURTH_SUM)

    # scrub: drag the slider's handle along its rail; window 5 is output cell (2, 2), its sum is 4
    grip = page.locator(".st-key-conv_fig_steps .slider-grip-rect")
    grip.scroll_into_view_if_needed()
    rail = page.locator(".st-key-conv_fig_steps .slider-rail-rect").bounding_box()
    box = grip.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(rail["x"] + rail["width"], box["y"] + box["height"] / 2, steps=8)  # to the end
    expect(stepper).to_contain_text("Output cell (row 3, column 3) =")
    page.mouse.move(rail["x"] + rail["width"] / 2, box["y"] + box["height"] / 2, steps=8)  # back to the middle
    page.mouse.up()
    expect(stepper).to_have_text(re.compile(r"^Output cell \(row 2, column 2\) = .* = 4$"))
    now = position(page)
    assert now["active"] == 4 and now["window"] == cell_box(1, 1, 3, 3) and now["cell"] == [0.5, 0.5]
    assert now["products"] == [1, 0, 1, 0, 1, 0, 0, 0, 1]
    shapes_drawn = now["drawn"]

    # Reset, then Play: it moves on its own, every panel at the same position, and stops at the last one
    figure_button(page, "Reset").click()
    expect(stepper).to_have_text(FIRST_SUM)
    figure_button(page, "Play").click()
    expect(stepper).to_contain_text("Output cell (row 2, column", timeout=30_000)
    mid = position(page)
    i, j = divmod(mid["active"], 3)
    assert mid["title"].startswith(f"Output cell (row {i + 1}, column {j + 1}) =")
    assert mid["window"] == cell_box(i, j, i + 2, j + 2) and mid["cell"] == [j - 0.5, i - 0.5]
    expect(stepper).to_have_text(re.compile(r"^Output cell \(row 3, column 3\) = .* = 4$"), timeout=30_000)
    assert position(page)["window"] == cell_box(2, 2, 4, 4)
    assert position(page)["drawn"] == shapes_drawn  # the frames moved the shapes; none were added or lost

    # none of that asked the server: the page's own count of its runs did not move, no script run started
    assert server_runs(page) == runs
    assert page.evaluate("window.__e2e_runs") == 0
    success = page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="The finished map")
    expect(success).to_contain_text("equals TensorFlow")
    # a setting does: one run, counted
    page.locator(".st-key-conv_padding").get_by_role("combobox").click()
    page.get_by_role("option", name="same", exact=True).click()
    wait_for_run(page)
    expect(page.locator("[data-testid=stCaptionContainer]").filter(has_text="Server runs of this page")).to_contain_text(
        f"for you: {runs + 1} ")
    expect(stepper).to_have_count(1)  # the new figure has replaced the old one
    expect(stepper).to_have_text(re.compile(r"^Output cell \(row 1, column 1\) = 0·1 "))  # padded: a zero first
    assert_no_errors(page)


def drawn_paths(page: Page, key: str) -> list[str]:
    """The ``d`` of every shape plotly.js drew in the figure with Streamlit key ``key`` (pixels, as rendered)."""
    return page.locator(f".st-key-{key} .shapelayer path").evaluate_all("ps => ps.map(p => p.getAttribute('d'))")


def test_convolution_dilated_taps_are_outlined_in_the_browser(page: Page):
    """Dilation 2 outlines each tap on its own: a path of 9 squares, drawn (not NaN) by plotly.js."""
    open_page(page, "/Convolution", "Convolution")
    page.locator(".st-key-conv_padding").get_by_role("combobox").click()
    page.get_by_role("option", name="2", exact=True).click()
    wait_for_run(page)
    page.locator(".st-key-conv_dilation input[type=range]").press("ArrowRight")
    # padding 2 pads to 9×9 with or without dilation; the 5×5 output is dilation 2's figure (dilation 1 gives 7×7)
    page.wait_for_function("""() => { const el = document.querySelector('.st-key-conv_fig_steps .js-plotly-plot');
        return el && el._fullLayout && el._fullLayout.xaxis.title.text.includes('padded to 9×9')
            && el._fullLayout.xaxis4.title.text.includes('5×5'); }""")
    wait_for_run(page)
    paths = drawn_paths(page, "conv_fig_steps")
    assert not [d for d in paths if "NaN" in d], paths
    assert any(d.count("Z") == 9 for d in paths), paths  # the nine dilated taps, one square each
    assert_no_errors(page)


# ----------------------------------------------------------------------------------------- Stacked channels
def test_stacked_channels_sum_over_32_channels(page: Page):
    open_page(page, "/Stacked_Channels", "Stacked channels")
    assert_no_errors(page)
    # the notebook's example stacked C = 32 deep: each window adds 32 channel sums
    cells = table_after(page, "Sum over the 32 channels")
    assert cells == [["128", "96", "128"], ["64", "128", "96"], ["64", "96", "128"]]
    window = stepper_text(page, "stack_fig_steps")
    expect(window).to_contain_text("Window (row 1, column 1):")
    expect(window).to_contain_text("= 128 (the sum of 32 channel sums)")
    click_slider(page, 2, "stack_fig_steps")
    expect(window).to_contain_text("Window (row 1, column 2):")
    expect(window).to_contain_text("= 96 (the sum of 32 channel sums)")


# ----------------------------------------------------------------------------------------- Backpropagation
# The seed's input and kernel, MSE against a target of 3s: grad_output = 2(y - 3)/9 = ±0.22 or 0. The weight
# (row 1, column 1) multiplies the top-left cell of each window; its gradient, written out over the 9 windows:
DK_SUM = "0.22·1 + 0·1 + 0.22·1 + -0.22·0 + 0.22·1 + 0·1 + -0.22·0 + 0·0 + 0.22·1"



def dk_position(page: Page) -> dict:
    """The dK figure now: its grad_output cell is shape 3, its running dK trace 4."""
    return position(page, "bp_fig_dk", cell_shape=3, trace=4)


def test_backpropagation_dk_steps_play_in_the_browser_and_the_sum_is_written(page: Page):
    from convviz.backprop import conv2d_backward_steps
    from convviz.descent import mse_loss
    from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL

    open_page(page, "/Backpropagation", "Backpropagation")
    assert_no_errors(page)
    expect(page.locator("[data-testid=stAlertContentSuccess]").filter(
        has_text="Every gradient equals TensorFlow's")).to_contain_text("max absolute difference 0 ")
    title = stepper_text(page, "bp_fig_dk")
    expect(title).to_contain_text("Window (row 1, column 1): dK += grad_output (row 1, column 1) · patch = 0.22 · patch")
    expect(title).to_contain_text("Weight (row 1, column 1): dK = 0.22·1 = 0.22")
    runs = server_runs(page)
    page.evaluate("""() => { window.__e2e_runs = 0; new MutationObserver(() => {
        const s = document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state');
        if (s === 'running') window.__e2e_runs += 1; }).observe(document.querySelector('[data-testid=stApp]'),
        {attributes: true, attributeFilter: ['data-test-script-state']}); }""")

    figure_button(page, "Play", "bp_fig_dk").click()
    expect(title).to_contain_text("Window (row 2, column", timeout=30_000)
    mid = dk_position(page)  # every panel at the same position while it plays
    i, j = divmod(mid["active"], 3)
    assert mid["title"].startswith(f"Window (row {i + 1}, column {j + 1}): ")
    assert mid["window"] == cell_box(i, j, i + 2, j + 2) and mid["cell"] == [j - 0.5, i - 0.5]
    expect(title).to_contain_text("Window (row 3, column 3)", timeout=30_000)
    # the title as written (its line breaks are tspans without a space between them in textContent)
    written = re.sub(r"<[^>]+>", "", title.get_attribute("data-unformatted").replace("<br>", " "))
    assert written.endswith(f"Weight (row 1, column 1): dK = {DK_SUM} = 0.89"), written
    end = dk_position(page)
    grad = mse_loss([[4, 3, 4], [2, 4, 3], [2, 3, 4]], [[3] * 3] * 3)[1]
    expected = conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, grad).grad_kernel
    assert end["active"] == 8
    assert [v for row in end["z"] for v in row] == pytest.approx(expected.ravel().tolist(), abs=1e-6)
    assert end["z"][0][0] == pytest.approx(8 / 9, abs=1e-6)  # the written sum: 4 · 2/9

    # the side-by-side dX figures step on their own too; none of it asked the server
    click_slider(page, 2, "bp_fig_gather")
    expect(stepper_text(page, "bp_fig_gather")).to_contain_text("dX (row 1, column 2) =")
    click_slider(page, 2, "bp_fig_scatter")
    expect(stepper_text(page, "bp_fig_scatter")).to_contain_text("Output cell (row 1, column 2) sends 0 back")
    assert server_runs(page) == runs
    assert page.evaluate("window.__e2e_runs") == 0
    for key in ("bp_fig_dk", "bp_fig_scatter", "bp_fig_gather", "bp_fig_pool", "bp_fig_relu"):
        paths = drawn_paths(page, key)
        assert paths and not [d for d in paths if "NaN" in d], (key, paths)
    assert_no_errors(page)


def test_backpropagation_learns_sobel_x_on_the_server(page: Page):
    open_page(page, "/Backpropagation", "Backpropagation")
    status = page.locator("[data-testid=stAlertContainer]").filter(has_text=re.compile(r"Step \d+:|Learned:"))
    expect(status).to_contain_text("Step 0: max |K − K*| = 2.05")
    page.get_by_role("button", name="▶ Play").click()
    seen = set()
    learned = page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Learned:")
    deadline = time.monotonic() + 120
    while not learned.count() and time.monotonic() < deadline:  # the panel refreshes itself while it plays
        text = status.first.inner_text() if status.count() else ""
        match = re.search(r"Step (\d+):", text)
        if match:
            seen.add(int(match.group(1)))
        page.wait_for_timeout(150)
    assert len(seen - {0}) >= 2, f"the demo did not move on its own: steps seen {sorted(seen)}"
    expect(learned).to_contain_text(re.compile(r"max \|K − K\*\| = 0\.00\d+ ≤ 0\.001 at step (1\d\d|[2-4]\d\d)"))
    expect(learned).to_contain_text("after 500 steps", timeout=60_000)  # Play goes on to the Steps set (500)
    expect(page.get_by_role("button", name="▶ Play")).to_be_visible()  # and stops there
    assert_no_errors(page)


# ----------------------------------------------------------------------------------------- Train
_POINTS_JS = """(key) => {
    const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const t = el && el._fullData && el._fullData[0];
    if (!t) return -1;
    return t.y && t.y.length !== undefined ? t.y.length : (t._length ?? -1);
}"""


def chart_points(page: Page, key: str) -> int:
    """Points in the first trace of the Plotly chart with Streamlit key ``key`` (-1 before it is drawn)."""
    return page.evaluate(_POINTS_JS, key)


def wait_for_more_points(page: Page, key: str, than: int, timeout: float = 120_000) -> int:
    """Wait until that chart has more than ``than`` points; returns how many it has then."""
    page.wait_for_function(f"([key, than]) => ({_POINTS_JS})(key) > than", arg=[key, than], timeout=timeout)
    return chart_points(page, key)


def sidebar_link(page: Page, name: str):
    return page.locator("[data-testid=stSidebarNav] a").filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))


def start_sample_training(page: Page, epochs: int):
    """On the Train page: pick the bundled sample, set the epochs, press Start; returns the Stop button.

    Where the full MNIST loads the page offers a choice (the sample is quicker); elsewhere it says
    that it trains on the bundled sample.
    """
    dataset = page.get_by_role("radiogroup", name="Dataset")
    sample_only = page.locator("[data-testid=stAlertContentWarning]").filter(has_text="bundled sample")
    # one of the two, whichever the page draws: counting the radios at once raced the page (seen twice in
    # full-suite runs on the loaded machine: no radio yet, so it waited for the notice, which never came)
    expect(dataset.or_(sample_only).first).to_be_visible(timeout=LOAD_TIMEOUT)
    if dataset.count():
        dataset.get_by_text("Bundled sample").click()
        expect(dataset.get_by_role("radio", name=re.compile("Bundled sample"))).to_be_checked()
    else:
        expect(sample_only).to_be_visible()
    box = page.locator(".st-key-train_epochs input")
    box.fill(str(epochs))
    box.press("Enter")
    expect(box).to_have_value(str(epochs))
    wait_for_run(page)
    page.get_by_role("button", name="Start training", exact=True).click()
    stop = page.get_by_role("button", name="Stop training", exact=True)
    expect(stop).to_be_visible(timeout=60_000)
    return stop


def test_train_live_progress_stop_and_history_survives_navigation(page: Page):
    open_page(page, "/Train", "Train")
    assert_no_errors(page)
    stop = start_sample_training(page, epochs=10)
    progress = page.locator("[data-testid=stProgress]").first
    expect(progress).not_to_contain_text("Starting the Dask cluster", timeout=CLUSTER_TIMEOUT)
    expect(progress).to_contain_text("Epoch 1/10")
    expect(page.get_by_text(re.compile(r"^Run \d+( \(saved as [^)]*\))?: preset fast.*10 epoch\(s\).*on the bundled sample"))).to_be_visible()

    # the live panel moves on its own: the loss chart grows and the progress text changes, twice
    seen_points, seen_progress = [], []
    n = 0
    for _ in range(3):
        n = wait_for_more_points(page, "train_chart_loss", n)
        if seen_progress:
            expect(progress).not_to_have_text(seen_progress[-1], timeout=30_000)
        seen_points.append(n)
        seen_progress.append(progress.inner_text())
    assert seen_points[0] < seen_points[1] < seen_points[2], seen_points
    assert len(set(seen_progress)) == 3, seen_progress
    assert all(re.search(r"batch \d+/\d+", t) for t in seen_progress), seen_progress

    stop.click()
    expect(progress).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"), timeout=60_000)
    expect(stop).to_have_count(0)
    stopped_text = progress.inner_text()
    batches = int(re.search(r"Stopped after ([\d,]+) batches", stopped_text).group(1).replace(",", ""))
    assert batches >= seen_points[-1]
    page.wait_for_function(f"([key, n]) => ({_POINTS_JS})(key) === n", arg=["train_chart_loss", batches])
    wait_for_run(page)
    assert_no_errors(page)

    # leave for another page through the sidebar (same browser session, no reload), then come back
    page.evaluate("window.__e2e_same_document = true")
    sidebar_link(page, "Convolution").click()
    expect(stepper_text(page)).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page).to_have_url(re.compile(r"/Convolution$"))
    wait_for_run(page)
    sidebar_link(page, "Train").click()
    expect(page).to_have_url(re.compile(r"/Train$"))
    progress = page.locator("[data-testid=stProgress]").first
    expect(progress).to_have_text(stopped_text, timeout=LOAD_TIMEOUT)
    page.wait_for_function(f"([key, n]) => ({_POINTS_JS})(key) === n", arg=["train_chart_loss", batches])
    assert page.evaluate("window.__e2e_same_document === true"), "the page was reloaded, not navigated"
    wait_for_run(page)
    assert_no_errors(page)


# ----------------------------------------------------------------------------------------- Draw
CANVAS = "[data-testid=stBidiComponentIsolated] canvas"
PEN_WIDTH = 20  # the page's default pen, pixels
_INK_JS = """cs => cs.map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 128 && d[i + 3] > 128) n++;
    return n;
})"""


def canvas_ink(page: Page) -> int:
    """White pixels on the drawing canvas (all its layers together)."""
    return sum(page.locator(CANVAS).evaluate_all(_INK_JS))


def wait_for_ink(page: Page, predicate, timeout_s: float = 10.0) -> int:
    """Poll :func:`canvas_ink` (the canvas is inside the component's shadow DOM) until ``predicate`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        ink = canvas_ink(page)
        if predicate(ink) or time.monotonic() > deadline:
            return ink
        page.wait_for_timeout(100)


def draw_digit(page: Page, digit: int) -> tuple[float, float]:
    """Draw ``digit`` on the canvas with the mouse, stroke by stroke, along strokes.py's hand-like paths.

    Returns:
        the drawing's expected ink bounding box ``(width, height)``, canvas pixels (the path's extent plus the pen).
    """
    canvas = page.locator(f"{CANVAS}.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / strokes.CANVAS_SIZE
    paths = strokes.canvas_paths(digit)
    for path in paths:
        page.mouse.move(box["x"] + path[0][0] * scale, box["y"] + path[0][1] * scale)
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.up()
    xs = [x for path in paths for x, _ in path]
    ys = [y for path in paths for _, y in path]
    return max(xs) - min(xs) + PEN_WIDTH, max(ys) - min(ys) + PEN_WIDTH


def wait_for_ink_box(page: Page, width: float, height: float, tolerance: float = 4.0) -> None:
    """Wait until the page reports an ink bounding box of about ``width`` x ``height`` (the whole drawing arrived)."""
    caption = page.locator("[data-testid=stCaptionContainer]").filter(has_text="Ink bounding box")
    expect(caption).to_be_visible(timeout=LOAD_TIMEOUT)
    page.wait_for_function(
        """([w, h, tol]) => Array.from(document.querySelectorAll('[data-testid=stCaptionContainer]')).some(c => {
            const m = /Ink bounding box (\\d+)x(\\d+) px/.exec(c.innerText);
            return m && Math.abs(+m[1] - w) <= tol && Math.abs(+m[2] - h) <= tol;
        })""", arg=[width, height, tolerance], timeout=60_000)


def draw_and_predict(page: Page, digit: int) -> tuple[int, str, tuple[float, float]]:
    """Draw ``digit`` (:func:`draw_digit`) and wait until the whole drawing arrived and its prediction is shown.

    Returns:
        ``(white pixels on the canvas, the "Prediction: …" heading's text, the ink box (width, height))``.
    """
    width, height = draw_digit(page, digit)
    ink = wait_for_ink(page, lambda n: n > 1000)
    assert ink > 1000, f"drawing a {digit} left only {ink} white pixels on the canvas"
    wait_for_ink_box(page, width, height)
    prediction = page.get_by_role("heading", name=re.compile(r"^Prediction: \d"))
    expect(prediction).to_be_visible(timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    return ink, prediction.inner_text(), (width, height)


def clear_canvas(page: Page) -> None:
    """Press Clear and wait until the canvas and the prediction are gone."""
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(page.get_by_text("Draw a digit on the canvas")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction:"))).to_have_count(0)
    wait_for_run(page)
    expect(page.locator(f"{CANVAS}.upper-canvas")).to_have_count(1)
    ink = wait_for_ink(page, lambda n: n == 0)
    assert ink == 0, f"the canvas still has {ink} white pixels 10 s after Clear"


DRAWN_DIGITS = (1, 7, 0, 4)  # 4 takes two strokes


def test_draw_digits_are_classified_and_clear_empties_the_canvas(page: Page):
    open_page(page, "/Draw", "Draw")
    assert_no_errors(page)
    expect(page.locator(f"{CANVAS}.upper-canvas")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_text("Draw a digit on the canvas")).to_be_visible()
    assert canvas_ink(page) == 0
    predicted = {}
    for digit in DRAWN_DIGITS:
        _, said, _ = draw_and_predict(page, digit)
        assert_no_errors(page)
        predicted[digit] = int(re.match(r"Prediction: (\d)", said).group(1))
        clear_canvas(page)
    assert predicted == {d: d for d in DRAWN_DIGITS}, f"drawn -> predicted: {predicted}"


def _grey_covers(page: Page, key: str) -> list[list[float]]:
    """Width and height (px) of each drawn shape of figure ``key`` filled with the "not computed yet" grey."""
    return page.locator(f".st-key-{key} .shapelayer path").evaluate_all(
        "ps => ps.filter(p => getComputedStyle(p).fill === 'rgb(238, 238, 238)')"
        ".map(p => { const b = p.getBBox(); return [b.width, b.height]; })")


def test_the_output_cells_already_computed_are_never_left_grey(page: Page):
    """At an output row's last cell, the cover over the rest of that row has nothing left to cover. A frame that hid
    it with ``visible: false`` left plotly.js drawing it where it was: the current cell (and after a jump, cells
    computed long before) stayed grey. Each position shows exactly the covers it needs, whatever the way there."""
    open_page(page, "/Convolution", "Convolution")
    stepper = stepper_text(page)
    # (position, its output cell, grey covers with an area): the rest of the row and the rows below
    for k, (row, col), covers in [(2, (1, 2), 2), (3, (1, 3), 1), (6, (2, 3), 1), (4, (2, 1), 2), (9, (3, 3), 0),
                                  (1, (1, 1), 2), (6, (2, 3), 1)]:
        click_slider(page, k)
        expect(stepper).to_contain_text(f"Output cell (row {row}, column {col}) =")
        page.wait_for_timeout(300)
        drawn = [wh for wh in _grey_covers(page, "conv_fig_steps") if wh[0] > 0.5 and wh[1] > 0.5]
        assert len(drawn) == covers, (k, drawn)
