"""What a saved run's metadata may hold, checked like user input (no Streamlit, no TensorFlow).

A run's checkpoint (:class:`convviz.runs.RunStore`) and the job and progress records beside it
(:mod:`convviz.jobs`) are read back from a folder anyone may write to. Everything read back is validated
here before it is used: types, ranges, finite numbers, list lengths that agree (:func:`check_settings`,
:func:`check_history`), times from 2020 and not in the future (:func:`check_time`, :func:`check_timestamp_text`),
text of bounded length (:func:`check_text`). Each failure is a ``ValueError`` naming where, which key, what was
expected and the value.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from convviz.config import MAX_HISTORY_BATCHES

__all__ = ["HISTORY_STATUSES", "MAX_CLOCK_SKEW_S", "MAX_EPOCHS", "MAX_HISTORY_BATCHES", "MAX_METADATA_VALUES",
           "as_float", "check_history", "check_settings", "check_text", "check_time", "check_timestamp_text",
           "value_problem"]

MAX_EPOCHS = 10_000
"""Most epochs a run read back from disk may have planned or done."""
HISTORY_STATUSES = ("pending", "waiting", "queued", "loading", "running", "stopped", "finished", "failed",
                    "interrupted")
"""Statuses a history read back from disk may have."""
_MAX_COUNT = 10**9  # batches, steps: far beyond any real run
_MAX_TEXT = 4000  # characters of an error message kept from disk
MAX_CLOCK_SKEW_S = 300.0
"""A time read back from disk (a heartbeat, a submission, a run's last save) may be at most this many seconds
ahead of this machine's clock (machines sharing a runs folder disagree a little); later is refused."""
_EARLIEST = 1_577_836_800.0  # 2020-01-01 UTC: no ConvViz run is older
MAX_METADATA_VALUES = 2 * MAX_HISTORY_BATCHES + 2 * MAX_EPOCHS + 10_000
"""Most values in a run's metadata JSON (counted as commas before parsing): two per batch and two per epoch of the
longest history, plus room for the settings and text. More is refused before the JSON is parsed (the breaker's
2.3-million-batch history took seconds to parse on every Train page render)."""


def value_problem(where: str, key: str, expected: str, value) -> ValueError:
    """The ``ValueError`` for ``where[key]`` not being ``expected``: ``"metadata['preset'] must be …, got …"``."""
    return ValueError(f"{where}[{key!r}] must be {expected}, got {str(value)[:60]}")


def _integer(d: dict, key: str, where: str, low: int, high: int) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise value_problem(where, key, f"an integer from {low} to {high:,}", value)
    return value


def as_float(value, where: str, key: str, expected: str) -> float:
    """A number read back from disk as a finite float, never ``OverflowError``.

    JSON allows integers no float can hold (``1`` then 400 zeros); ``math.isfinite`` and ``float`` raise
    ``OverflowError`` on them, which no reader catches. This is the one conversion.

    Args:
        value: the value read.
        where, key: its place in messages.
        expected: what it must be, for messages, e.g. ``"a number from 0 to 1"``.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: not an int or float (bool refused), not finite, or an integer too large for a float; the
            message names the key and, for a huge integer, its size in digits rather than the digits.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise value_problem(where, key, expected, value)
    try:
        number = float(value)
    except OverflowError:
        digits = int(value.bit_length() * math.log10(2)) + 1
        raise ValueError(f"{where}[{key!r}] must be {expected}, got an integer of about {digits:,} digits, "
                         f"too large for a float") from None
    if not math.isfinite(number):
        raise value_problem(where, key, expected, value)
    return number


def _number(value, where: str, key: str, low: float, high: float) -> float:
    expected = f"a number from {low:g} to {high:g}"
    number = as_float(value, where, key, expected)
    if not low <= number <= high:
        raise value_problem(where, key, expected, value)
    return number


def _numbers(d: dict, key: str, where: str, low: float, high: float) -> list[float]:
    values = d[key]
    if not isinstance(values, list):
        raise value_problem(where, key, "a list of numbers", values)
    return [_number(v, where, key, low, high) for v in values]


def check_text(value, where: str, key: str, limit: int, optional: bool = False) -> str | None:
    """``value`` as text of at most ``limit`` characters (None allowed when ``optional``).

    Raises:
        ValueError: naming ``where[key]`` and the value (:func:`value_problem`).
    """
    if optional and value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise value_problem(where, key, f"text of at most {limit} characters", value)
    try:
        value.encode("utf-8")  # a lone surrogate ("\ud800") is valid JSON but no text a page can send
    except UnicodeEncodeError:
        raise value_problem(where, key, "text that UTF-8 can encode", ascii(value)) from None
    return value


def check_time(value, where: str, key: str, now: float | None = None) -> float:
    """A time read back from disk, in seconds since 1970 (UTC), checked: a finite number from 2020 to now.

    Args:
        value: the value read.
        where, key: its place in messages.
        now: the present (seconds); the clock when None. Up to :data:`MAX_CLOCK_SKEW_S` later is accepted.

    Returns:
        The time as a float.

    Raises:
        ValueError: not a number, not finite, an integer too large for a float, before 2020 or in the future, e.g. ``"progress record 'x'['heartbeat']
            must be seconds since 1970, from 2020 to now (at most 300 s ahead), got 99000000000.0"``.
    """
    now = time.time() if now is None else now
    expected = f"seconds since 1970, from 2020 to now (at most {MAX_CLOCK_SKEW_S:g} s ahead)"
    seconds = as_float(value, where, key, expected)
    if not _EARLIEST <= seconds <= now + MAX_CLOCK_SKEW_S:
        raise value_problem(where, key, expected, value)
    return seconds


def check_timestamp_text(value, where: str, key: str, now: float | None = None) -> str:
    """An ISO 8601 time read back from disk (``"2026-01-02T03:04:05+00:00"``), checked like :func:`check_time`.

    Raises:
        ValueError: not such text (64 characters at most, with a time zone), or a time before 2020 or in the future.
    """
    text = check_text(value, where, key, 64)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError
        seconds = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise value_problem(where, key, "an ISO 8601 time with its time zone", text) from None
    now = time.time() if now is None else now
    if not _EARLIEST <= seconds <= now + MAX_CLOCK_SKEW_S:
        raise value_problem(where, key, f"a time from 2020 to now (at most {MAX_CLOCK_SKEW_S:g} s ahead)", text)
    return text


def check_settings(settings, where: str = "config") -> dict:
    """A run's settings as read back from disk, checked like user input.

    Known keys are checked when present (others are dropped): ``preset`` (``"fast"`` / ``"seed"``),
    ``filters`` (two integers 1 to :data:`convviz.model.MAX_FILTERS`), ``kernel_size`` (1 to 28),
    ``epochs`` (1 to :data:`MAX_EPOCHS`), ``batch_size`` (1 to 65,536), ``learning_rate`` (a number
    in (0, 1]), ``seed`` (0 to 2**63 - 1).

    Args:
        settings: the value read (a dict).
        where: its name in messages.

    Returns:
        A new dict of the known keys present.

    Raises:
        ValueError: a value of the wrong type or out of range, naming the key and the value.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"{where} must be an object, got {str(settings)[:60]}")
    out = {}
    if "preset" in settings:
        if settings["preset"] not in ("fast", "seed"):
            raise value_problem(where, "preset", "'fast' or 'seed'", settings["preset"])
        out["preset"] = settings["preset"]
    if "filters" in settings:
        filters = settings["filters"]
        if not isinstance(filters, list) or len(filters) != 2:
            raise value_problem(where, "filters", "a pair of integers", filters)
        out["filters"] = [_integer({"filters": f}, "filters", where, 1, 1024) for f in filters]
    for key, low, high in (("kernel_size", 1, 28), ("epochs", 1, MAX_EPOCHS), ("batch_size", 1, 65536),
                           ("seed", 0, 2**63 - 1)):
        if key in settings:
            out[key] = _integer(settings, key, where, low, high)
    if "learning_rate" in settings:
        rate = _number(settings["learning_rate"], where, "learning_rate", 0.0, 1.0)
        if rate <= 0.0:
            raise value_problem(where, "learning_rate", "a number in (0, 1]", rate)
        out["learning_rate"] = rate
    return out


def check_history(history, where: str = "history") -> dict:
    """A training history as read back from disk (see :meth:`convviz.train.History.snapshot`), checked.

    Missing keys get their empty values (``[]``, ``0``, ``None``, status ``"pending"``); present ones must
    be: ``batch_loss`` / ``epoch_test_loss`` lists of finite numbers >= 0; ``batch_accuracy`` /
    ``epoch_test_accuracy`` lists of numbers in [0, 1]; as many batch accuracies as losses, and one
    test loss and accuracy per finished ``epoch``; ``epoch``, ``batch``, ``batches_per_epoch``
    integers >= 0; ``epochs`` 0 to :data:`MAX_EPOCHS`; ``samples_per_second``, ``elapsed_s`` finite
    numbers >= 0; ``eta_s`` and ``final_test_loss`` / ``final_test_accuracy`` such a number or None;
    ``status`` one of :data:`HISTORY_STATUSES`; ``error`` text or None. Other keys are dropped. At most
    :data:`MAX_HISTORY_BATCHES` batch values and :data:`MAX_EPOCHS` test values (counted before any is checked).

    Args:
        history: the value read (a dict).
        where: its name in messages.

    Returns:
        A new, complete history dict.

    Raises:
        ValueError: a value of the wrong type or out of range, or lengths that disagree, naming the key.
    """
    if not isinstance(history, dict):
        raise ValueError(f"{where} must be an object, got {str(history)[:60]}")
    h = {"batch_loss": [], "batch_accuracy": [], "epoch_test_loss": [], "epoch_test_accuracy": [], "epoch": 0,
         "batch": 0, "batches_per_epoch": 0, "epochs": 0, "samples_per_second": 0.0, "elapsed_s": 0.0, "eta_s": None,
         "status": "pending", "error": None}
    h.update({k: v for k, v in history.items() if k in h or k in ("final_test_loss", "final_test_accuracy")})
    for key, limit, name in (("batch_loss", MAX_HISTORY_BATCHES, "MAX_HISTORY_BATCHES"),
                             ("batch_accuracy", MAX_HISTORY_BATCHES, "MAX_HISTORY_BATCHES"),
                             ("epoch_test_loss", MAX_EPOCHS, "MAX_EPOCHS"),
                             ("epoch_test_accuracy", MAX_EPOCHS, "MAX_EPOCHS")):
        if isinstance(h[key], list) and len(h[key]) > limit:  # before a number of them is looked at
            raise ValueError(f"{where}[{key!r}] has {len(h[key]):,} values, over the limit of {name}={limit:,}")
    for key in ("batch_loss", "epoch_test_loss"):
        h[key] = _numbers(h, key, where, 0.0, math.inf)
    for key in ("batch_accuracy", "epoch_test_accuracy"):
        h[key] = _numbers(h, key, where, 0.0, 1.0)
    for key, high in (("epoch", MAX_EPOCHS), ("batch", _MAX_COUNT), ("batches_per_epoch", _MAX_COUNT),
                      ("epochs", MAX_EPOCHS)):
        h[key] = _integer(h, key, where, 0, high)
    for key in ("samples_per_second", "elapsed_s"):
        h[key] = _number(h[key], where, key, 0.0, 1e15)
    for key in ("eta_s", "final_test_loss", "final_test_accuracy"):
        if h.get(key) is not None:
            h[key] = _number(h[key], where, key, 0.0, 1.0 if key == "final_test_accuracy" else 1e15)
    if (h.get("final_test_loss") is None) != (h.get("final_test_accuracy") is None):
        raise ValueError(f"{where} has only one of final_test_loss and final_test_accuracy")
    if h["status"] not in HISTORY_STATUSES:
        raise value_problem(where, "status", f"one of {list(HISTORY_STATUSES)}", h["status"])
    h["error"] = check_text(h["error"], where, "error", _MAX_TEXT, optional=True)
    if len(h["batch_accuracy"]) != len(h["batch_loss"]):
        raise ValueError(f"{where} has {len(h['batch_loss'])} batch losses but {len(h['batch_accuracy'])} "
                         "batch accuracies")
    if not len(h["epoch_test_loss"]) == len(h["epoch_test_accuracy"]) == h["epoch"]:
        raise ValueError(f"{where} has {h['epoch']} finished epochs but {len(h['epoch_test_loss'])} test losses "
                         f"and {len(h['epoch_test_accuracy'])} test accuracies")
    return h
