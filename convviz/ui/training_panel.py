"""The Train page's live panel and test-set results: what a run looks like while it trains and once it has.

:func:`show_run` draws a run's progress, curves and first-layer kernels: static once the run has ended, else in a
fragment that reruns every :data:`LIVE_REFRESH_S` (2) seconds and, when an epoch ends (at most every 30 s) or the run
ends, reruns the whole page so the test-set results refresh. :func:`show_results` draws the saved checkpoint's
confusion matrix and mistakes on the test split, the weights' download and "Use this model on the Draw page".

Which run, where it trains and the learner's runs folder are :mod:`convviz.ui.training`'s; this module only reads
them (the run's :class:`convviz.jobs.RunState`, the learner's store).
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from convviz import figures_training as ft
from convviz import jobs, metrics
from convviz.jobs import FULL_LABEL, SAMPLE_LABEL
from convviz.ui.text import md
from convviz.ui.training import (DRAW_MODEL_KEY, current_run, describe_settings, full_mnist, get_manager, get_sample,
                                 get_store, use_on_draw, weights_when)

_EPOCH_RERUN_S = 30.0
"""While a run trains, the whole page (test-set results) refreshes for a new epoch at most this often, seconds."""

LIVE_REFRESH_S = 2.0
"""Seconds between two refreshes of a watched run's live panel (progress, curves, kernels). Each refresh costs the
server a fragment run and the browser its changed charts redrawn (each ~0.1 s of CPU in Chromium): at 0.5 s, one
watching learner kept the web server at ~50% of a core, which the training workers (at a lower priority) lost; at
1 s the watching browser used ~0.3 of a core (BENCHMARKS.md)."""
KERNEL_REFRESH_S = 6.0
"""Seconds between two redraws of the live kernel grid: the kernels change slowly, and a chart sent again unchanged
costs the browser nothing."""


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
                f"{_duration(snap['elapsed_s'])}; the model (its weights {weights_when(snap)}) and the charts are kept")
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


def _test_split(dataset: str):
    """``(x_test, y_test)`` of the dataset a run trained on, or None when it cannot be loaded here."""
    if dataset == SAMPLE_LABEL:
        return get_sample()[1]
    data, _ = full_mnist() if dataset == FULL_LABEL else (None, None)
    return None if data is None else data[1]


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
    saved = f"Weights saved {weights_when(history)}. " if final else ""  # a stop may come mid-epoch: say so
    st.caption(f"{saved}{len(y_test):,} test digits, {when}: loss {loss:.3f}, accuracy {accuracy:.2%}.")
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
