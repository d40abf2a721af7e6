"""AppTest of the Train page's saved runs: listed, charted, resumed, used on Draw, deleted; junk only warns."""

import json
from pathlib import Path

import pytest

from apptest_helpers import plotly_values, rerun, run_page, runs_folder, wait_for

from convviz import jobs
from convviz.data import load_sample
from convviz.model import ScratchCNN, make_spec
from convviz.train import TrainConfig, TrainingJob
from convviz.ui import training as ui

PAGE = Path(__file__).resolve().parent.parent / "app_pages" / "3_Train.py"


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return runs_folder(monkeypatch, tmp_path, LEARNER)


def _ended(store, run_id, timeout=180.0):
    """Wait until the run (trained on the page's Dask cluster) has ended; returns its RunState."""
    files = jobs.JobFiles(store.root.parent, LEARNER)
    assert wait_for(lambda: jobs.run_state(files, run_id).state in jobs.ENDED, timeout), jobs.run_state(files, run_id)
    return jobs.run_state(files, run_id)


LEARNER = "learner0test1"


def _page(learner=LEARNER):
    return run_page(PAGE, query_params={"learner": learner})


def _saved_run(store, epochs_done=1, planned=3, accuracy=0.8125, batches_per_epoch=None, status="finished"):
    """A run file as the page writes it: a small model and a history of ``epochs_done`` epochs."""
    model = ScratchCNN(make_spec("fast", filters=(4, 8)), seed=0)
    config = {"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": planned, "batch_size": 512,
              "learning_rate": 1e-3, "seed": 0}
    bpe = batches_per_epoch or 10  # 5,000 sample digits / 512
    history = {"batch_loss": [2.3 - 0.01 * i for i in range(bpe * epochs_done)],
               "batch_accuracy": [0.1 + 0.005 * i for i in range(bpe * epochs_done)],
               "epoch_test_loss": [0.9] * epochs_done, "epoch_test_accuracy": [accuracy] * epochs_done,
               "epoch": epochs_done, "batch": bpe, "batches_per_epoch": bpe, "epochs": planned,
               "samples_per_second": 100.0, "elapsed_s": 5.0, "eta_s": 0.0, "status": status, "error": None}
    run_id = store.new_run_id("fast")
    store.save(run_id, model, preset="fast", dataset=ui.SAMPLE_LABEL, config=config, history=history)
    return run_id


def _table(at):
    return at.dataframe[0].value


def _values(array):
    return plotly_values(array).tolist()


def _chart_ids(at):
    return [el.proto.id for el in at.get("plotly_chart")]


def test_no_runs_yet_says_so(runs):
    at = _page()
    assert any("No saved runs yet" in i.value for i in at.info)
    assert not any("runs folder" in w.value for w in at.warning)


def test_a_run_started_on_the_page_is_listed_when_it_finishes(runs):
    at = _page()
    if any(r.key == "train_dataset" for r in at.radio):
        at.radio(key="train_dataset").set_value(ui.SAMPLE_LABEL)
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_batch").set_value(512)
    at.number_input(key="train_filters1").set_value(2)
    at.number_input(key="train_filters2").set_value(4)
    at.run()
    rerun(at.button(key="train_start").click())
    run_id = at.session_state[ui.RUN_KEY]
    assert run_id.split("-")[2] == "fast"
    state = _ended(runs, run_id)
    assert state.state == "finished", state.error
    rerun(at)
    table = _table(at)
    assert list(table["Run id"]) == [run_id]
    row = table.iloc[0]
    assert row["Status"] == "finished" and row["Epochs (done / planned)"] == "1 / 1" and row["Run"] == "Run 1"
    assert row["Dataset"] == "bundled sample" and row["Preset"] == "fast" and row["Test accuracy"].endswith("%")
    record = runs.list_runs()[0][0]
    assert record.config == {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 1,
                             "batch_size": 512, "learning_rate": 1e-3, "seed": 0}
    assert record.history["batch_loss"] == state.history["batch_loss"]
    assert row["Test accuracy"] == f"{record.test_accuracy:.2%}"


def test_another_learners_runs_are_not_listed(runs):
    _saved_run(runs)
    other = _page(learner="someoneelse01")
    assert not other.exception
    assert any("No saved runs yet" in i.value for i in other.info) and not other.dataframe
    assert len(_table(_page())) == 1  # the owner still sees it


def test_a_new_visitor_gets_a_learner_key_in_the_address(runs):
    at = run_page(PAGE)
    key = at.query_params["learner"]
    key = key[0] if isinstance(key, list) else key
    assert len(key) == 12 and key.isalnum()


def test_a_saved_run_is_listed_with_its_accuracy_and_charts(runs):
    run_id = _saved_run(runs, epochs_done=2, planned=3, accuracy=0.8125)
    at = _page()
    table = _table(at)
    assert list(table["Run id"]) == [run_id]
    row = table.iloc[0]
    assert row["Test accuracy"] == "81.25%" and row["Epochs (done / planned)"] == "2 / 3"
    assert at.selectbox(key="runs_choice").value == run_id
    ids = _chart_ids(at)
    assert any("runs_chart_loss" in i for i in ids) and any("runs_chart_accuracy" in i for i in ids)
    loss_chart = next(el for el in at.get("plotly_chart") if "runs_chart_loss" in el.proto.id)
    spec = json.loads(loss_chart.proto.spec)
    assert _values(spec["data"][0]["y"])[:2] == pytest.approx([2.3, 2.29])  # the saved per-batch losses
    assert _values(spec["data"][2]["y"]) == pytest.approx([0.9, 0.9])  # the test loss after each saved epoch
    assert spec["layout"]["xaxis"]["range"][1] == pytest.approx(3 * 1.02)  # the x axis spans the planned epochs


def test_a_saved_running_run_with_no_live_job_is_interrupted(runs):
    _saved_run(runs, status="running")
    at = _page()
    assert _table(at).iloc[0]["Status"] == "interrupted"
    assert any("interrupted" in c.value for c in at.caption)


def test_delete_needs_confirmation(runs):
    keep = _saved_run(runs)
    gone = _saved_run(runs)
    at = _page()
    at.selectbox(key="runs_choice").set_value(gone).run()
    rerun(at.button(key="runs_delete").click())
    assert runs.path(gone).is_file()  # one click only asks
    assert any(f"Delete run {gone}" in w.value for w in at.warning)
    at.button(key="runs_delete_no").click().run()
    assert runs.path(gone).is_file() and not any("Delete run" in w.value for w in at.warning)
    at.button(key="runs_delete").click().run()
    rerun(at.button(key="runs_delete_yes").click())
    assert not runs.path(gone).exists() and runs.path(keep).is_file()
    assert any(f"Deleted run {gone}" in s.value for s in at.success)
    assert list(_table(at)["Run id"]) == [keep]


def test_garbage_in_the_folder_warns_and_the_good_run_is_still_listed(runs):
    run_id = _saved_run(runs)
    (runs.root / "20260101-000000-fast-aaaaaa.npz").write_bytes(b"garbage, not a zip")
    (runs.root / "notes.txt").write_text("hello")
    at = _page()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any("20260101-000000-fast-aaaaaa.npz" in w and "not a .npz" in w for w in warnings), warnings
    assert list(_table(at)["Run id"]) == [run_id]
    assert (runs.root / "20260101-000000-fast-aaaaaa.npz").read_bytes() == b"garbage, not a zip"


def test_use_a_saved_run_on_the_draw_page(runs):
    run_id = _saved_run(runs)
    at = _page()
    rerun(at.button(key="runs_use_on_draw").click())
    model, description = at.session_state[ui.DRAW_MODEL_KEY]
    assert run_id in description and "81.25%" in description
    assert model.predict(load_sample()[1][0][:2] / 255.0).shape == (2, 10)


def test_resume_continues_the_history(runs):
    (x, y), (xt, yt) = load_sample()
    config = TrainConfig(epochs=1, batch_size=512, seed=0)
    run_id = runs.new_run_id("fast")
    settings = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 1, "batch_size": 512,
                "learning_rate": 1e-3, "seed": 0}

    def save(model, history):
        runs.save(run_id, model, preset="fast", dataset=ui.SAMPLE_LABEL, config=settings, history=history)

    first = TrainingJob(ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0), ((x, y), (xt, yt)), config,
                        on_checkpoint=save).start()
    assert first.join(120) and first.status == "finished"
    saved = first.snapshot()
    at = _page()
    assert at.number_input(key=f"runs_epochs_{run_id}").value == 2  # planned 1, done 1: at least one more
    rerun(at.button(key="runs_resume").click())
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[ui.RUN_KEY] == run_id
    state = _ended(runs, run_id)
    assert state.state == "finished", state.error
    snap = state.history
    assert snap["epoch"] == 2 and snap["batch_loss"][:len(saved["batch_loss"])] == saved["batch_loss"]
    assert len(snap["batch_loss"]) == 2 * saved["batches_per_epoch"]
    at.run()
    record = runs.list_runs()[0][0]
    assert record.epochs_done == 2 and record.status == "finished" and len(runs.list_runs()[0]) == 1
    assert _table(at).iloc[0]["Epochs (done / planned)"] == "2 / 2"


def test_resume_with_other_data_shows_the_error(runs):
    run_id = _saved_run(runs, batches_per_epoch=7)  # not what the sample with batch size 512 gives
    at = _page()
    rerun(at.button(key="runs_resume").click())
    assert any("same dataset and batch size" in e.value and run_id in e.value for e in at.error)
    assert ui.RUN_KEY not in at.session_state


def test_thousands_of_junk_files_share_one_warning_and_one_delete_and_the_good_run_is_listed(runs, monkeypatch):
    """#15 (the breaker's K4): 3,000 one-byte files made every Train page run take 13 s with 3,001 alerts. Now the
    first MAX_SKIPPED_SHOWN get a warning each, the rest one warning and one confirmed "Delete them"; a listing
    opens at most MAX_LISTED_FILES files named as runs (the newest ids), so the good, newest run is listed."""
    from convviz import runs as runs_module
    from convviz.ui.runs import MAX_SKIPPED_SHOWN

    monkeypatch.setattr(runs_module, "MAX_LISTED_FILES", 120)  # the same rule as 1,000, with a smaller folder
    runs.root.mkdir(parents=True, exist_ok=True)
    for i in range(100):
        (runs.root / f"x{i:05d}.npz").write_bytes(b"x")  # not named as runs: never opened
    for i in range(130):
        (runs.root / f"20250101-000000-fast-{i:06x}.npz").write_bytes(b"x")  # named as runs, older than the good one
    good = _saved_run(runs)
    at = _page()
    assert not at.exception
    assert list(_table(at)["Run id"]) == [good]
    warnings = [w.value for w in at.warning if "in the runs folder" in w.value]
    assert len(warnings) == MAX_SKIPPED_SHOWN + 1, warnings
    assert f"{230 - MAX_SKIPPED_SHOWN:,} more files in the runs folder were skipped" in warnings[-1]
    assert any("not opened: the folder holds 131 files named as runs and at most" in w and "=120" in w
               for w in warnings[:MAX_SKIPPED_SHOWN]), warnings
    at.button(key="runs_discard_all").click().run()
    assert at.button(key="runs_discard_all_yes").label == f"Yes, delete these {230 - MAX_SKIPPED_SHOWN:,} files"
    at.button(key="runs_discard_all_yes").click().run()
    assert not at.exception
    assert any(f"Deleted {230 - MAX_SKIPPED_SHOWN:,} skipped files." in s.value for s in at.success)
    left = sorted(p.name for p in runs.root.glob("*.npz"))
    assert len(left) == MAX_SKIPPED_SHOWN + 1 and f"{good}.npz" in left  # the five shown one by one, and the run
    rerun(at)
    assert len([w for w in at.warning if "in the runs folder" in w.value]) == MAX_SKIPPED_SHOWN and not at.exception
