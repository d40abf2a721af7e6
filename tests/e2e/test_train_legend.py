"""Browser test of the Train page's curves at 1280x800: the legend never covers the "epoch" axis title.

It used to sit at y=-0.25 anchored at its bottom: wrapped into two rows in a half-width column, it grew upwards
over the title (seen in the saved-runs charts). A saved run is written into the test server's runs folder (no
training: a small model and a made-up history), its charts are drawn, and the title's and legend's boxes compared.
"""

from __future__ import annotations

import pytest

from .test_pages import LOAD_TIMEOUT, assert_no_errors, open_page  # skips this module too without Playwright

from playwright.sync_api import Page  # noqa: E402  (importable: test_pages skipped the module otherwise)

pytestmark = pytest.mark.e2e

LEARNER = "legend0check1"
_BOXES_JS = """key => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    return {title: box(gd.querySelector('.g-xtitle text, .xtitle')), legend: box(gd.querySelector('.legend')),
            figure: box(gd)};
}"""


def _seed_run(runs_dir) -> None:
    from convviz.jobs import SAMPLE_LABEL
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore

    bpe, epochs = 10, 2
    steps = bpe * epochs
    history = {"batch_loss": [2.3 - 0.05 * i for i in range(steps)],
               "batch_accuracy": [0.1 + 0.03 * i for i in range(steps)],
               "epoch_test_loss": [1.2, 0.9], "epoch_test_accuracy": [0.6, 0.8], "epoch": epochs, "batch": bpe,
               "batches_per_epoch": bpe, "epochs": epochs, "samples_per_second": 100.0, "elapsed_s": 5.0,
               "eta_s": 0.0, "status": "finished", "error": None}
    settings = {"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": epochs, "batch_size": 512,
                "learning_rate": 1e-3, "seed": 0}
    store = RunStore(runs_dir / LEARNER)
    store.save(store.new_run_id("fast"), ScratchCNN(make_spec("fast", filters=(4, 8)), seed=0), preset="fast",
               dataset=SAMPLE_LABEL, config=settings, history=history, name="Run 1")


def test_the_curves_legend_stays_clear_of_the_epoch_title(page: Page, streamlit_server):
    _seed_run(streamlit_server.runs_dir)
    open_page(page, f"/Train?learner={LEARNER}", "Train")
    for key in ("runs_chart_loss", "runs_chart_accuracy"):
        chart = page.locator(f".st-key-{key} .js-plotly-plot .legend")
        chart.wait_for(timeout=LOAD_TIMEOUT)
        chart.scroll_into_view_if_needed()
        boxes = page.evaluate(_BOXES_JS, key)
        (_, _, _, title_bottom), (left, top, right, bottom) = boxes["title"], boxes["legend"]
        assert top >= title_bottom, (key, boxes)  # the legend starts below the "epoch" title
        assert bottom <= boxes["figure"][3] + 1 and right - left > 0, (key, boxes)  # and is inside the figure
    assert_no_errors(page)
