"""A class at once: one ConvViz server, training runs on its Dask workers, and N browser pages stepping and drawing.

Not a test: run from the repository root (needs Debian's Chromium; loopback only; stops by itself after
``--timeout-s`` at the latest)::

    python benchmarks/load_test.py --pages 16 --steps 20 --timeout-s 1200

What it does, against one fresh ``streamlit run app.py`` (``tests/e2e/server.py``; the embedded Dask cluster,
``CONVVIZ_MAX_JOBS`` = 2 workers):

1. **A lone run.** A Train page starts run A (the bundled sample, 50 epochs, so it trains throughout); once
   it trains, its digits/s (the page's progress line: the throughput of its last 50 batches) is read every
   second for ``--lone-s`` seconds with nothing else on the server: the lone run's figure (median).
2. **Two runs.** A second Train page starts run B. A third and a fourth ask for runs C and D: with both
   workers busy the pages must say "Queued, position 1" and "Queued, position 2" (with a Stop button).
3. **The class.** ``--pages`` headless Chromium pages (one browser, one context each) arrive over
   ``--ramp-s`` seconds (page i after i/pages of it), as a class does, rather than in the same instant. Each
   steps the Convolution page ``--steps`` times by clicking the figure's slider at the next window position
   (9 positions, then back to 1), pausing ``--think-s`` seconds (×0.5–1.5, seeded) between steps like a
   reader, then opens the Draw page, draws a digit (``tests/e2e/strokes.py``'s paths) and waits for the
   network's answer. Meanwhile runs A and B's digits/s are read from their pages every 2 s.
4. **The queue moves.** Runs A and B must still be training. A is stopped: C must start (leave "Queued");
   D moves to "Queued, position 1". B is stopped: D must start. Then C and D are stopped.

Measured in the browser: a **step** from the ``mousedown`` on the slider (a capturing listener) to the
written sum above the panels naming the new window position; a **classification** from the last stroke's
``mouseup`` to the last change of the current "Prediction: d" heading before the page's script runs end (the
finished drawing's, not a partial one's; when the last run drew the same heading again, the end of that run:
the same watcher as ``benchmarks/draw_latency.py``). **Memory**: ``VmRSS`` sampled every 0.2 s, the
server process apart from the rest of its process group (the Dask workers and their nannies), peaks of each.
``errors``: exception boxes and error alerts on any page, failed or timed-out page actions, and tracebacks in
the server log.

Targets (issue 12): errors 0; step p95 <= 100 ms; classification p95 <= 2 s; runs A and B each at >= 70% of
the lone run's digits/s while the class works; C and D queued, then started in order as workers free.
Exit status: 0 when every target is met, 1 otherwise, 2 on a setup failure or the overall timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from browser_pages import (CHROMIUM, CHROMIUM_ARGS, N_POSITIONS, PREDICTION_DONE_JS, VIEWPORT,  # noqa: E402
                       WATCH_PREDICTION_JS, chromium_found, digits_per_second, draw_digit, new_page, open_page,
                       page_errors, percentile, position_text, progress_text, slider_targets, start_training,
                       stop_run, wait_for_run, wait_training)
from cpu_meter import CpuMeter  # noqa: E402
from tests.e2e import strokes  # noqa: E402
from tests.e2e.server import StreamlitServer, group_pids, server_log_errors  # noqa: E402

STEP_P95_MS, CLASSIFY_P95_MS, RUN_SHARE = 100, 2000, 0.7
"""Targets: step p95, classification p95, and each run's digits/s under load as a share of the lone run's."""

_SUM_SELECTOR = '.st-key-conv_fig_steps .js-plotly-plot .annotation[data-index="0"] .annotation-text'
_MOUSEDOWN_JS = """() => {
    if (window.__lt_listening) return;
    window.__lt_listening = true;
    document.addEventListener('mousedown', () => { window.__lt_down = performance.now(); }, true);
}"""
_SUM_SHOWS_JS = """([selector, expected]) => {
    const t = document.querySelector(selector);
    return t && t.textContent.startsWith(expected) ? performance.now() : null;
}"""


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemorySampler(threading.Thread):
    """Every ``every_s`` s: ``VmRSS`` of the server process and, apart, of the rest of its process group (the Dask
    workers and nannies it started); keeps the peak of each and of their sum."""

    def __init__(self, server: StreamlitServer, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.server, self.every_s = server, every_s
        self.peak_server = self.peak_workers = self.peak_total = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            proc = self.server.proc
            if proc is not None:
                main = _rss(proc.pid)
                others = sum(_rss(p) for p in group_pids(proc.pid) if p != proc.pid)
                self.peak_server = max(self.peak_server, main)
                self.peak_workers = max(self.peak_workers, others)
                self.peak_total = max(self.peak_total, main + others)
                self.samples += 1
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class Report:
    """What the run saw, filled in as it goes."""

    def __init__(self):
        self.step_ms: list[float] = []
        self.classify_ms: list[float] = []
        self.run_start_ms: list[float] = []
        self.errors: list[str] = []
        self.predictions: list[tuple[int, int | None]] = []
        self.lone_dps: list[float] = []
        self.loaded_dps: dict[str, list[float]] = {"A": [], "B": []}
        self.queue: dict[str, str] = {}
        self.queue_ok: dict[str, bool] = {}
        self.training_throughout = 0
        self.learners_s = float("nan")
        self.cpu: dict[str, str] = {}  # phase -> CpuMeter.describe()
        self.t0 = time.perf_counter()

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")
        print(f"  ERROR {where}: {what[:500]}", flush=True)


async def learner(browser, base_url: str, index: int, args, report: Report, timeout_ms: float) -> None:
    """One learner: step the Convolution page ``args.steps`` times with the slider, then draw and classify a digit."""
    where = f"page {index}"
    rng = random.Random(index)
    await asyncio.sleep(args.ramp_s * index / args.pages)
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    try:
        await open_page(page, "/Convolution", "Convolution", timeout_ms)
        await page.evaluate(_MOUSEDOWN_JS)
        await page.wait_for_function(_SUM_SHOWS_JS, arg=[_SUM_SELECTOR, position_text(1)], timeout=timeout_ms)
        await page.locator(".st-key-conv_fig_steps .slider-rail-rect").scroll_into_view_if_needed()
        targets = await slider_targets(page)
        if len(targets) != N_POSITIONS:
            raise RuntimeError(f"the slider shows {len(targets)} positions, expected {N_POSITIONS}")
        position = 1
        for _ in range(args.steps):
            await asyncio.sleep(args.think_s * rng.uniform(0.5, 1.5))
            position = position % N_POSITIONS + 1
            await page.evaluate("() => { window.__lt_down = null; }")
            x, y = targets[position - 1]
            await page.mouse.click(x, y)
            done = await (await page.wait_for_function(_SUM_SHOWS_JS, arg=[_SUM_SELECTOR, position_text(position)],
                                                       timeout=timeout_ms, polling="raf")).json_value()
            down = await page.evaluate("() => window.__lt_down")
            if down is None:
                report.error(where, f"the click at position {position} was not seen by the page")
            else:
                report.step_ms.append(done - down)
        for text in await page_errors(page):
            report.error(f"{where} /Convolution", text)

        digit = index % 10
        await open_page(page, "/Draw", "Draw", timeout_ms)
        await page.locator(strokes.CANVAS_SELECTOR).first.wait_for(timeout=timeout_ms)
        await page.get_by_text("Draw a digit on the canvas").wait_for(timeout=timeout_ms)
        await page.evaluate(WATCH_PREDICTION_JS)
        await draw_digit(page, digit)
        ms, to_run = await (await page.wait_for_function(PREDICTION_DONE_JS, timeout=timeout_ms,
                                                         polling=50)).json_value()
        report.classify_ms.append(ms)
        report.run_start_ms.append(to_run)
        await wait_for_run(page, timeout_ms)
        heading = await page.get_by_role("heading", name=re.compile(r"^Prediction: \d")).first.inner_text()
        got = re.match(r"Prediction: (\d)", heading)
        report.predictions.append((digit, int(got.group(1)) if got else None))
        print(f"{where}: {args.steps} steps, then drew a {digit}: predicted {report.predictions[-1][1]} "
              f"{ms:.0f} ms after the last stroke; done at {time.perf_counter() - report.t0:.0f} s", flush=True)
        for text in await page_errors(page):
            report.error(f"{where} /Draw", text)
    except Exception as exc:  # a timeout or a failed action: count it, keep the other pages going
        report.error(where, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        await context.close()


async def watch_rates(pages: dict, report: Report, stop: asyncio.Event, every_s: float = 2.0) -> None:
    """Read runs A and B's digits/s from their pages every ``every_s`` s until ``stop`` is set."""
    while not stop.is_set():
        for name, page in pages.items():
            rate = digits_per_second(await progress_text(page))
            if rate is not None:
                report.loaded_dps[name].append(rate)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except asyncio.TimeoutError:
            pass


async def wait_started(page, timeout_ms: float) -> str:
    """Until a queued run's page no longer says "Queued" (loading, first batch or training); returns the line."""
    deadline = time.monotonic() + timeout_ms / 1000
    text = ""
    while time.monotonic() < deadline:
        text = await progress_text(page)
        if text and not text.startswith("Queued"):
            return text
        await asyncio.sleep(0.5)
    raise TimeoutError(f"still queued after {timeout_ms / 1000:.0f} s: {text!r}")


async def lone_run(trainers: dict, meter: CpuMeter, args, report: Report, timeout_ms: float) -> None:
    """Phase 1: run A alone; its digits/s read every second for ``args.lone_s`` s (the lone run's figure)."""
    await start_training(trainers["A"], timeout_ms)
    await wait_training(trainers["A"], timeout_ms)
    await asyncio.sleep(5)  # past the first batches' warm-up
    mark = meter.snapshot()
    end = time.monotonic() + args.lone_s
    while time.monotonic() < end:
        rate = digits_per_second(await progress_text(trainers["A"]))
        if rate is not None:
            report.lone_dps.append(rate)
        await asyncio.sleep(1)
    report.cpu["the lone run"] = meter.describe(mark)
    print(f"run A alone: median {statistics.median(report.lone_dps):,.0f} digits/s "
          f"({len(report.lone_dps)} readings)", flush=True)


async def queue_up(trainers: dict, report: Report, timeout_ms: float) -> None:
    """Phase 2: run B starts; C and D must say "Queued, position 1" and "Queued, position 2", with a Stop button."""
    await start_training(trainers["B"], timeout_ms)
    await wait_training(trainers["B"], timeout_ms)
    for name, place in (("C", 1), ("D", 2)):
        await start_training(trainers[name], timeout_ms)
        queued = trainers[name].locator("[data-testid=stProgress]").first.filter(
            has_text=f"Queued, position {place}")
        try:
            await queued.wait_for(timeout=timeout_ms)
            report.queue[f"{name} asked"] = (await queued.inner_text()).strip()
            stop = trainers[name].get_by_role("button", name="Stop training", exact=True)
            report.queue_ok[f"{name} queued at position {place}"] = await stop.count() == 1
        except Exception as exc:
            report.queue_ok[f"{name} queued at position {place}"] = False
            report.error(f"training page {name}", f"not queued at position {place}: {type(exc).__name__}")
    print(f"queued: {report.queue}", flush=True)


async def the_class(browser, base_url: str, trainers: dict, meter: CpuMeter, args, report: Report,
                    timeout_ms: float) -> None:
    """Phase 3: ``args.pages`` learners step and draw while runs A and B train (their digits/s read every 2 s)."""
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(watch_rates({"A": trainers["A"], "B": trainers["B"]}, report, stop_watch))
    t0 = report.t0 = time.perf_counter()
    mark = meter.snapshot()
    await asyncio.gather(*(learner(browser, base_url, i, args, report, timeout_ms) for i in range(args.pages)))
    report.learners_s = time.perf_counter() - t0
    report.cpu["the class"] = meter.describe(mark)
    meter.stop()
    stop_watch.set()
    await watcher
    print(f"{args.pages} learners done in {report.learners_s:.1f} s", flush=True)


async def started_after(page, name: str, freed_by: str, report: Report, timeout_ms: float) -> bool:
    """Whether queued run ``name`` started (within ``timeout_ms``) once run ``freed_by`` stopped; kept in the report."""
    check = f"{name} started when {freed_by}'s worker freed"
    try:
        report.queue[f"{name} after {freed_by} stopped"] = await wait_started(page, timeout_ms)
    except Exception as exc:
        report.queue_ok[check] = False
        report.error(f"training page {name}", f"{type(exc).__name__}: {exc}")
        return False
    report.queue_ok[check] = True
    return True


async def queue_moves(trainers: dict, report: Report, timeout_ms: float) -> None:
    """Phase 4: A and B trained throughout; stopping A starts C (D moves to position 1), stopping B starts D."""
    for name in "AB":
        text = await progress_text(trainers[name])
        if digits_per_second(text) is not None:
            report.training_throughout += 1
        else:
            report.error(f"training page {name}", f"not training any more: {text!r}")
    await stop_run(trainers["A"], timeout_ms)
    if await started_after(trainers["C"], "C", "A", report, timeout_ms):
        d_text = await progress_text(trainers["D"])
        report.queue["D after A stopped"] = d_text
        report.queue_ok["D moved to position 1"] = d_text.startswith("Queued, position 1")
    await stop_run(trainers["B"], timeout_ms)
    await started_after(trainers["D"], "D", "B", report, timeout_ms)
    for name in "CD":
        if await trainers[name].get_by_role("button", name="Stop training", exact=True).count():
            await stop_run(trainers[name], timeout_ms)
    for name, page in trainers.items():
        for err in await page_errors(page):
            report.error(f"training page {name}", err)


async def scenario(server: StreamlitServer, args, report: Report) -> None:
    """The four phases of the module docstring, in one browser."""
    from playwright.async_api import async_playwright

    timeout_ms = args.action_timeout_s * 1000
    base_url = server.url + "/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            trainers = {}
            for name in "ABCD":
                trainers[name] = await new_page(browser, base_url, timeout_ms)
                await open_page(trainers[name], "/Train", "Train", timeout_ms)
            meter = CpuMeter(server.proc.pid).start()
            await lone_run(trainers, meter, args, report, timeout_ms)
            await queue_up(trainers, report, timeout_ms)
            await the_class(browser, base_url, trainers, meter, args, report, timeout_ms)
            await queue_moves(trainers, report, timeout_ms)
        finally:
            await browser.close()


OPTIONS = (
    ("--pages", int, 16, "learner pages at once (default 16)"),
    ("--steps", int, 20, "slider steps per page (default 20)"),
    ("--think-s", float, 1.0, "a learner's pause between two steps, seconds, x0.5-1.5 at random (default 1)"),
    ("--ramp-s", float, 60, "the pages arrive over this many seconds, page i after i/pages of it (default 60)"),
    ("--lone-s", float, 30, "seconds the lone run's digits/s is read (default 30)"),
    ("--timeout-s", float, 1200, "the whole run stops after this (default 1200)"),
    ("--action-timeout-s", float, 180, "longest wait for one page action (default 180)"),
)
"""The command line: flag, type, default, help."""


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (:data:`OPTIONS`), checked: counts >= 1, durations > 0 (argparse's error otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    args = parser.parse_args(argv)
    if args.pages < 1 or args.steps < 1 or args.think_s < 0 or args.ramp_s < 0 or args.lone_s <= 0 \
            or args.timeout_s <= 0 or args.action_timeout_s <= 0:
        parser.error(f"--pages and --steps must be >= 1, --think-s >= 0 and the durations > 0, got pages={args.pages}, "
                     f"steps={args.steps}, think_s={args.think_s}, lone_s={args.lone_s}, timeout_s={args.timeout_s}, "
                     f"action_timeout_s={args.action_timeout_s}")
    return args


def run_load_test(args, report: Report, server: StreamlitServer, sampler: MemorySampler) -> bool | None:
    """Start the server, run :func:`scenario` within ``args.timeout_s``, read the server log; always clean up.

    Returns:
        Whether it timed out, or None when the server did not start.
    """
    timed_out = False
    try:
        try:
            server.start(timeout=120)
        except RuntimeError as exc:
            print(f"the server did not start: {exc}")
            return None
        sampler.start()
        print(f"server on {server.url}", flush=True)
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
    return timed_out


def print_summary(args, report: Report, sampler: MemorySampler, elapsed: float, timed_out: bool) -> dict[str, bool]:
    """Print the figures and each target's PASS / FAIL; returns ``{target: met}``."""
    expected_steps = args.pages * args.steps
    correct = sum(1 for d, p in report.predictions if d == p)
    lone = statistics.median(report.lone_dps) if report.lone_dps else float("nan")
    shares = {name: (statistics.median(v) / lone if v and lone == lone else float("nan"))
              for name, v in report.loaded_dps.items()}
    checks = {
        "errors = 0": not report.errors,
        f"every step measured ({expected_steps})": len(report.step_ms) == expected_steps,
        f"step p95 <= {STEP_P95_MS} ms": percentile(report.step_ms, 95) <= STEP_P95_MS,
        f"classification p95 <= {CLASSIFY_P95_MS} ms": percentile(report.classify_ms, 95) <= CLASSIFY_P95_MS,
        f"runs A and B at >= {RUN_SHARE:.0%} of the lone run": all(s >= RUN_SHARE for s in shares.values()),
        "A and B trained throughout": report.training_throughout == 2,
        **report.queue_ok,
    }
    print("\n==== load test summary ====")
    print(f"command=python benchmarks/load_test.py --pages {args.pages} --steps {args.steps} --think-s {args.think_s:g} "
          f"--ramp-s {args.ramp_s:g} --lone-s {args.lone_s:g} --timeout-s {args.timeout_s:g}")
    print(f"cpu_cores={os.cpu_count()} elapsed_s={elapsed:.0f} learners_s={report.learners_s:.0f} "
          f"load_average_1min_at_end={os.getloadavg()[0]:.1f}")
    print(f"pages={args.pages} steps_per_page={args.steps} steps_measured={len(report.step_ms)}/{expected_steps}")
    print(f"step_ms p50={percentile(report.step_ms, 50):.0f} p95={percentile(report.step_ms, 95):.0f} "
          f"max={max(report.step_ms, default=float('nan')):.0f}  (mousedown on the slider to the new written sum)")
    print(f"classify_ms p50={percentile(report.classify_ms, 50):.0f} p95={percentile(report.classify_ms, 95):.0f} "
          f"max={max(report.classify_ms, default=float('nan')):.0f}  (last stroke's mouseup to the prediction; "
          f"the page's script run started after p50 {percentile(report.run_start_ms, 50):.0f} ms)")
    print(f"digits_classified={len(report.predictions)}/{args.pages} correct={correct} "
          f"(drawn->predicted: {' '.join(f'{d}->{p}' for d, p in report.predictions)})")
    print(f"lone_run_digits_per_s={lone:,.0f} (median of {len(report.lone_dps)} readings)")
    for name, values in report.loaded_dps.items():
        med = statistics.median(values) if values else float("nan")
        print(f"run_{name}_digits_per_s_during_class={med:,.0f} (median of {len(values)} readings; "
              f"{shares[name]:.0%} of the lone run)")
    for phase, text in report.cpu.items():
        print(f"{text}  (average during {phase}; browsers = every Chromium process, rest = other people's)")
    print(f"peak_rss_mb server={sampler.peak_server / 2**20:.0f} workers={sampler.peak_workers / 2**20:.0f} "
          f"together={sampler.peak_total / 2**20:.0f}  ({sampler.samples} samples every 0.2 s; workers = the rest of "
          "the server's process group: Dask nannies and worker processes)")
    for what, text in report.queue.items():
        print(f"queue: {what}: {text[:110]!r}")
    print(f"errors={len(report.errors)} timed_out={timed_out}")
    for e in report.errors:
        print(f"  error: {e[:300]}")
    for what, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    return checks


def main(argv=None) -> int:
    args = parse_args(argv)
    if not chromium_found():
        return 2
    report = Report()
    server = StreamlitServer()
    sampler = MemorySampler(server)
    started = time.perf_counter()
    timed_out = run_load_test(args, report, server, sampler)
    if timed_out is None:
        return 2
    checks = print_summary(args, report, sampler, time.perf_counter() - started, timed_out)
    if timed_out:
        return 2
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
