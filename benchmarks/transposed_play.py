"""Does Play keep its promise in the Convolution page's Transposed mode? Steps per second in headless Chromium.

Not a test: run ``python benchmarks/transposed_play.py`` from the repository root (Debian's Chromium and
Playwright, as the browser tests). A frame of the transposed step-through changes one heatmap's data (the
band of output rows the current input row reaches), so plotly.js redraws the figure at every step, unlike the
forward mode's layout-only frames. For each case (the default 5x5 input and random 16x16 and 28x28 ones, 3x3
kernel, stride 2) it presses the figure's Play at the page's default 2 steps/s, reads the slider's position every 0.5 s
for ``--seconds`` seconds, and prints the steps made per second and the browser's main-thread busy time per
step (CDP ``Performance.getMetrics`` ``TaskDuration``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.server import StreamlitServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
KEY = "conv_fig_transposed"
ACTIVE_JS = f"() => document.querySelector('.st-key-{KEY} .js-plotly-plot')._fullLayout.sliders[0].active"


def wait_for_run(page, timeout=120_000):
    page.wait_for_selector("[data-testid=stApp][data-test-connection-state=CONNECTED]", timeout=timeout)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)


def set_number(page, key: str, value: int) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")
    wait_for_run(page)


def measure(page, size: int, seconds: float) -> tuple[float, float]:
    """Play from step 1 for ``seconds``: (steps per second, main-thread busy ms per step)."""
    if size != 5:
        page.get_by_text("Edit the input and the kernel").click()  # open the expander
        page.locator(".st-key-conv_x_preset").get_by_role("combobox").click()
        page.get_by_role("option", name="Random integers", exact=True).click()
        wait_for_run(page)
        set_number(page, "conv_x_rows", size)
        set_number(page, "conv_x_cols", size)
    page.wait_for_selector(f".st-key-{KEY} .js-plotly-plot .main-svg", timeout=120_000)
    figure = page.locator(f".st-key-{KEY}")
    figure.scroll_into_view_if_needed()
    figure.locator(".updatemenu-button").filter(has_text="Reset").click()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def busy() -> float:
        return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")

    figure.locator(".updatemenu-button").filter(has_text="Play").click()
    page.wait_for_timeout(1000)  # the first frames
    start_step, start_t, start_busy = page.evaluate(ACTIVE_JS), time.perf_counter(), busy()
    page.wait_for_timeout(seconds * 1000)
    steps, elapsed, spent = page.evaluate(ACTIVE_JS) - start_step, time.perf_counter() - start_t, busy() - start_busy
    figure.locator(".updatemenu-button").filter(has_text="Pause").click()
    return steps / elapsed, 1000 * spent / max(steps, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with StreamlitServer() as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        print(f"Transposed mode, 3x3 kernel, stride 2, Play at 2 steps/s, {args.seconds:g} s each")
        for size in (5, 16, 28):
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.goto(server.url + "/Convolution")
            wait_for_run(page)
            page.locator(".st-key-conv_direction").get_by_text("Transposed", exact=True).click()
            wait_for_run(page)
            page.locator(".st-key-conv_stride input[type=range]").press("ArrowRight")
            wait_for_run(page)
            rate, busy_ms = measure(page, size, args.seconds)
            print(f"{size}x{size}: {rate:.2f} steps/s, {busy_ms:.0f} ms main-thread busy per step")
            page.context.close()
        browser.close()


if __name__ == "__main__":
    main()
