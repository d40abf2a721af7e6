"""convviz.jobs against real Dask clusters: an embedded LocalCluster, and a scheduler and a worker started
as separate processes with Dask's own commands (``dask scheduler`` / ``dask worker``).

Runs train on the bundled sample with a tiny network (2/4 filters) so each epoch takes a second or two.
Every process a test starts, it stops (by PID) and checks gone.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from dask_procs import DaskProcesses

from convviz import jobs

LEARNER = "learner0jobs1"
TINY = {"preset": "fast", "filters": (2, 4), "kernel_size": 3, "epochs": 1, "batch_size": 256,
        "learning_rate": 1e-3, "seed": 0}


def wait_for(predicate, timeout: float = 120.0, every: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def wait_state(manager, files, run_id, states, timeout=180.0):
    def check():
        state = manager.state(files, run_id)
        return state if state is not None and state.state in states else None

    found = wait_for(check, timeout)
    assert found is not None, (run_id, manager.state(files, run_id), manager.status)
    return found


def settings(**changes):
    return dict(TINY, **changes)


@pytest.fixture(scope="module")
def local_manager():
    """An embedded LocalCluster of one worker process (so a second run is queued)."""
    manager = jobs.JobManager(n_workers=1, niceness=0, heartbeat_s=0.2)
    assert manager.wait_ready(120), manager.status
    yield manager
    manager.close()
    assert manager.status[0] == "closed"


@pytest.fixture
def files(tmp_path):
    return jobs.JobFiles(tmp_path / "runs", LEARNER)


# ------------------------------------------------------------------------------------------ pure parts
@pytest.mark.parametrize("raw", ["localhost:8786", "tcp://", "tcp://host", "http://h:1", "tcp://h:0",
                                 "tcp://h:99999", "tcp://h:12/x", "not a url"])
def test_scheduler_address_rejects_malformed(raw):
    with pytest.raises(ValueError, match=f"CONVVIZ_DASK_SCHEDULER={raw!r}"):
        jobs.scheduler_address(raw)


def test_scheduler_address_accepts_tcp():
    assert jobs.scheduler_address("  tcp://10.0.0.5:8786 ") == "tcp://10.0.0.5:8786"
    assert jobs.scheduler_address("") is None and jobs.scheduler_address(None) is None


def test_bad_learner_and_workers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="learner='../x'"):
        jobs.JobFiles(tmp_path, "../x")
    with pytest.raises(ValueError, match="n_workers=0"):
        jobs.JobManager(n_workers=0)


def test_unreachable_scheduler_fails_with_a_message():
    manager = jobs.JobManager(scheduler="tcp://127.0.0.1:9", connect_timeout_s=2)
    try:
        assert not manager.wait_ready(30)
        state, message = manager.status
        assert state == "failed" and "tcp://127.0.0.1:9" in message and "could not be reached" in message
    finally:
        manager.close()


# ------------------------------------------------------------------------------------------ LocalCluster
def test_a_run_trains_on_the_local_cluster_and_is_saved(local_manager, files):
    run_id = local_manager.launch(files, settings(), jobs.SAMPLE_LABEL)
    state = local_manager.state(files, run_id)
    assert state.name == "Run 1" and state.active  # the page can answer at once: waiting / queued / loading
    done = wait_state(local_manager, files, run_id, jobs.ENDED)
    assert done.state == "finished", done.error
    record = files.store.record(run_id)
    assert record.name == "Run 1" and record.epochs_done == 1 and record.status == "finished"
    # one number per fact: the saved run's accuracy is its final evaluation, the one the progress shows too
    assert record.test_accuracy == record.history["final_test_accuracy"] == done.history["final_test_accuracy"]
    assert record.history["batch_loss"] == done.history["batch_loss"]
    assert len(done.history["batch_loss"]) == 20 and done.history["samples_per_second"] > 0
    assert done.first_kernel is not None and len(done.first_kernel) == 3  # (3, 3, 1, 2)
    second = local_manager.launch(files, settings(), jobs.SAMPLE_LABEL)
    assert local_manager.state(files, second).name == "Run 2"
    wait_state(local_manager, files, second, jobs.ENDED)


def test_queued_runs_start_in_order_and_a_queued_run_can_be_stopped(local_manager, tmp_path):
    learners = [jobs.JobFiles(tmp_path / "runs", f"learner{i}queue") for i in range(4)]
    first = local_manager.launch(learners[0], settings(epochs=50), jobs.SAMPLE_LABEL)
    wait_state(local_manager, learners[0], first, ("running",))
    later = [local_manager.launch(f, settings(), jobs.SAMPLE_LABEL) for f in learners[1:]]
    positions = wait_for(lambda: [s.position for s in (local_manager.state(f, r) for f, r in zip(learners[1:], later))
                                  if s.state == "queued"] == [1, 2, 3] or None, 30)
    assert positions, [local_manager.state(f, r) for f, r in zip(learners[1:], later)]
    local_manager.stop(learners[2], later[1])  # the middle one leaves the queue at once
    assert local_manager.state(learners[2], later[1]).state == "stopped"
    assert [local_manager.state(f, r).position for f, r in ((learners[1], later[0]), (learners[3], later[2]))] == [1, 2]
    local_manager.stop(learners[0], first)
    assert wait_state(local_manager, learners[0], first, jobs.ENDED).state == "stopped"
    ends = []
    for f, r in ((learners[1], later[0]), (learners[3], later[2])):
        assert wait_state(local_manager, f, r, jobs.ENDED).state == "finished"
        ends.append(f.store.record(r).updated)
    assert ends == sorted(ends)  # one worker: the earlier submission ran first
    assert not learners[2].store.path(later[1]).exists()  # the stopped queued run never trained


def test_stop_from_another_server_and_resume(local_manager, files):
    """A second manager (another web server) connected to the same scheduler stops the run and resumes it."""
    run_id = local_manager.launch(files, settings(epochs=50, batch_size=64), jobs.SAMPLE_LABEL)
    wait_for(lambda: len(local_manager.state(files, run_id).history["batch_loss"]) >= 3, 120)
    other = jobs.JobManager(scheduler=local_manager._cluster.scheduler_address, niceness=0)
    try:
        assert other.wait_ready(30), other.status
        assert other.active_run(files) == run_id  # found by the learner key alone
        other.stop(files, run_id)
        stopped = wait_state(other, files, run_id, jobs.ENDED)
        assert stopped.state == "stopped"
        record = files.store.record(run_id)
        assert record.status == "stopped" and record.test_accuracy == record.history["final_test_accuracy"]
        assert other.resume(files, run_id, 1) == run_id
        resumed = wait_state(other, files, run_id, jobs.ENDED)  # other's submission (local_manager owns only its own)
        assert resumed.state == "finished", resumed.error
        assert files.store.record(run_id).epochs_done == 1 and resumed.name == "Run 1"
    finally:
        other.close()


# ------------------------------------------------------------------------------------------ dask scheduler / worker
@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` and ``dask worker`` (one process, one thread, with its nanny) on loopback."""
    log_path = tmp_path_factory.mktemp("dask") / "dask.log"
    with DaskProcesses(log_path) as procs:
        yield procs.address, procs, log_path
    assert not procs.procs


def test_commands_cluster_killed_worker_and_a_web_server_restart(dask_cluster, files):
    address, _, log_path = dask_cluster
    manager = jobs.JobManager(scheduler=address, niceness=0, stale_after_s=30)
    assert manager.wait_ready(60), manager.status
    try:
        assert manager._client.wait_for_workers(1, timeout=60) is None
        # ---- a worker killed mid-epoch: failed with the reason, checkpoint kept, resumable
        run_id = manager.launch(files, settings(epochs=50, batch_size=32), jobs.SAMPLE_LABEL)
        wait_for(lambda: (s := manager.state(files, run_id)).history["epoch"] >= 1
                 and s.history["batch"] >= 5 and s.state == "running", 180)
        progress = files.read_progress(run_id)
        os.kill(progress["pid"], signal.SIGKILL)
        failed = wait_state(manager, files, run_id, jobs.ENDED, timeout=90)
        assert failed.state == "failed" and failed.error, failed
        assert "died" in failed.error or "KilledWorker" in failed.error or "stopped answering" in failed.error
        record = files.store.record(run_id)
        assert record.epochs_done >= 1 and record.status == "running"  # the last epoch's checkpoint is kept
        done_before = record.epochs_done
        manager.resume(files, run_id, done_before + 1)
        resumed = wait_state(manager, files, run_id, jobs.ENDED, timeout=180)
        assert resumed.state == "finished", resumed.error
        assert files.store.record(run_id).epochs_done == done_before + 1

        # ---- the web server that started a run goes away: the run goes on, a new server finds it
        second = manager.launch(files, settings(epochs=3, batch_size=64), jobs.SAMPLE_LABEL)
        wait_state(manager, files, second, ("loading", "running"))
        manager.close()
        restarted = jobs.JobManager(scheduler=address, niceness=0)
        try:
            assert restarted.wait_ready(60)
            assert restarted.active_run(files) == second
            assert wait_state(restarted, files, second, jobs.ENDED).state == "finished"
            assert files.store.record(second).epochs_done == 3
        finally:
            restarted.close()
    finally:
        manager.close()
        print(log_path.read_text()[-3000:])


def test_the_worker_preload_lowers_priority_and_gives_tensorflow_one_thread():
    """dask_setup (the preload of every worker) in a fresh process: niceness, TensorFlow's threads, env kept if set."""
    import subprocess
    import sys

    code = ("import os; from convviz import jobs; jobs.dask_setup(); import tensorflow as tf; "
            "print(os.getpriority(os.PRIO_PROCESS, 0), os.environ['TF_NUM_INTRAOP_THREADS'], "
            "os.environ['TF_NUM_INTEROP_THREADS'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    nice, intra, inter = out.stdout.split()
    assert int(nice) >= jobs.WORKER_NICENESS and intra == inter == str(jobs.WORKER_TF_THREADS)
    env["TF_NUM_INTRAOP_THREADS"] = "2"  # an operator's own setting wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split()[1] == "2"



def _port_warnings(start):
    """The "Port ... is already in use" warnings raised while ``start()`` runs, with 8787 held busy."""
    import socket
    import warnings

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))  # another cluster's dashboard (if 8787 is busy already, so much the better)
        holder.listen()
    except OSError:
        pass
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start()
    finally:
        holder.close()
    return [str(w.message) for w in caught if "already in use" in str(w.message)]


def test_starting_the_embedded_cluster_warns_of_no_busy_port():
    """dashboard_address=None still serves the scheduler's HTTP routes on 8787 (dask/distributed#8136): the
    embedded cluster asks for a free loopback port instead, so a second cluster on the machine warns of nothing."""
    from distributed import LocalCluster

    def plain():  # what dashboard_address=None alone does: the warning this test must be able to see
        LocalCluster(n_workers=0, processes=False, dashboard_address=None).close()

    assert any("8787" in message for message in _port_warnings(plain))
    manager = jobs.JobManager(n_workers=1, niceness=0)
    try:
        assert _port_warnings(lambda: manager.wait_ready(120)) == []
        assert manager.status[0] == "ready", manager.status
        http = manager._cluster.scheduler.http_server
        assert http.address == "127.0.0.1" and http.port != 8787
    finally:
        manager.close()
