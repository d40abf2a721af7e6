"""convviz.runs and checkpointing: runs survive stops, crashes, and junk in the runs folder."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from convviz.data import load_sample
from convviz.model import ScratchCNN, load_checkpoint, make_spec
from convviz.runs import RUNS_DIR_ENV, RunStore, default_runs_dir
from convviz.train import TrainConfig, TrainingJob

ROOT = Path(__file__).resolve().parents[1]


def _small_data(n_train=640, n_test=200):
    (x, y), (xt, yt) = load_sample()
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


def _small_model(seed=0):
    return ScratchCNN(make_spec("fast", filters=(4, 8)), seed=seed)


def _saver(store, run_id, config):
    def save(model, history):
        store.save(run_id, model, preset="fast", dataset="sample", config=config, history=history)
    return save


def test_default_runs_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "r"))
    assert default_runs_dir() == tmp_path / "r"
    monkeypatch.delenv(RUNS_DIR_ENV)
    assert default_runs_dir() == Path.home() / ".convviz" / "runs"


def test_run_ids_never_collide_and_stay_inside(tmp_path):
    store = RunStore(tmp_path)
    ids = {store.new_run_id("fast") for _ in range(200)}
    assert len(ids) == 200
    for bad in ("../x", "20260101-000000-fast-zzzzzz", "a/b", ""):
        with pytest.raises(ValueError, match="not a run id"):
            store.path(bad)
    with pytest.raises(ValueError, match="preset="):
        store.new_run_id("Fast!")


def test_checkpoint_every_epoch_then_load_and_delete(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.new_run_id("fast")
    config = TrainConfig(epochs=2, batch_size=64, seed=1)
    seen = []

    def save(model, history):
        seen.append(history["epoch"])
        _saver(store, run_id, vars(config))(model, history)

    job = TrainingJob(_small_model(), _small_data(), config, on_checkpoint=save).start()
    assert job.join(120) and job.status == "finished"
    assert seen == [1, 2, 2]  # after each epoch, and once more at the end
    records, warnings = store.list_runs()
    assert warnings == [] and [r.run_id for r in records] == [run_id]
    rec = records[0]
    assert rec.status == "finished" and rec.epochs_done == 2 and rec.config["batch_size"] == 64
    assert rec.test_accuracy == pytest.approx(job.snapshot()["epoch_test_accuracy"][-1])
    model, rec2 = store.load(run_id)
    x = _small_data()[1][0][:16] / 255.0
    np.testing.assert_allclose(model.predict(x), job.model.predict(x), rtol=1e-6)
    assert rec2.history["batch_loss"] == job.snapshot()["batch_loss"]
    store.delete(run_id)
    assert store.list_runs() == ([], [])
    with pytest.raises(FileNotFoundError):
        store.load(run_id)


def test_stop_mid_epoch_is_saved(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.new_run_id("fast")
    config = TrainConfig(epochs=3, batch_size=32, seed=0)
    job = TrainingJob(_small_model(), _small_data(), config, on_checkpoint=_saver(store, run_id, vars(config)))
    job.start()
    deadline = time.time() + 60
    while job.snapshot()["batch"] < 3 and time.time() < deadline:
        time.sleep(0.02)
    job.stop()
    assert job.join(60) and job.status == "stopped"
    rec = store.list_runs()[0][0]
    assert rec.status == "stopped" and rec.epochs_done == job.snapshot()["epoch"] < 3


def test_resume_continues_the_history(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.new_run_id("fast")
    first = TrainConfig(epochs=1, batch_size=64, seed=2)
    job = TrainingJob(_small_model(), _small_data(), first, on_checkpoint=_saver(store, run_id, vars(first))).start()
    assert job.join(120) and job.status == "finished"
    model, rec = store.load(run_id)
    more = TrainConfig(epochs=3, batch_size=64, seed=2)
    resumed = TrainingJob(model, _small_data(), more, resume_history=rec.history,
                          on_checkpoint=_saver(store, run_id, vars(more))).start()
    assert resumed.join(120) and resumed.status == "finished"
    snap = resumed.snapshot()
    assert snap["epoch"] == 3 and len(snap["epoch_test_accuracy"]) == 3
    assert snap["batch_loss"][:10] == rec.history["batch_loss"][:10]
    assert len(snap["batch_loss"]) == 3 * snap["batches_per_epoch"]
    assert store.list_runs()[0][0].epochs_done == 3
    with pytest.raises(ValueError, match="epochs must be more than that"):
        TrainingJob(model, _small_data(), TrainConfig(epochs=1, batch_size=64), resume_history=snap)
    with pytest.raises(ValueError, match="same dataset and batch size"):
        TrainingJob(model, _small_data(), TrainConfig(epochs=5, batch_size=32), resume_history=snap)


def test_junk_in_the_runs_folder_is_skipped_with_a_warning(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.new_run_id("fast")
    model = _small_model()
    store.save(run_id, model, preset="fast", dataset="sample", config={}, history={"epoch": 0, "status": "running"})
    good = store.path(run_id)
    (tmp_path / "notes.txt").write_text("not a run")
    (tmp_path / "20260101-000000-fast-aaaaaa.npz").write_bytes(b"garbage, not a zip")
    truncated = tmp_path / "20260101-000000-fast-bbbbbb.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    model.save(tmp_path / "20260101-000000-fast-cccccc.npz")  # a plain model file: no run metadata
    np.savez(tmp_path / "holiday.npz", a=np.zeros(3))  # foreign name
    (tmp_path / f".{run_id}.npz.abc.tmp").write_bytes(b"half-written")  # a crash's leftover
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [run_id]
    assert sorted(s.name for s in skipped) == ["20260101-000000-fast-aaaaaa.npz", "20260101-000000-fast-bbbbbb.npz",
                                               "20260101-000000-fast-cccccc.npz", "holiday.npz"]
    warnings = [str(s) for s in skipped]
    assert len(warnings) == 4 and all(w.startswith("skipped ") for w in warnings)
    assert any("aaaaaa" in w and "not a .npz" in w for w in warnings)
    assert any("cccccc" in w and "no run metadata" in w for w in warnings)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    with pytest.raises(ValueError, match="bbbbbb"):
        store.load("20260101-000000-fast-bbbbbb")


def test_load_refuses_a_file_replaced_between_its_two_reads(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    first, second = store.new_run_id("fast"), store.new_run_id("fast")
    for run_id, seed in ((first, 0), (second, 1)):
        store.save(run_id, _small_model(seed), preset="fast", dataset="sample", config={},
                   history={"epoch": 0, "status": "running"})
    model, record = store.load(first)  # untouched: loads
    assert record.run_id == first and model.predict(np.zeros((1, 28, 28))).shape == (1, 10)
    read_record = store.record

    def record_then_replace(run_id):
        rec = read_record(run_id)
        os.replace(store.path(second), store.path(run_id))  # another run's file lands at this path
        return rec

    monkeypatch.setattr(store, "record", record_then_replace)
    with pytest.raises(ValueError, match=f"replaced while it was read .*{second}"):
        store.load(first)


def test_checkpoint_failure_does_not_stop_training(tmp_path):
    def broken(model, history):
        raise OSError("No space left on device")

    job = TrainingJob(_small_model(), _small_data(320, 50), TrainConfig(epochs=1, batch_size=64),
                      on_checkpoint=broken).start()
    assert job.join(60) and job.status == "finished"
    assert "No space left on device" in job.checkpoint_error


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from convviz.data import load_sample
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore
    from convviz.train import TrainConfig, TrainingJob
    store = RunStore(sys.argv[1])
    run_id = store.new_run_id("fast")
    (x, y), (xt, yt) = load_sample()
    config = TrainConfig(epochs=50, batch_size=32, seed=3)
    def save(model, history):
        store.save(run_id, model, preset="fast", dataset="sample", config=vars(config), history=history)
    job = TrainingJob(ScratchCNN(make_spec("fast", filters=(4, 8)), seed=3), ((x[:1280], y[:1280]), (xt[:200], yt[:200])),
                      config, on_checkpoint=save).start()
    job.join()
""")


@pytest.mark.slow
def test_killed_mid_epoch_then_restarted(tmp_path):
    """SIGKILL the training process in its second epoch; a restart lists the run with epoch 1 intact."""
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(runs)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(runs.glob("*.npz")):
            assert proc.poll() is None, "the training process ended early"
            time.sleep(0.05)
        assert list(runs.glob("*.npz")), "no checkpoint after the first epoch"
        time.sleep(0.5)  # well inside epoch 2 (an epoch of 40 steps takes seconds)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # "Restart": a fresh store over the same folder, in this process.
    records, warnings = RunStore(runs).list_runs()
    assert warnings == [] and len(records) == 1
    rec = records[0]
    assert rec.status == "running"  # saved while running, never finished: the UI shows "interrupted"
    assert rec.epochs_done >= 1 and len(rec.history["epoch_test_accuracy"]) == rec.epochs_done
    assert rec.epochs_done < 50
    model, meta = load_checkpoint(rec.path)
    assert meta["run_id"] == rec.run_id and model.predict(np.zeros((1, 28, 28))).shape == (1, 10)


def test_a_name_that_is_not_utf8_gets_a_plain_reason_and_can_be_deleted(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.new_run_id("fast")
    store.save(run_id, _small_model(), preset="fast", dataset="sample", config={},
               history={"epoch": 0, "status": "running"})
    odd = os.fsdecode(b"20260101-000000-fast-aaaaa\xff.npz")
    (tmp_path / odd).write_bytes(b"not a run")
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [run_id]
    assert [(s.name, s.reason, s.deletable) for s in skipped] == [
        (odd, "its name is not valid UTF-8 text, so it is not a run file ConvViz wrote", True)]
    store.discard(odd)
    assert not (tmp_path / odd).exists() and store.list_runs() == (records, [])


def test_a_run_deleted_while_the_folder_is_listed_is_left_out_without_a_warning(tmp_path):
    store = RunStore(tmp_path)
    keep, gone = store.new_run_id("fast"), store.new_run_id("fast")
    for run_id in (keep, gone):
        store.save(run_id, _small_model(), preset="fast", dataset="sample", config={},
                   history={"epoch": 0, "status": "running"})

    def read_after_a_delete(path):
        if path.stem == gone:
            store.delete(gone)  # another tab's Delete lands between the folder's listing and this read
        return store.read_record(path)

    records, skipped = store.list_runs(read=read_after_a_delete)
    assert [r.run_id for r in records] == [keep] and skipped == []
