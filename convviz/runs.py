"""Training runs that survive a crash: one checkpoint file per run under a runs folder.

Each run is one ``.npz`` written by :meth:`convviz.model.ScratchCNN.save`
(weights, spec, and the run's settings and history as JSON metadata), replaced
atomically at the end of every epoch and when the run stops. A crash in the
middle of an epoch therefore leaves the file of the last completed epoch; a
half-written temporary file is never listed as a run (temporary files start
with ``.`` and end in ``.tmp``). A corrupt or foreign file in the folder is
skipped with a warning.

The folder is ``$CONVVIZ_RUNS_DIR`` when set, else ``~/.convviz/runs``.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from convviz.npzfile import read_npz

__all__ = ["RUNS_DIR_ENV", "RunRecord", "RunStore", "default_runs_dir"]

RUNS_DIR_ENV = "CONVVIZ_RUNS_DIR"
_RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[a-z0-9_]{1,16}-[0-9a-f]{6}$")


def default_runs_dir() -> Path:
    """``$CONVVIZ_RUNS_DIR`` if set (and non-empty), else ``~/.convviz/runs``."""
    value = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".convviz" / "runs"


@dataclass(frozen=True)
class RunRecord:
    """What the runs list shows of one run (read from its checkpoint's metadata).

    Attributes:
        run_id: ``YYYYMMDD-HHMMSS-<preset>-<6 hex>`` (UTC start time), also the file stem.
        path: the checkpoint file.
        created: start time, ISO 8601 UTC.
        updated: time of the last checkpoint, ISO 8601 UTC.
        preset: the model preset name.
        dataset: which data it trained on (a label).
        config: ``{"epochs", "batch_size", "learning_rate", "seed"}``.
        status: as saved: ``running`` (checkpoint of a finished epoch while it ran),
            ``stopped``, ``finished``; a ``running`` run with no live job was interrupted.
        epochs_done: epochs completed and saved.
        test_accuracy: the run's test accuracy (fraction): of its final weights
            (``final_test_accuracy``, saved when it stopped or finished), else after the last
            completed epoch, else None. The one accuracy every page shows for this run.
        history: the saved history (see :meth:`convviz.train.History.snapshot`).
        name: the run's name (``"Run 3"``: the learner's third run), or the run id for a file without one.
        number: the ``3`` of ``"Run 3"``, or None.
    """

    run_id: str
    path: Path
    created: str
    updated: str
    preset: str
    dataset: str
    config: dict
    status: str
    epochs_done: int
    test_accuracy: float | None
    history: dict
    name: str = ""
    number: int | None = None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """The runs folder: create run ids, write checkpoints, list, load and delete runs.

    Args:
        root: the folder (created when first written); ``None`` for :func:`default_runs_dir`.
    """

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def new_run_id(self, preset: str) -> str:
        """A fresh, collision-free run id for ``preset`` (UTC time plus 24 random bits).

        Raises:
            ValueError: a preset name that is not lowercase letters, digits or ``_``.
        """
        if not isinstance(preset, str) or not re.fullmatch(r"[a-z0-9_]{1,16}", preset):
            raise ValueError(f"preset must be 1-16 lowercase letters, digits or _, got preset={preset!r}")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        while True:
            run_id = f"{stamp}-{preset}-{secrets.token_hex(3)}"
            if not self.path(run_id).exists():
                return run_id

    def path(self, run_id: str) -> Path:
        """The checkpoint file of ``run_id``.

        Raises:
            ValueError: a malformed run id (this also keeps paths inside the folder).
        """
        if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / f"{run_id}.npz"

    def save(self, run_id: str, model, *, preset: str, dataset: str, config: dict, history: dict,
             created: str | None = None, name: str | None = None) -> Path:
        """Write (or atomically replace) the checkpoint of ``run_id``.

        Args:
            run_id: from :meth:`new_run_id`.
            model: the :class:`convviz.model.ScratchCNN` (weights as they are now).
            preset, dataset: labels shown in the runs list.
            config: the run's settings (JSON-serialisable dict).
            history: a history snapshot (JSON-serialisable dict).
            created: the run's start time (kept from the first checkpoint when None).
            name: the run's name (``"Run 3"``); the run id when None.

        Returns:
            The checkpoint path.

        Raises:
            ValueError: a malformed run id, or a history with NaN/infinity (not JSON).
            OSError: the folder cannot be written.
        """
        path = self.path(run_id)
        if created is None:
            created = _utc_now()
        metadata = {
            "kind": "convviz-run", "run_id": run_id, "created": created, "updated": _utc_now(),
            "preset": preset, "dataset": dataset, "config": dict(config),
            "history": {k: v for k, v in history.items()},
        }
        if name is not None:
            metadata["name"] = str(name)
        self.root.mkdir(parents=True, exist_ok=True)
        return model.save(path, metadata=metadata)

    def list_runs(self) -> tuple[list[RunRecord], list[str]]:
        """Every readable run, newest first, and a warning for each file skipped.

        Only ``*.npz`` files whose names are run ids are considered; temporary
        files (``.name.tmp``) are ignored silently. Reading is metadata only;
        :meth:`load` checks the weights.

        Returns:
            ``(records, warnings)``.
        """
        records, warnings = [], []
        if not self.root.is_dir():
            return records, warnings
        for path in sorted(self.root.glob("*.npz")):
            if path.name.startswith("."):
                continue
            try:
                records.append(self._record(path))
            except (ValueError, FileNotFoundError) as exc:  # FileNotFoundError: deleted meanwhile
                warnings.append(f"skipped {path.name}: {exc}")
        records.sort(key=lambda r: r.run_id, reverse=True)
        return records, warnings

    def _record(self, path: Path) -> RunRecord:
        if not _RUN_ID_RE.match(path.stem):
            raise ValueError("not a ConvViz run file name")
        arrays = read_npz(path, "run", keys=["metadata"])
        if "metadata" not in arrays:
            raise ValueError("no run metadata (a plain model file?)")
        text = arrays["metadata"]
        if text.shape != () or text.dtype.kind != "U":
            raise ValueError("metadata is not text")
        try:
            meta = json.loads(str(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata is not JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "convviz-run" or meta.get("run_id") != path.stem:
            raise ValueError("metadata is not a ConvViz run's")
        history = meta.get("history") or {}
        accuracies = history.get("epoch_test_accuracy") or []
        final = history.get("final_test_accuracy")
        name = str(meta.get("name") or path.stem)
        number = re.fullmatch(r"Run (\d+)", name)
        try:
            return RunRecord(
                run_id=path.stem, path=path, created=str(meta["created"]), updated=str(meta["updated"]),
                preset=str(meta["preset"]), dataset=str(meta["dataset"]), config=dict(meta["config"]),
                status=str(history.get("status", "unknown")), epochs_done=int(history.get("epoch", 0)),
                test_accuracy=(float(final) if final is not None else float(accuracies[-1]) if accuracies else None),
                history=history, name=name, number=int(number.group(1)) if number else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"metadata is incomplete ({exc})") from None

    def record(self, run_id: str) -> RunRecord:
        """The run's record (metadata only, weights not read).

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed id or a corrupt checkpoint, naming the file.
        """
        path = self.path(run_id)
        if not path.is_file():
            raise FileNotFoundError(f"no run {run_id!r} in {str(self.root)!r}")
        try:
            return self._record(path)
        except ValueError as exc:
            raise ValueError(f"run file {str(path)!r} cannot be used: {exc}") from None

    def load(self, run_id: str):
        """The run's model (weights checked) and its record.

        Returns:
            ``(model, RunRecord)``.

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed id or a corrupt checkpoint, naming the file.
        """
        from convviz.model import load_model

        record = self.record(run_id)
        return load_model(self.path(run_id)), record

    def delete(self, run_id: str) -> None:
        """Remove the run's checkpoint file and its job files (``<run id>.job.json``, ``.progress.json``,
        ``.stop``, ``.*.claim``; see :mod:`convviz.jobs`); nothing else in the folder is touched.

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed run id.
        """
        path = self.path(run_id)
        if not path.is_file():
            raise FileNotFoundError(f"no run {run_id!r} in {str(self.root)!r}")
        path.unlink()
        for extra in [path.with_suffix(s) for s in (".job.json", ".progress.json", ".stop")] + \
                list(self.root.glob(f"{run_id}.*.claim")):
            extra.unlink(missing_ok=True)
