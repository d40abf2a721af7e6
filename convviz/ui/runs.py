"""Streamlit glue for the Train page's saved runs: list them, show one, resume, use on Draw, delete.

Runs live in the runs folder of :class:`convviz.runs.RunStore` (``$CONVVIZ_RUNS_DIR`` or
``~/.convviz/runs``); the Dask workers write them while they train (:mod:`convviz.jobs`). A run has one
name ("Run 3") and one test accuracy (:attr:`convviz.runs.RunRecord.test_accuracy`) wherever it is shown. Widget keys:
``runs_choice`` (the chosen run), ``runs_epochs_<run id>`` / ``runs_resume`` (resume), ``runs_use_on_draw``,
``runs_delete`` / ``runs_delete_yes`` / ``runs_delete_no`` (delete, with a confirmation step); the chosen run's
downloads (weights, Keras script, ``.keras``) are :mod:`convviz.ui.export`'s ``export_run_*``. A file of the
folder that cannot be listed as a run (:class:`convviz.runs.SkippedFile`) gets a warning of its own, with
``runs_discard_<digest>`` / ``runs_discard_yes`` / ``runs_discard_no`` to delete it; the other runs are listed as usual.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pandas as pd
import streamlit as st

from convviz import figures_training as ft
from convviz.ui import export as export_ui
from convviz.ui import training as tr
from convviz.ui.numbers import number_input
from convviz.ui.text import md, printable

_PENDING_DELETE = "_runs_delete_pending"
"""``st.session_state`` key: the run id whose deletion awaits confirmation."""
_PENDING_DISCARD = "_runs_discard_pending"
"""``st.session_state`` key: the name of the skipped file whose deletion awaits confirmation."""
_PENDING_DISCARD_ALL = "_runs_pending_discard_all"
"""``st.session_state`` key: how many skipped files a "Delete them" awaits confirmation for."""

_DATASETS = {tr.SAMPLE_LABEL: "bundled sample", tr.FULL_LABEL: "full MNIST"}


@st.cache_resource(max_entries=256, show_spinner=False)
def _record_of_version(root: str, path: str, version: tuple, batches: bool = False) -> tuple:
    """``(RunRecord, None)`` or ``(None, reason)`` for one version of a run file (``version``: its size, times and
    inode), shared by every session: a file is read and checked once per change, not on every render. ``batches``:
    with the per-batch history (the chosen run's charts), else the list's record (metadata only). Records are never
    changed by the pages."""
    from convviz.runs import RunStore

    try:
        return RunStore(root).read_record(Path(path), batches=batches), None
    except (ValueError, OSError) as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever one file causes stays with that file (as list_runs does)
        return None, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"


def cached_read(store, batches: bool = False):
    """A ``read`` for :meth:`convviz.runs.RunStore.list_runs` that caches each regular file's record by its version;
    anything else (a folder, a link, a pipe) is read, that is refused, every time. ``batches``: records with their
    per-batch history (:meth:`convviz.runs.RunStore.read_record`)."""
    def read(path: Path):
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return store.read_record(path, batches=batches)
        record, reason = _record_of_version(str(store.root), str(path),
                                            (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino), batches)
        if reason is not None:
            raise ValueError(reason)
        return record

    return read


def _when(iso: str) -> str:
    """``2026-01-02T03:04:05+00:00`` -> ``2026-01-02 03:04 UTC``."""
    return f"{iso[:10]} {iso[11:16]} UTC" if len(iso) >= 16 and iso[10] == "T" else iso


def _planned(record) -> int | None:
    value = record.config.get("epochs", record.history.get("epochs"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _accuracy(record) -> str:
    return "—" if record.test_accuracy is None else f"{record.test_accuracy:.2%}"


def runs_table(records) -> pd.DataFrame:
    """One row per run: name, date, preset, dataset, epochs done / planned, test accuracy, status, run id."""
    return pd.DataFrame([{
        "Run": r.name, "Started": _when(r.created), "Preset": r.preset, "Dataset": _DATASETS.get(r.dataset, r.dataset),
        "Epochs (done / planned)": f"{r.epochs_done} / {_planned(r) or '?'}", "Test accuracy": _accuracy(r),
        "Status": tr.live_status(r.run_id, r.status), "Run id": r.run_id,
    } for r in records])


def _data_for(label: str) -> str | None:
    """Why a saved run's dataset cannot be trained on from here, or None when it can."""
    if label == tr.SAMPLE_LABEL:
        return None
    if label == tr.FULL_LABEL:
        data, why = tr.full_mnist()
        return None if data is not None else f"it trained on the full MNIST, which is not available here now: {why}"
    return f"it trained on {label!r}, which this app cannot load."


def _use_on_draw(record) -> None:
    problem = tr.use_on_draw(record.run_id)
    if problem:
        st.session_state["_runs_message"] = ("error", md(problem))
        return
    st.session_state["_runs_message"] = ("success", f"The Draw page now uses {md(record.name)} (saved as {record.run_id}).")


def _store_change(pending: str, change, errors: tuple, failed: str, done: str) -> None:
    """Close the confirmation ``pending``, run ``change()`` on the store, and keep how it went for the next run
    (``"<failed>: <reason>"`` for one of ``errors``, else ``done``)."""
    st.session_state.pop(pending, None)
    try:
        change()
    except errors as exc:
        st.session_state["_runs_message"] = ("error", f"{failed}: {md(exc)}")
        return
    st.session_state["_runs_message"] = ("success", done)


def _delete(run_id: str) -> None:
    _store_change(_PENDING_DELETE, lambda: tr.get_store().delete(run_id), (ValueError, FileNotFoundError, OSError),
                  f"Could not delete run {run_id}", f"Deleted run {run_id}.")


def _discard(name: str) -> None:
    _store_change(_PENDING_DISCARD, lambda: tr.get_store().discard(name), (ValueError, OSError),
                  f"Could not delete the file {md(name)}", f"Deleted the file {md(name)}.")


def skipped_file(item) -> None:
    """A warning for one file of the runs folder that is not a readable run, and a way to delete it.

    Args:
        item: a :class:`convviz.runs.SkippedFile`.
    """
    text, button = st.columns([6, 1], vertical_alignment="center")
    text.warning(f"A file in the runs folder was skipped, {md(item.name)}: {md(item.reason.rstrip('.'))}. It was left as it is; "
                 "your other runs are listed as usual.")
    digest = hashlib.sha1(item.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    pending = item.deletable and st.session_state.get(_PENDING_DISCARD) == item.name
    button.button("Delete…", key=f"runs_discard_{digest}", disabled=pending or not item.deletable,
                  on_click=st.session_state.__setitem__, args=(_PENDING_DISCARD, item.name),
                  help=f"Delete the file {md(item.name)} (asks for confirmation first)." if item.deletable else
                  "ConvViz never deletes a folder: move or remove it yourself if it is yours.")
    if pending:
        yes, no, _ = st.columns([3, 1, 2])
        yes.button(f"Yes, delete {md(item.name)}", key="runs_discard_yes", type="primary", on_click=_discard,
                   args=(item.name,))
        no.button("Cancel", key="runs_discard_no", on_click=st.session_state.pop, args=(_PENDING_DISCARD, None))


MAX_SKIPPED_SHOWN = 10
"""Skipped files of the runs folder that get a warning and a Delete button each; the others share one warning
and one button (3,000 warnings made every run of the Train page take 13 s)."""


def _discard_many(names: list[str]) -> None:
    """Delete the skipped files ``names`` (files only: :meth:`convviz.runs.RunStore.discard` refuses the rest)."""
    st.session_state.pop(_PENDING_DISCARD_ALL, None)
    store, failed = tr.get_store(), []
    for name in names:
        try:
            store.discard(name)
        except FileNotFoundError:
            continue  # already gone
        except (ValueError, OSError) as exc:
            failed.append(f"{md(name)} ({md(exc)})")
    if failed:
        st.session_state["_runs_message"] = ("error", f"Deleted {len(names) - len(failed):,} of the {len(names):,} "
                                                      f"files; these could not be deleted: {'; '.join(failed[:5])}")
    else:
        st.session_state["_runs_message"] = ("success", f"Deleted {len(names):,} skipped files.")


def skipped_files(items: list) -> None:
    """The runs folder's skipped files: the first :data:`MAX_SKIPPED_SHOWN` each with its warning
    (:func:`skipped_file`), the others in one warning with one button that deletes them all (after a confirmation).

    Args:
        items: :class:`convviz.runs.SkippedFile` items, as :meth:`convviz.runs.RunStore.list_runs` gives them.
    """
    for item in items[:MAX_SKIPPED_SHOWN]:
        skipped_file(item)
    rest = items[MAX_SKIPPED_SHOWN:]
    if not rest:
        return
    names = [item.name for item in rest if item.deletable]
    examples = ", ".join(md(item.name) for item in rest[:3])
    text, button = st.columns([6, 1], vertical_alignment="center")
    text.warning(f"{len(rest):,} more files in the runs folder were skipped (for example {examples}): each was "
                 "unreadable, or not opened because the folder holds too many files. They were left as they are; the "
                 "runs that could be read are listed below.")
    pending = st.session_state.get(_PENDING_DISCARD_ALL) == len(names)
    button.button("Delete them…", key="runs_discard_all", disabled=pending or not names,
                  on_click=st.session_state.__setitem__, args=(_PENDING_DISCARD_ALL, len(names)),
                  help=f"Delete these {len(names):,} files (asks for confirmation first; folders are left).")
    if pending:
        yes, no, _ = st.columns([3, 1, 2])
        yes.button(f"Yes, delete these {len(names):,} files", key="runs_discard_all_yes", type="primary",
                   on_click=_discard_many, args=(names,))
        no.button("Cancel", key="runs_discard_all_no", on_click=st.session_state.pop,
                  args=(_PENDING_DISCARD_ALL, None))


def _actions(record, busy: bool) -> None:
    live = tr.is_active(record.run_id)
    planned = _planned(record) or record.epochs_done + 1
    resume, draw, delete = st.columns(3, vertical_alignment="bottom")
    with resume:
        top = max(50, record.epochs_done + 1)  # a saved run may have planned more (check_settings allows 10,000)
        epochs = number_input(st, "Train up to epoch", min_value=record.epochs_done + 1, max_value=top,
                              value=min(max(planned, record.epochs_done + 1), top), key=f"runs_epochs_{record.run_id}",
                              disabled=live,
                              help="Continue from the last saved epoch, with the same dataset, batch size, "
                                   "learning rate and seed.")
        if st.button("Resume training", key="runs_resume", disabled=live or busy,
                     help="Stop this session's run first." if busy else None):
            why = _data_for(record.dataset)
            problem = f"Cannot resume run {record.run_id}: {why}" if why else tr.resume_run(record.run_id, int(epochs))
            if problem:
                st.error(md(problem))
            else:
                st.rerun()
    draw.button("Use on the Draw page", key="runs_use_on_draw", on_click=_use_on_draw, args=(record,),
                help="Loads this run's saved weights for the Draw page (this browser session only).")
    pending = st.session_state.get(_PENDING_DELETE) == record.run_id
    delete.button("Delete…", key="runs_delete", disabled=live or pending,
                  on_click=st.session_state.__setitem__, args=(_PENDING_DELETE, record.run_id),
                  help="Stop it first." if live else "Asks for confirmation before deleting the file.")
    if pending:
        st.warning(f"Delete run {record.run_id} and its saved weights? This cannot be undone.")
        yes, no, _ = st.columns([3, 1, 2])
        yes.button(f"Yes, delete run {record.run_id}", key="runs_delete_yes", type="primary",
                   on_click=_delete, args=(record.run_id,))
        no.button("Cancel", key="runs_delete_no", on_click=st.session_state.pop, args=(_PENDING_DELETE, None))


def past_runs(busy: bool) -> None:
    """The "Saved runs" section: the list, then the chosen run's charts and actions.

    Args:
        busy: whether this session's own run is training (no resume meanwhile).
    """
    store = tr.get_store()
    tr.keep_learner_in_address()
    st.subheader("Saved runs")
    st.caption(f"Every run is saved in this server's runs folder after each epoch and when it stops, so a closed tab, "
               "a restart or a crash loses at most the epoch in progress. These are your runs only: they are "
               f"kept under your learner key `{store.root.name}`, which is in this page's address "
               f"(`?{tr.LEARNER_PARAM}={store.root.name}`): bookmark it to find them again.")
    kind, text = st.session_state.pop("_runs_message", (None, None))
    if kind:
        (st.success if kind == "success" else st.error)(text)  # built above with md()
    try:
        records, skipped = store.list_runs(read=cached_read(store))
    except OSError as exc:
        st.error(f"The runs folder {md(repr(str(store.root)))} cannot be read ({md(exc)}); check its permissions.")
        return
    skipped_files(skipped)
    if not records:
        st.info("No saved runs yet: the runs you start above appear here.")
        return
    st.dataframe(runs_table(records), hide_index=True, width="stretch")
    by_id = {r.run_id: r for r in records}
    chosen = st.selectbox("Show a saved run", list(by_id), key="runs_choice",
                          format_func=lambda i: f"{printable(by_id[i].name)} · {_when(by_id[i].created)} · {by_id[i].preset} · "
                                                f"{_accuracy(by_id[i])} · {i}")
    try:  # the list's records have no per-batch values: the chosen run's charts need them
        record = cached_read(store, batches=True)(by_id[chosen].path)
    except (ValueError, OSError) as exc:
        st.warning(f"{md(by_id[chosen].name)} cannot be shown: {md(exc)}")
        return
    status = tr.live_status(record.run_id, record.status)
    st.caption(f"{md(record.name)}, saved as {record.run_id}: {tr.describe_settings(dict(record.config, preset=record.preset))}, on the "
               f"{md(_DATASETS.get(record.dataset, record.dataset))}. Weights saved {tr.weights_when(record.history)}, last at "
               f"{_when(record.updated)}; status **{status}**"
               + (" (the server stopped while it trained: resume it from its last saved epoch)."
                  if status == "interrupted" else "."))
    snap = dict(record.history, epochs=_planned(record) or record.history.get("epochs") or 1)
    left, right = st.columns(2)
    left.plotly_chart(ft.metric_figure(snap, "loss", smoothing=0.8), key="runs_chart_loss")
    right.plotly_chart(ft.metric_figure(snap, "accuracy", smoothing=0.8), key="runs_chart_accuracy")
    _actions(record, busy)
    export_ui.run_downloads(record)
