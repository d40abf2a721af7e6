"""Browser test of #15 kind 5 on the Draw page: a digit drawn with the mouse, and its prediction, are still there
after the learner visits another page through the sidebar and comes back; Clear still clears (also across pages)."""

from __future__ import annotations

import re

import pytest

from .test_pages import (LOAD_TIMEOUT, assert_no_errors, canvas_ink, clear_canvas, draw_and_predict, open_page,
                         sidebar_link, wait_for_ink, wait_for_ink_box, wait_for_run)  # skips without Playwright

from playwright.sync_api import Page, expect  # noqa: E402  (importable: test_pages skipped the module otherwise)

pytestmark = pytest.mark.e2e


def _away_and_back(page: Page) -> None:
    """To the Convolution page and back to Draw through the sidebar, in the same document (no reload)."""
    page.evaluate("window.__e2e_same_document = true")
    sidebar_link(page, "Convolution").click()
    expect(page).to_have_url(re.compile(r"/Convolution$"))
    expect(page.get_by_role("heading", name=re.compile("Convolution, one window at a time"))).to_be_visible(
        timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    sidebar_link(page, "Draw").click()
    expect(page).to_have_url(re.compile(r"/Draw$"))
    expect(page.locator("[data-testid=stBidiComponentIsolated] canvas.upper-canvas")).to_be_visible(
        timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    assert page.evaluate("window.__e2e_same_document === true"), "the page was reloaded, not navigated"


def test_a_drawing_and_its_prediction_are_kept_across_pages_until_clear(page: Page):
    open_page(page, "/Draw", "Draw")
    expect(page.get_by_text("Draw a digit on the canvas")).to_be_visible(timeout=LOAD_TIMEOUT)
    ink, said, (width, height) = draw_and_predict(page, 7)

    _away_and_back(page)
    back = wait_for_ink(page, lambda n: abs(n - ink) <= 0.02 * ink)
    assert abs(back - ink) <= 0.02 * ink, f"the canvas had {ink} white pixels, {back} after coming back"
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction: \d"))).to_have_text(said, timeout=LOAD_TIMEOUT)
    expect(page.get_by_text("Draw a digit on the canvas")).to_have_count(0)
    wait_for_ink_box(page, width, height)  # the same drawing's numbers, not a new one
    assert_no_errors(page)

    clear_canvas(page)  # no prediction, and no white pixel left on the canvas
    _away_and_back(page)
    expect(page.get_by_text("Draw a digit on the canvas")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction:"))).to_have_count(0)
    assert canvas_ink(page) == 0
    assert_no_errors(page)
