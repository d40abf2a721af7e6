"""The first render of a page opened first on a fresh server, and when the training cluster's workers are up.

Each round starts a fresh ``streamlit run <app>`` (nothing cached, no cluster), opens ``--path`` (default
``/Convolution``) in headless Chromium at 1280x800 and prints, in seconds from ``page.goto``: the page's heading
shown, its first script run finished, and the embedded Dask cluster's worker processes started (the server's
descendants running ``multiprocessing.spawn`` / ``distributed``; "-" when none appeared within ``--wait`` s).

Compare two entry scripts side by side (timings drift with the machine's load): ``--app app.py`` against a copy of
the previous one, e.g. ``git show <commit>:app.py > app_before.py``, rounds interleaved::

    nice -n 19 python benchmarks/first_render.py --app app_before.py --app app.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.browser_pages import CHROMIUM, CHROMIUM_ARGS, chromium_found, new_page, wait_for_run  # noqa: E402
from tests.e2e import server as e2e_server  # noqa: E402


def cluster_workers(pid: int) -> int:
    """How many of ``pid``'s descendants are Dask worker processes (spawned Python children)."""
    import psutil

    count = 0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        count += "multiprocessing" in command or "distributed" in command
    return count


async def one_round(app: str, path: str, heading: str, wait_s: float) -> tuple[float, float, float | None]:
    """``(heading shown, first run done, workers up or None)``, seconds after ``goto``, on a fresh server."""
    from playwright.async_api import async_playwright

    with e2e_server.StreamlitServer(app=app) as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await new_page(browser, server.url, 120_000)
            t0 = time.perf_counter()
            await page.goto(path)
            await page.get_by_role("heading", name=re.compile(re.escape(heading), re.IGNORECASE)).first.wait_for()
            shown = time.perf_counter() - t0
            await wait_for_run(page, 120_000)
            done = time.perf_counter() - t0
            up = None
            while time.perf_counter() - t0 < wait_s:
                if cluster_workers(server.proc.pid) > 0:
                    up = time.perf_counter() - t0
                    break
                await asyncio.sleep(0.25)
            await browser.close()
    return shown, done, up


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", action="append", help="entry script(s), relative to the repository root")
    parser.add_argument("--path", default="/Convolution")
    parser.add_argument("--heading", default="Convolution, one window at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the workers after goto")
    parser.add_argument("--port", type=int, default=None, help="the server's port (default: a free one)")
    args = parser.parse_args(argv)
    if not chromium_found():
        return 1
    if args.port:
        e2e_server.free_port = lambda host="127.0.0.1": args.port
    apps = args.app or ["app.py"]
    print(f"{'app':<16} {'round':>5} {'heading s':>10} {'first run s':>12} {'workers up s':>13}")
    for round_ in range(1, args.rounds + 1):
        for app in apps:
            shown, done, up = asyncio.run(one_round(app, args.path, args.heading, args.wait))
            print(f"{app:<16} {round_:>5} {shown:>10.2f} {done:>12.2f} {'-' if up is None else f'{up:.1f}':>13}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
