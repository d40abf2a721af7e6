"""Regenerate docs/screenshots/*.png (one per page, 1280x800) from the running app.

Starts its own headless Streamlit server on a free loopback port (or uses ``--url``), opens each
page in Debian's Chromium, brings it to the state worth showing (the Draw page gets a "7" drawn on
its canvas, and once more after a visit to the Convolution page, the Train page a short run on the bundled sample, the Convolution and Stacked Channels
pages are shot mid-play, the Convolution page also in its Transposed mode, the Train page's downloads under a short saved run, the Backpropagation page three
times: at a dK step, at a dX step both ways, and with its "Learn a kernel" demo played to the end, and the Train
page once more with a runs folder holding a folder, a link out of it and a run "from the future" next to a good
run, the Filter atlas page twice on conv2: its filters' patches and synthesised inputs, then one filter's
digits whole and the ten classes), and saves a 1280x800 screenshot.

Usage:
    python scripts/screenshots.py                      # every page, own server
    python scripts/screenshots.py --only draw train    # some of them
    python scripts/screenshots.py --url http://127.0.0.1:8501 --out /tmp/shots

Needs Debian's Chromium (``apt-get install chromium``) and Playwright (requirements.txt).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(1, str(ROOT))

from e2e import strokes  # noqa: E402  (tests/e2e on the path above)
from e2e.plotly_slider import SLIDER_POINTS_JS  # noqa: E402
from e2e.server import StreamlitServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
SIZE = {"width": 1280, "height": 800}
TIMEOUT = 90_000  # ms; the first run imports TensorFlow


def wait_for_run(page, timeout=TIMEOUT):
    """Wait until the app is connected and its script has finished a run."""
    page.wait_for_selector("[data-testid=stApp][data-test-connection-state=CONNECTED]", timeout=timeout)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)


def settle(page, ms=800):
    """Wait for the run to end and every Plotly chart on the page to be drawn, then let transitions finish."""
    wait_for_run(page)
    page.wait_for_function("() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart]'))"
                           ".every(e => e.querySelector('.main-svg'))", timeout=TIMEOUT)
    page.wait_for_timeout(ms)


def shoot_home(page):
    settle(page)


def scroll_under_header(locator, margin: int = 150):
    """Scroll Streamlit's main area so the element's top sits ``margin`` px below the window's top (under the header)."""
    locator.evaluate("""(e, margin) => {
        e.scrollIntoView({block: 'start'});
        let box = e.parentElement;
        while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible')) {
            box = box.parentElement;
        }
        (box || document.scrollingElement).scrollBy(0, -margin);
    }""", margin)


def shoot_mid_play(page, key: str, title: str):
    """Press the step-through figure's own Play button and shoot while it plays, at the window titled ``title``."""
    settle(page)
    figure = page.locator(f".st-key-{key}")
    scroll_under_header(figure)
    figure.locator(".updatemenu-button").filter(has_text="Play").click()
    page.mouse.move(5, 790)  # off the figure: no hover label over it
    figure.locator('.annotation[data-index="0"] .annotation-text').filter(has_text=title).wait_for(timeout=TIMEOUT)


def shoot_convolution(page):
    """Mid-play: the window at the middle position (row 2, column 2 of the default 3x3 output)."""
    shoot_mid_play(page, "conv_fig_steps", "Output cell (row 2, column 2)")


def shoot_transposed(page):
    """The Transposed mode with stride 2, padding 1 and output padding 1 (gaps, a cropped border, an extra row and
    column), mid-play from input cell (row 2, column 3) on."""
    settle(page)
    page.locator(".st-key-conv_direction").get_by_text("Transposed", exact=True).click()
    wait_for_run(page)
    page.locator(".st-key-conv_stride input[type=range]").press("ArrowRight")
    wait_for_run(page)
    page.locator(".st-key-conv_padding").get_by_role("combobox").click()
    page.get_by_role("option", name="1", exact=True).click()
    wait_for_run(page)
    page.locator(".st-key-conv_output_padding input").fill("1")
    page.locator(".st-key-conv_output_padding input").press("Enter")
    page.get_by_text("The finished output (10×10, after cropping)").wait_for(timeout=TIMEOUT)
    shoot_mid_play(page, "conv_fig_transposed", "Input cell (row 2, column 3)")


def shoot_stacked_channels(page):
    """Mid-play: the window at row 2, column 1 of the stacked example, 32 channel sums adding up."""
    shoot_mid_play(page, "stack_fig_steps", "Window (row 2, column 1)")


def large_upload_png() -> bytes:
    """A 5000x5000 RGBA PNG (25 Mpixels, the upload limit): a white 7 on a transparent sheet, about 100 kB."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    sheet = Image.new("RGBA", (5000, 5000), (0, 0, 0, 0))
    pen = ImageDraw.Draw(sheet)
    pen.line([(1300, 1100), (3700, 1100), (2200, 4000)], fill=(255, 255, 255, 255), width=420)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(sheet)).save(buffer, "PNG")
    return buffer.getvalue()


def shoot_stacked_upload(page):
    """After a 5000x5000 RGBA upload (issue #15, kind 3): the picture decoded shrunk, its 64 feature maps."""
    settle(page)
    page.locator(".st-key-stack_source").get_by_text("Upload an image").click()
    settle(page)
    page.locator(".st-key-stack_upload input[type=file]").set_input_files(
        {"name": "seven-5000x5000.png", "mimeType": "image/png", "buffer": large_upload_png()})
    page.get_by_text("Input upload").first.wait_for(timeout=TIMEOUT)
    settle(page)
    scroll_under_header(page.get_by_text("2 · Many filters"), margin=10)


def shoot_backprop_editors(page):
    """The input, kernel and target editors open: every button label whole at 1280x800 (issue #15)."""
    settle(page)
    page.get_by_text("Edit the input, the kernel and the loss").click()
    settle(page)
    scroll_under_header(page.locator("[data-testid=stExpander]").first, margin=10)


def shoot_draw(page):
    """Draw a 7 on the canvas and wait for the prediction."""
    settle(page)
    canvas = page.locator("[data-testid=stBidiComponentIsolated] canvas.upper-canvas").first
    canvas.wait_for(timeout=TIMEOUT)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / strokes.CANVAS_SIZE
    for stroke in strokes.canvas_paths(7):
        page.mouse.move(box["x"] + stroke[0][0] * scale, box["y"] + stroke[0][1] * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.up()
    page.wait_for_timeout(1500)  # the canvas sends its image, the script reruns
    settle(page, 1500)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)


def shoot_draw_back(page):
    """Draw a 7, visit the Convolution page through the sidebar and come back: the drawing and its prediction kept."""
    shoot_draw(page)
    for name, path in (("Convolution", "/Convolution"), ("Draw", "/Draw")):
        page.locator("[data-testid=stSidebarNav] a").filter(has_text=re.compile(rf"^\s*{name}\s*$")).click()
        page.wait_for_url(re.compile(re.escape(path) + "$"), timeout=TIMEOUT)
        settle(page, 1500)
    page.get_by_role("heading", name=re.compile(r"^Prediction: \d")).wait_for(timeout=TIMEOUT)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)


def shoot_train(page):
    """Train on the bundled sample into the second epoch and show it in progress: the progress, the curves."""
    settle(page)
    dataset = page.get_by_role("radiogroup", name="Dataset")
    if dataset.count():  # the full MNIST is here too: the bundled sample is quicker
        dataset.get_by_text("Bundled sample").click()
        wait_for_run(page)
    page.get_by_role("button", name="Start training", exact=True).click()
    stop = page.get_by_role("button", name="Stop training", exact=True)
    stop.wait_for(timeout=TIMEOUT)
    progress = page.locator("[data-testid=stProgress]").first
    progress.filter(has_text="Epoch 2/").wait_for(timeout=300_000)  # one epoch done: a test-set point too
    page.wait_for_timeout(3000)  # a few batches into epoch 2; the run is still training when shot
    scroll_under_header(progress)  # the progress bar just under Streamlit's header, the curves below it
    page.wait_for_timeout(500)


ODD_LEARNER = "oddfiles01"
"""The learner key of the "train_odd_files" shot, whose runs folder holds a good run and entries that are no run file."""


def shoot_train_odd_files(page):
    """A learner's runs folder with a good run next to a folder, a link out of the folder and a run from the future:
    one warning each (the folder's Delete… disabled), the good run listed as usual."""
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore, default_runs_dir

    store = RunStore(default_runs_dir() / ODD_LEARNER)
    history = {"batch_loss": [2.3, 1.1, 0.6], "batch_accuracy": [0.1, 0.6, 0.8], "epoch_test_loss": [0.5],
               "epoch_test_accuracy": [0.86], "epoch": 1, "batch": 3, "batches_per_epoch": 3, "epochs": 1,
               "samples_per_second": 900.0, "elapsed_s": 4.0, "eta_s": None, "status": "finished", "error": None}
    config = {"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": 1, "batch_size": 128,
              "learning_rate": 0.001, "seed": 0}
    model = ScratchCNN(make_spec("fast", filters=(4, 8)), seed=0)
    store.save("20261202-100000-fast-a00001", model, preset="fast", dataset="Bundled sample", config=config,
               history=history, name="Run 1")
    store.path("20261202-090000-fast-b00001").mkdir(exist_ok=True)
    outside = store.root.parent / "elsewhere.npz"
    outside.write_bytes(store.path("20261202-100000-fast-a00001").read_bytes())
    if not os.path.lexists(store.path("20261202-080000-fast-b00002")):
        os.symlink(outside, store.path("20261202-080000-fast-b00002"))
    store.save("20261202-070000-fast-b00003", model, preset="fast", dataset="Bundled sample", config=config,
               history=history, created="9999-12-31T00:00:00+00:00", name="Run 2")  # "started" in the year 9999
    page.reload()
    settle(page)
    scroll_under_header(page.get_by_text("Saved runs", exact=True).first)
    page.wait_for_timeout(500)


SUM = '.annotation[data-index="0"] .annotation-text'
"""A step-through figure's written sum (its first annotation)."""


def click_slider(page, key: str, position: int, title: str):
    """Click the step-through figure's slider at 1-based window ``position``, then wait for its written sum to
    show ``title``."""
    page.mouse.click(*page.evaluate(SLIDER_POINTS_JS, key)[position - 1])
    page.locator(f".st-key-{key} {SUM}").filter(has_text=title).wait_for(timeout=TIMEOUT)


def heading(page, text: str):
    return page.get_by_role("heading", name=text).first


def shoot_backprop_dk(page):
    """The kernel gradient at window 5 of 9: the window on the input, grad_output's cell, dK so far."""
    settle(page)
    scroll_under_header(heading(page, "1 · The kernel gradient dK"), margin=0)
    click_slider(page, "bp_fig_dk", 5, "Window (row 2, column 2)")
    page.mouse.move(5, 790)


def shoot_backprop_dx(page):
    """The input gradient both ways, side by side, with padding 1 and stride 2 (shares dropped on the padding,
    zeros spread between grad_output's cells): output cell (2, 1) scattering, input cell (2, 2) gathering."""
    settle(page)
    page.locator(".st-key-bp_stride input[type=range]").press("ArrowRight")  # stride 2: a 2×2 output for now
    page.get_by_text("The target is 3×3 but the output is 2×2").wait_for(timeout=TIMEOUT)
    page.locator(".st-key-bp_padding").get_by_role("combobox").click()
    page.get_by_role("option", name="1", exact=True).click()  # padding 1: 3×3 again
    page.locator(f".st-key-bp_fig_scatter {SUM}").filter(has_text="dropped").wait_for(timeout=TIMEOUT)
    settle(page)
    scroll_under_header(heading(page, "2 · The input gradient dX, two ways"), margin=0)
    click_slider(page, "bp_fig_scatter", 4, "Output cell (row 2, column 1)")
    click_slider(page, "bp_fig_gather", 7, "dX (row 2, column 2)")
    page.mouse.move(5, 790)


def shoot_backprop_learn(page):
    """The "Learn a kernel" demo from its defaults, played to the end: learned within 1e-3, the curves, the maps."""
    settle(page)
    play = page.get_by_role("button", name="▶ Play")
    scroll_under_header(play, margin=60)
    play.click()
    page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="after 500 steps").wait_for(timeout=TIMEOUT)
    settle(page, 1000)
    scroll_under_header(page.get_by_role("button", name="▶ Play"), margin=60)
    page.wait_for_timeout(500)


EXPORT_LEARNER = "shots0export1"
"""The learner key of the "Take your model home" shot: its runs folder gets one short run before the shot."""


def seed_export_run(runs_dir: Path) -> None:
    """Train a small "fast" model for one epoch on the bundled sample (seconds) and save it as this learner's Run 1."""
    from convviz.data import load_sample
    from convviz.jobs import SAMPLE_LABEL
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore
    from convviz.train import TrainConfig, train

    model = ScratchCNN(make_spec("fast", filters=(8, 16)), seed=0)
    config = TrainConfig(epochs=1, batch_size=64, learning_rate=1e-3, seed=0)
    history = train(model, load_sample(), config).snapshot()
    store = RunStore(runs_dir / EXPORT_LEARNER)
    settings = {"preset": "fast", "filters": [8, 16], "kernel_size": 3, "epochs": 1, "batch_size": 64,
                "learning_rate": 1e-3, "seed": 0}
    store.save(store.new_run_id("fast"), model, preset="fast", dataset=SAMPLE_LABEL, config=settings,
               history=history, name="Run 1")


def shoot_train_export(page):
    """The saved run's downloads (weights, Keras script, .keras) and the shipped model's, under the run's charts."""
    settle(page)
    shipped = page.get_by_text("Take the shipped model home").first
    shipped.wait_for(timeout=TIMEOUT)
    shipped.scroll_into_view_if_needed()  # the page's end: both models' downloads, the run's actions above them
    page.wait_for_timeout(500)


HOVER_POINT_JS = """([key, index]) => {
    // the page coordinates of hover marker ``index`` (the figure's second trace) of the chart with this widget key
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const trace = gd._fullData[1], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.getBoundingClientRect();
    return [box.x + xa._offset + xa.l2p(trace.x[index]), box.y + ya._offset + ya.l2p(trace.y[index])];
}"""
KEEP_MOUSE = "keep the mouse"
"""What a ``shoot_*`` function returns when its shot shows a hover label (the mouse is not moved away)."""
ATLAS_TIMEOUT = 300_000  # ms; the first opening computes the shipped model's atlas (under 30 s on 2 quiet cores)


def atlas_conv2(page):
    """The Filter atlas page with its atlas drawn (computed first if this server has none yet), on conv2."""
    page.wait_for_selector(".st-key-atlas_fig_classes .main-svg", timeout=ATLAS_TIMEOUT)
    settle(page)
    page.get_by_text("conv2 (64 filters)").click()
    page.locator(".st-key-atlas_fig_patches .gtitle").filter(has_text="conv2").wait_for(timeout=TIMEOUT)
    settle(page)


def shoot_atlas(page):
    """conv2's 64 filters: each one's 9 strongest patches beside the input synthesised for it; a patch hovered."""
    atlas_conv2(page)
    scroll_under_header(page.get_by_role("heading", name="conv2: 64 filters, each seeing 8×8 input pixels"), margin=60)
    page.wait_for_timeout(300)
    page.mouse.move(*page.evaluate(HOVER_POINT_JS, ["atlas_fig_patches", 18 * 9]))  # filter 18's strongest patch
    page.locator(".st-key-atlas_fig_patches .hoverlayer .hovertext").wait_for(timeout=TIMEOUT)
    page.wait_for_timeout(300)
    return KEEP_MOUSE


def shoot_atlas_classes(page):
    """One conv2 filter's strongest digits whole, each patch outlined, and the ten class images."""
    atlas_conv2(page)
    choose = page.locator(".st-key-atlas_filter_conv2").get_by_role("combobox")
    choose.click()
    page.keyboard.type("conv2 filter 18 (")  # the list is long: narrow it down as a learner would
    page.get_by_role("option", name=re.compile(r"^conv2 filter 18 ")).click()
    page.locator(".st-key-atlas_fig_filter .gtitle").filter(has_text="conv2 filter 18").wait_for(timeout=TIMEOUT)
    settle(page)
    scroll_under_header(page.locator(".st-key-atlas_filter_conv2"), margin=40)


PAGES = {  # name -> (url path, how to prepare it)
    "home": ("/", shoot_home),
    "convolution": ("/Convolution", shoot_convolution),
    "transposed": ("/Convolution", shoot_transposed),
    "stacked_channels": ("/Stacked_Channels", shoot_stacked_channels),
    "stacked_upload": ("/Stacked_Channels", shoot_stacked_upload),
    "train": ("/Train", shoot_train),
    "train_export": (f"/Train?learner={EXPORT_LEARNER}", shoot_train_export),
    "train_odd_files": (f"/Train?learner={ODD_LEARNER}", shoot_train_odd_files),
    "draw": ("/Draw", shoot_draw),
    "draw_back": ("/Draw", shoot_draw_back),
    "backprop_dk": ("/Backpropagation", shoot_backprop_dk),
    "backprop_dx": ("/Backpropagation", shoot_backprop_dx),
    "backprop_learn": ("/Backpropagation", shoot_backprop_learn),
    "backprop_editors": ("/Backpropagation", shoot_backprop_editors),
    "atlas": ("/Filter_Atlas", shoot_atlas),
    "atlas_classes": ("/Filter_Atlas", shoot_atlas_classes),
}


def take(url: str, out: Path, names, executable: str) -> list[Path]:
    """Screenshot each page in ``names`` from the app at ``url`` into ``out``; returns the files."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for name in names:
                path, prepare = PAGES[name]
                context = browser.new_context(viewport=SIZE)
                page = context.new_page()
                page.goto(url.rstrip("/") + path)
                page.get_by_role("heading").first.wait_for(timeout=TIMEOUT)
                if prepare(page) != KEEP_MOUSE:
                    page.mouse.move(1275, 420)  # no hover effects (Plotly's toolbar) in the shot
                    page.wait_for_timeout(300)
                target = out / f"{name}.png"
                page.screenshot(path=str(target))
                context.close()
                written.append(target)
                print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
        finally:
            browser.close()
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use the app running here instead of starting a server")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="output folder")
    parser.add_argument("--only", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to shoot")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable (default: %(default)s)")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        parser.error(f"Chromium not found at {args.chromium}; install it with `apt-get install chromium`")
    if args.url:
        take(args.url, args.out, args.only, args.chromium)
        return 0
    with StreamlitServer() as server:
        os.environ["CONVVIZ_RUNS_DIR"] = str(server.runs_dir)  # the odd-files shot writes into the server's folder
        if "train_export" in args.only:
            seed_export_run(server.runs_dir)
        take(server.url, args.out, args.only, args.chromium)
    return 0


if __name__ == "__main__":
    sys.exit(main())
