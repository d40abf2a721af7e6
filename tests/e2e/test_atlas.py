"""Browser test of the Filter atlas page: computed once with a progress bar, its figures drawn and hovered, the layer
switched, and opened again without computing."""

from __future__ import annotations

import re

import pytest

from .test_pages import assert_no_errors, open_page, wait_for_run  # skips this module too without Playwright

from playwright.sync_api import Page, expect  # noqa: E402  (after the guard above)

pytestmark = pytest.mark.e2e

COMPUTE_TIMEOUT = 300_000
"""ms for the shipped model's atlas to be computed (under 30 s on a quiet 2-core machine; CI machines are busier)."""
CHARTS = ("atlas_fig_patches", "atlas_fig_synth", "atlas_fig_filter", "atlas_fig_classes")
DRAWN_JS = ("(keys) => keys.every(k => document.querySelector(`.st-key-${k} .js-plotly-plot .main-svg`))")


def charts_drawn(page: Page, timeout: float) -> None:
    """Wait until the atlas's four Plotly figures are drawn."""
    page.wait_for_function(DRAWN_JS, arg=list(CHARTS), timeout=timeout)


def test_atlas_is_computed_once_then_drawn_hovered_and_switched(page: Page):
    open_page(page, "/Filter_Atlas", "Filter atlas")
    assert_no_errors(page)
    # a fresh runs folder: the shipped model's atlas is computed now, with a progress bar that moves
    progress = page.locator("[data-testid=stProgress]").filter(has_text="Computing the atlas")
    expect(progress).to_be_visible(timeout=60_000)
    charts_drawn(page, COMPUTE_TIMEOUT)
    wait_for_run(page)
    assert_no_errors(page)
    expect(progress).to_have_count(0)
    expect(page.get_by_text(re.compile(r"Patches searched in the [\d,]+ (digits of the full MNIST test set|test "
                                       r"digits of the bundled MNIST sample)"))).to_be_visible()

    patches = page.locator(".st-key-atlas_fig_patches")
    expect(patches.locator(".gtitle")).to_contain_text("conv1: the 9 strongest patches of each filter (3×3 pixels)")
    patches.scroll_into_view_if_needed()
    box = patches.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + 12, box["y"] + 12)  # over filter 0's strongest patch
    hover = patches.locator(".hoverlayer .hovertext")
    expect(hover).to_contain_text("conv1 filter 0")
    expect(hover).to_contain_text("activation")
    expect(hover).to_contain_text(re.compile(r"test digit #\d+ \(a \d\)"))

    page.get_by_text("conv2 (64 filters)").click()
    wait_for_run(page)
    # wait only: until that run has ended, Streamlit keeps conv1's chart (stale) beside conv2's; with the training
    # cluster's workers importing TensorFlow on the same 2 cores (started by whatever page comes first), that run
    # took more than the 30 s of the check below
    expect(patches.locator(".gtitle").filter(has_text="conv2: the 9 strongest")).to_have_count(1, timeout=COMPUTE_TIMEOUT)
    expect(patches.locator(".gtitle")).to_have_count(1, timeout=COMPUTE_TIMEOUT)
    expect(patches.locator(".gtitle")).to_contain_text("conv2: the 9 strongest patches of each filter (8×8 pixels)")
    expect(page.locator(".st-key-atlas_fig_filter .gtitle")).to_contain_text("conv2 filter 0")
    expect(page.locator(".st-key-atlas_fig_classes .annotation-text")).to_have_count(10)
    assert_no_errors(page)

    page.goto("/Filter_Atlas")  # opened again: from the server's memory, nothing computed (timed: benchmarks/)
    charts_drawn(page, 60_000)
    wait_for_run(page)
    assert page.locator("[data-testid=stProgress]").count() == 0
    assert_no_errors(page)
