"""The files a training run adds beside its checkpoint, and the run's state as they tell it.

A run launched by :class:`convviz.jobs.JobManager` and trained by :func:`convviz.job_worker.train_task`
talks through these files only, so any web server and any worker that share the runs root see the same
runs (the whole journey is in :mod:`convviz.jobs`' docstring):

* the **job record** ``<run id>.job.json`` (settings, dataset, name, submission id; written by the web server),
* the **progress record** ``<run id>.progress.json`` (history, status, error, heartbeat, first kernel; written
  by the worker),
* the **stop file** ``<run id>.stop``, the **claim** ``<run id>.<submission>.claim`` (a submission trains once)
  and the **queue markers** in ``<runs root>/.queue/``.

Files of one learner live in ``<runs root>/<learner key>/`` (the :class:`convviz.runs.RunStore`
folder); every file is replaced atomically (write a temporary file, then ``os.replace``). Job and progress
records are read back like user input: at most :data:`MAX_RECORD_BYTES` and
:data:`convviz.npzfile.MAX_JSON_DEPTH` levels deep, settings and history checked by
:func:`convviz.runs.check_settings` / :func:`convviz.runs.check_history`; an invalid job record counts as none
(the run's checkpoint is still listed), an invalid progress record makes the run ``failed`` with the reason.
:func:`run_state` reads a run's :class:`RunState` from them. No Streamlit, no Dask, no TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convviz.npzfile import MAX_METADATA_CHARS, read_json_file
from convviz.run_metadata import (HISTORY_STATUSES, MAX_METADATA_VALUES, check_history, check_settings, check_time,
                                  check_timestamp_text)
from convviz.runs import RunStore, remove_entry

__all__ = [
    "ACTIVE", "ENDED", "JobFiles", "KERNEL_CHANNEL_LIMIT", "KERNEL_FILTER_LIMIT", "KERNEL_SIDE_LIMIT", "LEARNER_RE",
    "MAX_RECORD_BYTES", "RunState", "empty_history", "iso_time", "run_state", "write_json",
]

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


def iso_time(seconds: float) -> str:
    """``seconds`` since 1970 as an ISO 8601 UTC time, e.g. ``2026-01-31T12:00:00+00:00``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def write_json(path: Path, payload: dict) -> None:
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

    def write_progress(self, run_id: str, progress: dict) -> bool:
        """Replace the progress record atomically, unless the run was deleted.

        Returns:
            True when written; False when the run's job record is gone (the learner deleted the run): nothing is
            left, also when the delete ran during the write (the job record goes first, see
            :meth:`convviz.runs.RunStore.delete`).
        """
        path = self.progress_path(run_id)
        if not os.path.lexists(self.job_path(run_id)):
            return False
        write_json(path, progress)
        if not os.path.lexists(self.job_path(run_id)):
            remove_entry(path)
            return False
        return True

    def save_checkpoint(self, run_id: str, model, **labels) -> Path:
        """The worker's checkpoint: :meth:`convviz.runs.RunStore.save` while the run's job record exists.

        Raises:
            convviz.runs.RunDeletedError: the learner deleted the run (before or during the write); nothing of
                the checkpoint is left.
        """
        return self.store.save(run_id, model, while_exists=self.job_path(run_id), **labels)

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
        records, _ = self.store.list_runs(batches=False)
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


def empty_history(settings: dict, batches_per_epoch: int = 0) -> dict:
    """The history of a run before its first batch (the keys of :meth:`convviz.train.History.snapshot`)."""
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
    now = time.time() if now is None else now
    settings = dict(job.get("settings") or {})
    submission = job.get("submission", "")
    problems = []
    progress = files.read_progress(run_id, problems)
    if problems:
        history = dict(job.get("history") or empty_history(settings), status="failed")
        return RunState(run_id=run_id, name=str(job.get("name") or run_id), state="failed", position=None,
                        history=history, settings=settings, dataset=str(job.get("dataset", "")),
                        error=f"its progress cannot be read: {problems[0]}", updated=job["submitted_at"])
    if progress is not None and progress.get("submission") != submission:
        progress = None  # from an earlier submission (before a resume)
    history = dict(job.get("history") or empty_history(settings))
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
        state.error = (f"the worker training it stopped answering at {iso_time(state.updated)[11:19]} UTC "
                       "(killed, out of memory, or its machine went away)")
        state.history["status"] = "failed"
    else:
        state.state = "loading" if status == "loading" else "running"
    return state
