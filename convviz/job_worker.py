"""What runs in a Dask worker: the preload hook and the task that trains one submitted run.

:func:`train_task` (submitted by :class:`convviz.jobs.JobManager`) loads the data itself (the bundled sample or
the full MNIST, by dataset label: :func:`load_dataset`), builds or loads the model, trains with
:class:`convviz.train.TrainingJob` and writes the run's **progress record** atomically every ``heartbeat_s`` from a
monitor thread, and a **checkpoint** (:class:`convviz.runs.RunStore`) after every epoch and when it stops. Stop is
the run's stop file, polled by the task. A task Dask starts again after its worker died never trains the submission
twice (its claim file). The files are :mod:`convviz.job_files`'. :func:`dask_setup` is the workers' preload
(``dask worker --preload convviz.jobs`` re-exports it). No Streamlit; TensorFlow is imported inside the task.
"""

from __future__ import annotations

import os
import threading
import time

from convviz.job_files import ENDED, JobFiles, empty_history
from convviz.runs import RunDeletedError

__all__ = [
    "FULL_LABEL", "SAMPLE_LABEL", "WORKER_NICENESS", "WORKER_TF_THREADS", "dask_setup", "load_dataset",
    "lower_priority", "train_task",
]

FULL_LABEL = "Full MNIST (60,000 training / 10,000 test digits)"
SAMPLE_LABEL = "Bundled sample (5,000 training / 1,000 test digits)"


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


def lower_priority(niceness: int) -> None:
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
    lower_priority(WORKER_NICENESS)
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # read when TensorFlow starts: set first
        os.environ.setdefault(name, str(WORKER_TF_THREADS))
    import convviz.train  # noqa: F401  (imports TensorFlow)


class _Reporter:
    """The task's monitor: writes the progress record every ``every_s`` seconds from its own thread."""

    def __init__(self, files: JobFiles, run_id: str, submission: str, settings: dict, every_s: float):
        self.files, self.run_id, self.submission, self.every_s = files, run_id, submission, every_s
        self.lock = threading.Lock()
        self.status, self.error = "loading", None
        self.history = empty_history(settings)
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
            "submission": self.submission, "status": status, "error": history["error"], "heartbeat": time.time(),
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
    lower_priority(niceness)
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
            history = dict(previous.get("history") or empty_history(settings), status="failed", error=error)
            files.write_progress(run_id, dict(previous, status="failed", error=error, heartbeat=time.time(),
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
    deleted = []

    def checkpoint(model, history):
        if history["status"] in ("stopped", "finished"):
            if history["status"] == "finished" and history["epoch_test_loss"]:
                loss, accuracy = history["epoch_test_loss"][-1], history["epoch_test_accuracy"][-1]
            else:  # stopped in the middle of an epoch: these weights have not been evaluated yet
                loss, accuracy, _, _ = evaluate(model, x_test, y_test)
            history = dict(history, final_test_loss=loss, final_test_accuracy=accuracy)
        try:
            files.save_checkpoint(run_id, model, created=job["created"], history=history, name=job["name"], **labels)
        except RunDeletedError as exc:  # the learner deleted the run: stop, leave nothing behind
            deleted.append(str(exc))
            training.stop()
            return
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
    if deleted:
        return "deleted", f"the run was deleted while it trained, so training stopped ({deleted[0]})"
    if training.checkpoint_error:
        return "failed", f"the last checkpoint could not be saved: {training.checkpoint_error}"
    return training.status, training.error

