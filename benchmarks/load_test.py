"""Many learners at once: one ConvViz server, 2 training runs, and N browser pages stepping and drawing.

Not a test: run from the repository root, e.g.::

    python benchmarks/load_test.py --pages 8 --steps 20 --timeout-s 600

What it does (loopback only; it stops by itself, after ``--timeout-s`` seconds at the latest):

1. Starts ``streamlit run app.py`` on 127.0.0.1 and a free port (``tests/e2e/server.py``), and
   samples the resident memory of the server's whole process group every 0.2 s (``/proc``).
2. Starts two training runs from two browser pages on the Train page (the bundled sample, 50
   epochs, so they train for the whole test) and keeps those pages open.
3. From a third page asks for a third run: with ``CONVVIZ_MAX_JOBS`` at its default of 2 (two Dask
   workers) the page must queue it ("Queued, position 1", with a Stop button), not refuse it; it is
   then stopped while queued.
4. Opens ``--pages`` headless Chromium pages at once (one browser, one context each). Each steps
   the Convolution page ``--steps`` times (the step-through figure's own Next button; Reset after the
   last of the 9 window positions: plotly.js in the browser, no server run) and times each click until
   the figure's title (the written sum) names the new window position, then draws a digit
   on the Draw page (``tests/e2e/strokes.py``'s paths) and waits for the network's prediction.
5. Checks the two runs are still training, stops them, and prints a summary block.

Step times are measured in the browser (``performance.now()`` at the click, by a capturing click
listener, and when the figure's title has changed), so they do not include Playwright's own
overhead. ``errors`` counts exception boxes and error alerts on the pages, timeouts and other
failures of a page's script, and tracebacks in the server log; the target is 0. The memory
target is a peak under 3 GB.

Exit status: 0 when every check passed (errors 0, third job queued, both runs training
throughout, peak memory under 3 GB), 1 otherwise, 2 on a setup failure or the overall timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import strokes  # noqa: E402
from tests.e2e.server import StreamlitServer, server_log_errors  # noqa: E402

CHROMIUM = os.environ.get("CONVVIZ_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}
ERROR_SELECTORS = ("[data-testid=stException]", "[data-testid=stAlertContentError]")
TRAIN_EPOCHS = 50
"""Epochs of each background run: far more than the test lasts, so both train throughout."""
MEMORY_TARGET_MB = 3000
N_POSITIONS, OUT_COLS = 9, 3
"""The Convolution page's default 5x5 input and 3x3 kernel give a 3x3 map: 9 window positions."""

_CLICK_LISTENER_JS = """() => {
    if (window.__lt_listening) return;
    window.__lt_listening = true;
    document.addEventListener('click', e => {
        if (e.target.closest && e.target.closest('button, .updatemenu-button')) window.__lt_click = performance.now();
    }, true);
}"""
_STEPPER_UPDATED_JS = """(expected) => {
    const t = document.querySelector('.st-key-conv_fig_steps .js-plotly-plot .gtitle');
    return t && t.textContent.startsWith(expected) ? performance.now() : null;
}"""


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class MemorySampler(threading.Thread):
    """Samples :meth:`StreamlitServer.rss_bytes` every ``every_s`` seconds and keeps the peak."""

    def __init__(self, server: StreamlitServer, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.server, self.every_s = server, every_s
        self.peak = self.last = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.last = self.server.rss_bytes()
            except Exception:  # the server is stopping
                self.last = 0
            self.peak = max(self.peak, self.last)
            self.samples += 1
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class Report:
    """What the run saw, filled in as it goes."""

    def __init__(self):
        self.step_ms: list[float] = []
        self.step_wall_ms: list[float] = []
        self.classify_ms: list[float] = []
        self.errors: list[str] = []
        self.predictions: list[tuple[int, int | None]] = []
        self.third_job_queued = False
        self.third_job_message = ""
        self.training_throughout = 0
        self.train_progress: list[str] = []
        self.t0 = time.perf_counter()

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")
        print(f"  ERROR {where}: {what[:500]}", flush=True)


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
    """On the Train page: the bundled sample, TRAIN_EPOCHS epochs, Start training; until "Stop training" shows."""
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
    """The start of the stepper's sentence at 1-based window ``position`` on the default 3x3 map."""
    return f"Output cell (row {(position - 1) // OUT_COLS + 1}, column {(position - 1) % OUT_COLS + 1})"


async def learner(browser, base_url: str, index: int, steps: int, report: Report, timeout_ms: float) -> None:
    """One learner: step the Convolution page ``steps`` times, then draw and classify a digit."""
    where = f"page {index}"
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    try:
        await open_page(page, "/Convolution", "Convolution", timeout_ms)
        await page.evaluate(_CLICK_LISTENER_JS)
        await page.wait_for_function(_STEPPER_UPDATED_JS, arg=position_text(1), timeout=timeout_ms)
        position = 1
        for _ in range(steps):
            name = "Next" if position < N_POSITIONS else "Reset"
            position = position + 1 if name == "Next" else 1
            await page.evaluate("() => { window.__lt_click = null; }")
            t0 = time.perf_counter()
            await page.locator(".st-key-conv_fig_steps .updatemenu-button").filter(has_text=name).click()
            done = await (await page.wait_for_function(_STEPPER_UPDATED_JS, arg=position_text(position),
                                                       timeout=timeout_ms)).json_value()
            wall = (time.perf_counter() - t0) * 1000
            clicked = await page.evaluate("() => window.__lt_click")
            if clicked is None:
                report.error(where, f"the {name} click was not seen by the page")
            else:
                report.step_ms.append(done - clicked)
            report.step_wall_ms.append(wall)
            await wait_for_run(page, timeout_ms)  # like a reader: look at the new window before the next click
        for text in await page_errors(page):
            report.error(f"{where} /Convolution", text)
        print(f"{where}: {steps} steps done at {time.perf_counter() - report.t0:.0f} s", flush=True)

        digit = index % 10
        await open_page(page, "/Draw", "Draw", timeout_ms)
        await page.locator(strokes.CANVAS_SELECTOR).first.wait_for(timeout=timeout_ms)
        await page.get_by_text("Draw a digit on the canvas").wait_for(timeout=timeout_ms)
        await draw_digit(page, digit)
        t0 = time.perf_counter()
        heading = page.get_by_role("heading", name=re.compile(r"^Prediction: \d"))
        await heading.wait_for(timeout=timeout_ms)
        report.classify_ms.append((time.perf_counter() - t0) * 1000)
        await wait_for_run(page, timeout_ms)
        got = re.match(r"Prediction: (\d)", await heading.inner_text())
        report.predictions.append((digit, int(got.group(1)) if got else None))
        print(f"{where}: drew a {digit}, predicted {report.predictions[-1][1]}, "
              f"{report.classify_ms[-1] / 1000:.1f} s after the last stroke; done at "
              f"{time.perf_counter() - report.t0:.0f} s", flush=True)
        for text in await page_errors(page):
            report.error(f"{where} /Draw", text)
    except Exception as exc:  # a timeout or a failed action: count it, keep the other pages going
        report.error(where, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        await context.close()


async def scenario(server: StreamlitServer, args, report: Report) -> None:
    from playwright.async_api import async_playwright

    timeout_ms = args.action_timeout_s * 1000
    base_url = server.url + "/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # -- two training runs, each from its own browser session, kept open throughout
            trainers = []
            for i in range(2):
                page = await new_page(browser, base_url, timeout_ms)
                await open_page(page, "/Train", "Train", timeout_ms)
                await start_training(page, timeout_ms)
                await page.get_by_role("button", name="Stop training", exact=True).wait_for(timeout=timeout_ms)
                trainers.append(page)
                print(f"training run {i + 1} started", flush=True)

            # -- a third run while two train: queued (two workers), then stopped while it waits
            context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
            context.set_default_timeout(timeout_ms)
            third = await context.new_page()
            await open_page(third, "/Train", "Train", timeout_ms)
            await start_training(third, timeout_ms)
            progress = third.locator("[data-testid=stProgress]").first.filter(has_text="Queued, position")
            try:
                await progress.wait_for(timeout=timeout_ms)
                report.third_job_message = (await progress.inner_text()).strip()
                stop = third.get_by_role("button", name="Stop training", exact=True)
                report.third_job_queued = await stop.count() == 1
                await stop.click()
            except Exception as exc:
                report.error("third training page", f"not queued: {type(exc).__name__}")
            print(f"third run queued: {report.third_job_queued} ({report.third_job_message[:120]!r})", flush=True)
            await context.close()

            # -- the learners, all at once
            t0 = report.t0 = time.perf_counter()
            await asyncio.gather(*(learner(browser, base_url, i, args.steps, report, timeout_ms)
                                   for i in range(args.pages)))
            print(f"{args.pages} learners done in {time.perf_counter() - t0:.1f} s", flush=True)

            # -- both runs trained throughout: still training now; then stop them
            for i, page in enumerate(trainers):
                stop = page.get_by_role("button", name="Stop training", exact=True)
                progress = page.locator("[data-testid=stProgress]").first
                text = (await progress.inner_text()).strip() if await progress.count() else ""
                report.train_progress.append(text)
                if await stop.count() and re.search(r"^Epoch \d+/\d+ · batch", text):
                    report.training_throughout += 1
                else:
                    report.error(f"training page {i + 1}", f"not training any more: {text!r}")
                for err in await page_errors(page):
                    report.error(f"training page {i + 1}", err)
                if await stop.count():
                    await stop.click()
                    await progress.filter(has_text=re.compile("Stopped after")).wait_for(timeout=timeout_ms)
        finally:
            await browser.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=8, help="learner pages at once (default 8)")
    parser.add_argument("--steps", type=int, default=20, help="Convolution steps per page (default 20)")
    parser.add_argument("--timeout-s", type=float, default=600, help="the whole run stops after this (default 600)")
    parser.add_argument("--action-timeout-s", type=float, default=120,
                        help="longest wait for one page action (default 120)")
    args = parser.parse_args(argv)
    if args.pages < 1 or args.steps < 1 or args.timeout_s <= 0 or args.action_timeout_s <= 0:
        parser.error(f"--pages and --steps must be >= 1 and the timeouts > 0, got pages={args.pages}, "
                     f"steps={args.steps}, timeout_s={args.timeout_s}, action_timeout_s={args.action_timeout_s}")
    if not os.access(CHROMIUM, os.X_OK):
        print(f"Chromium not found at {CHROMIUM} (set CONVVIZ_E2E_CHROMIUM or `apt-get install chromium`)")
        return 2

    report = Report()
    server = StreamlitServer()
    sampler = MemorySampler(server)
    started = time.perf_counter()
    timed_out = False
    try:
        try:
            server.start(timeout=120)
        except RuntimeError as exc:
            print(f"the server did not start: {exc}")
            return 2
        sampler.start()
        idle_mb = server.rss_bytes() / 2**20
        print(f"server on {server.url}, {idle_mb:.0f} MB resident before any page", flush=True)
        log_start = server.log_size()
        try:
            asyncio.run(asyncio.wait_for(scenario(server, args, report), timeout=args.timeout_s))
        except (asyncio.TimeoutError, TimeoutError):
            timed_out = True
            report.error("load test", f"did not finish within --timeout-s {args.timeout_s:g}")
        except Exception as exc:
            report.error("load test", f"{type(exc).__name__}: {exc}")
        sampler.stop()
        for tb in server_log_errors(server.log_since(log_start)):
            report.error("server log", tb.strip().splitlines()[-1])
    finally:
        server.cleanup()
    elapsed = time.perf_counter() - started

    expected_steps = args.pages * args.steps
    correct = sum(1 for d, p in report.predictions if d == p)
    peak_mb = sampler.peak / 2**20
    print("\n==== load test summary ====")
    print(f"command=python benchmarks/load_test.py --pages {args.pages} --steps {args.steps} "
          f"--timeout-s {args.timeout_s:g}")
    print(f"cpu_cores={os.cpu_count()} elapsed_s={elapsed:.0f}")
    print(f"pages={args.pages} steps_per_page={args.steps} steps_measured={len(report.step_ms)}/{expected_steps}")
    print(f"step_p50_ms={percentile(report.step_ms, 50):.0f}")
    print(f"step_p95_ms={percentile(report.step_ms, 95):.0f}")
    print(f"step_max_ms={max(report.step_ms, default=float('nan')):.0f}")
    print(f"step_wall_p50_ms={percentile(report.step_wall_ms, 50):.0f}  (Playwright click() to text seen, "
          "includes the driver's own overhead)")
    print(f"classify_p50_ms={percentile(report.classify_ms, 50):.0f}  (last stroke drawn to prediction shown)")
    print(f"classify_p95_ms={percentile(report.classify_ms, 95):.0f}")
    print(f"digits_classified={len(report.predictions)}/{args.pages} correct={correct} "
          f"(drawn->predicted: {' '.join(f'{d}->{p}' for d, p in report.predictions)})")
    print(f"errors={len(report.errors)}")
    print(f"peak_rss_mb={peak_mb:.0f}  (server process group, {sampler.samples} samples every 0.2 s; "
          f"idle before pages {idle_mb:.0f})")
    print(f"third_job_queued={report.third_job_queued}")
    print(f"training_runs_throughout={report.training_throughout}/2  (at the end: "
          f"{' | '.join(report.train_progress)})")
    print(f"timed_out={timed_out}")
    for e in report.errors:
        print(f"  error: {e[:300]}")
    if timed_out:
        return 2
    ok = (not report.errors and report.third_job_queued and report.training_throughout == 2
          and len(report.step_ms) == expected_steps and peak_mb < MEMORY_TARGET_MB)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
