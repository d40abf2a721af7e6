"""Number boxes that survive whatever the browser (or a crafted client message) sends, and page changes.

Every ``st.number_input`` of the app goes through :func:`number_input`. Streamlit 1.67 turns the value a client
sends into a number in ``NumberInputSerde.deserialize`` (``streamlit/elements/widgets/number_input.py``) before
any page code runs: for an integer box it calls ``int(value)``, so NaN (``ValueError``) or ±inf
(``OverflowError``) raises inside ``SessionState.on_script_will_rerun`` (its ``_widget_changed`` check) on every
later run, and the session stays broken; 2.7 becomes 2 silently. A float box never raises there: NaN, ±inf and
values outside its bounds come back as its default. So every box is made a **float** box whose default is
``None`` (what the learner sees is put in ``st.session_state`` instead), and :func:`settle` checks what arrives:

* ``None`` (a cleared box, or NaN / ±inf / 1e300 that Streamlit answered with the default), a value outside the
  bounds, or a fraction in a whole-number box is refused: the box is put back to the last accepted value and a
  warning under it says why, e.g. ``"Rows was left empty or out of range: it stays 5 (type a whole number from
  1 to 28)."``; the page goes on with the kept value (the value shown is the value used).
* A box Streamlit forgot (its page was left, or the widget was not drawn in a run: Streamlit drops an undrawn
  widget's state) gets its last accepted value back silently, kept under ``_num_last_<key>``.

A box's ``on_change`` callback runs only for an accepted value (a refused one is put back first).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import streamlit as st

LARGEST_WHOLE = 2**53 - 1
"""Largest whole number a box without its own bounds accepts: the browser holds numbers as doubles, exact as whole
numbers up to 2**53 - 1 (JavaScript's ``Number.MAX_SAFE_INTEGER``)."""

_LAST = "_num_last_{}"
_NOTE = "_num_note_{}"


def number_problem(value, min_value, max_value, whole: bool) -> str | None:
    """Why ``value`` cannot be a box's value, or None when it can.

    Args:
        value: what the box holds (a number, None, or anything a client or a script put there).
        min_value, max_value: the bounds (either may be None: no bound; whole-number boxes are still limited to
            ±:data:`LARGEST_WHOLE`).
        whole: only whole numbers are accepted.

    Returns:
        ``"empty or out of range"``, ``"not a whole number"``, or None.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        return "empty or out of range"
    low = -LARGEST_WHOLE if whole and min_value is None else min_value
    high = LARGEST_WHOLE if whole and max_value is None else max_value
    if (low is not None and value < low) or (high is not None and value > high):
        return "empty or out of range"
    if whole and value != int(value):
        return "not a whole number"
    return None


def _finite(value: int | float) -> bool:
    """Whether ``value`` is a finite float or an int within a float's range (``math.isfinite(10**400)`` raises)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _what_to_type(min_value, max_value, whole: bool) -> str:
    kind = "a whole number" if whole else "a number"
    if min_value is not None and max_value is not None:
        return f"{kind} from {_show(min_value)} to {_show(max_value)}"
    if min_value is not None:
        return f"{kind} of at least {_show(min_value)}"
    if max_value is not None:
        return f"{kind} of at most {_show(max_value)}"
    return kind


def _show(value) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def settle(key: str, name: str, min_value, max_value, whole: bool, previous) -> tuple[int | float, str | None]:
    """Check the value in ``st.session_state[key]`` before its box is drawn; put ``previous`` back when it is refused.

    Call it before the box with ``key`` is created in this run (or in a callback). A missing key (Streamlit forgot
    the box when another page was shown, or when it was not drawn) gets ``previous`` silently.

    Args:
        key: the box's widget key.
        name: the box in messages, e.g. ``"Input Rows"``.
        min_value, max_value, whole: as :func:`number_problem`.
        previous: the last accepted value (what a refused value is replaced by).

    Returns:
        ``(value, note)``: the value the page uses (an ``int`` for a whole-number box) and a message when the value
        sent was refused, e.g. ``"Input Rows must be a whole number, got 2.7: it stays 5 (type a whole number
        from 1 to 28)."``, else None.
    """
    ss = st.session_state
    if key not in ss:
        ss[key] = previous
        return previous, None
    try:
        value = ss[key]
    except Exception:  # noqa: BLE001 - a value Streamlit itself cannot turn into a number
        value = None
    problem = number_problem(value, min_value, max_value, whole)
    if problem is None:
        if whole and not isinstance(value, int):
            ss[key] = int(value)  # 6.0 from the browser's float box: shown and used as 6
        return (int(value) if whole else float(value)), None
    ss[key] = previous
    told = "was left empty or out of range" if problem.startswith("empty") else f"must be a whole number, got {value:g}"
    return previous, f"{name} {told}: it stays {_show(previous)} (type {_what_to_type(min_value, max_value, whole)})."


def _same(a, b) -> bool:
    try:
        return a == b
    except Exception:  # noqa: BLE001 - whatever a client put there
        return False


def _checked_callback(key: str, name: str, bounds: tuple, whole: bool, callback: Callable | None, args) -> None:
    """A box's ``on_change``: refuse a bad value first (its note is shown in the run that follows), then call the
    page's callback with an accepted value only."""
    ss = st.session_state
    value, note = settle(key, name, *bounds, whole, ss.get(_LAST.format(key)))
    if note is not None:
        ss[_NOTE.format(key)] = note
        return
    ss[_LAST.format(key)] = value
    if callback is not None:
        callback(*(args or ()))


def number_input(where, label: str, min_value=None, max_value=None, value=None, step=None, *, key: str,
                 name: str | None = None, format: str | None = None, on_change: Callable | None = None,  # noqa: A002
                 args: tuple | None = None, **kwargs) -> int | float:
    """``st.number_input`` that no client value can break and no page change resets (see the module docstring).

    A whole-number box when every number given (bounds, default, step) is an ``int``, as in Streamlit; it is drawn
    as a float box showing no decimals (``"%.0f"``) and returns an ``int``.

    Args:
        where: the container to draw in (``st``, a column, the sidebar).
        label: the box's label.
        min_value, max_value: the bounds, or None.
        value: the value shown first (also the value when nothing was ever accepted).
        step: the +/- step (1 for whole numbers by default).
        key: the widget key (required: the last accepted value is kept under it).
        name: the box in messages (default: ``label``).
        format: Streamlit's ``printf`` format (default ``"%.0f"`` for whole numbers, ``"%g"`` otherwise).
        on_change, args: called with ``args`` after an accepted change, before the page runs.
        **kwargs: passed to ``st.number_input`` (``help``, ``disabled``, ...).

    Returns:
        The accepted value: an ``int`` for a whole-number box, else a ``float``; finite and within the bounds.

    Raises:
        ValueError: ``value`` itself outside the bounds (a programming error), echoing it.
    """
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (min_value, max_value, value, step)
                if v is not None)
    name = label.strip() if name is None else name
    if value is not None and number_problem(value, min_value, max_value, whole) is not None:
        raise ValueError(f"value must be within the bounds, got value={value!r}, min_value={min_value!r}, "
                         f"max_value={max_value!r}")
    ss = st.session_state
    last = ss.get(_LAST.format(key), value)
    if number_problem(last, min_value, max_value, whole) is not None:  # the bounds moved past it (or never set)
        if key in ss and _same(ss[key], last):
            ss[key] = value  # not the learner's doing: back to the default silently, as Streamlit would
        last = value
    accepted, note = settle(key, name, min_value, max_value, whole, last)
    note = ss.pop(_NOTE.format(key), None) or note
    ss[_LAST.format(key)] = accepted
    as_float = (lambda v: None if v is None else float(v))
    where.number_input(label, min_value=as_float(min_value), max_value=as_float(max_value), value=None,
                       step=float(step if step is not None else 1 if whole else 0.01),
                       format=format or ("%.0f" if whole else "%g"), key=key,
                       on_change=_checked_callback, args=(key, name, (min_value, max_value), whole, on_change, args),
                       **kwargs)
    if note:
        where.warning(note)
    return accepted
