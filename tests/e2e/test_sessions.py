"""Browser test: two learners on one server do not see each other's work.

Browser session A (pytest-playwright's ``page``) edits the Convolution page's kernel, draws a digit
on the Draw page and starts a training run, moving between pages through the sidebar (one
Streamlit session). Session B, another browser context on the same server, then finds every page
as a newcomer would: the default feature map, an empty canvas with its prompt, no live training run
(the "Saved runs" list on the Train page is server-wide by design and is not checked here).
Finally A still has its own run and its own kernel.

Runs beyond the cluster's workers (``CONVVIZ_MAX_JOBS``) are queued: tested without a browser in
``tests/test_page_train.py::test_more_runs_than_workers_are_queued_not_refused`` and
``tests/test_jobs.py``; two web servers sharing one cluster in ``tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

import json
import os
import re

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - only without requirements.txt installed
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: `pip install -r requirements.txt` (and `apt-get install chromium`)",
                allow_module_level=True)

import numpy as np

from convviz.examples import NOTEBOOK_INPUT, kernel_preset

from .test_pages import (CANVAS, CLUSTER_TIMEOUT, FIRST_SUM, LOAD_TIMEOUT, assert_no_errors, canvas_ink, draw_digit,
                         open_page, sidebar_link, start_sample_training, stepper_text, table_after, wait_for_ink,
                         wait_for_run)

pytestmark = pytest.mark.e2e

DEFAULT_MAP = [["4", "3", "4"], ["2", "4", "3"], ["2", "3", "4"]]
MAP_LABEL = "The finished output feature map"
LIVE_RUN_CAPTION = re.compile(r"^Run \d+( \(saved as [^)]*\))?: preset")
"""The caption over this session's own run ("Run 1 (saved as 2026...-fast-ab12cd): preset fast, ...").

The "Saved runs" list below it shows the learner's saved runs; its caption reads "Run 1, saved as
2026...-fast-ab12cd: preset ...", which this pattern does not match.
"""


def identity_map() -> list[list[str]]:
    """The notebook input under the Identity kernel (valid padding): the 3x3 centre of the input, as table text."""
    k = kernel_preset("Identity")
    assert k.shape == (3, 3) and k[1, 1] == 1 and k.sum() == 1, k  # the preset the expectation relies on
    return [[f"{v:g}" for v in row] for row in np.asarray(NOTEBOOK_INPUT)[1:4, 1:4]]


def go(page: Page, name: str, heading: str) -> None:
    """Move to another page through the sidebar (same browser tab, same Streamlit session)."""
    sidebar_link(page, name).click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(heading), re.IGNORECASE)).first).to_be_visible(
        timeout=LOAD_TIMEOUT)
    wait_for_run(page)


def choose_option(page: Page, container: str, name: str, tries: int = 3) -> None:
    """Open the selectbox inside ``container`` and pick ``name``.

    The first click can land while the expander around it is still opening (seen in CI: the list never
    appeared); the box is waited for, and the click repeated until the option shows.
    """
    box = page.locator(container).get_by_role("combobox")
    expect(box).to_be_visible()
    option = page.get_by_role("option", name=name, exact=True)
    for attempt in range(tries):
        box.click()
        try:
            expect(option).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            if attempt == tries - 1:
                raise
    option.click()


def test_sessions_do_not_share_inputs_drawings_or_training(page: Page, new_context):
    expected_a = identity_map()
    assert expected_a != DEFAULT_MAP

    # ---- session A: its own kernel, drawing and training run
    open_page(page, "/Convolution", "Convolution")
    assert table_after(page, MAP_LABEL) == DEFAULT_MAP
    page.get_by_text("Edit the input and the kernel").click()
    choose_option(page, ".st-key-conv_k_preset", "Identity")
    page.wait_for_function(
        """(want) => Array.from(document.querySelectorAll('[data-testid=stTable]')).some(t =>
            JSON.stringify(Array.from(t.querySelectorAll('tbody tr')).map(
                r => Array.from(r.querySelectorAll('td')).map(c => c.innerText.trim()))) === want)""",
        arg=json.dumps(expected_a, separators=(",", ":")), timeout=30_000)
    wait_for_run(page)
    assert table_after(page, MAP_LABEL) == expected_a

    go(page, "Draw", "Draw")
    expect(page.locator(f"{CANVAS}.upper-canvas")).to_be_visible(timeout=LOAD_TIMEOUT)
    draw_digit(page, 7)
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction: \d"))).to_be_visible(timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    assert canvas_ink(page) > 1000

    go(page, "Train", "Train")
    stop = start_sample_training(page, epochs=50)  # a run on a Dask worker: long enough to outlast B's checks
    run_caption = page.get_by_text(re.compile(LIVE_RUN_CAPTION.pattern + r" fast.*50 epoch\(s\)"))
    expect(run_caption).to_be_visible()
    assert_no_errors(page)

    # ---- session B, while A's run trains: a newcomer's pages
    b = new_context().new_page()
    open_page(b, "/Convolution", "Convolution")
    assert table_after(b, MAP_LABEL) == DEFAULT_MAP
    expect(stepper_text(b)).to_have_text(FIRST_SUM)

    open_page(b, "/Draw", "Draw")
    expect(b.locator(f"{CANVAS}.upper-canvas")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(b.get_by_text("Draw a digit on the canvas")).to_be_visible()
    expect(b.get_by_role("heading", name=re.compile(r"^Prediction:"))).to_have_count(0)
    assert wait_for_ink(b, lambda n: n > 0, timeout_s=2.0) == 0, "B's canvas shows ink it never drew"

    open_page(b, "/Train", "Train")
    expect(b.get_by_text("Choose the settings and press")).to_be_visible()
    expect(b.get_by_role("button", name="Stop training")).to_have_count(0)
    expect(b.get_by_role("button", name="Start training", exact=True)).to_be_enabled()
    expect(b.locator("[data-testid=stProgress]")).to_have_count(0)
    expect(b.get_by_text(LIVE_RUN_CAPTION)).to_have_count(0)
    expect(b.locator(".st-key-train_chart_loss")).to_have_count(0)  # the live loss chart
    assert_no_errors(b)

    # ---- A still has its own run and its own kernel
    expect(stop).to_be_visible()
    expect(run_caption).to_be_visible()
    # A's run trains before it is stopped: on a loaded machine the embedded cluster took longer to start than B's
    # checks last (with main's jobs.py as with the split one: "Stopped before it started training")
    expect(page.locator("[data-testid=stProgress]").first).to_contain_text(re.compile(r"Epoch \d+/50 · batch"),
                                                                           timeout=CLUSTER_TIMEOUT)
    stop.click()
    expect(page.locator("[data-testid=stProgress]").first).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"),
                                                                           timeout=60_000)
    wait_for_run(page)
    go(page, "Convolution", "Convolution")
    assert table_after(page, MAP_LABEL) == expected_a
    assert_no_errors(page)
