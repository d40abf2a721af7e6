"""#15's run-store leftovers: legal-size metadata that was slow (kind 2), a save racing a delete (kind 1),
temporary files a crash left (kind 1). Every file is built here."""

import io
import json
import os
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import plotly_values, run_page

from convviz import jobs, npzfile
from convviz.model import ScratchCNN, load_checkpoint, load_model, make_spec
from convviz.runs import (HISTORY_MEMBERS, MAX_EPOCHS, MAX_RUN_METADATA_CHARS, STALE_TMP_AGE_S, RunDeletedError,
                          RunStore)
from convviz.ui.text import md

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAGE = ROOT / "app_pages" / "3_Train.py"
LEARNER = "learner0store"
GOOD = "20260102-000000-fast-a00001"
CONFIG = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 50, "batch_size": 8,
          "learning_rate": 0.001, "seed": 0}
SUBMISSION = "1798000000000000000-abcdef"


def _model():
    return ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)


def _history(batches=3, epochs_done=1, epochs=2):
    rng = np.random.default_rng(0)
    return {"batch_loss": rng.uniform(0, 3, batches).tolist(), "batch_accuracy": rng.uniform(0, 1, batches).tolist(),
            "epoch_test_loss": [1.2] * epochs_done, "epoch_test_accuracy": [0.6] * epochs_done,
            "epoch": epochs_done, "batch": batches, "batches_per_epoch": max(1, batches // max(1, epochs_done)),
            "epochs": epochs, "samples_per_second": 50.0, "elapsed_s": 2.0, "eta_s": 1.0, "status": "stopped",
            "error": None, "final_test_loss": 1.2, "final_test_accuracy": 0.6}


def _save(store, run_id=GOOD, history=None, **kw):
    return store.save(run_id, _model(), preset="fast", dataset=jobs.SAMPLE_LABEL, config=CONFIG,
                      history=history or _history(), name="Run 1", **kw)


def _members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def _rewrite(path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


def _metadata(path) -> dict:
    return json.loads(str(np.lib.format.read_array(io.BytesIO(_members(path)["metadata.npy"]))))


def _with_metadata_text(store, run_id, text: str) -> Path:
    members = _members(store.path(GOOD))
    members["metadata.npy"] = _npy(np.array(text))
    return _rewrite(store.path(run_id), members)


def _list_traced(store):
    """``store.list_runs(batches=False)`` (the Train page's table) and the peak of memory it allocated (bytes)."""
    tracemalloc.start()
    try:
        records, skipped = store.list_runs(batches=False)
        return records, skipped, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- kind 2: legal sizes that were slow
def test_the_metadata_limit_holds_the_largest_metadata_a_real_run_writes(tmp_path):
    """MAX_RUN_METADATA_CHARS is derived from a real run: the most test values (MAX_EPOCHS epochs, each value
    the longest a float can print), the longest error, name and dataset (each character escaped to 12), all fit;
    and the limit is tight (within 10 % of that run)."""
    store = RunStore(tmp_path)
    longest = 1.2345678901234567e-100  # 23 characters, the longest a number >= 0 prints
    history = dict(_history(batches=0, epochs_done=MAX_EPOCHS, epochs=MAX_EPOCHS), batch_loss=[],
                   batch_accuracy=[], epoch_test_loss=[longest] * MAX_EPOCHS,
                   epoch_test_accuracy=[longest] * MAX_EPOCHS, final_test_loss=longest,
                   error="\U0001F600" * 4000, batches_per_epoch=10**9 - 1, batch=10**9 - 1)
    store.save(GOOD, _model(), preset="fast", dataset="\U0001F600" * 200, config=CONFIG, history=history,
               name="\U0001F600" * 64)
    chars = len(str(np.lib.format.read_array(io.BytesIO(_members(store.path(GOOD))["metadata.npy"]))))
    assert 0.9 * MAX_RUN_METADATA_CHARS <= chars <= MAX_RUN_METADATA_CHARS, chars
    records, skipped = store.list_runs()
    assert skipped == [] and records[0].epochs_done == MAX_EPOCHS


def test_a_long_run_keeps_its_batches_in_members_and_the_list_reads_none_of_them(tmp_path):
    """50 epochs x 7,500 batches (the Train page's longest run): the metadata stays small, the list's record has
    no per-batch values, opening the run gives them back exactly; model loaders skip the history members."""
    store = RunStore(tmp_path)
    history = _history(batches=375_000, epochs_done=50, epochs=50)
    path = _save(store, history=history)
    members = _members(path)
    assert {f"{m}.npy" for m in HISTORY_MEMBERS.values()} <= set(members)
    assert len(members["metadata.npy"]) < 20_000 and "batch_loss" not in _metadata(path)["history"]
    records, skipped, peak = _list_traced(store)
    assert skipped == [] and peak < 5 * 2**20, peak
    (listed,) = records
    assert listed.history["batch_loss"] == [] and listed.epochs_done == 50 and listed.test_accuracy == 0.6
    opened = store.record(GOOD)
    assert opened.history["batch_loss"] == history["batch_loss"]
    assert opened.history["batch_accuracy"] == history["batch_accuracy"]
    model, metadata = load_checkpoint(path)  # weights only: the members are no weights
    assert metadata["batch_history"] == "members" and load_model(path).spec == model.spec


@pytest.mark.parametrize("older", [False, True])
@pytest.mark.parametrize("case", ["padded", "many_keys", "long_string"])
def test_metadata_padded_to_the_old_limit_is_refused_after_the_limit_is_read(tmp_path, case, older):
    """Metadata within the old 24,000,000-character limit but far over what a real run writes: refused by the
    runs list once it has read MAX_RUN_METADATA_CHARS of it (nothing parsed, little memory), named with the limit;
    the good run lists. Both layouts: per-batch values in members, and the older one (all in the metadata)."""
    store = RunStore(tmp_path)
    _save(store)
    meta = _metadata(store.path(GOOD))
    bad = "20260101-000000-fast-b00001"
    meta["run_id"] = bad
    size = 23_990_000
    if case == "padded":
        text = json.dumps(meta)[:-1] + " " * (size - len(json.dumps(meta))) + "}"
    elif case == "many_keys":
        meta.update({f"k{i}": 0 for i in range(1_000_000)})
        text = json.dumps(meta)
    else:
        text = json.dumps(dict(meta, notes="x" * size))
    _with_metadata_text(store, bad, text)
    if older:
        members = _members(store.path(bad))
        for member in HISTORY_MEMBERS.values():
            del members[f"{member}.npy"]
        _rewrite(store.path(bad), members)
    records, skipped, peak = _list_traced(store)
    assert [r.run_id for r in records] == [GOOD]
    (item,) = skipped
    assert item.name == f"{bad}.npz" and item.deletable
    assert f"over the limit of MAX_RUN_METADATA_CHARS={MAX_RUN_METADATA_CHARS:,} for a run's metadata" in item.reason
    assert peak < 8 * 2**20, peak


def test_an_older_run_file_with_its_history_in_the_metadata_is_still_read(tmp_path):
    store = RunStore(tmp_path)
    _save(store)
    members = _members(store.path(GOOD))
    meta = _metadata(store.path(GOOD))
    old = "20260101-000000-fast-c00001"
    meta.update(run_id=old)
    meta.pop("batch_history")
    for key, member in HISTORY_MEMBERS.items():
        meta["history"][key] = np.lib.format.read_array(io.BytesIO(members.pop(f"{member}.npy"))).tolist()
    members["metadata.npy"] = _npy(np.array(json.dumps(meta)))
    _rewrite(store.path(old), members)
    records, skipped = store.list_runs()
    assert skipped == [] and {r.run_id for r in records} == {GOOD, old}
    assert store.record(old).history["batch_loss"] == store.record(GOOD).history["batch_loss"]
    assert store.load(old)[1].history["batch_accuracy"] == _history()["batch_accuracy"]


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("history_batch_loss.npy"),
     "the member 'history_batch_loss' (its per-batch batch_loss) is missing"),
    (lambda m: m.update({"history_batch_loss.npy": _npy(np.array([1.0, np.nan, 2.0]))}),
     "must hold finite numbers from 0 to inf, got np.float64(nan) at batch 1"),
    (lambda m: m.update({"history_batch_accuracy.npy": _npy(np.array([0.1, 0.2, 1.5]))}),
     "must hold finite numbers from 0 to 1, got np.float64(1.5) at batch 2"),
    (lambda m: m.update({"history_batch_accuracy.npy": _npy(np.array([0.1, 0.2]))}),
     "3 batch losses but 2 batch accuracies"),
    (lambda m: m.update({"history_batch_loss.npy": _npy(np.array([[1.0, 2.0, 3.0]]))}),
     "must be a 1-D array of floats, got float64 (1, 3)"),
    (lambda m: m.update({"history_batch_loss.npy": _npy(np.array(["a", "b", "c"]))}),
     "must be a 1-D array of floats, got <U1 (3,)"),
])
def test_damaged_history_members_are_refused_when_the_run_is_opened(monkeypatch, tmp_path, change, message):
    """The list shows such a run from its metadata; opening it (the Train page's chosen run) is a warning that
    names the member, never a traceback."""
    store = RunStore(tmp_path / LEARNER)
    path = _save(store)
    members = _members(path)
    change(members)
    _rewrite(path, members)
    with pytest.raises(ValueError, match="cannot be used") as refused:
        store.record(GOOD)
    assert message in str(refused.value)
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")
    at = run_page(TRAIN_PAGE, query_params={"learner": LEARNER})
    assert list(at.dataframe[0].value["Run id"]) == [GOOD]
    assert any("Run 1 cannot be shown" in w.value and md(message) in w.value for w in at.warning), \
        [w.value for w in at.warning]


def test_the_train_page_shows_a_long_run_and_its_curves(monkeypatch, tmp_path):
    store = RunStore(tmp_path / LEARNER)
    _save(store, history=_history(batches=375_000, epochs_done=50, epochs=50))
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")
    at = run_page(TRAIN_PAGE, query_params={"learner": LEARNER})
    assert list(at.dataframe[0].value["Run id"]) == [GOOD]
    assert "50 / 50" in list(at.dataframe[0].value["Epochs (done / planned)"])
    loss_chart = next(el for el in at.get("plotly_chart") if "runs_chart_loss" in el.proto.id)
    drawn = plotly_values(json.loads(loss_chart.proto.spec)["data"][0]["y"])
    # the per-batch curve is drawn (thinned to a few hundred points) from the opened run's members: the list's
    # record has none
    assert len(drawn) >= 100 and 0 <= drawn.min() and drawn.max() <= 3


# --------------------------------------------------------------------------- kind 1: a save racing a delete
def _job_run(tmp_path):
    files = jobs.JobFiles(tmp_path, LEARNER)
    files.store.root.mkdir(parents=True)
    files.job_path(GOOD).write_text("{}")
    return files


def _left(files) -> list[str]:
    return sorted(p.name for p in files.store.root.iterdir())


def test_a_checkpoint_after_the_delete_is_refused_and_writes_nothing(tmp_path):
    files = _job_run(tmp_path)
    files.save_checkpoint(GOOD, _model(), preset="fast", dataset="d", config=CONFIG, history=_history())
    files.write_progress(GOOD, {"status": "running"})
    files.store.delete(GOOD)
    assert _left(files) == []
    with pytest.raises(RunDeletedError, match=f"run {GOOD} was deleted"):
        files.save_checkpoint(GOOD, _model(), preset="fast", dataset="d", config=CONFIG, history=_history())
    assert files.write_progress(GOOD, {"status": "running"}) is False
    assert _left(files) == []


@pytest.mark.parametrize("moment", ["before_replace", "job_record_only", "after_save"])
def test_a_delete_during_a_checkpoint_leaves_the_run_deleted(monkeypatch, tmp_path, moment):
    """The delete forced into each point of the write (os.replace patched): whatever the order, nothing of the
    run is left and the save says the run was deleted (or the next one does)."""
    files = _job_run(tmp_path)
    save = lambda: files.save_checkpoint(GOOD, _model(), preset="fast", dataset="d", config=CONFIG,  # noqa: E731
                                         history=_history())
    save()
    real_replace = os.replace
    done = []

    def replace(src, dst):
        if not done and str(dst).endswith(".npz"):
            done.append(1)
            if moment == "before_replace":
                files.store.delete(GOOD)  # all of it, just before the new file moves in
            elif moment == "job_record_only":
                os.unlink(files.job_path(GOOD))  # the delete's first step only; its second comes after the save
        return real_replace(src, dst)

    monkeypatch.setattr(npzfile.os, "replace", replace)
    if moment == "after_save":
        save()
        files.store.delete(GOOD)
        with pytest.raises(RunDeletedError):
            save()
    else:
        with pytest.raises(RunDeletedError):
            save()
        if moment == "job_record_only":
            files.store.path(GOOD).unlink(missing_ok=True)  # the delete's second step (its file is gone already)
    assert _left(files) == []


def test_a_delete_while_a_progress_record_is_written_leaves_none(monkeypatch, tmp_path):
    files = _job_run(tmp_path)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".progress.json"):
            os.unlink(files.job_path(GOOD))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert files.write_progress(GOOD, {"status": "running"}) is False
    assert _left(files) == []


def test_saves_and_a_delete_in_threads_never_raise_anything_else_and_leave_nothing(tmp_path):
    for attempt in range(6):
        files = _job_run(tmp_path / str(attempt))
        model = _model()
        errors, deleted = [], threading.Event()
        files.save_checkpoint(GOOD, model, preset="fast", dataset="d", config=CONFIG, history=_history())

        def saver():
            while True:
                try:
                    files.save_checkpoint(GOOD, model, preset="fast", dataset="d", config=CONFIG, history=_history())
                    files.write_progress(GOOD, {"status": "running"})
                except RunDeletedError:
                    return
                except Exception as exc:  # noqa: BLE001 - anything else is the failure
                    errors.append(exc)
                    return

        thread = threading.Thread(target=saver)
        thread.start()
        time.sleep(0.01 * attempt)
        files.store.delete(GOOD)
        deleted.set()
        thread.join(30)
        assert not errors and not thread.is_alive()
        assert _left(files) == []


def test_a_training_job_whose_run_is_deleted_stops_with_the_reason(tmp_path, monkeypatch):
    """The worker's task: the learner deletes the run after its first checkpoint; the next checkpoint is refused,
    training stops cleanly (no traceback, status "deleted", the reason), and nothing of the run comes back."""
    from convviz.job_worker import train_task

    files = jobs.JobFiles(tmp_path, LEARNER)
    files.store.root.mkdir(parents=True)
    settings = dict(CONFIG, epochs=4, batch_size=500)
    files.job_path(GOOD).write_text(json.dumps({
        "run_id": GOOD, "submission": SUBMISSION, "submitted_at": time.time(), "submitted": True, "name": "Run 1",
        "number": 1, "settings": settings, "dataset": jobs.SAMPLE_LABEL, "created": "2026-01-02T00:00:00+00:00",
        "resume": False}))
    real_save, epochs_saved = RunStore.save, []

    def save(self, run_id, model, **kw):
        path = real_save(self, run_id, model, **kw)
        epochs_saved.append(kw["history"]["epoch"])
        self.delete(run_id)  # the learner's Delete, right after the first checkpoint
        return path

    monkeypatch.setattr(RunStore, "save", save)
    result = train_task(str(tmp_path), LEARNER, GOOD, SUBMISSION, niceness=0, heartbeat_s=0.1)
    assert result["status"] == "deleted" and "the run was deleted while it trained" in result["error"]
    assert epochs_saved == [1]  # it stopped: no epoch after the delete was trained to its end and saved
    assert _left(files) == []


# --------------------------------------------------------------------------- kind 1: .tmp files a crash left
def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    store = RunStore(tmp_path / LEARNER)
    _save(store)
    root = store.root
    old = time.time() - STALE_TMP_AGE_S - 60
    crash = root / f".{GOOD}.npz.ab12cd_9.tmp"  # a write_npz a kill interrupted
    crash_json = root / f".{GOOD}.progress.json.0a1b2c3d.tmp"  # a write_json the same
    fresh = root / f".{GOOD}.npz.zz99yy88.tmp"  # being written now
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    link = root / ".precious.txt.linkname.tmp"
    folder = root / ".somefolder.abcdefgh.tmp"
    other = root / ".notes.tmp"  # not our pattern
    for path in (crash, crash_json, fresh, other):
        path.write_bytes(b"half")
    link.symlink_to(outside)
    folder.mkdir()
    (folder / "inside").write_text("x")
    for path in (crash, crash_json, other, outside, folder):
        os.utime(path, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [GOOD] and skipped == []
    assert not crash.exists() and not crash_json.exists()
    assert fresh.exists() and other.exists() and link.is_symlink() and outside.read_text() == "keep"
    assert folder.is_dir() and (folder / "inside").exists()
    assert store.remove_stale_temporaries(now=time.time() + STALE_TMP_AGE_S + 60) == [fresh.name]


def test_a_write_killed_midway_leaves_a_file_the_next_listing_cleans(tmp_path):
    """A real leftover: a process killed while write_npz writes (SIGKILL from the test) leaves its .tmp."""
    import signal
    import subprocess
    import sys

    store = RunStore(tmp_path / LEARNER)
    store.root.mkdir(parents=True)
    script = ("import numpy as np, os, signal\n"
              "from convviz import npzfile\n"
              "real = np.savez_compressed\n"
              "def killed(handle, **arrays):\n"
              "    handle.write(b'PK partial'); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
              "npzfile.np.savez_compressed = killed\n"
              f"npzfile.write_npz({str(store.path(GOOD))!r}, {{'a': np.zeros(3)}})\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (left,) = [p for p in store.root.iterdir()]
    assert left.name.startswith(f".{GOOD}.npz.") and left.name.endswith(".tmp")
    assert store.list_runs() == ([], []) and left.exists()  # fresh: maybe still being written
    old = time.time() - STALE_TMP_AGE_S - 1
    os.utime(left, (old, old))
    assert store.list_runs() == ([], []) and not left.exists()


def test_an_older_long_run_is_listed_without_holding_its_history(tmp_path):
    """A 50 x 7,500 run written before the members (11 MB of JSON in its metadata): listed from its metadata read
    piece by piece, its per-batch values checked as they stream by but never held; opened, they are all there."""
    store = RunStore(tmp_path)
    history = _history(batches=375_000, epochs_done=50, epochs=50)
    path = _save(store, history=history)
    members = _members(path)
    meta = _metadata(path)
    meta.pop("batch_history")
    for key, member in HISTORY_MEMBERS.items():
        del members[f"{member}.npy"]
        meta["history"][key] = history[key]
    members["metadata.npy"] = _npy(np.array(json.dumps(meta)))
    _rewrite(path, members)
    records, skipped, peak = _list_traced(store)
    assert skipped == [] and peak < 8 * 2**20, peak
    assert records[0].history["batch_loss"] == [] and records[0].epochs_done == 50
    assert store.record(GOOD).history["batch_loss"] == history["batch_loss"]


@pytest.mark.parametrize("value, message", [
    ("-1.0", "metadata['history']['batch_loss'] must be a number from 0 to inf, got -1.0"),
    ('"abc"', "metadata['history']['batch_loss'] must be a number from 0 to inf, got abc"),
    ("1" + "0" * 400, "too large for a float"),
    ("[1]", "metadata['history']['batch_loss'] must be a number from 0 to inf, got [1"),
    ("1" * 20_000, "metadata['history']['batch_loss'] must be a number from 0 to inf, got 1111"),
], ids=["negative", "text", "huge_integer", "nested_list", "20000_digits"])
def test_an_older_run_with_a_bad_batch_value_is_one_warning(tmp_path, value, message):
    """The values skipped while the list streams are checked as check_history checks them, with its messages,
    wherever the value falls in a piece."""
    store = RunStore(tmp_path)
    history = _history(batches=200_000)
    _save(store, history=history)
    members = _members(store.path(GOOD))
    meta = _metadata(store.path(GOOD))
    meta.pop("batch_history")
    bad = "20260101-000000-fast-d00001"
    meta["run_id"] = bad
    for key, member in HISTORY_MEMBERS.items():
        del members[f"{member}.npy"]
        meta["history"][key] = history[key]
    text = json.dumps(meta).replace(f"{history['batch_loss'][150_000]},", f"{value},", 1)
    members["metadata.npy"] = _npy(np.array(text))
    _rewrite(store.path(bad), members)
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [GOOD]
    (item,) = skipped
    assert message in item.reason, item.reason
