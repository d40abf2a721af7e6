"""Streamlit glue for the Train page: the dataset choice, the server-wide job cap, the live panel.

The training itself runs in :class:`convviz.train.TrainingJob`'s background thread, which makes no
Streamlit calls. This module keeps one :class:`TrainRun` per browser session under the non-widget
key :data:`RUN_KEY` of ``st.session_state`` (Streamlit drops the widget-keyed state of a page that
is not shown, never the other keys), so visiting other pages or touching widgets neither stops
nor loses a run. A fragment that reruns every 0.5 s shows the run's progress and charts; when an
epoch ends or the run stops, it reruns the whole page so the test-set results refresh.

Server-wide, at most ``CONVVIZ_MAX_JOBS`` (default 2) jobs train at once (:class:`JobRegistry`).

Every run started here is saved: it gets a run id from :class:`convviz.runs.RunStore` and its job
checkpoints the model and history into the runs folder after every epoch and when it stops or
finishes (:func:`start_run`, :func:`resume_run`); :mod:`convviz.ui.runs` lists those runs.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from convviz import figures_training as ft

RUN_KEY = "_train_run"
"""``st.session_state`` key of this session's :class:`TrainRun` (not a widget key)."""

DRAW_MODEL_KEY = "_draw_model"
"""``st.session_state`` key of the model the Draw page uses: ``(ScratchCNN, description)``."""

MAX_JOBS_ENV = "CONVVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
FULL_LABEL = "Full MNIST (60,000 training / 10,000 test digits)"
SAMPLE_LABEL = "Bundled sample (5,000 training / 1,000 test digits)"
_RETRY_FULL_AFTER_S = 300.0
_run_ids = itertools.count(1)


def max_jobs() -> tuple[int, str | None]:
    """The server-wide cap on simultaneous training jobs, from ``CONVVIZ_MAX_JOBS``.

    Returns:
        ``(cap, warning)``: the cap (>= 1; default 2) and a message when the variable was invalid.
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


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return None if ctx is None else ctx.session_id


def _session_alive(session_id: str | None) -> bool:
    """Whether the browser session is still connected (True when that cannot be told, e.g. in AppTest)."""
    from streamlit.runtime import Runtime

    if session_id is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session_id)


class JobRegistry:
    """The training jobs of every session on this server, to cap how many run at once.

    A job whose browser session has gone (tab closed or reloaded: the run can no longer be
    shown) for longer than ``orphan_grace_s`` is stopped, so it does not hold a slot; a
    watchdog thread checks every ``check_every_s`` while any job is active.
    """

    def __init__(self, orphan_grace_s: float = 60.0, check_every_s: float = 10.0):
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        self._grace = orphan_grace_s
        self._every = check_every_s
        self._watchdog: threading.Thread | None = None

    def _prune(self) -> None:
        now = time.monotonic()
        kept = []
        for entry in self._entries:
            job = entry["job"]
            if job.status not in ("pending", "running"):
                continue
            if _session_alive(entry["session"]):
                entry["gone_since"] = None
            elif entry["gone_since"] is None:
                entry["gone_since"] = now
            elif now - entry["gone_since"] > self._grace:
                job.stop()  # nobody can see it any more; it ends after the current batch
            kept.append(entry)
        self._entries = kept

    def active(self) -> int:
        """Jobs still pending or running."""
        with self._lock:
            self._prune()
            return len(self._entries)

    def start(self, job, cap: int, session_id: str | None = None) -> bool:
        """Start ``job`` if fewer than ``cap`` jobs are active; ``False`` (not started) otherwise."""
        with self._lock:
            self._prune()
            if len(self._entries) >= cap:
                return False
            job.start()
            self._entries.append({"job": job, "session": session_id, "gone_since": None})
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(target=self._watch, name="convviz-job-watchdog", daemon=True)
                self._watchdog.start()
            return True

    def _watch(self) -> None:
        while True:
            time.sleep(self._every)
            with self._lock:
                self._prune()
                if not self._entries:
                    self._watchdog = None
                    return


@st.cache_resource
def get_registry() -> JobRegistry:
    """The one :class:`JobRegistry` of this server."""
    return JobRegistry()


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


def dataset_picker():
    """The dataset choice: the full MNIST when it loads, else the bundled sample with a notice.

    Returns:
        ``(data, label)``: ``((x_train, y_train), (x_test, y_test))`` uint8, and its description.
    """
    with st.spinner("Looking for the full MNIST…"):
        full, why = full_mnist()
    if full is None:
        st.warning("The full MNIST is not available here, so training uses the **bundled sample** "
                   "(5,000 training / 1,000 test digits): good for quick runs, lower test accuracy than the full set.")
        with st.popover("Why, and how to get the full set"):
            st.text(why)
        return get_sample(), SAMPLE_LABEL
    choice = st.radio("Dataset", [FULL_LABEL, SAMPLE_LABEL], key="train_dataset",
                      help="The bundled sample trains about 12x faster: handy for a quick look.")
    return (full if choice == FULL_LABEL else get_sample()), choice


LEARNER_PARAM = "learner"
_LEARNER_RE = re.compile(r"^[a-z0-9]{8,32}$")


def learner_key() -> str:
    """This learner's key, which keeps their saved runs apart from every other learner's.

    It lives in the page address (``?learner=…``) and in the session: the address wins, so a
    bookmarked or reloaded address brings the same runs back, also after a server restart; a new
    visitor gets a fresh random key.
    """
    key = st.session_state.get("_learner")
    param = st.query_params.get(LEARNER_PARAM)
    if isinstance(param, str) and _LEARNER_RE.match(param):
        key = param
    if not key:
        key = secrets.token_hex(6)
    st.session_state["_learner"] = key
    if st.query_params.get(LEARNER_PARAM) != key:
        st.query_params[LEARNER_PARAM] = key
    return key


def get_store():
    """This learner's runs folder: ``<$CONVVIZ_RUNS_DIR or ~/.convviz/runs>/<learner key>``."""
    from convviz.runs import RunStore, default_runs_dir

    return RunStore(default_runs_dir() / learner_key())


@st.cache_resource
def _live_jobs() -> dict:
    """Saved run id -> the :class:`convviz.train.TrainingJob` training it in this server (all sessions)."""
    return {}


def live_job(saved_as: str):
    """The job of run ``saved_as`` if it is still training (or saving its last checkpoint) in this server."""
    job = _live_jobs().get(saved_as)
    if job is not None and (job.is_alive() or job.status in ("pending", "running")):
        return job
    return None


def live_status(saved_as: str, saved_status: str) -> str:
    """What the runs list calls a run: the live job's status when it trains in this server, else the
    saved one, except that a saved ``running`` with no live job here is ``interrupted`` (the server
    stopped or crashed while it trained) and a job that failed here is ``failed``."""
    job = _live_jobs().get(saved_as)
    if job is not None and (job.is_alive() or job.status in ("pending", "running")):
        return "running" if job.status == "pending" else job.status
    if job is not None and job.status == "failed":
        return "failed"
    return "interrupted" if saved_status == "running" else saved_status


def _json_settings(settings: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}


@dataclass
class TrainRun:
    """One session's training run and what the page derived from it.

    Attributes:
        job: the :class:`convviz.train.TrainingJob`.
        dataset: description of the data it trains on.
        x_test, y_test: the test split (uint8 images, labels) for the confusion matrix.
        settings: the settings it was started with (for display).
        run_id: a number unique on this server.
        saved_as: its id in the runs folder (:class:`convviz.runs.RunStore`), or None.
        seen_epoch: the last epoch count the page rendered results for.
        evaluations: cache ``key -> (loss, accuracy, predicted, probabilities)``.
    """

    job: object
    dataset: str
    x_test: np.ndarray
    y_test: np.ndarray
    settings: dict
    run_id: int = field(default_factory=lambda: next(_run_ids))
    saved_as: str | None = None
    seen_epoch: int = 0
    evaluations: dict = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.job.status in ("pending", "running")


def current_run() -> TrainRun | None:
    """This session's run, or None."""
    return st.session_state.get(RUN_KEY)


def _launch(model, data, dataset: str, settings: dict, saved_as: str, created: str | None = None,
            resume_history: dict | None = None) -> str | None:
    """Make the job (checkpointing into the runs folder as ``saved_as``) and start it if the server has room."""
    from convviz.train import TrainConfig, TrainingJob

    run = current_run()
    if run is not None and run.running:
        return "A training run is already going in this session: stop it first."
    store = get_store()
    labels = {"preset": settings["preset"], "dataset": dataset, "config": _json_settings(settings)}
    start_time = created or time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())

    def checkpoint(model, history):
        store.save(saved_as, model, created=start_time, history=history, **labels)

    try:
        config = TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"],
                             learning_rate=settings["learning_rate"], seed=settings["seed"])
        job = TrainingJob(model, data, config, on_checkpoint=checkpoint, resume_history=resume_history)
    except ValueError as exc:
        return f"These settings do not work: {exc}"
    cap, _ = max_jobs()
    if not get_registry().start(job, cap, _session_id()):
        return (f"The server is already training {cap} model(s), its limit (set by {MAX_JOBS_ENV}). "
                "Try again when one has finished, or use the shipped model on the Draw page meanwhile.")
    live = _live_jobs()
    for old_id in [i for i, j in live.items() if not j.is_alive() and j.status != "failed"]:
        del live[old_id]  # an ended job holds its data and model: do not keep it for the whole server's life
    live[saved_as] = job
    (_, _), (x_test, y_test) = data
    st.session_state[RUN_KEY] = TrainRun(job=job, dataset=dataset, x_test=x_test, y_test=y_test,
                                         settings=dict(settings), saved_as=saved_as)
    return None


def start_run(settings: dict, data, dataset: str) -> str | None:
    """Build the model and the job from ``settings`` and start it, if the server has room.

    The run is saved in the runs folder under a new run id (after every epoch and at the end).

    Args:
        settings: ``preset``, ``filters`` (pair), ``kernel_size``, ``epochs``, ``batch_size``,
            ``learning_rate``, ``seed``.
        data: ``((x_train, y_train), (x_test, y_test))``.
        dataset: its description.

    Returns:
        None when started, else a message saying what to fix.
    """
    run = current_run()
    if run is not None and run.running:
        return "A training run is already going in this session: stop it first."
    from convviz.model import ScratchCNN

    try:
        model = ScratchCNN.from_preset(settings["preset"], seed=settings["seed"], filters=settings["filters"],
                                       kernel_size=settings["kernel_size"])
        saved_as = get_store().new_run_id(settings["preset"])
    except ValueError as exc:
        return f"These settings do not work: {exc}"
    return _launch(model, data, dataset, settings, saved_as)


def resume_run(saved_as: str, epochs: int, data, dataset: str) -> str | None:
    """Continue the saved run ``saved_as`` from its checkpoint up to ``epochs`` epochs, saving into the same file.

    The settings (batch size, learning rate, seed, architecture) are the saved ones; ``data`` must be
    the dataset it trained on (the job refuses a different number of batches per epoch).

    Returns:
        None when started, else a message saying what to fix.
    """
    if live_job(saved_as) is not None:
        return f"Run {saved_as} is still training on this server; it cannot be resumed twice."
    try:
        model, record = get_store().load(saved_as)
    except (ValueError, FileNotFoundError, OSError) as exc:
        return f"Cannot resume run {saved_as}: {exc}"
    settings = dict(record.config, preset=record.preset, epochs=int(epochs))
    for key in ("batch_size", "learning_rate", "seed"):
        if key not in settings:
            return f"Cannot resume run {saved_as}: its saved settings have no {key}."
    if isinstance(settings.get("filters"), list):
        settings["filters"] = tuple(settings["filters"])
    problem = _launch(model, data, dataset, settings, saved_as, created=record.created,
                      resume_history=record.history)
    if problem and problem.startswith("These settings do not work: "):
        problem = f"Cannot resume run {saved_as}: " + problem.removeprefix("These settings do not work: ")
    return problem


def _progress(snap: dict) -> None:
    bpe, epochs = max(1, snap["batches_per_epoch"]), max(1, snap["epochs"])
    steps = len(snap["batch_loss"])
    epoch = min(epochs, max(1, -(-steps // bpe)))  # the epoch the last batch belonged to
    batch = steps - (epoch - 1) * bpe
    eta = snap["eta_s"]
    status = snap["status"]
    if status in ("pending", "running"):
        text = (f"Epoch {epoch}/{epochs} · batch {batch}/{bpe} · {snap['samples_per_second']:,.0f} digits/s · "
                f"ETA {_duration(eta) if eta is not None else 'estimating…'}")
    elif status == "finished":
        text = f"Finished: {epochs} epoch(s), {steps:,} batches in {_duration(snap['elapsed_s'])}"
    elif status == "stopped":
        text = (f"Stopped after {steps:,} batches (epoch {epoch}, batch {batch}/{bpe}) in "
                f"{_duration(snap['elapsed_s'])}; the model and charts are kept")
    else:
        text = "Training failed"
    st.progress(min(1.0, steps / (bpe * epochs)), text=text)
    if status == "failed":
        st.error(f"Training failed: {snap['error']}. Try a smaller learning rate or other settings.")


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _first_kernel(model) -> np.ndarray | None:
    for _, module in model.layers:
        if hasattr(module, "kernel"):
            return module.kernel.numpy()
    return None


def _panel(run: TrainRun, snap: dict) -> None:
    _progress(snap)
    problem = getattr(run.job, "checkpoint_error", None)
    if problem:
        st.warning(f"The last checkpoint of this run could not be saved ({problem}); training goes on, but a "
                   f"crash now would lose the epochs since the last saved one. Check the runs folder "
                   f"({get_store().root}).")
    left, right = st.columns(2)
    left.plotly_chart(ft.metric_figure(snap, "loss", smoothing=0.8), key="train_chart_loss")
    right.plotly_chart(ft.metric_figure(snap, "accuracy", smoothing=0.8), key="train_chart_accuracy")
    kernel = _first_kernel(run.job.model)
    if kernel is not None:
        left, right = st.columns([3, 2])
        left.plotly_chart(ft.kernel_grid_figure(kernel, columns=8,
                                                title=f"The first layer's {kernel.shape[-1]} kernels "
                                                      f"({kernel.shape[0]}x{kernel.shape[1]}), as they are now"),
                          key="train_chart_kernels")
        right.markdown(
            "**What the first layer learns.** Each square is one kernel of `conv1`: the weights it multiplies "
            "the pixels under it by (red adds, blue subtracts). They start as random noise; as training goes "
            "on they turn into small stroke and edge detectors — watch them change while the run trains.")


@st.fragment(run_every=0.5)
def _live_panel() -> None:
    run = current_run()
    if run is None:
        return
    snap = run.job.snapshot()
    _panel(run, snap)
    if snap["status"] not in ("pending", "running") or snap["epoch"] != run.seen_epoch:
        run.seen_epoch = snap["epoch"]
        st.rerun(scope="app")  # refresh the test-set results below


def stop_button(run: TrainRun | None) -> None:
    """"Stop training" while this session's run trains (it ends after the current batch)."""
    if run is not None and run.running:
        st.button("Stop training", key="train_stop", type="primary", on_click=run.job.stop,
                  help="Ends the run after the current batch; the model and the charts are kept.")


def show_run(run: TrainRun) -> None:
    """The progress, curves and kernels: live while the run trains, static once it has ended."""
    saved = f" (saved as {run.saved_as})" if run.saved_as else ""
    st.caption(f"Run {run.run_id}{saved}: {describe_settings(run.settings)}, on the {run.dataset.lower()}.")
    if run.running:
        _live_panel()
    else:
        run.seen_epoch = run.job.snapshot()["epoch"]
        _panel(run, run.job.snapshot())


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


def _evaluation(run: TrainRun):
    """Test-set evaluation of the run's model, cached per finished epoch (and once at the end)."""
    from convviz.train import evaluate

    key = ("final",) if not run.running else ("epoch", run.seen_epoch)
    if key not in run.evaluations:
        with st.spinner("Evaluating on the test set…"):
            run.evaluations[key] = evaluate(run.job.model, run.x_test, run.y_test)
    return run.evaluations[key]


def copy_model(model):
    from convviz.model import ScratchCNN

    copy = ScratchCNN(model.spec, seed=None)
    weights = model.weights()
    for name, module in copy.layers:
        for attr in ("kernel", "bias", "w", "b"):
            if hasattr(module, attr):
                getattr(module, attr).assign(weights[f"{name}/{attr}"])
    return copy


def _use_on_draw(run: TrainRun) -> None:
    snap = run.job.snapshot()
    acc = run.evaluations.get(("final",))
    described = f"{acc[1]:.1%} test accuracy" if acc else f"after {len(snap['batch_loss'])} batches"
    st.session_state[DRAW_MODEL_KEY] = (copy_model(run.job.model),
                                        f"your model from run {run.run_id} ({run.settings['preset']} preset, "
                                        f"{run.dataset.lower()}, {described})")


def _weights_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return model.save(Path(tmp) / "model.npz").read_bytes()


def show_results(run: TrainRun) -> None:
    """Confusion matrix, misclassified digits, the download and "use on the Draw page" buttons."""
    st.subheader("How the model does on the test set")
    if run.running and run.seen_epoch == 0:
        st.info("The confusion matrix and the mistakes appear when the first epoch ends (or when you stop).")
        return
    loss, accuracy, predicted, probabilities = _evaluation(run)
    when = f"after epoch {run.seen_epoch}" if run.running else "with the final weights"
    st.caption(f"{len(run.y_test):,} test digits, {when}: loss {loss:.3f}, accuracy {accuracy:.2%}.")
    st.plotly_chart(ft.confusion_figure(ft.confusion_matrix(run.y_test, predicted)), key="train_chart_confusion")
    mistakes = ft.misclassified(run.y_test, predicted, probabilities, limit=24)
    st.markdown(f"**Misclassified test digits** ({int((predicted != run.y_test).sum()):,} in all; "
                "the most confident mistakes first)")
    if mistakes:
        images = [np.kron(run.x_test[m["index"]], np.ones((3, 3), np.uint8)) for m in mistakes]
        captions = [f"true {m['true']} → {m['predicted']} ({m['confidence']:.0%})" for m in mistakes]
        st.image(images, caption=captions, width=84)
    else:
        st.success("No mistakes on the test set.")
    model = run.job.model
    left, right = st.columns(2)
    left.download_button("Download the trained weights (.npz)", data=lambda: _weights_bytes(model),
                         file_name=f"convviz_run{run.run_id}.npz", mime="application/octet-stream",
                         key="train_download", on_click="ignore",
                         help="Load it with convviz.model.load_model(path).")
    right.button("Use this model on the Draw page", key="train_use_on_draw", on_click=_use_on_draw, args=(run,),
                 help="For this browser session only; copies the weights as they are now.")
    chosen = st.session_state.get(DRAW_MODEL_KEY)
    if chosen is not None and f"run {run.run_id} " in chosen[1]:
        st.success(f"The Draw page uses {chosen[1]}.")
