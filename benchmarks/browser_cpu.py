"""What a learner's browser spends: Chromium CPU per step of the Convolution page, and per second watching a run.

Not a test: run from the repository root (needs Debian's Chromium; loopback only; stops by itself)::

    python benchmarks/browser_cpu.py
    python benchmarks/browser_cpu.py --app /path/to/an/older/checkout/app.py    # the same, on other code

A class's browsers run on the learners' own machines, but ConvViz's load tests put them on the server's machine,
so what a page costs in the browser decides how much CPU is left for the server and the training workers there.
CPU is read from ``/proc`` (``utime + stime`` of every Chromium process this script starts), so it counts CPU
seconds, not waiting: a busy machine slows the pages but changes these figures little.

* ``step``: the Convolution page's step-through, ``--steps`` clicks on the slider (one every 0.5 s, the pace of
  Play), less the same page's CPU over the same time without clicks: milliseconds of CPU per step.
* ``watch``: a Train page watching its run train (the bundled sample), ``--watch-s`` seconds: milliseconds of CPU
  per second (1000 = one core kept busy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_meter import CpuMeter  # noqa: E402
from browser_pages import (CHROMIUM, CHROMIUM_ARGS, N_POSITIONS, VIEWPORT, chromium_found, open_page,  # noqa: E402
                       slider_targets, start_training, stop_run, wait_training)
from tests.e2e.server import StreamlitServer  # noqa: E402


def browser_s(meter: CpuMeter, since: dict) -> float:
    """CPU seconds of the browsers since ``since`` (a :meth:`CpuMeter.snapshot`)."""
    return meter.snapshot()["browsers"] - since["browsers"]


async def measure(server: StreamlitServer, args) -> dict:
    from playwright.async_api import async_playwright

    meter = CpuMeter(server.proc.pid, every_s=0.5).start()
    out = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(base_url=server.url + "/", viewport=VIEWPORT)
            page = await context.new_page()
            await open_page(page, "/Convolution", "Convolution", 120_000)
            await page.locator(".st-key-conv_fig_steps .slider-rail-rect").scroll_into_view_if_needed()
            await page.mouse.move(5, 5)
            await asyncio.sleep(3)
            targets = await slider_targets(page)
            mark = meter.snapshot()
            await asyncio.sleep(args.steps * 0.5)
            idle = browser_s(meter, mark)
            mark = meter.snapshot()
            for k in range(args.steps):
                x, y = targets[(k + 1) % N_POSITIONS]
                await page.mouse.click(x, y)
                await asyncio.sleep(0.5)
            stepping = browser_s(meter, mark)
            out["step_ms"] = (stepping - idle) / args.steps * 1000
            out["idle_ms_per_s"] = idle / (args.steps * 0.5) * 1000
            await context.close()

            context = await browser.new_context(base_url=server.url + "/", viewport=VIEWPORT)
            page = await context.new_page()
            await open_page(page, "/Train", "Train", 120_000)
            await start_training(page, 120_000)
            await wait_training(page, 120_000)
            await page.mouse.move(5, 5)
            await asyncio.sleep(5)
            mark, t0 = meter.snapshot(), time.perf_counter()
            await asyncio.sleep(args.watch_s)
            out["watch_ms_per_s"] = browser_s(meter, mark) / (time.perf_counter() - t0) * 1000
            await stop_run(page, 120_000)
            await context.close()
        finally:
            await browser.close()
            meter.stop()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="app.py", help="the app script to serve (default: this checkout's app.py)")
    parser.add_argument("--steps", type=int, default=30, help="slider clicks on the Convolution page (default 30)")
    parser.add_argument("--watch-s", type=float, default=30, help="seconds watching a run train (default 30)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.watch_s <= 0:
        parser.error(f"--steps must be >= 1 and --watch-s > 0, got {args.steps} and {args.watch_s}")
    if not chromium_found():
        return 2
    server = StreamlitServer(app=args.app)
    try:
        server.start(timeout=120)
        r = asyncio.run(measure(server, args))
    finally:
        server.cleanup()
    print(f"app={args.app} load_average_1min={os.getloadavg()[0]:.1f}")
    print(f"step: {r['step_ms']:.0f} ms of browser CPU per slider step ({args.steps} steps, 2 a second; the page "
          f"idle: {r['idle_ms_per_s']:.0f} ms/s, subtracted)")
    print(f"watch: {r['watch_ms_per_s']:.0f} ms of browser CPU per second watching a run train "
          f"({args.watch_s:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
