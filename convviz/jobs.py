"""Training runs as tasks on a Dask cluster: launch, queue, stop, resume, and read their progress.

Nothing here imports Streamlit; :mod:`convviz.ui.training` only draws what this module reports.

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

Files of one learner live in ``<runs root>/<learner key>/`` (the :class:`convviz.runs.RunStore`
folder); every file is replaced atomically (write a temporary file, then ``os.replace``). Across
machines the runs root must be shared storage. Job and progress records are read back like user
input: at most :data:`MAX_RECORD_BYTES` and :data:`convviz.npzfile.MAX_JSON_DEPTH` levels deep,
settings and history checked by :func:`convviz.runs.check_settings` / :func:`convviz.runs.check_history`;
an invalid job record counts as none (the run's checkpoint is still listed), an invalid progress
record makes the run ``failed`` with the reason.

The cluster: with no configuration an embedded ``LocalCluster`` of ``CONVVIZ_MAX_JOBS`` (default 2)
worker processes, one thread each, at a lower CPU priority than the web server; with
``CONVVIZ_DASK_SCHEDULER=tcp://HOST:PORT`` an existing cluster, and nothing is started locally.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from convviz.config import check_run_length
from convviz.npzfile import MAX_METADATA_CHARS, read_json_file
from convviz.runs import (HISTORY_STATUSES, MAX_EPOCHS, MAX_METADATA_VALUES, RunStore, check_history, check_settings,
                          check_time, check_timestamp_text, remove_entry)

__all__ = [
    "DEFAULT_MAX_JOBS", "FULL_LABEL", "JobFiles", "JobManager", "LEARNER_RE", "MAX_JOBS_ENV", "MAX_RECORD_BYTES",
    "RunState", "SAMPLE_LABEL", "SCHEDULER_ENV", "WORKER_NICENESS", "WORKER_TF_THREADS", "dask_setup", "load_dataset",
    "max_jobs", "run_state", "scheduler_address", "train_task",
]

MAX_JOBS_ENV = "CONVVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
SCHEDULER_ENV = "CONVVIZ_DASK_SCHEDULER"
FULL_LABEL = "Full MNIST (60,000 training / 10,000 test digits)"
SAMPLE_LABEL = "Bundled sample (5,000 training / 1,000 test digits)"
ACTIVE = ("waiting", "queued", "loading", "running")
"""States of a run that has not ended (see :class:`RunState`)."""
ENDED = ("stopped", "finished", "failed", "interrupted")
LEARNER_RE = re.compile(r"[a-z0-9]{8,32}")
"""A learner key, matched whole (``LEARNER_RE.fullmatch``: ``$`` would let a trailing newline through)."""
_SUBMISSION_RE = re.compile(r"[0-9]{19,20}-[0-9a-f]{6}")
MAX_RECORD_BYTES = MAX_METADATA_CHARS + 4 * 1024 * 1024
"""Largest job or progress record read back, bytes: a run's history plus the first layer's kernel."""
_MAX_KERNEL_NUMBERS = 28 * 28 * 1024  # the first layer: kernel size and filters at their limits, one input channel
KERNEL_SIDE_LIMIT = 28
"""Largest height / width of a progress record's ``first_kernel`` (:data:`convviz.model.MAX_WINDOW`; this module does
not import TensorFlow, a test checks they agree)."""
KERNEL_FILTER_LIMIT = 1024
"""Most filters of a progress record's ``first_kernel`` (:data:`convviz.model.MAX_FILTERS`)."""
KERNEL_CHANNEL_LIMIT = 4
"""Most input channels of a first convolution (an image: gray, RGB or RGBA)."""
_MAX_RECORD_VALUES = MAX_METADATA_VALUES + _MAX_KERNEL_NUMBERS  # a history and the first kernel, counted before parsing


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


def _now() -> float:
    return time.time()


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def _write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (a temporary ``.name.tmp`` file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(payload, allow_nan=False))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _text(record: dict, key: str, limit: int, where: str) -> str:
    value = record.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{where}[{key!r}] must be text of at most {limit} characters, got {str(value)[:60]}")
    return value


def _time(record: dict, key: str, where: str) -> float:
    """A time of a record (seconds since 1970): finite, from 2020, not in the future (:func:`convviz.runs.check_time`);
    a heartbeat far in the future would keep a dead run "running" for ever."""
    return check_time(record.get(key), where, key)


def _check_job(record: dict, where: str) -> dict:
    """A job record read back from disk: the fields used, checked (see :meth:`JobFiles.read_job`)."""
    job = {"run_id": _text(record, "run_id", 64, where), "submission": _text(record, "submission", 32, where),
           "submitted_at": _time(record, "submitted_at", where), "submitted": record.get("submitted") is True,
           "name": _text(record, "name", 64, where), "dataset": _text(record, "dataset", 200, where),
           "created": check_timestamp_text(record.get("created"), where, "created"),
           "resume": record.get("resume") is True,
           "settings": check_settings(record.get("settings") or {}, f"{where}['settings']")}
    number = record.get("number")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int) or not 1 <= number < 10**9):
        raise ValueError(f"{where}['number'] must be a run number >= 1, got {str(number)[:60]}")
    job["number"] = number
    if record.get("history") is not None:
        job["history"] = check_history(record["history"], f"{where}['history']")
    return job


def _check_progress(record: dict, where: str) -> dict:
    """A progress record read back from disk: the fields used, checked (see :meth:`JobFiles.read_progress`)."""
    status = record.get("status")
    if status not in HISTORY_STATUSES:
        raise ValueError(f"{where}['status'] must be one of {list(HISTORY_STATUSES)}, got {str(status)[:60]}")
    error = record.get("error")
    if error is not None and (not isinstance(error, str) or len(error) > 4000):
        raise ValueError(f"{where}['error'] must be text of at most 4000 characters or null")
    progress = {"submission": _text(record, "submission", 32, where), "status": status, "error": error,
                "heartbeat": _time(record, "heartbeat", where),
                "history": check_history(record.get("history") or {}, f"{where}['history']"), "first_kernel": None,
                "host": _text(record, "host", 255, where)}
    pid = record.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31):
        raise ValueError(f"{where}['pid'] must be a process id, got {str(pid)[:60]}")
    progress["pid"] = pid
    kernel = record.get("first_kernel")
    if kernel is not None:
        try:
            values = np.asarray(kernel, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            values = None
        if values is None or values.ndim != 4 or values.size > _MAX_KERNEL_NUMBERS or not np.all(np.isfinite(values)):
            raise ValueError(f"{where}['first_kernel'] must be a (height, width, channels, filters) array of at most "
                             f"{_MAX_KERNEL_NUMBERS:,} finite numbers")
        height, width, channels, filters = values.shape
        if not (1 <= height <= KERNEL_SIDE_LIMIT and 1 <= width <= KERNEL_SIDE_LIMIT
                and 1 <= channels <= KERNEL_CHANNEL_LIMIT and 1 <= filters <= KERNEL_FILTER_LIMIT):
            raise ValueError(f"{where}['first_kernel'] must be a first convolution's kernel: height and width 1 to "
                             f"{KERNEL_SIDE_LIMIT}, 1 to {KERNEL_CHANNEL_LIMIT} input channels, 1 to "
                             f"{KERNEL_FILTER_LIMIT:,} filters, got shape {values.shape}")
        progress["first_kernel"] = kernel
    return progress


def _read_record(path: Path, what: str, check, problems: list | None) -> dict | None:
    """The checked JSON object in ``path``, or None when it is missing or invalid (the reason goes to ``problems``)."""
    try:
        value = read_json_file(path, what, max_bytes=MAX_RECORD_BYTES, max_values=_MAX_RECORD_VALUES)
        if not isinstance(value, dict):
            raise ValueError(f"{what} {str(path)!r} is not a JSON object")
        return check(value, f"{what} {path.name!r}")
    except FileNotFoundError:
        return None
    except ValueError as exc:
        if problems is not None:
            problems.append(str(exc))
        return None


class JobFiles:
    """The files of one learner's runs under a runs root (see the module docstring).

    Args:
        runs_root: the runs root (``$CONVVIZ_RUNS_DIR``); shared storage when workers or web servers
            are on several machines.
        learner: the learner key, 8-32 lowercase letters and digits.

    Raises:
        ValueError: a malformed learner key, echoing it.
    """

    def __init__(self, runs_root, learner: str):
        if not isinstance(learner, str) or not LEARNER_RE.fullmatch(learner):
            raise ValueError(f"learner must be 8-32 lowercase letters or digits, got learner={str(learner)[:80]!r}")
        self.runs_root = Path(runs_root)
        self.learner = learner
        self.store = RunStore(self.runs_root / learner)
        self.queue_dir = self.runs_root / ".queue"

    def _path(self, run_id: str, suffix: str) -> Path:
        return self.store.path(run_id).with_suffix(suffix)  # store.path validates the run id

    def job_path(self, run_id: str) -> Path:
        """``<run id>.job.json``: what was submitted (settings, dataset, name, submission id)."""
        return self._path(run_id, ".job.json")

    def progress_path(self, run_id: str) -> Path:
        """``<run id>.progress.json``: what the worker reports (history, status, heartbeat)."""
        return self._path(run_id, ".progress.json")

    def stop_path(self, run_id: str) -> Path:
        """``<run id>.stop``: present when someone asked the run to stop."""
        return self._path(run_id, ".stop")

    def claim_path(self, run_id: str, submission: str) -> Path:
        """``<run id>.<submission>.claim``: created (exclusively) by the task that trains this submission."""
        if not isinstance(submission, str) or not _SUBMISSION_RE.fullmatch(submission):
            raise ValueError(f"not a submission id: {str(submission)[:80]!r}")
        return self._path(run_id, f".{submission}.claim")

    def marker_path(self, run_id: str, submission: str) -> Path:
        """The queue marker: ``<runs root>/.queue/<submission>--<learner>--<run id>``."""
        self.store.path(run_id)
        return self.queue_dir / f"{submission}--{self.learner}--{run_id}"

    def read_job(self, run_id: str, problems: list | None = None) -> dict | None:
        """The job record, checked like user input, or None (no such run, or unreadable or invalid).

        Args:
            run_id: the run.
            problems: a list that gets the reason when the record exists but is invalid
                (over :data:`MAX_RECORD_BYTES`, not JSON, a setting or the history out of range).
        """
        return _read_record(self.job_path(run_id), "job record", _check_job, problems)

    def read_progress(self, run_id: str, problems: list | None = None) -> dict | None:
        """The progress record, checked like user input, or None (none yet, or invalid: see ``problems``)."""
        return _read_record(self.progress_path(run_id), "progress record", _check_progress, problems)

    def write_progress(self, run_id: str, progress: dict) -> None:
        """Replace the progress record atomically."""
        _write_json(self.progress_path(run_id), progress)

    def request_stop(self, run_id: str) -> None:
        """Create the stop file ``<run id>.stop`` (any web server sharing the runs root may).

        A link with that name is removed first, never followed (nothing outside the runs folder is created
        or touched).

        Raises:
            ValueError: a malformed run id, or a folder with the stop file's name (it is left as it is).
            OSError: the folder cannot be written.
        """
        path = self.stop_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(path):
            remove_entry(path)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644))
        except IsADirectoryError:
            raise ValueError(f"cannot ask run {run_id} to stop: {str(path)!r} is a folder, not a file") from None

    def stop_requested(self, run_id: str) -> bool:
        """Whether a stop was asked for (by any web server sharing the runs root)."""
        return self.stop_path(run_id).exists()

    def job_ids(self) -> list[str]:
        """Run ids with a job record, oldest submission first."""
        if not self.store.root.is_dir():
            return []
        jobs = []
        for path in self.store.root.glob("*.job.json"):
            run_id = path.name[: -len(".job.json")]
            try:
                record = self.read_job(run_id)
            except ValueError:  # not a run id
                continue
            if record and record.get("run_id") == run_id:
                jobs.append((record.get("submission", ""), record["run_id"]))
        return [run_id for _, run_id in sorted(jobs)]

    def next_number(self) -> int:
        """The number of this learner's next run: one more than the highest so far (1 for the first)."""
        numbers = [0]
        for run_id in self.job_ids():
            record = self.read_job(run_id) or {}
            if isinstance(record.get("number"), int):
                numbers.append(record["number"])
        records, _ = self.store.list_runs()
        numbers += [r.number for r in records if r.number is not None]
        return max(numbers) + 1

    def queue(self) -> list[tuple[str, str, str]]:
        """Every queued submission of every learner, oldest first: ``(submission, learner, run id)``."""
        if not self.queue_dir.is_dir():
            return []
        entries = []
        for path in self.queue_dir.iterdir():
            parts = path.name.split("--")
            if len(parts) == 3 and _SUBMISSION_RE.fullmatch(parts[0]):
                entries.append(tuple(parts))
        return sorted(entries)

    def unqueue(self, run_id: str, submission: str) -> None:
        """Remove the run's queue marker (it started, or will never start)."""
        remove_entry(self.marker_path(run_id, submission))

    def forget(self, run_id: str) -> None:
        """Delete the run's job files (not its checkpoint): job record, progress, stop request, claims."""
        for path in [self.job_path(run_id), self.progress_path(run_id), self.stop_path(run_id),
                     *self.store.root.glob(f"{run_id}.*.claim")]:
            remove_entry(path)  # a folder with such a name is left as it is


@dataclass
class RunState:
    """What a run is doing, as far as the runs folder tells.

    Attributes:
        run_id: the run id (:class:`convviz.runs.RunStore`).
        name: the run's name ("Run 3"): this learner's third run; the same name everywhere.
        state: ``waiting`` (for the cluster to start), ``queued``, ``loading`` (data and model on a
            worker), ``running``, ``stopped``, ``finished``, ``failed``, or ``interrupted`` (it was
            queued on an embedded cluster that is gone).
        position: 1-based place in the queue while ``queued``, else None.
        history: the latest history snapshot (see :meth:`convviz.train.History.snapshot`); empty
            lists before the first batch.
        settings: the settings it was started with; dataset: the dataset label.
        error: why it failed, else None.
        stopping: a stop was asked for and the run has not ended yet.
        first_kernel: the first convolution's kernel as the worker last reported it,
            ``(kernel_height, kernel_width, in_channels, filters)`` nested lists, or None.
        updated: seconds since the epoch of the last progress write (or of the submission).
    """

    run_id: str
    name: str
    state: str
    position: int | None
    history: dict
    settings: dict
    dataset: str
    error: str | None = None
    stopping: bool = False
    first_kernel: list | None = None
    updated: float = 0.0

    @property
    def active(self) -> bool:
        """Whether the run has not ended (waiting, queued, loading or running)."""
        return self.state in ACTIVE


def _empty_history(settings: dict, batches_per_epoch: int = 0) -> dict:
    return {"batch_loss": [], "batch_accuracy": [], "epoch_test_loss": [], "epoch_test_accuracy": [], "epoch": 0,
            "batch": 0, "batches_per_epoch": batches_per_epoch, "epochs": int(settings.get("epochs", 1)),
            "samples_per_second": 0.0, "elapsed_s": 0.0, "eta_s": None, "status": "pending", "error": None}


def run_state(files: JobFiles, run_id: str, stale_after_s: float = 20.0, owned: set | None = None,
              embedded: bool = False, now: float | None = None) -> RunState | None:
    """Read a run's state from its job record, progress record, queue marker and stop file.

    Args:
        files: the learner's :class:`JobFiles`.
        run_id: the run.
        stale_after_s: a ``loading`` / ``running`` run whose heartbeat is older than this many
            seconds is ``failed`` (its worker died or its machine went away).
        owned: submission ids this web server submitted and still holds (see :class:`JobManager`).
        embedded: the cluster is this web server's own (embedded): a queued submission it does not
            hold was lost with an earlier server process (``interrupted``).
        now: the time (seconds since the epoch); the clock when None.

    Returns:
        A :class:`RunState`, or None when the run has no job record.
    """
    job = files.read_job(run_id)
    if job is None:
        return None
    now = _now() if now is None else now
    settings = dict(job.get("settings") or {})
    submission = job.get("submission", "")
    problems = []
    progress = files.read_progress(run_id, problems)
    if problems:
        history = dict(job.get("history") or _empty_history(settings), status="failed")
        return RunState(run_id=run_id, name=str(job.get("name") or run_id), state="failed", position=None,
                        history=history, settings=settings, dataset=str(job.get("dataset", "")),
                        error=f"its progress cannot be read: {problems[0]}", updated=job["submitted_at"])
    if progress is not None and progress.get("submission") != submission:
        progress = None  # from an earlier submission (before a resume)
    history = dict(job.get("history") or _empty_history(settings))
    history["epochs"] = int(settings.get("epochs", history.get("epochs", 1)))
    stopping = files.stop_requested(run_id)
    state = RunState(run_id=run_id, name=str(job.get("name") or run_id), state="queued", position=None,
                     history=history, settings=settings, dataset=str(job.get("dataset", "")),
                     stopping=stopping, updated=float(job.get("submitted_at", 0.0)))
    if progress is None:
        if embedded and owned is not None and submission not in owned:
            state.state = "interrupted"
            state.error = "the web server that queued it stopped before it started"
            return state
        if not job.get("submitted"):
            state.state = "waiting"
            return state
        queue = [entry for entry in files.queue()
                 if not (embedded and owned is not None and entry[0] not in owned)]
        ids = [entry[0] for entry in queue]
        state.position = ids.index(submission) + 1 if submission in ids else 1
        return state
    state.history = dict(progress.get("history") or history)
    state.history["epochs"] = history["epochs"]
    state.first_kernel = progress.get("first_kernel")
    state.updated = float(progress.get("heartbeat", 0.0))
    status = progress.get("status")
    state.error = progress.get("error")
    if status in ENDED:
        state.state, state.stopping = status, False
    elif now - state.updated > stale_after_s:
        state.state, state.stopping = "failed", False
        state.error = (f"the worker training it stopped answering at {_iso(state.updated)[11:19]} UTC "
                       "(killed, out of memory, or its machine went away)")
        state.history["status"] = "failed"
    else:
        state.state = "loading" if status == "loading" else "running"
    return state


def load_dataset(label: str):
    """The dataset a run trains on, by its label.

    Args:
        label: :data:`SAMPLE_LABEL` (the bundled sample) or :data:`FULL_LABEL` (the full MNIST, found
            by :func:`convviz.data.load_mnist`).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` uint8 images ``(n, 28, 28)`` and labels ``(n,)``.

    Raises:
        ValueError: an unknown label, or an invalid MNIST file.
        convviz.data.MNISTUnavailableError: the full MNIST cannot be found.
    """
    from convviz.data import load_mnist, load_sample

    if label == SAMPLE_LABEL:
        return load_sample()
    if label == FULL_LABEL:
        return load_mnist()
    raise ValueError(f"unknown dataset {label!r}; expected {SAMPLE_LABEL!r} or {FULL_LABEL!r}")


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


def _lower_priority(niceness: int) -> None:
    """Raise the niceness of every thread of this process to at least ``niceness`` (Linux: per thread)."""
    if niceness <= 0:
        return
    tids = [0]
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        pass
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except OSError:
            pass


WORKER_NICENESS = 10
"""CPU niceness of the embedded cluster's worker processes (the web server stays at 0)."""


WORKER_TF_THREADS = 1
"""TensorFlow threads per worker process, within an op and between ops (``TF_NUM_INTRAOP_THREADS`` /
``TF_NUM_INTEROP_THREADS``, unless the worker's environment sets them): one run per worker, one core per run.
Measured on the 2-core machine (``python -m convviz.train --sample --epochs 4``): one run alone 3,154 digits/s with
one thread against 2,341 with TensorFlow's default (a thread per core); two runs at once 3,336 and 2,849 with one
thread each against 2,405 and 2,207 with the default: extra threads only contend."""


def dask_setup(worker=None) -> None:
    """Dask preload hook (``dask worker --preload convviz.jobs``; the embedded cluster uses it): lower this
    worker process's CPU priority to :data:`WORKER_NICENESS`, give TensorFlow :data:`WORKER_TF_THREADS` threads,
    and import TensorFlow and the training engine now, at worker start, so that a run's first batch does not
    wait for them.

    Args:
        worker: the ``distributed.Worker`` being started (unused).
    """
    _lower_priority(WORKER_NICENESS)
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # read when TensorFlow starts: set first
        os.environ.setdefault(name, str(WORKER_TF_THREADS))
    import convviz.train  # noqa: F401  (imports TensorFlow)


class _Reporter:
    """The task's monitor: writes the progress record every ``every_s`` seconds from its own thread."""

    def __init__(self, files: JobFiles, run_id: str, submission: str, settings: dict, every_s: float):
        self.files, self.run_id, self.submission, self.every_s = files, run_id, submission, every_s
        self.lock = threading.Lock()
        self.status, self.error = "loading", None
        self.history = _empty_history(settings)
        self.job = None  # the TrainingJob once training starts
        self.final_history = None  # the history of the last checkpoint at the end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="convviz-progress", daemon=True)

    def _first_kernel(self):
        model = getattr(self.job, "model", None)
        if model is None:
            return None
        for _, module in model.layers:
            if hasattr(module, "kernel"):
                return module.kernel.numpy().round(5).tolist()
        return None

    def write(self) -> None:
        with self.lock:
            history = dict(self.final_history) if self.final_history is not None else (
                self.job.snapshot() if self.job is not None else dict(self.history))
            status, error = self.status, self.error
        # Until finish(), the run is running (also while its last checkpoint is written after the job ended).
        history["status"] = {"loading": "pending", "running": "running"}.get(status, status)
        history["error"] = error if error is not None else history.get("error")
        self.files.write_progress(self.run_id, {
            "submission": self.submission, "status": status, "error": history["error"], "heartbeat": _now(),
            "pid": os.getpid(), "host": os.uname().nodename, "history": history,
            "first_kernel": self._first_kernel(),
        })

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.write()
            except (OSError, ValueError):
                pass  # a full disk or a NaN loss: the next write or the final one reports it

    def start(self) -> None:
        self.write()
        self._thread.start()

    def finish(self, status: str, error: str | None = None) -> None:
        self._stop.set()
        self._thread.join()
        with self.lock:
            self.status, self.error = status, error
        self.write()


def train_task(runs_root: str, learner: str, run_id: str, submission: str, niceness: int = 10,
               heartbeat_s: float = 0.5) -> dict:
    """Train one submitted run; runs in a Dask worker (any process that sees the runs root).

    Reads the job record (settings, dataset, whether it resumes), loads the data by dataset
    name, builds the model (or loads the run's checkpoint to resume), trains with
    :class:`convviz.train.TrainingJob`, checkpoints into the run store after every epoch and at the
    end, and writes the progress record every ``heartbeat_s`` seconds. A stop file ends it after the
    current batch. When it stops or finishes, the final weights are evaluated on the test split once
    and that result is saved as the run's ``final_test_loss`` / ``final_test_accuracy``.

    Args:
        runs_root: the runs root (a path as text).
        learner: the learner key.
        run_id: the run id.
        submission: the submission id of the job record (a task for an older submission does nothing).
        niceness: the worker's threads run at least this nice (lower CPU priority than the web server); 0 leaves them.
        heartbeat_s: seconds between progress writes.

    Returns:
        ``{"run_id", "status", "error"}``; errors are reported there and in the progress record, never raised.
    """
    files = JobFiles(runs_root, learner)
    _lower_priority(niceness)
    job = files.read_job(run_id)
    if job is None or job.get("submission") != submission:
        return {"run_id": run_id, "status": "superseded", "error": None}
    settings = dict(job["settings"])
    try:
        fd = os.open(files.claim_path(run_id, submission), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        # Dask started this submission again after the worker training it died: never start a run over.
        files.unqueue(run_id, submission)
        previous = files.read_progress(run_id) or {}
        if previous.get("submission") == submission and previous.get("status") not in ENDED:
            error = ("the worker training it died (killed, or out of memory) and was replaced; the run was not "
                     "started over: resume it from its last checkpoint")
            history = dict(previous.get("history") or _empty_history(settings), status="failed", error=error)
            files.write_progress(run_id, dict(previous, status="failed", error=error, heartbeat=_now(),
                                              history=history))
        return {"run_id": run_id, "status": "failed", "error": "worker died"}
    files.unqueue(run_id, submission)
    reporter = _Reporter(files, run_id, submission, settings, heartbeat_s)
    if files.stop_requested(run_id):
        reporter.finish("stopped")
        return {"run_id": run_id, "status": "stopped", "error": None}
    reporter.start()
    try:
        status, error = _train(files, run_id, job, reporter)
    except Exception as exc:  # reported in the progress record, never raised into Dask
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    reporter.finish(status, error)
    return {"run_id": run_id, "status": status, "error": error}


def _train(files: JobFiles, run_id: str, job: dict, reporter: _Reporter) -> tuple[str, str | None]:
    """Load, build, train, checkpoint (inside :func:`train_task`); returns ``(status, error)``."""
    from convviz.model import ScratchCNN
    from convviz.train import TrainConfig, TrainingJob, evaluate

    settings, dataset = dict(job["settings"]), job["dataset"]
    data = load_dataset(dataset)
    (_, _), (x_test, y_test) = data
    config = TrainConfig(epochs=int(settings["epochs"]), batch_size=int(settings["batch_size"]),
                         learning_rate=float(settings["learning_rate"]), seed=int(settings["seed"]))
    resume_history = None
    if job.get("resume"):
        model, record = files.store.load(run_id)
        resume_history = record.history
    else:
        model = ScratchCNN.from_preset(settings["preset"], seed=int(settings["seed"]),
                                       filters=tuple(settings["filters"]), kernel_size=int(settings["kernel_size"]))
    labels = {"preset": settings["preset"], "dataset": dataset, "config": settings}

    def checkpoint(model, history):
        if history["status"] in ("stopped", "finished"):
            if history["status"] == "finished" and history["epoch_test_loss"]:
                loss, accuracy = history["epoch_test_loss"][-1], history["epoch_test_accuracy"][-1]
            else:  # stopped in the middle of an epoch: these weights have not been evaluated yet
                loss, accuracy, _, _ = evaluate(model, x_test, y_test)
            history = dict(history, final_test_loss=loss, final_test_accuracy=accuracy)
        files.store.save(run_id, model, created=job["created"], history=history, name=job["name"], **labels)
        if history["status"] in ("stopped", "finished"):
            with reporter.lock:
                reporter.final_history = history

    training = TrainingJob(model, data, config, on_checkpoint=checkpoint, resume_history=resume_history)
    with reporter.lock:
        reporter.job, reporter.status = training, "running"
    training.start()
    while not training.join(timeout=0.2):
        if files.stop_requested(run_id):
            training.stop()
    if training.checkpoint_error:
        return "failed", f"the last checkpoint could not be saved: {training.checkpoint_error}"
    return training.status, training.error


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
                cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, env={"TF_CPP_MIN_LOG_LEVEL": "2"},
                                       silence_logs=40, preload=["convviz.jobs"])
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
            _write_json(item.files.job_path(item.run_id), job)
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
        history = dict(previous.get("history") or job.get("history") or _empty_history(job.get("settings", {})))
        history.update(status="failed", error=error)
        files.write_progress(run_id, {"submission": submission, "status": "failed", "error": error,
                                      "heartbeat": _now(), "history": history,
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
        _write_json(files.job_path(run_id), job)
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
                                      "dataset": dataset, "created": _iso(_now()), "resume": False})
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
                                          "heartbeat": _now(), "history": history, "first_kernel": None})

