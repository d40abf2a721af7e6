"""Streamlit glue for the Train page: where runs train, whose runs they are, and which run a session shows.

Training runs on a Dask cluster, not in this web server: :mod:`convviz.jobs` launches, queues, stops
and resumes runs, and reads what the workers write into the runs folder (progress, checkpoints).
One :class:`convviz.jobs.JobManager` per server (``st.cache_resource``)
connects to ``CONVVIZ_DASK_SCHEDULER`` or starts an embedded ``LocalCluster`` of ``CONVVIZ_MAX_JOBS``
worker processes, in the background, so no page waits for it. Here: the dataset choice, the cluster's
state, the learner's key and runs folder, starting, resuming and stopping a run, the Draw page's model.
:mod:`convviz.ui.training_panel` draws a run (the live panel, the test-set results).

The session remembers which run it shows under the non-widget key :data:`RUN_KEY` (Streamlit drops
the widget-keyed state of a page that is not shown, never the other keys); without one, the page
shows the learner's run that is still going, if any, wherever it was started (another web server,
an earlier server process): runs are found by learner key.

A run has one name, the saved run's ("Run 3": the learner's third run), and one accuracy, the saved
run's (:attr:`convviz.runs.RunRecord.test_accuracy`), here, in the saved-runs list and on the Draw page.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
import time

import streamlit as st

from convviz import jobs
from convviz.jobs import DEFAULT_MAX_JOBS, FULL_LABEL, MAX_JOBS_ENV, SAMPLE_LABEL, SCHEDULER_ENV, max_jobs
from convviz.ui.text import md, without_server_paths

__all__ = ["DEFAULT_MAX_JOBS", "FULL_LABEL", "MAX_JOBS_ENV", "SAMPLE_LABEL", "SCHEDULER_ENV", "max_jobs"]

RUN_KEY = "_train_run"
"""``st.session_state`` key of the run id this session shows (not a widget key)."""
STOP_ERROR_KEY = "_train_stop_error"
"""``st.session_state`` key: why "Stop training" could not ask the run to stop (shown once under the button)."""

DRAW_MODEL_KEY = "_draw_model"
"""``st.session_state`` key of the model the Draw page uses: ``(ScratchCNN, description)``."""

_RETRY_FULL_AFTER_S = 300.0


@st.cache_resource(show_spinner=False)
def _manager(scheduler: str | None, n_workers: int) -> jobs.JobManager:
    manager = jobs.JobManager(scheduler=scheduler, n_workers=n_workers)
    atexit.register(manager.close)
    return manager


def get_manager() -> tuple[jobs.JobManager | None, str | None]:
    """This server's :class:`convviz.jobs.JobManager` (started in the background on first use).

    Returns:
        ``(manager, None)``, or ``(None, why)`` when ``CONVVIZ_DASK_SCHEDULER`` is malformed.
    """
    try:
        address = jobs.scheduler_address(os.environ.get(SCHEDULER_ENV))
    except ValueError as exc:
        return None, f"Training is unavailable: {exc} (or unset it to train on this machine)."
    manager = _manager(address, max_jobs()[0] if address is None else 1)
    manager.ensure_started()  # returns at once: the cluster starts in a background thread
    return manager, None


def start_help() -> str:
    """The Start button's help: where runs train and that extra runs queue."""
    manager, _ = get_manager()
    where = manager.describe() if manager is not None else "the Dask cluster"
    return f"One run per browser session. Runs train on {where}; when every worker is busy, a run waits in a queue."


def cluster_notice() -> None:
    """An error box when training is unavailable: a bad ``CONVVIZ_DASK_SCHEDULER``, or a cluster that did not start."""
    manager, problem = get_manager()
    if problem:
        st.error(problem)
        return
    state, message = manager.status
    if state == "failed":
        st.error(f"Training is unavailable for now: {message}. It is tried again in "
                 f"{manager.retry_after_s:.0f} s; runs you start meanwhile wait for it.")


class _FullMNIST:
    """The full MNIST or the reason it is unavailable, retried after a while on failure."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = None
        self.message: str | None = None
        self.checked = 0.0

    def get(self):
        with self.lock:
            if self.data is None and time.monotonic() - self.checked > _RETRY_FULL_AFTER_S:
                from convviz.data import MNISTUnavailableError, load_mnist

                try:
                    self.data, self.message = load_mnist(), None
                except (MNISTUnavailableError, ValueError, OSError) as exc:
                    self.message = str(exc)
                self.checked = time.monotonic()
            return self.data, self.message


@st.cache_resource
def _full_mnist_holder() -> _FullMNIST:
    return _FullMNIST()


def full_mnist():
    """``(data, None)`` with the full MNIST, or ``(None, why)``; loaded once per server (a failure is
    retried after 5 minutes, so a file put in place later is found); ``why`` names files without their folders."""
    data, why = _full_mnist_holder().get()
    return data, (None if why is None else without_server_paths(why))


def get_sample():
    """The bundled sample, through the shared cached loader of :mod:`convviz.ui.resources`."""
    from convviz.ui.resources import get_sample as _get_sample

    return _get_sample()


def dataset_picker(default: str = FULL_LABEL) -> str:
    """The dataset choice: the full MNIST when it loads, else the bundled sample with a notice.

    The web server loads the full MNIST only to tell whether it is there and for the results' test
    split; the worker that trains loads its own copy (:func:`convviz.jobs.load_dataset`).

    Returns:
        The dataset's label, :data:`FULL_LABEL` or :data:`SAMPLE_LABEL`.
    """
    with st.spinner("Looking for the full MNIST…"):
        full, why = full_mnist()
    if full is None:
        st.warning("The full MNIST is not available here, so training uses the **bundled sample** "
                   "(5,000 training / 1,000 test digits): good for quick runs, lower test accuracy than the full set.")
        with st.popover("Why, and how to get the full set"):
            st.text(why)
        return SAMPLE_LABEL
    options = [FULL_LABEL, SAMPLE_LABEL]
    choice = st.radio("Dataset", options, key="train_dataset", index=options.index(default) if default in options else 0,
                      help="The bundled sample trains about 12x faster: handy for a quick look.")
    return choice


LEARNER_PARAM = "learner"


def learner_key() -> str:
    """This learner's key, which keeps their saved runs apart from every other learner's.

    It lives in the page address (``?learner=…``, see :func:`keep_learner_in_address`) and in the
    session: the address wins, so a
    bookmarked or reloaded address brings the same runs back, also after a server restart or on
    another server of the class; a new visitor gets a fresh random key.
    """
    key = st.session_state.get("_learner")
    param = st.query_params.get(LEARNER_PARAM)
    if isinstance(param, str) and jobs.LEARNER_RE.fullmatch(param):
        key = param
    if not key:
        key = secrets.token_hex(6)
    st.session_state["_learner"] = key
    return key


def keep_learner_in_address() -> None:
    """Put this learner's key into the page address (``?learner=…``), where a bookmark keeps it.

    Called at the end of the Train page's script (by the saved-runs list), as before this page
    trained on Dask: the address changes once the page has been drawn.
    """
    key = learner_key()
    if st.query_params.get(LEARNER_PARAM) != key:
        st.query_params[LEARNER_PARAM] = key


def get_files() -> jobs.JobFiles:
    """This learner's :class:`convviz.jobs.JobFiles` under ``$CONVVIZ_RUNS_DIR`` (or ``~/.convviz/runs``)."""
    from convviz.runs import default_runs_dir

    return jobs.JobFiles(default_runs_dir(), learner_key())


def get_store():
    """This learner's runs folder: ``<$CONVVIZ_RUNS_DIR or ~/.convviz/runs>/<learner key>``."""
    return get_files().store


def run_state(run_id: str) -> jobs.RunState | None:
    """The run's :class:`convviz.jobs.RunState`, or None when it has no job record (a run saved otherwise)."""
    manager, _ = get_manager()
    files = get_files()
    return manager.state(files, run_id) if manager is not None else jobs.run_state(files, run_id)


def is_active(run_id: str) -> bool:
    """Whether the run is waiting, queued, loading or training (on any server sharing the runs folder)."""
    state = run_state(run_id)
    return state is not None and state.active


def live_status(run_id: str, saved_status: str) -> str:
    """What the runs list calls a run: its job's state when it has one (``queued``, ``running``,
    ``stopped``, ``failed``, ...), else the saved status, except that a saved ``running`` with no job
    is ``interrupted`` (the server stopped or crashed while it trained)."""
    state = run_state(run_id)
    if state is None:
        return "interrupted" if saved_status == "running" else saved_status
    return {"waiting": "queued", "loading": "running"}.get(state.state, state.state)


def current_run() -> jobs.RunState | None:
    """The run this session shows: the one it started or resumed, else the learner's run still going, or None."""
    run_id = st.session_state.get(RUN_KEY)
    try:  # the runs folder unreadable (too long a name, a file in its place...): the saved-runs section says so
        if run_id is None:
            manager, _ = get_manager()
            run_id = manager.active_run(get_files()) if manager is not None else None
        state = run_state(run_id) if run_id else None
    except OSError as exc:
        import logging

        logging.getLogger(__name__).warning("no current run: the runs folder cannot be read (%s)", exc)
        return None
    if state is None:
        st.session_state.pop(RUN_KEY, None)
        return None
    st.session_state[RUN_KEY] = run_id
    return state


def start_run(settings: dict, dataset: str) -> str | None:
    """Queue a new run with ``settings`` on ``dataset``; the page answers at once.

    Args:
        settings: ``preset``, ``filters`` (pair), ``kernel_size``, ``epochs``, ``batch_size``,
            ``learning_rate``, ``seed``.
        dataset: :data:`SAMPLE_LABEL` or :data:`FULL_LABEL`.

    Returns:
        None when queued, else a message saying what to fix.
    """
    run = current_run()
    if run is not None and run.active:
        return "A training run is already going in this session: stop it first."
    from convviz.model import check_training_batch, make_spec  # TensorFlow: imported once a run starts

    try:  # before the cluster is asked for anything
        check_training_batch(make_spec(settings["preset"], settings["filters"], settings["kernel_size"]),
                             settings["batch_size"])
    except ValueError as exc:
        return f"These settings do not work: {exc}"
    manager, problem = get_manager()
    if problem:
        return problem
    try:
        run_id = manager.launch(get_files(), settings, dataset)
    except ValueError as exc:
        return f"These settings do not work: {exc}"
    except OSError as exc:
        return f"The runs folder cannot be written ({md(exc)}); check that this server may write to it."
    st.session_state[RUN_KEY] = run_id
    return None


def resume_run(saved_as: str, epochs: int) -> str | None:
    """Queue the saved run ``saved_as`` to continue from its checkpoint up to ``epochs`` epochs (same file).

    Returns:
        None when queued, else a message saying what to fix.
    """
    manager, problem = get_manager()
    if problem:
        return problem
    try:
        manager.resume(get_files(), saved_as, int(epochs))
    except (ValueError, FileNotFoundError, OSError) as exc:
        return f"Cannot resume run {saved_as}: {exc}"
    st.session_state[RUN_KEY] = saved_as
    return None


def stop_run(run_id: str) -> None:
    """Ask the run to stop (it ends after the current batch; a queued run at once)."""
    manager, _ = get_manager()
    files = get_files()
    try:
        if manager is not None:
            manager.stop(files, run_id)
        else:
            files.request_stop(run_id)
    except (ValueError, OSError) as exc:
        st.session_state[STOP_ERROR_KEY] = f"Could not ask the run to stop: {exc}"


def stop_button(run: jobs.RunState | None) -> None:
    """"Stop training" while this session's run is going (it ends after the current batch; a queued one at once)."""
    if run is not None and run.active:
        st.button("Stop training", key="train_stop", type="primary", on_click=stop_run, args=(run.run_id,),
                  disabled=run.stopping,
                  help="Ends the run after the current batch; the model and the charts are kept.")
    problem = st.session_state.pop(STOP_ERROR_KEY, None)
    if problem:
        st.error(problem)


def describe_settings(s: dict) -> str:
    """A run's settings in words, e.g. ``preset **fast**, filters 32/64, kernel 3x3, 2 epoch(s), ...``."""
    parts = [f"preset **{s.get('preset', '?')}**"]
    filters = s.get("filters")
    if isinstance(filters, (list, tuple)) and len(filters) == 2:
        parts.append(f"filters {filters[0]}/{filters[1]}")
    if "kernel_size" in s:
        parts.append(f"kernel {s['kernel_size']}x{s['kernel_size']}")
    parts += [f"{s.get('epochs', '?')} epoch(s)", f"batch {s.get('batch_size', '?')}"]
    if isinstance(s.get("learning_rate"), (int, float)):
        parts.append(f"learning rate {s['learning_rate']:g}")
    parts.append(f"seed {s.get('seed', '?')}")
    return ", ".join(parts)


def weights_when(history: dict) -> str:
    """What a saved run's weights file holds, in words, from its history's ``epoch``, ``batch`` and
    ``batches_per_epoch`` (a checkpoint is written after every epoch and when the run stops, maybe mid-epoch).

    The one wording of a run's state wherever the Train, Draw and Filter atlas pages name it (downloads, the
    saved-runs list, the model pickers).

    Args:
        history: a saved run's history (:func:`convviz.run_metadata.check_history`'s output).

    Returns:
        ``"after epoch 2"``, ``"after 312 of 469 batches of epoch 1"`` (stopped in epoch 1, whose batches were
        kept), or ``"before any training"``.

    Example:
        >>> weights_when({"epoch": 0, "batch": 312, "batches_per_epoch": 469})
        'after 312 of 469 batches of epoch 1'
        >>> weights_when({"epoch": 2, "batch": 469, "batches_per_epoch": 469})
        'after epoch 2'
    """
    epoch, batch, per_epoch = (int(history.get(key) or 0) for key in ("epoch", "batch", "batches_per_epoch"))
    if 0 < batch < per_epoch:  # stopped in the middle of epoch + 1 (after a finished epoch, batch == per_epoch)
        return f"after {batch:,} of {per_epoch:,} batches of epoch {epoch + 1}"
    return f"after epoch {epoch}" if epoch else "before any training"


def draw_description(record) -> str:
    """How the Draw page names a saved run's model: its name, id, preset, dataset, weights' state and accuracy."""
    dataset = "full MNIST" if record.dataset == FULL_LABEL else (
        "bundled sample" if record.dataset == SAMPLE_LABEL else record.dataset)
    accuracy = "—" if record.test_accuracy is None else f"{record.test_accuracy:.2%}"
    return (f"{md(record.name)} (saved as {record.run_id}; {record.preset} preset, {md(dataset)}, "
            f"weights {weights_when(record.history)}, {accuracy} test accuracy)")


def use_on_draw(run_id: str) -> str | None:
    """Make the saved run ``run_id`` (its checkpoint as it is now) the Draw page's model for this session.

    Returns:
        None when done, else what went wrong.
    """
    try:
        model, record = get_store().load(run_id)
    except (ValueError, FileNotFoundError, OSError) as exc:
        return f"Cannot use run {run_id}: {exc}"
    st.session_state[DRAW_MODEL_KEY] = (model, draw_description(record))
    return None
