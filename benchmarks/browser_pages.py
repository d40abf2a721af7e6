"""Driving ConvViz's pages in headless Chromium, for the browser benchmarks (not a benchmark itself).

Shared by ``benchmarks/load_test.py``, ``benchmarks/draw_latency.py`` and ``benchmarks/browser_cpu.py``: where
Chromium is (``CONVVIZ_E2E_CHROMIUM``, default Debian's ``/usr/bin/chromium``), opening a page in its own session and
waiting for its script run, the Train page's controls and progress line, drawing a digit on the Draw page's canvas
(``tests/e2e/strokes.py``'s paths) and the browser-side watcher that times its prediction, the Convolution page's
slider, and the percentiles the benchmarks print.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import strokes  # noqa: E402
from tests.e2e.plotly_slider import SLIDER_POINTS_JS  # noqa: E402

CHROMIUM = os.environ.get("CONVVIZ_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}
ERROR_SELECTORS = ("[data-testid=stException]", "[data-testid=stAlertContentError]")
TRAIN_EPOCHS = 50
"""Epochs of each background run: far more than the test lasts, so the runs train throughout."""
N_POSITIONS, OUT_COLS = 9, 3
"""The Convolution page's default 5x5 input and 3x3 kernel give a 3x3 map: 9 window positions."""
WATCH_PREDICTION_JS = """() => {
    if (window.__dl) return;
    // up: the last mouseup; started: the first script run seen after it; fresh: the last change of the current
    // (not stale) "Prediction:" heading after that; done: the page's runs have ended with a prediction shown.
    const d = window.__dl = {up: null, started: null, fresh: null, done: false};
    const app = document.querySelector('[data-testid=stApp]');
    const state = () => app.getAttribute('data-test-script-state');
    const heading = () => {
        const h = Array.from(document.querySelectorAll('[data-testid=stMarkdownContainer] h2'))
            .find(h => h.textContent.startsWith('Prediction:'));
        return h && h.closest('[data-testid=stElementContainer]');
    };
    const current = box => !!box && box.getAttribute('data-stale') !== 'true';
    document.addEventListener('mouseup', () => {
        Object.assign(d, {up: performance.now(), started: state() === 'running' ? performance.now() : null,
                          fresh: null, done: false});
    }, true);
    new MutationObserver(records => {
        if (d.up === null || d.done) return;
        const now = performance.now();
        if (state() === 'running' && d.started === null) d.started = now;
        if (d.started === null) return;
        const box = heading();
        const touched = box && records.some(r => box.contains(r.target) ||
            Array.from(r.addedNodes || []).some(n => n.contains && n.contains(box)));
        if (touched && current(box)) d.fresh = now;
        if (state() === 'notRunning') {
            // a last run that drew the same heading again changes nothing on the page: it is shown by now
            if (d.fresh === null && current(box)) d.fresh = now;
            if (d.fresh !== null) d.done = true;
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true,
                               attributeFilter: ['data-stale', 'data-test-script-state']});
}"""
"""Browser-side timing of one drawing (see the module docstring); read ``window.__dl`` once ``done``."""
PREDICTION_DONE_JS = ("() => window.__dl.done && [window.__dl.fresh - window.__dl.up, "
                      "window.__dl.started - window.__dl.up]")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def new_page(browser, base_url: str, timeout_ms: float):
    """A page in a fresh browser context (its own Streamlit session), 1280x800."""
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(timeout_ms)
    return await context.new_page()


async def wait_for_run(page, timeout_ms: float) -> None:
    """Until the app is connected and its script has finished a run."""
    await page.wait_for_selector("[data-testid=stApp][data-test-connection-state=CONNECTED]", timeout=timeout_ms)
    await page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout_ms)


async def open_page(page, path: str, heading: str, timeout_ms: float) -> None:
    await page.goto(path, timeout=timeout_ms)
    await page.get_by_role("heading", name=re.compile(re.escape(heading), re.IGNORECASE)).first.wait_for(
        timeout=timeout_ms)
    await wait_for_run(page, timeout_ms)


async def page_errors(page) -> list[str]:
    """The text of every exception box / error alert on the page."""
    found = []
    for selector in ERROR_SELECTORS:
        for text in await page.locator(selector).all_inner_texts():
            found.append(text.strip()[:1000])
    return found


async def start_training(page, timeout_ms: float) -> None:
    """On the Train page: the bundled sample, TRAIN_EPOCHS epochs, Start training (returns after the click)."""
    dataset = page.get_by_role("radiogroup", name="Dataset")
    if await dataset.count():  # the full MNIST is available: pick the bundled sample
        await dataset.get_by_text("Bundled sample").click()
        await wait_for_run(page, timeout_ms)
    epochs = page.locator(".st-key-train_epochs input")
    await epochs.fill(str(TRAIN_EPOCHS))
    await epochs.press("Enter")
    await page.wait_for_function(
        "(v) => { const i = document.querySelector('.st-key-train_epochs input'); return i && i.value === v; }",
        arg=str(TRAIN_EPOCHS), timeout=timeout_ms)
    await wait_for_run(page, timeout_ms)
    await page.get_by_role("button", name="Start training", exact=True).click()


async def progress_text(page) -> str:
    """The Train page's progress line ("Epoch 3/50 · batch 17/157 · 2,950 digits/s · …", "Queued, position 1…")."""
    bar = page.locator("[data-testid=stProgress]").first
    try:
        return (await bar.inner_text(timeout=2000)).strip() if await bar.count() else ""
    except Exception:  # redrawn meanwhile
        return ""


def digits_per_second(text: str) -> float | None:
    """The digits/s of a progress line, or None when it names none (queued, loading, first batch)."""
    found = re.search(r"batch \d+/\d+ · ([\d,]+) digits/s", text)
    return float(found.group(1).replace(",", "")) if found else None


async def wait_training(page, timeout_ms: float) -> str:
    """Until the page's progress line shows a training batch; returns the line."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        text = await progress_text(page)
        if digits_per_second(text) is not None:
            return text
        await asyncio.sleep(0.5)
    raise TimeoutError(f"no training batch shown within {timeout_ms / 1000:.0f} s")


async def stop_run(page, timeout_ms: float) -> None:
    await page.get_by_role("button", name="Stop training", exact=True).click()
    await page.locator("[data-testid=stProgress]").first.filter(has_text=re.compile("Stopped after|Stopped")).wait_for(
        timeout=timeout_ms)


async def draw_digit(page, digit: int) -> None:
    """Draw ``digit`` on the Draw page's canvas along strokes.py's paths (the async twin of ``draw_on_canvas``)."""
    canvas = page.locator(strokes.CANVAS_SELECTOR).first
    await canvas.scroll_into_view_if_needed()
    bb = await canvas.bounding_box()
    sx, sy = bb["width"] / strokes.CANVAS_SIZE, bb["height"] / strokes.CANVAS_SIZE
    await page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    await asyncio.sleep(0.6)  # the canvas's toolbar slides in on the first hover; a press meanwhile is lost
    for path in strokes.canvas_paths(digit):
        x, y = path[0]
        await page.mouse.move(bb["x"] + x * sx, bb["y"] + y * sy)
        await page.mouse.down()
        for x, y in path[1:]:
            await page.mouse.move(bb["x"] + x * sx, bb["y"] + y * sy)
        await page.mouse.up()
        await asyncio.sleep(0.3)


def position_text(position: int) -> str:
    """The start of the written sum at 1-based window ``position`` on the default 3x3 map."""
    return f"Output cell (row {(position - 1) // OUT_COLS + 1}, column {(position - 1) % OUT_COLS + 1})"


async def slider_targets(page, key: str = "conv_fig_steps") -> list[tuple[float, float]]:
    """Page coordinates to click on the figure's slider rail for each window position (above its number)."""
    return await page.evaluate(SLIDER_POINTS_JS, key)


def chromium_found() -> bool:
    """Whether Chromium can be run (else says where it was looked for and how to install it)."""
    if os.access(CHROMIUM, os.X_OK):
        return True
    print(f"Chromium not found at {CHROMIUM} (set CONVVIZ_E2E_CHROMIUM or `apt-get install chromium`)")
    return False
