"""AppTest of the Train page: start a small run on the bundled sample (it trains on a Dask worker), watch it
grow, stop it, see the results; more runs than workers queue; a bad cluster setting is a message, not a traceback.
"""

import re
import time
from pathlib import Path

import pytest
from apptest_helpers import rerun, run_page, wait_for

from convviz import jobs
from convviz.ui import training as ui
from convviz.ui import training_panel as panel

PAGE = Path(__file__).resolve().parent.parent / "app_pages" / "3_Train.py"
LEARNER = "learner0train1"


@pytest.fixture(autouse=True)
def runs_dir(monkeypatch, tmp_path):
    """Runs started here are saved in a temporary runs folder, never the user's ~/.convviz/runs."""
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(jobs.SCHEDULER_ENV, raising=False)
    return tmp_path / "runs"


def _page(epochs=3, batch=32, learner=LEARNER):
    at = run_page(PAGE, query_params={"learner": learner})
    if any(r.key == "train_dataset" for r in at.radio):  # the full MNIST is available here: pick the sample
        at.radio(key="train_dataset").set_value(ui.SAMPLE_LABEL)
    at.number_input(key="train_epochs").set_value(epochs)
    at.select_slider(key="train_batch").set_value(batch)
    at.number_input(key="train_filters1").set_value(4)
    at.number_input(key="train_filters2").set_value(8)
    return rerun(at)


def _state(runs_dir, run_id, learner=LEARNER):
    return jobs.run_state(jobs.JobFiles(runs_dir, learner), run_id)


def _progress_text(at):
    progress = at.get("progress")
    assert progress, "no progress bar"
    return progress[0].proto.text


def test_train_start_grow_stop_results(runs_dir):
    at = _page(epochs=30)
    assert at.button(key="train_start").label == "Start training"
    t0 = time.monotonic()
    at.button(key="train_start").click().run()
    answered = time.monotonic() - t0
    assert not at.exception, at.exception
    run_id = at.session_state[ui.RUN_KEY]
    # the page answers at once, saying what happens before the first batch
    assert answered < 10, answered
    assert re.match(r"Starting the Dask cluster|Queued, position \d|Loading the bundled sample|Waiting for the first"
                    r"|Epoch 1/30", _progress_text(at)), _progress_text(at)
    assert any(c.value.startswith(f"Run 1 (saved as {run_id}): preset **fast**, filters 4/8") for c in at.caption)
    assert wait_for(lambda: len(_state(runs_dir, run_id).history["batch_loss"]) >= 3, 120.0)
    at.run()
    n1 = len(_state(runs_dir, run_id).history["batch_loss"])
    assert at.button(key="train_stop").label == "Stop training"
    assert at.button(key="train_start").disabled  # one run per session
    text = _progress_text(at)
    assert "Epoch" in text and "digits/s" in text, text
    assert wait_for(lambda: len(_state(runs_dir, run_id).history["batch_loss"]) > n1 + 3, 60.0)
    rerun(at)
    n2 = len(_state(runs_dir, run_id).history["batch_loss"])
    assert n2 > n1  # the history grows while the page is shown

    at.button(key="train_stop").click().run()
    assert wait_for(lambda: _state(runs_dir, run_id).state == "stopped", 60.0), _state(runs_dir, run_id)
    rerun(at)
    state = _state(runs_dir, run_id)
    assert len(state.history["batch_loss"]) >= n2 and state.history["status"] == "stopped"  # history kept
    assert _progress_text(at).startswith("Stopped after")
    chart_ids = [el.proto.id for el in at.get("plotly_chart")]
    assert any("train_chart_confusion" in i for i in chart_ids), chart_ids
    assert any("train_chart_loss" in i for i in chart_ids) and any("train_chart_kernels" in i for i in chart_ids)
    assert not at.get("button") or all(b.key != "train_stop" for b in at.button)

    # one number per fact, one name per run: results, saved-runs list and Draw page agree with the saved run
    record = jobs.JobFiles(runs_dir, LEARNER).store.record(run_id)
    accuracy = f"{record.test_accuracy:.2%}"
    assert record.name == "Run 1" and record.test_accuracy == record.history["final_test_accuracy"]
    results = next(c.value for c in at.caption if "test digits, " in c.value)
    assert results.endswith(f"with the final weights: loss {record.history['final_test_loss']:.3f}, "
                            f"accuracy {accuracy}."), results
    # what the weights file holds, one wording (a stop comes mid-epoch: "after 7 of 10 batches of epoch 1")
    held = ui.weights_when(record.history)
    assert results.startswith(f"Weights saved {held}. ") and "after epoch 0" not in results, results
    assert f"the model (its weights {held}) and the charts are kept" in _progress_text(at)
    row = at.dataframe[0].value.iloc[0]
    assert row["Run"] == "Run 1" and row["Run id"] == run_id and row["Test accuracy"] == accuracy
    assert row["Status"] == "stopped"
    rerun(at.button(key="train_use_on_draw").click())
    model, description = at.session_state[ui.DRAW_MODEL_KEY]
    assert description.startswith(f"Run 1 (saved as {run_id};") and f"{accuracy} test accuracy" in description
    assert any("The Draw page uses" in s.value for s in at.success)
    assert model.predict(ui.get_sample()[1][0][:2] / 255.0).shape == (2, 10)


def test_more_runs_than_workers_are_queued_not_refused(monkeypatch, runs_dir):
    monkeypatch.setenv(ui.MAX_JOBS_ENV, "1")  # an embedded cluster of one worker
    first = _page(epochs=50)
    first.button(key="train_start").click().run()
    first_id = first.session_state[ui.RUN_KEY]
    second = None
    try:
        assert wait_for(lambda: _state(runs_dir, first_id).state == "running", 120.0)
        second = _page(epochs=1, learner="learner0train2")
        rerun(second.button(key="train_start").click())
        assert not second.error, [e.value for e in second.error]
        second_id = second.session_state[ui.RUN_KEY]
        # The manager's thread marks the job submitted just after the click's run; on a loaded machine the page can
        # be drawn before that ("Starting the Dask cluster…"), so wait for the record, then draw the page again.
        assert wait_for(lambda: _state(runs_dir, second_id, "learner0train2").state != "waiting", 60.0)
        rerun(second)
        assert _progress_text(second).startswith("Queued, position 1"), _progress_text(second)
        assert second.button(key="train_stop").label == "Stop training"
        first.button(key="train_stop").click().run()
        assert wait_for(lambda: _state(runs_dir, second_id, "learner0train2").state in jobs.ENDED, 120.0)
        assert _state(runs_dir, second_id, "learner0train2").state == "finished"  # it started when the worker freed
    finally:
        jobs.JobFiles(runs_dir, LEARNER).stop_path(first_id).touch()


@pytest.mark.parametrize("raw, expected", [("", 2), ("3", 3), ("zero", 2), ("0", 2)])
def test_max_jobs_env(monkeypatch, raw, expected):
    monkeypatch.setenv(ui.MAX_JOBS_ENV, raw)
    cap, warning = ui.max_jobs()
    assert cap == expected
    assert (warning is not None) == (raw in ("zero", "0"))
    if warning:
        assert repr(raw) in warning


def test_a_malformed_scheduler_address_is_a_message(monkeypatch):
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "localhost:8786")
    at = _page()
    assert any("CONVVIZ_DASK_SCHEDULER='localhost:8786'" in e.value for e in at.error), [e.value for e in at.error]
    rerun(at.button(key="train_start").click())
    assert ui.RUN_KEY not in at.session_state
    assert any("tcp://HOST:PORT" in e.value for e in at.error)


def test_an_unreachable_scheduler_is_a_message(monkeypatch):
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    at = _page()
    manager, _ = ui.get_manager()
    assert wait_for(lambda: manager.status[0] == "failed", 60.0), manager.status
    rerun(at)
    assert any("tcp://127.0.0.1:9 could not be reached" in e.value for e in at.error), [e.value for e in at.error]


def test_live_kernel_grid_is_redrawn_at_most_every_kernel_refresh_s(monkeypatch):
    """While a run trains, the same kernel figure is sent again between redraws (the browser then redraws nothing)."""
    state, clock = {}, [100.0]
    monkeypatch.setattr(ui.st, "session_state", state)
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    run = jobs.RunState(run_id="r1", name="Run 1", state="running", position=None, history={}, settings={},
                        dataset="the bundled sample", first_kernel=[[[[0.5]]]])
    first = panel._kernel_figure(run)
    run.first_kernel = [[[[-0.25]]]]
    clock[0] += panel.KERNEL_REFRESH_S - 0.1
    assert panel._kernel_figure(run) is first
    clock[0] += 0.2
    later = panel._kernel_figure(run)
    assert later is not first and later.data[0].z[0][0] == -0.25
    run.state = "stopped"  # an ended run shows its last kernels at once
    run.first_kernel = [[[[0.75]]]]
    assert panel._kernel_figure(run).data[0].z[0][0] == 0.75


def test_a_batch_too_large_for_the_architecture_is_refused_before_the_cluster_is_asked(monkeypatch, runs_dir):
    """#15 kind 2: the page's own largest settings (seed, 128/128, kernel 7, batch 512) would hold ~10 GB a step."""
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")  # no cluster: the check needs none
    at = _page(epochs=1, batch=512)
    at.radio(key="train_preset").set_value("seed")
    at.number_input(key="train_filters1").set_value(128)
    at.number_input(key="train_filters2").set_value(128)
    at.select_slider(key="train_kernel").set_value(7)
    rerun(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("a training batch of 512 digits" in e and "use a batch of at most 154" in e for e in errors), errors
    assert ui.RUN_KEY not in at.session_state and not list(runs_dir.rglob("*.npz"))
    at.select_slider(key="train_batch").set_value(128)  # a batch that fits gets past the check, to the cluster
    rerun(at)
    at.button(key="train_start").click().run()
    assert not any("a training batch" in e.value for e in at.error), [e.value for e in at.error]


def test_the_dataset_choice_is_kept_after_another_page(monkeypatch, tmp_path):
    """The final breaker's N6: "bundled sample" went back to "full MNIST" after a visit to Draw (the other settings
    were kept), which with the largest settings meant a 140-minute run instead of a quick one."""
    from streamlit.testing.v1 import AppTest

    from apptest_helpers import APP

    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
    if not mnist.exists():
        pytest.skip("needs the full MNIST file, so that the page offers the choice")
    monkeypatch.setenv("CONVVIZ_MNIST", str(mnist))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page("app_pages/3_Train.py")
    rerun(at)
    at.radio(key="train_dataset").set_value(ui.SAMPLE_LABEL)
    rerun(at)
    at.switch_page("app_pages/4_Draw.py")
    rerun(at)
    at.switch_page("app_pages/3_Train.py")
    rerun(at)
    assert at.radio(key="train_dataset").value == ui.SAMPLE_LABEL


def _current_run_with_an_unreadable_folder():
    import streamlit as st

    from convviz.ui import training as ui

    class Manager:  # the cluster's manager, as far as the lookup goes: it reads the learner's folder first
        def active_run(self, files):
            files.store.root.stat()

    ui.get_manager = lambda: (Manager(), None)
    st.write(f"current run: {ui.current_run()}")


def test_a_runs_folder_that_cannot_be_read_does_not_break_the_page(monkeypatch, tmp_path):
    """The final breaker's N4: with a cluster, a runs folder with too long a name raised OSError (ENAMETOOLONG) from
    the lookup of the learner's active run (``current_run``), an error box on the Train page. It now counts as "no
    run going" (the saved-runs section reads the folder itself)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / ("r" * 300)))
    monkeypatch.setattr(ui, "get_manager", ui.get_manager)  # the script replaces it in this process: put it back after
    at = AppTest.from_function(_current_run_with_an_unreadable_folder, default_timeout=60)
    at.query_params["learner"] = LEARNER
    at.run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == ["current run: None"]
