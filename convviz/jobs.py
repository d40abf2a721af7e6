"""Training runs as tasks on a Dask cluster: launch, queue, stop, resume, and read their progress.

Nothing here imports Streamlit; :mod:`convviz.ui.training` only draws what this module reports. This module is
the web server's side (:class:`JobManager`: the cluster, launch / resume / stop, the submission queue);
:mod:`convviz.job_files` owns the files a run adds beside its checkpoint and :func:`run_state`, and
:mod:`convviz.job_worker` what runs in a worker (:func:`train_task`, :func:`dask_setup`). Their public names are
importable from here too.

How a run travels:

* The web server (:class:`JobManager`) writes the run's **job record** ``<run id>.job.json`` and a
  **queue marker** (``<runs root>/.queue/``) and submits :func:`train_task` to a
  ``dask.distributed`` cluster with ``fire_and_forget``, so the run goes on when the web server
  that started it stops. With more runs than worker threads, Dask keeps the extra tasks waiting
  and starts them in submission order; the page's "queued, position N" counts the queue markers.
* The task runs in a worker process: it loads the data itself (the bundled sample or the full
  MNIST, by dataset name), builds or loads the model, trains with :class:`convviz.train.TrainingJob`
  and writes **progress** ``<run id>.progress.json`` (history, digits/s, ETA, status, error, a
  heartbeat) atomically every ``heartbeat_s`` from a monitor thread, and a **checkpoint**
  (:class:`convviz.runs.RunStore`) after every epoch and when it stops.
* Stop is a file, ``<run id>.stop``, polled by the task: it works from any web server that
  shares the runs folder, across processes and machines.
* A worker that dies mid-run: Dask either reports ``KilledWorker`` or starts the task again;
  the task never trains a submission twice (a claim file), and a progress heartbeat older than
  ``stale_after_s`` also counts as a dead worker. The run is then ``failed`` with the reason, and
  its last checkpoint is kept for :meth:`JobManager.resume`.

Across machines the runs root must be shared storage; how the files are laid out, written and read back
is :mod:`convviz.job_files`' docstring.

The cluster: with no configuration an embedded ``LocalCluster`` of ``CONVVIZ_MAX_JOBS`` (default 2)
worker processes, one thread each, at a lower CPU priority than the web server; with
``CONVVIZ_DASK_SCHEDULER=tcp://HOST:PORT`` an existing cluster, and nothing is started locally.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from convviz.config import check_run_length
from convviz.job_files import (ENDED, KERNEL_FILTER_LIMIT, KERNEL_SIDE_LIMIT, LEARNER_RE, MAX_RECORD_BYTES, JobFiles,
                               RunState, empty_history, iso_time, run_state, write_json)
from convviz.job_worker import (FULL_LABEL, SAMPLE_LABEL, WORKER_NICENESS, WORKER_TF_THREADS, dask_setup,
                                load_dataset, train_task)
from convviz.run_metadata import MAX_EPOCHS
from convviz.runs import remove_entry

__all__ = [
    "DEFAULT_MAX_JOBS", "ENDED", "FULL_LABEL", "JobFiles", "JobManager", "KERNEL_FILTER_LIMIT", "KERNEL_SIDE_LIMIT",
    "LEARNER_RE", "MAX_JOBS_ENV", "MAX_RECORD_BYTES", "RunState", "SAMPLE_LABEL", "SCHEDULER_ENV", "WORKER_NICENESS",
    "WORKER_TF_THREADS", "dask_setup", "load_dataset", "max_jobs", "run_state", "scheduler_address", "train_task",
]

MAX_JOBS_ENV = "CONVVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
SCHEDULER_ENV = "CONVVIZ_DASK_SCHEDULER"
HTTP_ADDRESS = "127.0.0.1:0"
"""Where the embedded cluster's scheduler serves its HTTP routes (no dashboard): loopback, a free port."""


def max_jobs() -> tuple[int, str | None]:
    """How many runs train at once on the embedded cluster (its worker count), from ``CONVVIZ_MAX_JOBS``.

    Returns:
        ``(count, warning)``: the count (>= 1; default 2) and a message when the variable was invalid.
    """
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_JOBS, None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        return DEFAULT_MAX_JOBS, (f"{MAX_JOBS_ENV}={raw!r} is not an integer >= 1; using the default "
                                  f"{DEFAULT_MAX_JOBS}.")
    return value, None


def scheduler_address(raw: str | None) -> str | None:
    """Check a Dask scheduler address (the value of ``CONVVIZ_DASK_SCHEDULER``).

    Args:
        raw: ``tcp://HOST:PORT`` (also ``tls://``), or None / blank for the embedded cluster.

    Returns:
        The address, stripped, or None when blank.

    Raises:
        ValueError: not ``tcp://HOST:PORT`` / ``tls://HOST:PORT`` with a port in 1-65535, echoing the value.
    """
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    problem = f"{SCHEDULER_ENV} must look like tcp://HOST:PORT, got {SCHEDULER_ENV}={raw!r}"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None or not 1 <= port <= 65535 \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(problem)
    return value


_SPAWN_GUARD = threading.Lock()
_spawn_guarded = False


def _guard_spawn_from_scripts() -> None:
    """Keep worker processes spawned from a Streamlit server from running a page script on start.

    ``multiprocessing``'s spawn start method re-runs the parent's ``__main__`` file in the child
    (as ``__mp_main__``). Streamlit installs each page script as a fake ``__main__`` module (no
    loader, no spec) while it runs, so a Dask worker spawned from the web server would execute a page.
    This wraps :func:`multiprocessing.spawn.get_preparation_data` (once per process) so that such an
    exec'd ``__main__`` is not re-run in the child; a real script or ``python -m`` main is left as it is.
    The workers need nothing from ``__main__``: their task, :func:`train_task`, is importable.
    """
    global _spawn_guarded
    import multiprocessing.spawn as spawn
    import sys

    with _SPAWN_GUARD:
        if _spawn_guarded:
            return
        original = spawn.get_preparation_data

        def preparation_data(name):
            data = original(name)
            main = sys.modules.get("__main__")
            if getattr(main, "__loader__", None) is None and getattr(main, "__spec__", None) is None:
                data.pop("init_main_from_path", None)
            return data

        spawn.get_preparation_data = preparation_data
        _spawn_guarded = True


@dataclass
class _Pending:
    files: JobFiles
    run_id: str
    submission: str


class JobManager:
    """One web server's link to the Dask cluster that trains the runs (start it once per server).

    The cluster is started (or connected to) in a background thread on the first
    :meth:`ensure_started`, so a page never waits for it; runs launched before it is ready wait in
    the runs folder (state ``waiting``) and are submitted, in order, as soon as it is.

    Args:
        scheduler: ``tcp://HOST:PORT`` of an existing cluster, or None for an embedded
            ``LocalCluster`` of ``n_workers`` worker processes with one thread each.
        n_workers: worker processes of the embedded cluster (>= 1).
        niceness: CPU niceness of the training threads (lower priority than the web server); 0 leaves it.
        connect_timeout_s: seconds to wait for an external scheduler.
        stale_after_s: a running run whose heartbeat is older than this has failed (see :func:`run_state`).
        retry_after_s: after a failed start, seconds before :meth:`ensure_started` tries again.
        heartbeat_s: seconds between a task's progress writes.

    Raises:
        ValueError: a malformed ``scheduler`` address or ``n_workers`` < 1, echoing it.
    """

    def __init__(self, scheduler: str | None = None, n_workers: int = DEFAULT_MAX_JOBS, niceness: int = 10,
                 connect_timeout_s: float = 10.0, stale_after_s: float = 20.0, retry_after_s: float = 30.0,
                 heartbeat_s: float = 0.5):
        self.scheduler = scheduler_address(scheduler)
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be an integer >= 1, got n_workers={n_workers!r}")
        self.n_workers, self.niceness = n_workers, niceness
        self.connect_timeout_s, self.stale_after_s, self.retry_after_s = connect_timeout_s, stale_after_s, retry_after_s
        self.heartbeat_s = heartbeat_s
        self.embedded = self.scheduler is None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._status, self._message, self._failed_at = "idle", None, 0.0
        self._cluster = self._client = None
        self._pending: list[_Pending] = []
        self._futures: dict[str, tuple] = {}  # submission -> (future, files, run_id)
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ the cluster
    @property
    def status(self) -> tuple[str, str | None]:
        """``(state, message)``: state ``idle``, ``starting``, ``ready``, ``failed`` (message says why) or ``closed``."""
        with self._lock:
            return self._status, self._message

    def describe(self) -> str:
        """The cluster in words, e.g. ``an embedded Dask cluster of 2 worker processes``."""
        if self.embedded:
            return f"an embedded Dask cluster of {self.n_workers} worker process(es)"
        return f"the Dask cluster at {self.scheduler}"

    def ensure_started(self) -> None:
        """Start the cluster (or connect) in the background if that has not happened; returns at once.

        After a failure, a new attempt is made once ``retry_after_s`` has passed.
        """
        with self._lock:
            if self._closed:
                return
            retry = self._status == "failed" and time.monotonic() - self._failed_at > self.retry_after_s
            if self._status == "idle" or retry:
                self._status, self._message = "starting", None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._supervise, name="convviz-jobs", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Start if needed and wait until the cluster is ready (True) or failed / ``timeout`` passed (False)."""
        self.ensure_started()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, _ = self.status
            if state == "ready":
                return True
            if state in ("failed", "closed"):
                return False
            time.sleep(0.05)
        return False

    def _connect(self):
        import dask
        from distributed import Client, LocalCluster

        if self.embedded:
            _guard_spawn_from_scripts()
            # allowed-failures 0: a task whose worker died is reported (KilledWorker), never run again.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                # No dashboard, but the scheduler still serves its HTTP routes (health, metrics), on 8787 when
                # no address is given, with a "Port 8787 is already in use" warning when another cluster has it
                # (dask/distributed#8136, #7207): a free port on loopback instead; dashboard=False stays.
                cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": HTTP_ADDRESS},
                                       env={"TF_CPP_MIN_LOG_LEVEL": "2"}, silence_logs=40, preload=["convviz.jobs"])
            try:
                return cluster, Client(cluster, set_as_default=False)
            except Exception:
                cluster.close()
                raise
        return None, Client(self.scheduler, timeout=self.connect_timeout_s, set_as_default=False)

    def _supervise(self) -> None:
        """The background thread: (re)connect, submit waiting runs, notice failed tasks."""
        while True:
            with self._lock:
                if self._closed:
                    return
                start = self._status == "starting"
            if start:
                try:
                    cluster, client = self._connect()
                except Exception as exc:  # any failure to start is reported on the page
                    with self._lock:
                        self._status, self._failed_at = "failed", time.monotonic()
                        self._message = (f"{self.describe()} could not be reached: {type(exc).__name__}: {exc}"
                                         if not self.embedded else
                                         f"{self.describe()} did not start: {type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    if self._closed:
                        client.close()
                        if cluster is not None:
                            cluster.close()
                        return
                    self._cluster, self._client, self._status = cluster, client, "ready"
            self._submit_pending()
            self._check_futures()
            with self._lock:
                if not self._closed and self._status != "starting":
                    self._wake.wait(timeout=1.0)

    def _submit_pending(self) -> None:
        from distributed import fire_and_forget

        with self._lock:
            if self._status != "ready" or not self._pending:
                return
            pending = list(self._pending)  # each stays in _pending (owned) until it is in _futures
            client = self._client

        def done_with(item):
            with self._lock:
                self._pending.remove(item)

        for item in pending:
            job = item.files.read_job(item.run_id)
            if job is None or job.get("submission") != item.submission:
                done_with(item)
                continue  # superseded or deleted meanwhile
            if item.files.stop_requested(item.run_id):
                done_with(item)
                continue  # stopped before it was submitted (the page marked it stopped)
            job["submitted"] = True
            write_json(item.files.job_path(item.run_id), job)
            try:
                future = client.submit(train_task, str(item.files.runs_root), item.files.learner, item.run_id,
                                       item.submission, self.niceness, self.heartbeat_s, pure=False,
                                       key=f"convviz-train-{item.files.learner}-{item.run_id}-{item.submission}")
                fire_and_forget(future)
            except Exception as exc:
                done_with(item)
                self._fail(item.files, item.run_id, item.submission, f"it could not be submitted: {exc}")
                continue
            with self._lock:
                self._futures[item.submission] = (future, item.files, item.run_id)
                self._pending.remove(item)

    def _check_futures(self) -> None:
        with self._lock:
            done = [(s, v) for s, v in self._futures.items() if v[0].done()]
            for submission, _ in done:
                del self._futures[submission]
        for submission, (future, files, run_id) in done:
            if future.status in ("error", "cancelled", "lost"):
                try:
                    reason = repr(future.exception(timeout=5)) if future.status == "error" else future.status
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                self._fail(files, run_id, submission, f"Dask reported the task {reason}")

    def _fail(self, files: JobFiles, run_id: str, submission: str, error: str) -> None:
        """Mark a submission failed unless it has already ended (the checkpoint is left as it is)."""
        files.unqueue(run_id, submission)
        previous = files.read_progress(run_id) or {}
        if previous.get("submission") == submission and previous.get("status") in ENDED:
            return
        job = files.read_job(run_id) or {}
        if job.get("submission") != submission:
            return
        history = dict(previous.get("history") or job.get("history") or empty_history(job.get("settings", {})))
        history.update(status="failed", error=error)
        files.write_progress(run_id, {"submission": submission, "status": "failed", "error": error,
                                      "heartbeat": time.time(), "history": history,
                                      "first_kernel": previous.get("first_kernel")})

    def close(self) -> None:
        """Disconnect (runs on an external cluster go on) and stop an embedded cluster (its runs end)."""
        with self._lock:
            self._closed = True
            self._status = "closed"
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
            self._wake.notify_all()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def owned(self) -> set:
        """Submission ids this manager submitted (or will submit) and whose tasks have not ended."""
        with self._lock:
            return set(self._futures) | {p.submission for p in self._pending}

    # ------------------------------------------------------------------ runs
    def state(self, files: JobFiles, run_id: str) -> RunState | None:
        """The run's :class:`RunState` (see :func:`run_state`), as this manager sees it."""
        return run_state(files, run_id, stale_after_s=self.stale_after_s, owned=self.owned(),
                         embedded=self.embedded)

    def active_run(self, files: JobFiles) -> str | None:
        """The learner's newest run that has not ended, or None (how a page finds a run it did not start)."""
        for run_id in reversed(files.job_ids()):
            state = self.state(files, run_id)
            if state is not None and state.active:
                return run_id
        return None

    def _enqueue(self, files: JobFiles, run_id: str, job: dict) -> None:
        submitted_ns = time.time_ns()
        submission = f"{submitted_ns:019d}-{secrets.token_hex(3)}"
        for old in files.store.root.glob(f"{run_id}.*.claim"):
            remove_entry(old)
        remove_entry(files.stop_path(run_id))
        job = dict(job, run_id=run_id, submission=submission, submitted_at=submitted_ns / 1e9, submitted=False)
        write_json(files.job_path(run_id), job)
        marker = files.marker_path(run_id, submission)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        with self._lock:
            self._pending.append(_Pending(files, run_id, submission))
        self.ensure_started()

    def launch(self, files: JobFiles, settings: dict, dataset: str) -> str:
        """Queue a new run; returns at once (the cluster starts or the run waits its turn in the background).

        Args:
            files: the learner's :class:`JobFiles`.
            settings: ``preset``, ``filters`` (pair), ``kernel_size``, ``epochs``, ``batch_size``,
                ``learning_rate``, ``seed``.
            dataset: :data:`SAMPLE_LABEL` or :data:`FULL_LABEL`.

        Returns:
            The new run id (its name is "Run N", N this learner's run count).

        Raises:
            ValueError: bad settings (:class:`convviz.config.TrainConfig`), preset or dataset, naming the
                value; an architecture that cannot be built fails the run on the worker, with the reason.
        """
        from convviz.config import TrainConfig  # no TensorFlow in the web server's launch path

        if dataset not in (SAMPLE_LABEL, FULL_LABEL):
            raise ValueError(f"unknown dataset {dataset!r}; expected {SAMPLE_LABEL!r} or {FULL_LABEL!r}")
        TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"],
                    learning_rate=settings["learning_rate"], seed=settings["seed"])
        if settings["preset"] not in ("fast", "seed"):
            raise ValueError(f"preset must be 'fast' or 'seed', got preset={settings['preset']!r}")
        run_id = files.store.new_run_id(settings["preset"])
        settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
        number = files.next_number()
        self._enqueue(files, run_id, {"name": f"Run {number}", "number": number, "settings": settings,
                                      "dataset": dataset, "created": iso_time(time.time()), "resume": False})
        return run_id

    def resume(self, files: JobFiles, run_id: str, epochs: int) -> str:
        """Queue the saved run ``run_id`` to continue from its checkpoint up to ``epochs`` epochs.

        Returns:
            ``run_id`` (the same run, saved into the same file).

        Raises:
            ValueError: the run is still going, its checkpoint is unreadable, or ``epochs`` is not
                more than the epochs it has done, over :data:`convviz.runs.MAX_EPOCHS`, or more batches in all
                than :data:`convviz.config.MAX_HISTORY_BATCHES`.
            FileNotFoundError: no such saved run.
        """
        state = self.state(files, run_id)
        if state is not None and state.active:
            raise ValueError(f"run {run_id} is still {state.state}; it cannot be resumed twice")
        record = files.store.record(run_id)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= record.epochs_done:
            raise ValueError(f"epochs must be more than the {record.epochs_done} done, got epochs={epochs!r}")
        settings = dict(record.config, preset=record.preset, epochs=epochs)
        for key in ("batch_size", "learning_rate", "seed", "filters", "kernel_size"):
            if key not in settings:
                raise ValueError(f"its saved settings have no {key}")
        if epochs > MAX_EPOCHS:
            raise ValueError(f"epochs must be at most {MAX_EPOCHS:,}, got epochs={epochs!r}")
        n = len(load_dataset(record.dataset)[0][0]) if record.dataset == SAMPLE_LABEL else None
        bpe = int(record.history.get("batches_per_epoch", 0))
        check_run_length(epochs, bpe)  # its history could not be read back
        if n is not None and bpe and bpe != -(-n // int(settings["batch_size"])):
            raise ValueError(f"the saved run had {bpe} batches per epoch but these data and batch size give "
                             f"{-(-n // int(settings['batch_size']))}; resume with the same dataset and batch size")
        previous = files.read_job(run_id) or {}
        number = record.number if record.number is not None else previous.get("number")
        name = record.name or previous.get("name") or run_id
        history = dict(record.history, status="pending", epochs=epochs)
        self._enqueue(files, run_id, {"name": name, "number": number, "settings": settings,
                                      "dataset": record.dataset, "created": record.created, "resume": True,
                                      "history": history})
        return run_id

    def stop(self, files: JobFiles, run_id: str) -> None:
        """Ask the run to stop: it ends after the current batch (its model and history are saved).

        A run that has not started yet is stopped at once and will not start.

        Raises:
            ValueError: as :meth:`JobFiles.request_stop` (a folder where the stop file goes).
            OSError: the runs folder cannot be written.
        """
        files.request_stop(run_id)
        state = self.state(files, run_id)
        job = files.read_job(run_id) or {}
        if state is not None and state.state in ("waiting", "queued"):
            submission = job.get("submission", "")
            files.unqueue(run_id, submission)
            history = dict(state.history, status="stopped")
            files.write_progress(run_id, {"submission": submission, "status": "stopped", "error": None,
                                          "heartbeat": time.time(), "history": history, "first_kernel": None})

