"""Training runs that survive a crash: one checkpoint file per run under a runs folder.

Each run is one ``.npz`` written by :meth:`convviz.model.ScratchCNN.save`
(weights, spec, and the run's settings and history as JSON metadata), replaced
atomically at the end of every epoch and when the run stops. A crash in the
middle of an epoch therefore leaves the file of the last completed epoch; a
half-written temporary file is never listed as a run (temporary files start
with ``.`` and end in ``.tmp``). A corrupt or foreign file in the folder is
skipped with a warning (:class:`SkippedFile`), whatever went wrong reading it,
and can be deleted (:meth:`RunStore.discard`) while the other runs are listed.

Everything read back from a run's metadata is validated like user input
(:func:`check_settings`, :func:`check_history`, owned by :mod:`convviz.run_metadata` and importable from here):
types, ranges, finite numbers, list lengths that agree; a file that fails is skipped, never shown half-read.

A run's per-batch history (two numbers a batch, up to :data:`MAX_HISTORY_BATCHES` batches) is kept as two
float64 members (:data:`HISTORY_MEMBERS`) beside a small metadata JSON of at most :data:`MAX_RUN_METADATA_CHARS`
characters: listing runs reads only the metadata (checked from its ``.npy`` header before it is read), and the
per-batch values are read, with numpy, when one run is opened (:meth:`RunStore.record`). Files written before this
(the whole history in the metadata JSON) stay readable.

A checkpoint written for a training job (``while_exists``: its job record) never brings back a run the learner
deleted, whatever the order of the two (:class:`RunDeletedError`). Temporary files a killed process left behind
are removed when the folder is listed (:meth:`RunStore.remove_stale_temporaries`).

The folder is ``$CONVVIZ_RUNS_DIR`` when set, else ``~/.convviz/runs``.
Nothing here imports Streamlit.

Size: one class, :class:`RunStore`, whose reads, writes and deletions of one folder keep one set of promises
(nothing followed out of the folder, no folder deleted, a deleted run stays deleted); split, each half would
have to re-check the other's.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from convviz.npzfile import (MAX_METADATA_CHARS, MODEL_LIMITS, entry_kind, member_names, parse_json, read_npz,
                             text_member_pieces)
from convviz.run_metadata import (HISTORY_STATUSES, MAX_CLOCK_SKEW_S, MAX_EPOCHS, MAX_HISTORY_BATCHES,
                                  MAX_METADATA_VALUES, as_float, check_history, check_settings, check_text,
                                  check_time, check_timestamp_text, value_problem)

__all__ = ["HISTORY_MEMBERS", "HISTORY_STATUSES", "MAX_CLOCK_SKEW_S", "MAX_EPOCHS",
           "MAX_HISTORY_BATCHES", "MAX_LISTED_FILES", "MAX_METADATA_VALUES", "MAX_RUN_METADATA_CHARS", "RUNS_DIR_ENV", "RunDeletedError",
           "RunRecord", "RunStore", "STALE_TMP_AGE_S", "SkippedFile", "TMP_NAME_RE", "check_history", "check_settings",
           "check_time", "check_timestamp_text", "default_runs_dir", "remove_entry"]

RUNS_DIR_ENV = "CONVVIZ_RUNS_DIR"
_RUN_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9_]{1,16}-[0-9a-f]{6}")  # [0-9], not \d: no other scripts' digits

HISTORY_MEMBERS = {"batch_loss": "history_batch_loss", "batch_accuracy": "history_batch_accuracy"}
"""The history's per-batch lists and the checkpoint members (1-D float64) that hold them."""
_BATCHES_IN_MEMBERS = "members"  # metadata["batch_history"] of a file whose per-batch values are members

MAX_RUN_METADATA_CHARS = 600_000
"""Longest metadata JSON of a run whose per-batch history is in :data:`HISTORY_MEMBERS` (every file written now),
characters. Derived from the most a real run writes there, with ``json.dumps``' defaults: two test values per epoch
for at most :data:`MAX_EPOCHS` epochs, each at most 24 characters and its ``", "`` (2 x 10,000 x 26 = 520,000); an
error message of at most 4,000 characters, 12 each when escaped (48,000); the name (64), dataset (200) and
timestamps, the settings and the keys (under 10,000): 578,000 at most (``tests/test_runs_store.py`` builds that
run). The runs list reads a metadata member piece by piece and refuses it once it has read more."""

MAX_LISTED_FILES = 1000
"""Most files named as runs (``<run id>.npz``) that one listing of a learner's folder opens: the newest ids (a run id
starts with its time) are read, each older one is a :class:`SkippedFile` that was not opened (files with other names
are never opened). A learner who trains a run a minute for a 2-hour lesson has 120."""

STALE_TMP_AGE_S = 3600.0
"""A temporary file (:data:`TMP_NAME_RE`) unchanged for this many seconds was left by a process that died while
writing it (a live writer writes a checkpoint in seconds, and its writes move the file's modification time)."""
TMP_NAME_RE = re.compile(r"\.[^/\x00]+\.[a-z0-9_]{8}\.tmp")
"""Names of the temporary files ConvViz's atomic writes use: ``.<name>.<8 random letters or digits>.tmp``
(:func:`convviz.npzfile.write_npz`, :func:`convviz.job_files.write_json`)."""


class RunDeletedError(FileNotFoundError):
    """The run was deleted (its job record is gone) before or while a checkpoint was written for it; nothing of
    that checkpoint is left (:meth:`RunStore.save` with ``while_exists``)."""


def default_runs_dir() -> Path:
    """``$CONVVIZ_RUNS_DIR`` if set (and non-empty), else ``~/.convviz/runs``."""
    value = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".convviz" / "runs"


@dataclass(frozen=True)
class SkippedFile:
    """A file of the runs folder that :meth:`RunStore.list_runs` could not list as a run.

    Attributes:
        name: the file's name in the folder.
        reason: why, e.g. ``"not a .npz archive (truncated, or another kind of file)"``.
        deletable: whether :meth:`RunStore.discard` may remove it (False for a folder: ConvViz never
            deletes a folder it did not create).
    """

    name: str
    reason: str
    deletable: bool = True

    def __str__(self) -> str:
        return f"skipped {self.name}: {self.reason}"


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


_FOLDER_NOTE = "ConvViz never deletes a folder: move or remove it yourself if it is yours"


def remove_entry(path) -> bool:
    """Remove one entry of the runs folder without following it: a file, a link (never what it leads to), a pipe.

    A folder is left as it is (ConvViz never deletes a folder it did not create, nor what is in it).

    Args:
        path: the entry.

    Returns:
        True when something was removed; False when there was nothing, or a folder (left in place).

    Raises:
        OSError: the entry could not be removed (permissions).
    """
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


_BATCH_LIST_KEYS = {f'"{key}": [': key for key in HISTORY_MEMBERS}  # as json.dumps wrote them
_MAX_NUMBER_CHARS = 10_000  # one number of a per-batch list, as text: more is no number a run wrote


def _check_batch_text(text: str, key: str) -> int:
    """How many numbers the comma-separated ``text`` (part of the per-batch list ``key``) holds, each checked as
    :func:`check_history` checks it (with its messages), with numpy while they are plain."""
    if not text.strip():
        return 0
    high = 1.0 if key == "batch_accuracy" else math.inf
    try:
        numbers = np.fromstring(text, dtype=np.float64, sep=",")
        plain = numbers.size == text.count(",") + 1 and \
            bool(np.all(np.isfinite(numbers) & (numbers >= 0) & (numbers <= high)))
    except ValueError:
        plain = False
    if plain:
        return int(numbers.size)
    where, expected = "metadata['history']", f"a number from 0 to {high:g}"
    for token in text.split(","):  # the first value that is not such a number, named as check_history names it
        try:
            value = json.loads(token)
        except ValueError:
            raise value_problem(where, key, expected, token.strip()) from None
        if not 0 <= as_float(value, where, key, expected) <= high:
            raise value_problem(where, key, expected, value)
    return text.count(",") + 1


def _list_metadata(path: Path, skip_batch_lists: bool) -> str | None:
    """A run file's metadata text as the runs list reads it: piece by piece, at most :data:`MAX_RUN_METADATA_CHARS`
    characters held. ``skip_batch_lists`` (a file written before :data:`HISTORY_MEMBERS`): its per-batch lists'
    values are checked as they stream by (as :func:`check_history` checks them) but not kept
    (``"batch_loss": [...]`` becomes ``"batch_loss": []``) nor counted in that limit.

    One algorithm: a scan over the streamed text that copies everything but the per-batch lists; what is copied is
    held to :data:`MAX_RUN_METADATA_CHARS`, so metadata padded with spaces, keys or long strings is refused after
    reading that much (the member's declared length is checked first, within :data:`convviz.npzfile.MODEL_LIMITS`);
    all the text's commas at most :data:`MAX_METADATA_VALUES`, each list at most :data:`MAX_HISTORY_BATCHES`, as
    many losses as accuracies.

    Returns:
        The text (None: no metadata member).

    Raises:
        ValueError: the copied text over :data:`MAX_RUN_METADATA_CHARS`, a per-batch value that is not a number in
            its range, a list not closed, more values than the limits; or as :func:`convviz.npzfile.read_npz`.
    """
    kept, kept_chars, commas, counts, carry, found = [], 0, 0, dict.fromkeys(HISTORY_MEMBERS, 0), "", False
    inside, partial = None, ""  # the per-batch list being skipped; its last value, cut by the end of a piece
    keys = _BATCH_LIST_KEYS if skip_batch_lists else {}
    longest = max((len(key) for key in keys), default=0)
    for piece in text_member_pieces(path, "run", "metadata", MODEL_LIMITS):
        found, buf, pos, carry = True, carry + piece, 0, ""
        while pos < len(buf):
            if inside:
                end = buf.find("]", pos)
                segment = partial + (buf[pos:] if end < 0 else buf[pos:end])
                cut = len(segment) if end >= 0 else segment.rfind(",") + 1
                partial = segment[cut:]
                if len(partial) > _MAX_NUMBER_CHARS:
                    raise value_problem("metadata['history']", inside, "a number", f"{partial[:40]}…")
                commas += segment.count(",", 0, cut)
                counts[inside] += _check_batch_text(segment[:cut].rstrip(","), inside) if end >= 0 else \
                    _check_batch_text(segment[:cut - 1], inside) if cut else 0
                if end < 0:
                    break
                inside, pos = None, end
                continue
            hits = [(at, name) for key, name in keys.items() if (at := buf.find(key, pos)) >= 0]
            if hits:
                at, name = min(hits)
                stop = buf.index("[", at) + 1
                kept.append(buf[pos:stop])
                kept_chars, pos, inside = kept_chars + stop - pos, stop, name
            else:
                cut = max(pos, len(buf) - longest)  # a key may start in this tail and end in the next piece
                kept.append(buf[pos:cut])
                kept_chars, carry = kept_chars + cut - pos, buf[cut:]
                break
            if kept_chars > MAX_RUN_METADATA_CHARS:
                break
        if kept_chars > MAX_RUN_METADATA_CHARS:
            raise ValueError(f"its metadata has more than {MAX_RUN_METADATA_CHARS:,} characters"
                             + (" besides its per-batch values" if skip_batch_lists else "")
                             + f", over the limit of MAX_RUN_METADATA_CHARS={MAX_RUN_METADATA_CHARS:,} for a run's "
                             "metadata")
    if not found:
        return None
    if inside:
        raise ValueError(f"its metadata's list {inside!r} is not closed (not valid JSON)")
    commas += sum(part.count(",") for part in kept) + carry.count(",")
    if commas > MAX_METADATA_VALUES:
        raise ValueError(f"its metadata holds up to {commas:,} values (counted as commas), over the limit of "
                         f"{MAX_METADATA_VALUES:,}")
    for name, count in counts.items():
        if count > MAX_HISTORY_BATCHES:
            raise ValueError(f"metadata['history'][{name!r}] has {count:,} values, over the limit of "
                             f"MAX_HISTORY_BATCHES={MAX_HISTORY_BATCHES:,}")
    if counts["batch_loss"] != counts["batch_accuracy"]:
        raise ValueError(f"metadata['history'] has {counts['batch_loss']} batch losses but "
                         f"{counts['batch_accuracy']} batch accuracies")
    return "".join(kept) + carry


def _batch_values(arrays: dict) -> dict:
    """The per-batch lists from a checkpoint's :data:`HISTORY_MEMBERS`, checked with numpy (no Python loop over
    the values): 1-D floats, at most :data:`MAX_HISTORY_BATCHES`, finite, losses >= 0, accuracies in [0, 1], as
    many of each."""
    out = {}
    for key, member in HISTORY_MEMBERS.items():
        values = arrays.get(member)
        if values is None:
            raise ValueError(f"the member {member!r} (its per-batch {key}) is missing")
        if values.ndim != 1 or values.dtype.kind != "f":
            raise ValueError(f"the member {member!r} must be a 1-D array of floats, got {values.dtype} "
                             f"{values.shape}")
        if values.size > MAX_HISTORY_BATCHES:
            raise ValueError(f"the member {member!r} has {values.size:,} values, over the limit of "
                             f"MAX_HISTORY_BATCHES={MAX_HISTORY_BATCHES:,}")
        high = 1.0 if key == "batch_accuracy" else np.inf
        bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= high))
        if bad.any():
            index = int(np.argmax(bad))
            raise ValueError(f"the member {member!r} must hold finite numbers from 0 to {high:g}, got "
                             f"{values[index]!r} at batch {index}")
        out[key] = values.astype(np.float64).tolist()
    if len(out["batch_loss"]) != len(out["batch_accuracy"]):
        raise ValueError(f"its history has {len(out['batch_loss'])} batch losses but {len(out['batch_accuracy'])} "
                         "batch accuracies")
    return out


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
            if not os.path.lexists(self.path(run_id)):  # a link to nothing is taken too
                return run_id

    def entry_problem(self, path: Path) -> str | None:
        """Why the entry at ``path`` (in this folder) is not a file to read as a run, or None.

        A run file must be a regular file, or a link to a regular file inside this folder (a link that
        leads out of the folder is never followed).

        Returns:
            None (a file, or nothing at all: the caller says "no such run"), or the reason, e.g.
            ``"it is a folder, not a run file (ConvViz never deletes a folder: …)"``.
        """
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            target = os.path.realpath(path)
            root = os.path.realpath(self.root)
            if os.path.commonpath([root, target]) != root:
                return f"it is a link to {target!r}, outside the runs folder, which is never followed"
            try:
                mode = os.stat(path).st_mode
            except OSError:
                return f"it is a link to {target!r}, which does not exist"
        if stat.S_ISDIR(mode):
            return f"it is a folder, not a run file ({_FOLDER_NOTE})"
        if not stat.S_ISREG(mode):
            return f"it is a {entry_kind(mode)}, not a run file; only files that ConvViz wrote are read"
        return None

    def path(self, run_id: str) -> Path:
        """The checkpoint file of ``run_id``.

        Raises:
            ValueError: a malformed run id (this also keeps paths inside the folder).
            NotADirectoryError: the folder is a link (:meth:`check_root`).
        """
        if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
            raise ValueError(f"not a run id: {str(run_id)[:80]!r}")
        self.check_root()
        return self.root / f"{run_id}.npz"

    def check_root(self) -> None:
        """Refuse a runs folder that is itself a link (``<runs root>/learner0victim -> /tmp/outside``).

        A learner's folder is a real folder: every check that keeps reads, writes and deletions inside it compares
        against its real path, so a linked folder would move "inside" to wherever it leads (a file outside the
        runs root was deleted). The configured runs root itself may be a link (an administrator's choice); only
        this folder, the last part, is checked. Called by :meth:`path` (so by every read, write and delete of a
        run), :meth:`list_runs` and :meth:`discard`.

        Raises:
            NotADirectoryError: (an ``OSError``) the folder is a link, naming it and where it leads; nothing is
                listed, read, written or deleted through it.
        """
        if os.path.islink(self.root):
            raise NotADirectoryError(f"the runs folder {str(self.root)!r} is a link to "
                                     f"{os.path.realpath(self.root)!r}; ConvViz never follows a linked runs folder "
                                     "(nothing in it is listed or deleted): replace the link by a folder")

    def atlas_path(self, run_id: str) -> Path:
        """Where the Filter atlas page keeps the run's atlas (:mod:`convviz.atlas`): ``.<run id>.atlas.npz``
        beside its checkpoint (hidden, so never listed as a run; deleted with the run).

        Raises:
            ValueError: a malformed run id.
        """
        return self.path(run_id).with_name(f".{run_id}.atlas.npz")

    def save(self, run_id: str, model, *, preset: str, dataset: str, config: dict, history: dict,
             created: str | None = None, name: str | None = None, while_exists=None) -> Path:
        """Write (or atomically replace) the checkpoint of ``run_id``.

        Args:
            run_id: from :meth:`new_run_id`.
            model: the :class:`convviz.model.ScratchCNN` (weights as they are now).
            preset, dataset: labels shown in the runs list.
            config: the run's settings (JSON-serialisable dict).
            history: a history snapshot (JSON-serialisable dict); its per-batch lists are written as the
                :data:`HISTORY_MEMBERS` arrays, the rest as metadata.
            created: the run's start time (kept from the first checkpoint when None).
            name: the run's name (``"Run 3"``); the run id when None.
            while_exists: a file (the run's job record, :meth:`convviz.job_files.JobFiles.job_path`) whose absence
                means the learner deleted the run: checked before the write and again after it, and :meth:`delete`
                removes it first, so whichever order a save and a delete run in, a deleted run stays deleted (what
                this save put at the run's path is removed). None: no such check.

        Returns:
            The checkpoint path.

        A link at the run's path is replaced by the file (what it leads to is never written).

        Raises:
            ValueError: a malformed run id, a folder at the run's path, or a history with NaN/infinity (not JSON).
            RunDeletedError: (a ``FileNotFoundError``) ``while_exists`` is gone: the run was deleted; nothing of
                this checkpoint is left.
            OSError: the folder cannot be written.
        """
        path = self.path(run_id)
        try:
            folder = stat.S_ISDIR(os.lstat(path).st_mode)
        except FileNotFoundError:  # also when a delete removes it meanwhile
            folder = False
        if folder:
            raise ValueError(f"cannot save run {run_id}: {str(path)!r} is a folder ({_FOLDER_NOTE})")
        if created is None:
            created = _utc_now()
        metadata = {
            "kind": "convviz-run", "run_id": run_id, "created": created, "updated": _utc_now(),
            "preset": preset, "dataset": dataset, "config": dict(config),
            "history": {k: v for k, v in history.items() if k not in HISTORY_MEMBERS},
            "batch_history": _BATCHES_IN_MEMBERS,
        }
        batches = {member: np.asarray(history.get(key, []), dtype=np.float64).reshape(-1)
                   for key, member in HISTORY_MEMBERS.items()}
        if name is not None:
            metadata["name"] = str(name)
        self._check_not_deleted(run_id, while_exists)
        self.root.mkdir(parents=True, exist_ok=True)
        written = model.save(path, metadata=metadata, history=batches)
        try:
            self._check_not_deleted(run_id, while_exists)
        except RunDeletedError:
            remove_entry(path)  # the delete ran meanwhile: what this save put back goes too
            raise
        return written

    @staticmethod
    def _check_not_deleted(run_id: str, while_exists) -> None:
        if while_exists is not None and not os.path.lexists(while_exists):
            raise RunDeletedError(f"run {run_id} was deleted (its job record {Path(while_exists).name!r} is gone); "
                                  "its checkpoint was not written")

    def list_runs(self, read=None, batches: bool = True) -> tuple[list[RunRecord], list[SkippedFile]]:
        """Every readable run, newest first, and a :class:`SkippedFile` for each other ``.npz`` in the folder.

        Only ``*.npz`` files whose names are run ids can be runs; temporary files
        (``.name.tmp``) are ignored silently, and those a killed process left are removed
        (:meth:`remove_stale_temporaries`). A folder, pipe or link out of the folder with such a name is
        skipped with its reason (:meth:`entry_problem`) and never opened. At most :data:`MAX_LISTED_FILES` files
        are opened, the newest run ids; the older ones are skipped unopened. Each file's metadata is read piece by
        piece, at most :data:`MAX_RUN_METADATA_CHARS` held (a file written before :data:`HISTORY_MEMBERS` has its
        per-batch lists checked as they stream by); :meth:`load` checks the weights. Whatever goes
        wrong reading one file (a damaged archive, metadata nested too deep or of the wrong
        type, no memory for it) skips that file only.

        Args:
            read: ``callable(path) -> RunRecord`` used for each file instead of ``read_record(path, batches)``
                (the Train page passes one that caches the record per file version, without the per-batch
                values); it raises as :meth:`read_record` does.
            batches: the records' per-batch lists too (:meth:`read_record`); False for a list that does not show
                them (the Train page's table, the atlas page's choice): an older file's are then never held.

        Returns:
            ``(records, skipped)``.

        Raises:
            OSError: the folder itself cannot be read, is a file, or is a link (:meth:`check_root`).
        """
        records, skipped = [], []
        if not os.path.lexists(self.root):
            return records, skipped
        self.check_root()
        if not self.root.is_dir():
            raise NotADirectoryError(f"the runs folder {str(self.root)!r} is not a folder")
        self.remove_stale_temporaries()
        read = read or (lambda p: self.read_record(p, batches=batches))
        paths = [path for path in sorted(self.root.glob("*.npz")) if not path.name.startswith(".")]
        named = [path for path in paths if _RUN_ID_RE.fullmatch(path.stem)]  # only these are ever opened
        unread = set(named[:max(0, len(named) - MAX_LISTED_FILES)])  # the oldest ids, past what one listing opens
        for path in paths:
            if path in unread:
                skipped.append(SkippedFile(path.name, f"not opened: the folder holds {len(named):,} files named as "
                                           f"runs and at most MAX_LISTED_FILES={MAX_LISTED_FILES:,} (the newest) are "
                                           "read, so this one is not listed even if it is a run; delete the runs and "
                                           "files you no longer need",
                                           deletable=not os.path.isdir(path)))
                continue
            try:
                path.name.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8 in the name: no run id looks like that
                skipped.append(SkippedFile(path.name, "its name is not valid UTF-8 text, so it is not a run file "
                                           "ConvViz wrote", deletable=not os.path.isdir(path)))
                continue
            try:
                records.append(read(path))
            except (ValueError, OSError) as exc:
                if isinstance(exc, FileNotFoundError) and not os.path.lexists(path):
                    continue  # deleted meanwhile (another tab's Delete): nothing to warn about
                folder = os.path.isdir(path) and not os.path.islink(path)
                skipped.append(SkippedFile(path.name, str(exc), deletable=not folder))
            except Exception as exc:  # anything else one file can cause stays with that file
                skipped.append(SkippedFile(path.name, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"))
        records.sort(key=lambda r: r.run_id, reverse=True)
        return records, skipped

    def read_record(self, path: Path, batches: bool = True) -> RunRecord:
        """The record of the run file at ``path`` in this folder (metadata only), as :meth:`list_runs` reads it.

        Args:
            path: the file.
            batches: read the per-batch history too (:data:`HISTORY_MEMBERS`, checked with numpy); False (the
                runs list) reads the metadata member only, piece by piece, at most :data:`MAX_RUN_METADATA_CHARS`
                held, and gives empty per-batch lists (an older file's are skipped as they stream by).

        Raises:
            ValueError: not a run file name, no file (:meth:`entry_problem`), metadata over its limit or failing a
                check, or per-batch members that are missing or fail a check.
            OSError: the file cannot be read.
        """
        path = Path(path)
        if not _RUN_ID_RE.fullmatch(path.stem):
            raise ValueError("not a ConvViz run file name")
        problem = self.entry_problem(path)
        if problem:
            raise ValueError(problem)
        has_members = bool(set(HISTORY_MEMBERS.values()) & set(member_names(path, "run")))
        # streamed first, whatever is asked: metadata padded past MAX_RUN_METADATA_CHARS is refused cheaply
        text = _list_metadata(path, skip_batch_lists=not has_members)
        arrays, whole = {}, None
        if batches and has_members:
            arrays = read_npz(path, "run", keys=list(HISTORY_MEMBERS.values()), limits=MODEL_LIMITS)
        elif batches and text is not None:  # written before the members: its history is all in the metadata
            whole = read_npz(path, "run", keys=["metadata"], limits=MODEL_LIMITS).get("metadata")
        if text is None:
            raise ValueError("no run metadata (a plain model file?)")
        meta = parse_json(text, "its metadata", max_chars=MAX_METADATA_CHARS, max_values=MAX_METADATA_VALUES)
        if not isinstance(meta, dict) or meta.get("kind") != "convviz-run" or meta.get("run_id") != path.stem:
            raise ValueError("metadata is not a ConvViz run's")
        in_members = meta.get("batch_history") == _BATCHES_IN_MEMBERS
        missing = [key for key in ("created", "updated", "preset", "dataset", "config") if key not in meta]
        if missing:
            raise ValueError(f"metadata is incomplete (no {', '.join(missing)})")
        history = check_history(meta.get("history") or {}, "metadata['history']")
        if in_members and batches:
            history.update(_batch_values(arrays))
        elif whole is not None:
            saved = parse_json(whole, "its metadata", max_chars=MAX_METADATA_CHARS, max_values=MAX_METADATA_VALUES)
            saved = saved.get("history") if isinstance(saved, dict) else None
            for key in HISTORY_MEMBERS:  # a list skipped by _list_metadata was checked there as it streamed by
                if not history[key] and isinstance(saved, dict) and isinstance(saved.get(key), list):
                    history[key] = np.asarray(saved[key], dtype=np.float64).tolist()
        config = check_settings(meta["config"], "metadata['config']")
        accuracies = history["epoch_test_accuracy"]
        final = history.get("final_test_accuracy")
        name = check_text(meta.get("name") or path.stem, "metadata", "name", 64)
        number = re.fullmatch(r"Run ([0-9]{1,9})", name)
        if not (isinstance(meta["preset"], str) and re.fullmatch(r"[a-z0-9_]{1,16}", meta["preset"])):
            raise value_problem("metadata", "preset", "1-16 lowercase letters, digits or _", meta["preset"])
        return RunRecord(
            run_id=path.stem, path=path, created=check_timestamp_text(meta["created"], "metadata", "created"),
            updated=check_timestamp_text(meta["updated"], "metadata", "updated"), preset=meta["preset"],
            dataset=check_text(meta["dataset"], "metadata", "dataset", 200), config=config, status=history["status"],
            epochs_done=history["epoch"],
            test_accuracy=final if final is not None else accuracies[-1] if accuracies else None,
            history=history, name=name, number=int(number.group(1)) if number else None,
        )

    def record(self, run_id: str) -> RunRecord:
        """The run's record (metadata only, weights not read).

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed id, a corrupt checkpoint, metadata over a limit or failing
                :func:`check_settings` / :func:`check_history`, or no file at all (a folder, a pipe, a link
                out of the folder: :meth:`entry_problem`), naming the file.
        """
        path = self.path(run_id)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"no run {run_id!r} in {str(self.root)!r}")
        try:
            return self.read_record(path)
        except FileNotFoundError:
            raise
        except (ValueError, OSError) as exc:
            raise ValueError(f"run file {str(path)!r} cannot be used: {exc}") from None
        except Exception as exc:  # nothing one file can cause escapes as anything but a ValueError
            raise ValueError(f"run file {str(path)!r} cannot be used ({type(exc).__name__}: {str(exc)[:200]})") from None

    def load(self, run_id: str):
        """The run's model (weights checked) and its record.

        Returns:
            ``(model, RunRecord)``.

        The record and the weights are two reads of the file; a file whose metadata names another run by the
        second read (replaced in between) is refused.

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed id or a corrupt checkpoint, naming the file.
        """
        from convviz.model import load_checkpoint

        record = self.record(run_id)
        model, metadata = load_checkpoint(record.path)
        if metadata.get("run_id") != record.run_id:
            raise ValueError(f"run file {str(record.path)!r} was replaced while it was read (its metadata names run "
                             f"{str(metadata.get('run_id'))[:80]!r}): open the run again")
        return model, record

    def discard(self, name: str) -> None:
        """Delete a file that :meth:`list_runs` skipped, by its name in the folder (the Train page's "Delete…").

        A name that is a run id's file also loses the run's job files, as :meth:`delete`. A link is removed
        itself (never what it leads to); a folder is never removed.

        Args:
            name: a :attr:`SkippedFile.name`: a plain ``*.npz`` file name directly in the folder.

        Raises:
            ValueError: not such a name (a path, a hidden file, another suffix), or a folder.
            FileNotFoundError: no such file.
            NotADirectoryError: the runs folder is a link (:meth:`check_root`); nothing is deleted.
        """
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or not name.endswith(".npz") \
                or "\x00" in name or name in (".", ".."):
            raise ValueError(f"not a file name of the runs folder: {str(name)[:80]!r}")
        self.check_root()
        path = self.root / name
        if not os.path.lexists(path):
            raise FileNotFoundError(f"no file {name!r} in {str(self.root)!r}")
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise ValueError(f"{name!r} is a folder, not a file; it was not deleted ({_FOLDER_NOTE})")
        stem = name[: -len(".npz")]
        if _RUN_ID_RE.fullmatch(stem):
            self.delete(stem)
        else:
            remove_entry(path)

    def delete(self, run_id: str) -> None:
        """Remove the run's checkpoint file, its job files (``<run id>.job.json``, ``.progress.json``,
        ``.stop``, ``.*.claim``; see :mod:`convviz.jobs`) and its atlas (:meth:`atlas_path`); nothing else in
        the folder is touched. A link is removed itself, never what it leads to; a folder is never removed
        (:func:`remove_entry`). The job record goes first: a checkpoint being written meanwhile (:meth:`save` with
        ``while_exists``) then removes what it wrote, so the run stays deleted.

        Raises:
            FileNotFoundError: no such run.
            ValueError: a malformed run id, or a folder at the run's path (nothing is deleted).
        """
        path = self.path(run_id)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"no run {run_id!r} in {str(self.root)!r}")
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise ValueError(f"run {run_id!r}: {str(path)!r} is a folder, not a run file; it was not deleted "
                             f"({_FOLDER_NOTE})")
        remove_entry(path.with_suffix(".job.json"))
        remove_entry(path)
        for extra in [path.with_suffix(s) for s in (".progress.json", ".stop")] + \
                [self.atlas_path(run_id)] + list(self.root.glob(f"{run_id}.*.claim")):
            remove_entry(extra)  # a folder with such a name is left as it is

    def remove_stale_temporaries(self, max_age_s: float = STALE_TMP_AGE_S, now: float | None = None) -> list[str]:
        """Remove the temporary files a killed process left in this folder; :meth:`list_runs` calls it.

        Only regular files (never a link, a folder, a pipe: ``lstat``, nothing followed) whose names match
        :data:`TMP_NAME_RE` and that were not modified for ``max_age_s`` seconds (a live writer's file is newer)
        are removed. Anything that cannot be removed (permissions, gone meanwhile) is left, silently.

        Args:
            max_age_s: seconds since the last modification (:data:`STALE_TMP_AGE_S`).
            now: the present (seconds since 1970); the clock when None.

        Returns:
            The names removed.
        """
        now = time.time() if now is None else now
        removed = []
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return removed
        for entry in entries:
            if not TMP_NAME_RE.fullmatch(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > max_age_s:
                    os.unlink(entry.path)
                    removed.append(entry.name)
            except OSError:
                continue
        return removed
