"""Filter atlas: the first computation for the shipped model, and the page opened a second time.

Not a test: run from the repository root::

    python benchmarks/atlas_time.py                 # the library, then the page in Chromium
    python benchmarks/atlas_time.py --no-browser    # the library only

1. **Library**, in this process (TensorFlow imported and the model loaded first, not counted):
   :func:`convviz.atlas.compute_atlas` on the shipped model and the test digits the page would search (the
   full MNIST's 10,000 when ``CONVVIZ_MNIST`` or Keras's cache has it, else the bundled sample's 1,000),
   wall-clock and CPU seconds per stage (the top-patch search, each layer's synthesis, the classes: where the
   progress bar's message changes) and in all; then what a second opening costs without the server's memory:
   :func:`convviz.atlas.load_atlas` of the file written, and the page's four figures built.
2. **The page** (needs Debian's Chromium): a fresh ``streamlit run app.py`` with an empty runs folder;
   Chromium opens ``/Filter_Atlas`` and waits for its four figures: the first time the atlas is computed
   (the progress bar shows), seconds from ``goto`` to the figures drawn. Then, ``--reopen`` (3) times, the
   page opened again three ways: in a new browser session (nothing cached: the app's and Plotly's JavaScript
   loaded again), in a new tab of that browser, and from the Draw page through the sidebar (the same
   session); seconds from ``goto`` (or the click) to the figures drawn. For comparison, the Convolution page
   (numpy only, no TensorFlow) opened in a new tab the same way. The browser runs on the server's machine here, so on
   a busy 2-core machine it competes with the server for the cores.

Prints the machine (CPU cores, load average) and every figure; targets: first computation under 30 s on
2 cores, second opening under 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FIRST_TARGET_S = 30.0
SECOND_TARGET_S = 2.0
CHARTS = ("atlas_fig_patches", "atlas_fig_synth", "atlas_fig_filter", "atlas_fig_classes")


def machine() -> str:
    load = os.getloadavg()
    return f"cpus={os.cpu_count()} load_average={load[0]:.2f},{load[1]:.2f},{load[2]:.2f}"


def library() -> None:
    from convviz import atlas as at
    from convviz import figures_atlas as fa
    from convviz.data import MNISTUnavailableError, load_mnist, load_sample
    from convviz.model import DEFAULT_MODEL_PATH, load_model

    model = load_model(DEFAULT_MODEL_PATH)
    try:
        (_, _), (x, y) = load_mnist(download=False)
        source = "full MNIST test set"
    except (MNISTUnavailableError, ValueError):
        (_, _), (x, y) = load_sample()
        source = "bundled sample's test digits"
    print(f"library: shipped model, {len(x):,} digits of the {source}; {machine()}")
    stages = []  # (message, wall s, cpu s): a stage lasts from the previous stage's end to its message's last report
    wall, cpu = time.perf_counter(), time.process_time()
    last = {"message": None, "wall": wall, "cpu": cpu}

    def progress(fraction, message):
        now = (time.perf_counter(), time.process_time())
        if last["message"] not in (None, message):
            stages.append((last["message"], last["end_wall"] - last["wall"], last["end_cpu"] - last["cpu"]))
            last.update(wall=last["end_wall"], cpu=last["end_cpu"])
        last.update(message=message, end_wall=now[0], end_cpu=now[1])

    result = at.compute_atlas(model, x, y, source, progress=progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for message, stage_wall, stage_cpu in stages:
        print(f"  {message:<32} wall {stage_wall:6.2f} s  cpu {stage_cpu:6.2f} s")
    print(f"first_computation_wall_s={wall:.2f}")
    print(f"first_computation_cpu_s={cpu:.2f}")
    with tempfile.TemporaryDirectory(prefix="convviz-atlas-") as tmp:
        path = at.save_atlas(result, Path(tmp) / "shipped.atlas.npz")
        began = time.perf_counter()
        back = at.load_atlas(path, model)
        loaded = time.perf_counter() - began
        began = time.perf_counter()
        for name, layer in back.layers.items():
            fa.patches_figure(layer.patches).to_json()
            fa.synthesis_figure(layer.synthesis, name).to_json()
        fa.filter_figure(back.layers["conv2"].patches, 0, back.layers["conv2"].synthesis).to_json()
        fa.class_figure(back.classes).to_json()
        figures = time.perf_counter() - began
        print(f"atlas_file_bytes={path.stat().st_size}")
    print(f"load_atlas_s={loaded:.3f}")
    print(f"figures_s={figures:.3f} (both layers' grids, one filter, the classes; built and serialised)")


DRAWN_JS = "(keys) => keys.every(k => document.querySelector(`.st-key-${k} .js-plotly-plot .main-svg`))"


BASELINE_DRAWN_JS = ("() => document.querySelector('[data-testid=stApp][data-test-script-state=notRunning]') && "
                     "document.querySelectorAll('[data-testid=stPlotlyChart]').length > 0 && Array.from("
                     "document.querySelectorAll('[data-testid=stPlotlyChart]')).every(e => e.querySelector('.main-svg'))")


def _until_drawn(tab, began: float) -> tuple[float, bool]:
    """Seconds from ``began`` until the atlas's four figures are drawn, and whether a progress bar showed."""
    saw_progress = False
    while not tab.evaluate(DRAWN_JS, list(CHARTS)):
        saw_progress = saw_progress or tab.locator("[data-testid=stProgress]").count() > 0
        if time.perf_counter() - began > 600:
            raise TimeoutError("the atlas was not drawn within 600 s")
        tab.wait_for_timeout(20)
    return time.perf_counter() - began, saw_progress


def _timed(tab, open_it) -> tuple[float, bool]:
    """``open_it()`` (a ``goto`` or a click), then seconds until the atlas is drawn and whether a progress bar showed."""
    began = time.perf_counter()
    open_it()
    return _until_drawn(tab, began)


def page(reopen: int) -> None:
    from playwright.sync_api import sync_playwright

    from e2e.server import StreamlitServer

    with tempfile.TemporaryDirectory(prefix="convviz-atlas-runs-") as runs, \
            StreamlitServer(runs_dir=runs) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        url = server.url + "/Filter_Atlas"
        try:
            print(f"page: a fresh server, runs folder {runs}; {machine()}")
            for attempt in range(1 + reopen):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                tab = context.new_page()
                seconds, progress = _timed(tab, lambda: tab.goto(url))
                if attempt == 0:
                    print(f"page_first_open_s={seconds:.2f} (progress bar shown: {progress}; includes the server's "
                          "first TensorFlow import, model and MNIST loads)")
                    context.close()
                    continue
                print(f"page_second_open_new_browser_s={seconds:.2f} (a new browser session, nothing cached in it; "
                      f"progress bar shown: {progress})")
                other = context.new_page()
                seconds, progress = _timed(other, lambda: other.goto(url))
                print(f"page_second_open_new_tab_s={seconds:.2f} (a new tab of the same browser; progress bar "
                      f"shown: {progress})")
                other.get_by_role("link", name="Draw").click()
                other.get_by_role("heading", name="Draw a digit").wait_for()
                other.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]")
                seconds, progress = _timed(other, lambda: other.get_by_role("link", name="Filter Atlas").click())
                print(f"page_second_open_from_sidebar_s={seconds:.2f} (from the Draw page through the sidebar: the "
                      f"same session; progress bar shown: {progress})")
                baseline = context.new_page()
                began = time.perf_counter()
                baseline.goto(server.url + "/Convolution")
                baseline.wait_for_function(BASELINE_DRAWN_JS, timeout=600_000)
                print(f"baseline_convolution_new_tab_s={time.perf_counter() - began:.2f} (the Convolution page, numpy "
                      "only, its Plotly figures drawn, in a new tab of the same browser: what a page costs here)")
                context.close()
        finally:
            browser.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="measure the library only")
    parser.add_argument("--no-library", action="store_true", help="measure the page only")
    parser.add_argument("--reopen", type=int, default=3, help="second openings to time (default 3)")
    args = parser.parse_args(argv)
    if not args.no_library:
        import tensorflow  # noqa: F401  (imported first: the page's server has it loaded already)

        library()
    if not args.no_browser:
        page(args.reopen)
    print(f"targets: first computation < {FIRST_TARGET_S:.0f} s on 2 cores, second opening < {SECOND_TARGET_S:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
