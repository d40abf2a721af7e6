"""AppTest of the Train page: start a small run on the bundled sample, watch it grow, stop it, see the results."""

import time
from pathlib import Path

import pytest
from apptest_helpers import wait_for
from streamlit.testing.v1 import AppTest

from convviz.ui import training as ui

PAGE = Path(__file__).resolve().parent.parent / "pages" / "3_Train.py"


@pytest.fixture(autouse=True)
def runs_dir(monkeypatch, tmp_path):
    """Runs started here are saved in a temporary runs folder, never the user's ~/.convviz/runs."""
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _page(epochs=3, batch=32):
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    if any(r.key == "train_dataset" for r in at.radio):  # the full MNIST is available here: pick the sample
        at.radio(key="train_dataset").set_value(ui.SAMPLE_LABEL)
    at.number_input(key="train_epochs").set_value(epochs)
    at.select_slider(key="train_batch").set_value(batch)
    at.number_input(key="train_filters1").set_value(4)
    at.number_input(key="train_filters2").set_value(8)
    at.run()
    assert not at.exception, at.exception
    return at


def test_train_start_grow_stop_results():
    at = _page()
    assert at.button(key="train_start").label == "Start training"
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    run = at.session_state[ui.RUN_KEY]
    job = run.job
    assert run.dataset == ui.SAMPLE_LABEL and run.settings["filters"] == (4, 8)
    assert wait_for(lambda: len(job.snapshot()["batch_loss"]) >= 3, 30.0)
    at.run()
    n1 = len(job.snapshot()["batch_loss"])
    assert at.button(key="train_stop").label == "Stop training"
    assert at.button(key="train_start").disabled  # one run per session
    progress = at.get("progress")
    assert progress and "Epoch" in progress[0].proto.text and "digits/s" in progress[0].proto.text
    assert wait_for(lambda: len(job.snapshot()["batch_loss"]) > n1 + 3, 30.0)
    at.run()
    assert not at.exception, at.exception
    n2 = len(job.snapshot()["batch_loss"])
    assert n2 > n1  # the history grows while the page is shown

    at.button(key="train_stop").click().run()
    assert job.join(timeout=30) and job.status == "stopped"
    at.run()
    assert not at.exception, at.exception
    snap = job.snapshot()
    assert len(snap["batch_loss"]) >= n2 and snap["status"] == "stopped"  # history kept
    progress_text = at.get("progress")[0].proto.text
    assert progress_text.startswith("Stopped after")
    chart_ids = [el.proto.id for el in at.get("plotly_chart")]
    assert any("train_chart_confusion" in i for i in chart_ids), chart_ids
    assert any("train_chart_loss" in i for i in chart_ids) and any("train_chart_kernels" in i for i in chart_ids)
    assert any("test digits" in c.value for c in at.caption)
    assert not at.get("button") or all(b.key != "train_stop" for b in at.button)

    # make it the Draw page's model
    at.button(key="train_use_on_draw").click().run()
    assert not at.exception, at.exception
    model, description = at.session_state[ui.DRAW_MODEL_KEY]
    assert f"run {run.run_id}" in description and model is not job.model
    assert any("The Draw page uses" in s.value for s in at.success)


def test_server_wide_cap(monkeypatch):
    monkeypatch.setenv(ui.MAX_JOBS_ENV, "1")
    first = _page(epochs=50)
    first.button(key="train_start").click().run()
    job = first.session_state[ui.RUN_KEY].job
    try:
        assert job.status == "running"
        second = _page(epochs=1)
        second.button(key="train_start").click().run()
        assert not second.exception, second.exception
        assert any("already training 1 model" in e.value for e in second.error)
        assert ui.RUN_KEY not in second.session_state
    finally:
        job.stop()
        assert job.join(timeout=30)


@pytest.mark.parametrize("raw, expected", [("", 2), ("3", 3), ("zero", 2), ("0", 2)])
def test_max_jobs_env(monkeypatch, raw, expected):
    monkeypatch.setenv(ui.MAX_JOBS_ENV, raw)
    cap, warning = ui.max_jobs()
    assert cap == expected
    assert (warning is not None) == (raw in ("zero", "0"))
    if warning:
        assert repr(raw) in warning


class _FakeJob:
    def __init__(self):
        self.status = "pending"
        self.stopped = False

    def start(self):
        self.status = "running"

    def stop(self):
        self.stopped = True


def test_registry_caps_and_stops_orphans(monkeypatch):
    alive = {"a": True, "b": True}
    monkeypatch.setattr(ui, "_session_alive", lambda sid: alive.get(sid, True))
    reg = ui.JobRegistry(orphan_grace_s=0.0, check_every_s=3600)
    one, two, three = _FakeJob(), _FakeJob(), _FakeJob()
    assert reg.start(one, cap=2, session_id="a") and one.status == "running"
    assert reg.start(two, cap=2, session_id="b")
    assert not reg.start(three, cap=2, session_id="c") and three.status == "pending"  # full: not started
    one.status = "finished"
    assert reg.active() == 1 and reg.start(three, cap=2, session_id="c")
    alive["b"] = False  # session b's tab was closed
    reg.active()  # first sighting starts the grace period
    assert not two.stopped
    time.sleep(0.01)
    reg.active()
    assert two.stopped and not three.stopped
