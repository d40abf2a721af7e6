"""Streamlit glue for the Train page: the dataset choice, the cluster's state, the live panel, the results.

Training runs on a Dask cluster, not in this web server: :mod:`convviz.jobs` launches, queues, stops
and resumes runs, and reads what the workers write into the runs folder (progress, checkpoints).
This module only draws that. One :class:`convviz.jobs.JobManager` per server (``st.cache_resource``)
connects to ``CONVVIZ_DASK_SCHEDULER`` or starts an embedded ``LocalCluster`` of ``CONVVIZ_MAX_JOBS``
worker processes, in the background, so no page waits for it.

The session remembers which run it shows under the non-widget key :data:`RUN_KEY` (Streamlit drops
the widget-keyed state of a page that is not shown, never the other keys); without one, the page
shows the learner's run that is still going, if any, wherever it was started (another web server,
an earlier server process): runs are found by learner key. A fragment that reruns every
``LIVE_REFRESH_S`` (2) seconds shows the run's progress; when an epoch ends (at most every 30 s) or the run
ends it reruns the whole page so the test-set results refresh.

A run has one name, the saved run's ("Run 3": the learner's third run), and one accuracy, the saved
run's (:attr:`convviz.runs.RunRecord.test_accuracy`), here, in the saved-runs list and on the Draw page.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
import time

import numpy as np
import streamlit as st

from convviz import figures_training as ft
from convviz import jobs, metrics
from convviz.jobs import DEFAULT_MAX_JOBS, FULL_LABEL, MAX_JOBS_ENV, SAMPLE_LABEL, SCHEDULER_ENV, max_jobs
from convviz.ui.text import md

__all__ = ["DEFAULT_MAX_JOBS", "FULL_LABEL", "MAX_JOBS_ENV", "SAMPLE_LABEL", "SCHEDULER_ENV", "max_jobs"]

RUN_KEY = "_train_run"
STOP_ERROR_KEY = "_train_stop_error"
"""``st.session_state`` key: why "Stop training" could not ask the run to stop (shown once under the button)."""
"""``st.session_state`` key of the run id this session shows (not a widget key)."""

DRAW_MODEL_KEY = "_draw_model"
"""``st.session_state`` key of the model the Draw page uses: ``(ScratchCNN, description)``."""

_RETRY_FULL_AFTER_S = 300.0
_EPOCH_RERUN_S = 30.0
LIVE_REFRESH_S = 2.0
"""Seconds between two refreshes of a watched run's live panel (progress, curves, kernels). Each refresh costs the
server a fragment run and the browser its changed charts redrawn (each ~0.1 s of CPU in Chromium): at 0.5 s, one
watching learner kept the web server at ~50% of a core, which the training workers (at a lower priority) lost; at
1 s the watching browser used ~0.3 of a core (BENCHMARKS.md)."""
KERNEL_REFRESH_S = 6.0
"""Seconds between two redraws of the live kernel grid: the kernels change slowly, and a chart sent again unchanged
costs the browser nothing."""
"""While a run trains, the whole page (test-set results) refreshes for a new epoch at most this often, seconds."""


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
    retried after 5 minutes, so a file put in place later is found)."""
    return _full_mnist_holder().get()


def get_sample():
    """The bundled sample, through the shared cached loader of :mod:`convviz.ui.resources`."""
    from convviz.ui.resources import get_sample as _get_sample

    return _get_sample()


def dataset_picker() -> str:
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
    choice = st.radio("Dataset", [FULL_LABEL, SAMPLE_LABEL], key="train_dataset",
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
    if run_id is None:
        manager, _ = get_manager()
        run_id = manager.active_run(get_files()) if manager is not None else None
    state = run_state(run_id) if run_id else None
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
    manager, problem = get_manager()
    if problem:
        return problem
    try:
        run_id = manager.launch(get_files(), settings, dataset)
    except ValueError as exc:
        return f"These settings do not work: {exc}"
    except OSError as exc:
        return f"The runs folder cannot be written ({exc}); check {get_store().root}."
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


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"



def _progress_text(run: jobs.RunState) -> str:
    snap = run.history
    bpe, epochs = max(1, snap.get("batches_per_epoch") or 0), max(1, snap.get("epochs") or 1)
    steps = len(snap["batch_loss"])
    epoch = min(epochs, max(1, -(-steps // bpe)))  # the epoch the last batch belonged to
    batch = steps - (epoch - 1) * bpe
    short = "the full MNIST" if run.dataset == FULL_LABEL else "the bundled sample"
    if run.state == "waiting":
        manager, _ = get_manager()
        state, _ = manager.status if manager is not None else ("failed", None)
        return ("Starting the Dask cluster (its worker processes)…" if state in ("idle", "starting", "ready")
                else "Waiting for the Dask cluster, which is unavailable (see above)")
    if run.state == "queued":
        return (f"Queued, position {run.position}: every worker is training another run; "
                "it starts when one is free")
    if run.state == "loading":
        return f"Loading {short} and building the model on a worker…"
    if run.state == "running" and steps == 0:
        return "Waiting for the first batch (the worker compiles the training step)…"
    if run.state == "running":
        eta = snap.get("eta_s")
        return (f"Epoch {epoch}/{epochs} · batch {batch}/{bpe} · {snap['samples_per_second']:,.0f} digits/s · "
                f"ETA {_duration(eta) if eta is not None else 'estimating…'}"
                + (" · stopping after this batch…" if run.stopping else ""))
    if run.state == "finished":
        return f"Finished: {epochs} epoch(s), {steps:,} batches in {_duration(snap['elapsed_s'])}"
    if run.state == "stopped":
        if steps == 0 and not snap.get("epoch"):
            return "Stopped before it started training"
        return (f"Stopped after {steps:,} batches (epoch {epoch}, batch {batch}/{bpe}) in "
                f"{_duration(snap['elapsed_s'])}; the model and charts are kept")
    if run.state == "interrupted":
        return "Interrupted before it started"
    return "Training failed"


def _progress(run: jobs.RunState) -> None:
    snap = run.history
    bpe, epochs = max(1, snap.get("batches_per_epoch") or 0), max(1, snap.get("epochs") or 1)
    st.progress(min(1.0, len(snap["batch_loss"]) / (bpe * epochs)), text=_progress_text(run))
    if run.state == "failed":
        st.error(f"Training failed: {md(run.error)}. The last saved checkpoint is kept: resume it from the saved runs "
                 "below, or try a smaller learning rate or other settings.")
    elif run.state == "interrupted":
        st.warning(f"This run did not train: {md(run.error)}. Start it again.")


def _kernel_figure(run: jobs.RunState):
    """The first layer's kernels as the run last reported them; while it trains, redrawn at most every
    ``KERNEL_REFRESH_S`` seconds (in between, the same figure again)."""
    held = st.session_state.get("_train_kernel_figure")
    now = time.monotonic()
    if run.active and held is not None and held[0] == run.run_id and now - held[1] < KERNEL_REFRESH_S:
        return held[2]
    kernel = np.asarray(run.first_kernel, dtype=np.float32)
    fig = ft.kernel_grid_figure(kernel, columns=8, title=f"The first layer's {kernel.shape[-1]} kernels "
                                                         f"({kernel.shape[0]}x{kernel.shape[1]}), as they are now")
    st.session_state["_train_kernel_figure"] = (run.run_id, now, fig)
    return fig


def _panel(run: jobs.RunState) -> None:
    _progress(run)
    snap = run.history
    if not snap["batch_loss"] and run.active:
        return
    left, right = st.columns(2)
    left.plotly_chart(ft.metric_figure(snap, "loss", smoothing=0.8), key="train_chart_loss")
    right.plotly_chart(ft.metric_figure(snap, "accuracy", smoothing=0.8), key="train_chart_accuracy")
    if run.first_kernel is not None:
        left, right = st.columns([3, 2])
        left.plotly_chart(_kernel_figure(run), key="train_chart_kernels")
        right.markdown(
            "**What the first layer learns.** Each square is one kernel of `conv1`: the weights it multiplies "
            "the pixels under it by (red adds, blue subtracts). They start as random noise; as training goes "
            "on they turn into small stroke and edge detectors — watch them change while the run trains.")


def _phase(run: jobs.RunState) -> tuple:
    """What the whole page shows of a run: it changes when an epoch ends or the run ends."""
    return run.run_id, "active" if run.active else run.state, run.history.get("epoch", 0)


@st.fragment(run_every=LIVE_REFRESH_S)
def _live_panel() -> None:
    run = current_run()
    if run is None:
        return
    _panel(run)
    phase = _phase(run)
    # Rerun the whole page once per change (an epoch or the run ended), never again while that rerun is
    # under way (a full run can take longer than a refresh, and each st.rerun would interrupt it), and for a
    # new epoch at most every _EPOCH_RERUN_S seconds (short epochs on a busy server would keep it rerunning).
    recent = time.monotonic() - st.session_state.get("_train_shown_at", 0.0) < _EPOCH_RERUN_S
    if phase != st.session_state.get("_train_shown") and phase != st.session_state.get("_train_rerun_for") \
            and not (run.active and recent):
        st.session_state["_train_rerun_for"] = phase
        st.rerun(scope="app")  # refresh the results and the settings lock


def stop_button(run: jobs.RunState | None) -> None:
    """"Stop training" while this session's run is going (it ends after the current batch; a queued one at once)."""
    if run is not None and run.active:
        st.button("Stop training", key="train_stop", type="primary", on_click=stop_run, args=(run.run_id,),
                  disabled=run.stopping,
                  help="Ends the run after the current batch; the model and the charts are kept.")
    problem = st.session_state.pop(STOP_ERROR_KEY, None)
    if problem:
        st.error(problem)


def show_run(run: jobs.RunState) -> None:
    """The progress, curves and kernels: live while the run is going, static once it has ended."""
    st.caption(f"{md(run.name)} (saved as {run.run_id}): {describe_settings(run.settings)}, on the "
               f"{md(run.dataset[:1].lower() + run.dataset[1:])}.")
    st.session_state["_train_shown"] = _phase(run)
    st.session_state["_train_shown_at"] = time.monotonic()
    if run.active:
        _live_panel()
    else:
        _panel(run)


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


def _test_split(dataset: str):
    """``(x_test, y_test)`` of the dataset a run trained on, or None when it cannot be loaded here."""
    if dataset == SAMPLE_LABEL:
        return get_sample()[1]
    data, _ = full_mnist() if dataset == FULL_LABEL else (None, None)
    return None if data is None else data[1]


def draw_description(record) -> str:
    """How the Draw page names a saved run's model: its name, id, preset, dataset, epochs and accuracy."""
    dataset = "full MNIST" if record.dataset == FULL_LABEL else (
        "bundled sample" if record.dataset == SAMPLE_LABEL else record.dataset)
    accuracy = "—" if record.test_accuracy is None else f"{record.test_accuracy:.2%}"
    return (f"{md(record.name)} (saved as {record.run_id}; {record.preset} preset, {md(dataset)}, "
            f"{record.epochs_done} epoch(s), {accuracy} test accuracy)")


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


def _evaluation(run_id: str, record):
    """The checkpoint's predictions on the test split, cached per checkpoint (run id, time written).

    The weights go into one model per architecture and session, so its compiled forward pass is
    reused from checkpoint to checkpoint (a new model would be traced again, seconds of CPU).
    """
    import json

    from convviz.train import evaluate

    cache = st.session_state.setdefault("_train_evaluations", {})
    key = (run_id, record.updated, record.path.stat().st_mtime_ns)
    if key not in cache:
        split = _test_split(record.dataset)
        if split is None:
            return None
        saved, _ = get_store().load(run_id)
        models = st.session_state.setdefault("_train_eval_models", {})
        spec = json.dumps(saved.spec, sort_keys=True)
        if spec not in models:
            models.clear()
            models[spec] = saved
        model = models[spec]
        if model is not saved:
            model.set_weights(saved.weights())
        with st.spinner("Evaluating on the test set…"):
            cache.clear()
            cache[key] = (split, evaluate(model, *split))
    return cache[key]


def show_results(run: jobs.RunState) -> None:
    """Confusion matrix and misclassified digits of the run's saved checkpoint, the download and "use on Draw"."""
    st.subheader("How the model does on the test set")
    try:
        record = get_store().record(run.run_id)
    except FileNotFoundError:
        record = None
    except (ValueError, OSError) as exc:
        st.warning(f"The run's checkpoint cannot be read: {md(exc)}")
        return
    if record is None or (run.active and not record.history.get("epoch")):
        if run.active:
            st.info("The confusion matrix and the mistakes appear when the first epoch ends (or when you stop).")
        else:
            st.info("This run saved no model: it ended before it trained.")
        return
    history = record.history
    final = not run.active and history.get("final_test_accuracy") is not None
    if not final and not history["epoch_test_loss"]:
        st.info("This run's checkpoint has no test results yet: it stopped before its first epoch ended.")
        return
    try:
        evaluated = _evaluation(run.run_id, record)
    except (ValueError, OSError) as exc:  # the checkpoint was replaced by a damaged file, or deleted
        st.warning(f"The run's checkpoint cannot be read: {md(exc)}")
        return
    if evaluated is None:
        st.info(f"The test digits of the {md(record.dataset[:1].lower() + record.dataset[1:])} are not available on this server.")
        return
    (x_test, y_test), (_, _, predicted, probabilities) = evaluated
    loss = history["final_test_loss"] if final else history["epoch_test_loss"][-1]
    accuracy = record.test_accuracy if final else history["epoch_test_accuracy"][-1]
    when = "with the final weights" if final else f"after epoch {record.epochs_done}"
    st.caption(f"{len(y_test):,} test digits, {when}: loss {loss:.3f}, accuracy {accuracy:.2%}.")
    st.plotly_chart(ft.confusion_figure(metrics.confusion_matrix(y_test, predicted)), key="train_chart_confusion")
    mistakes = metrics.misclassified(y_test, predicted, probabilities, limit=24)
    st.markdown(f"**Misclassified test digits** ({int((predicted != y_test).sum()):,} in all; "
                "the most confident mistakes first)")
    if mistakes:
        images = [np.kron(x_test[m["index"]], np.ones((3, 3), np.uint8)) for m in mistakes]
        captions = [f"true {m['true']} → {m['predicted']} ({m['confidence']:.0%})" for m in mistakes]
        st.image(images, caption=captions, width=84)
    else:
        st.success("No mistakes on the test set.")
    left, right = st.columns(2)
    left.download_button("Download the trained weights (.npz)", data=lambda: record.path.read_bytes(),
                         file_name=f"convviz_{record.run_id}.npz", mime="application/octet-stream",
                         key="train_download", on_click="ignore",
                         help="The saved checkpoint; load it with convviz.model.load_model(path).")
    if right.button("Use this model on the Draw page", key="train_use_on_draw",
                    help="For this browser session only; the saved checkpoint as it is now."):
        problem = use_on_draw(run.run_id)
        if problem:
            st.error(problem)
    chosen = st.session_state.get(DRAW_MODEL_KEY)
    if chosen is not None and f"(saved as {run.run_id};" in chosen[1]:
        st.success(f"The Draw page uses {chosen[1]}.")
