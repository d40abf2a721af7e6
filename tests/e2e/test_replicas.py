"""Browser test: two web servers (replicas) share one Dask cluster and one runs folder.

The test starts, on loopback, a scheduler and a worker with Dask's own commands (``dask scheduler``,
``dask worker --nworkers 1 --nthreads 1``) and two ``streamlit run app.py`` servers with
``CONVVIZ_DASK_SCHEDULER`` pointing at that scheduler and the same ``CONVVIZ_RUNS_DIR``. One learner
(the same ``?learner=`` key) opens the Train page on each server in its own browser context:

* a run started on replica A is seen live on replica B (progress and the loss chart moving);
* B stops it; A sees it stopped;
* B resumes it from the saved runs; A, reloaded, sees it training again and stops it; B sees it stopped.

Every process it starts (scheduler, worker, two servers) is stopped at the end and checked gone.
"""

from __future__ import annotations

import os
import re

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - only without requirements.txt installed
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: `pip install -r requirements.txt`", allow_module_level=True)

from dask_procs import DaskProcesses

from convviz import jobs

from .conftest import VIEWPORT
from .server import StreamlitServer, server_log_errors
from .test_pages import _POINTS_JS, wait_for_run

pytestmark = pytest.mark.e2e

LEARNER = "replica0learner"
LOAD_TIMEOUT = 90_000


def open_train(page: Page, server: StreamlitServer) -> None:
    page.goto(f"{server.url}/Train?learner={LEARNER}")
    expect(page.get_by_role("heading", name=re.compile("Train the network")).first).to_be_visible(timeout=LOAD_TIMEOUT)
    wait_for_run(page)


_LAST_X_JS = """(key) => {
    const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    const t = el && el._fullData && el._fullData[0];
    return t && t.x && t.x.length ? t.x[t.x.length - 1] : -1;
}"""


def last_batch(page: Page) -> float:
    """Where the loss chart's batch curve ends, in epochs (-1 before it is drawn)."""
    return page.evaluate(_LAST_X_JS, "train_chart_loss")


def press(page: Page, name: str) -> None:
    """Click the button ``name`` by dispatching the DOM event: the live panel reruns twice a second, and on a
    busy machine Playwright's click() can wait past its timeout for the page to settle after the click."""
    button = page.get_by_role("button", name=name, exact=True)
    expect(button).to_be_enabled(timeout=60_000)
    button.dispatch_event("click")


def no_errors(page: Page) -> None:
    for selector in ("[data-testid=stException]", "[data-testid=stAlertContentError]"):
        boxes = page.locator(selector)
        if boxes.count():
            pytest.fail(f"{selector} on {page.url}: {boxes.first.inner_text()[:2000]}", pytrace=False)


@pytest.fixture
def replicas(chromium_executable, tmp_path):
    """The Dask processes and two Streamlit servers sharing them and one runs folder."""
    runs = tmp_path / "runs"
    servers = []
    with DaskProcesses(tmp_path / "dask.log") as dask:
        try:
            for name in ("a", "b"):
                server = StreamlitServer(runs_dir=runs, log_path=tmp_path / f"streamlit-{name}.log",
                                         env={jobs.SCHEDULER_ENV: dask.address})
                servers.append(server)
                server.start(timeout=120)
            yield servers[0], servers[1], runs
        finally:
            for server in servers:
                server.stop()
    assert not dask.procs and all(s.proc is None for s in servers)
    for server in servers:
        errors = server_log_errors(server.log_tail(200_000))
        assert not errors, "\n\n".join(errors)[:8000]


def test_a_run_started_on_one_replica_is_seen_stopped_and_resumed_on_the_other(replicas, browser):
    server_a, server_b, runs = replicas
    a = browser.new_context(viewport=VIEWPORT).new_page()
    b = browser.new_context(viewport=VIEWPORT).new_page()

    # ---- replica A: start a run on the bundled sample
    open_train(a, server_a)
    dataset = a.get_by_role("radiogroup", name="Dataset")
    if dataset.count():
        dataset.get_by_text("Bundled sample").click()
        expect(dataset.get_by_role("radio", name=re.compile("Bundled sample"))).to_be_checked()
    box = a.locator(".st-key-train_epochs input")
    box.fill("50")
    box.press("Enter")
    expect(box).to_have_value("50")
    wait_for_run(a)
    press(a, "Start training")
    expect(a.get_by_role("button", name="Stop training", exact=True)).to_be_visible(timeout=30_000)
    progress_a = a.locator("[data-testid=stProgress]").first
    expect(progress_a).to_contain_text(re.compile(r"Starting the Dask cluster|Queued|Loading|Waiting for the first|Epoch"),
                                       timeout=10_000)  # the page answers at once
    expect(progress_a).to_contain_text("Epoch 1/50", timeout=120_000)
    caption = re.compile(r"^Run 1 \(saved as (\d{8}-\d{6}-fast-[0-9a-f]{6})\): preset fast.*50 epoch\(s\)")
    run_id = caption.match(a.get_by_text(caption).inner_text()).group(1)
    no_errors(a)

    # ---- replica B, same learner key: the run is there, live
    open_train(b, server_b)
    expect(b.get_by_text(caption)).to_be_visible(timeout=30_000)
    assert caption.match(b.get_by_text(caption).inner_text()).group(1) == run_id
    progress_b = b.locator("[data-testid=stProgress]").first
    expect(progress_b).to_contain_text(re.compile(r"Epoch \d+/50 · batch \d+/\d+"), timeout=60_000)
    b.wait_for_function(f"() => ({_POINTS_JS})('train_chart_loss') > 0", timeout=60_000)
    # the curve moves on: its last batch (in epochs) grows (the point count stops at MAX_CURVE_POINTS, evenly
    # spaced batches, once a run passes 600 batches, which a fast worker reaches within this test)
    first = last_batch(b)
    b.wait_for_function(f"([n]) => ({_LAST_X_JS})('train_chart_loss') > n", arg=[first], timeout=60_000)
    no_errors(b)

    # ---- B stops it; A sees it stopped
    press(b, "Stop training")
    expect(progress_b).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"), timeout=60_000)
    expect(progress_a).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"), timeout=60_000)
    stopped = re.search(r"Stopped after ([\d,]+) batches", progress_a.inner_text()).group(1)
    expect(a.get_by_role("button", name="Stop training", exact=True)).to_have_count(0)
    record = jobs.JobFiles(runs, LEARNER).store.record(run_id)
    assert record.status == "stopped" and record.name == "Run 1"
    wait_for_run(a)
    wait_for_run(b)

    # ---- B resumes it from the saved runs; A, reloaded, sees it training again and stops it; B sees that
    press(b, "Resume training")
    expect(progress_b).to_contain_text(re.compile(r"Epoch \d+/50 · batch"), timeout=120_000)
    open_train(a, server_a)
    expect(a.get_by_text(caption)).to_be_visible(timeout=30_000)
    progress_a = a.locator("[data-testid=stProgress]").first
    expect(progress_a).to_contain_text(re.compile(r"Epoch \d+/50 · batch"), timeout=60_000)
    press(a, "Stop training")
    expect(progress_b).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"), timeout=60_000)
    expect(progress_a).to_contain_text(re.compile(r"Stopped after [\d,]+ batches"), timeout=60_000)
    record = jobs.JobFiles(runs, LEARNER).store.record(run_id)
    assert record.status == "stopped" and record.epochs_done >= 1
    assert stopped  # the first stop's batch count was shown on A
    wait_for_run(a)
    wait_for_run(b)
    no_errors(a)
    no_errors(b)
