"""Widget values a client sends that Streamlit cannot read are refused, and the session goes on.

Before a page runs, Streamlit 1.67 turns each value the browser sent into the widget's value with the widget's
deserializer (``WStates.__getitem__`` in ``streamlit/runtime/state/session_state.py``). A crafted message can
send what no browser would: text where a number box expects a number, ``{"edited_rows": {"abc": {}}}`` or JSON
100,000 levels deep for a data editor, text that is not JSON for a component. The deserializer raises
(``TypeError``, ``ValueError``, ``RecursionError``...), the serialized value stays in the session, and every
later run of every page of that session raises again: the learner sees only Streamlit's error box until the tab
is reloaded, losing what was typed.

:func:`install` (called when :mod:`convviz.ui` is imported, i.e. by every page) wraps three methods of
Streamlit's ``WStates`` (the widget values of a session):

* ``__getitem__`` (the read above): a value its deserializer refuses reads as "no value sent", so the widget keeps
  the value it had (Streamlit reads the session's previous value, as for a widget the browser sent nothing for; the
  next run's start drops the unreadable value).
* ``get_serialized``: a value the deserializer lets through but the widget cannot write back (an option index out
  of range: it raises while the widget registers) puts the widget back to its default.
* ``set_widget_from_proto`` (where a sent value is stored, before the run): a value sent under an id that no
  widget can have (Streamlit's ids start ``$$ID``; ``""`` or ``"foo"`` were taken for a key of
  ``st.session_state``, and reading them in ``SessionState.filtered_state`` raised ``KeyError`` in the page's
  first widget call) is not stored.

Each refusal notes the widget's key for this script run's thread; :func:`announce_refused` (called by ``app.py``
after the page ran) shows a toast naming them and logs each refusal on the server.

Number boxes have their own, finer guard (:mod:`convviz.ui.numbers`: NaN, infinities, out-of-range values);
this one is for what cannot be deserialized at all. The methods are private Streamlit names:
``requirements.txt`` pins Streamlit and ``tests/test_hostile.py`` fails if a new version moves them.

Tried and answered without this module (``tests/e2e/test_crafted_messages.py``): an unknown page hash, the same
widget twice in one message, 50,000 unknown widget ids, a widget state with no value, odd ``?learner=`` values
(NUL, newline, 100,000 characters, repeated, undecodable). A rerun of a fragment id that does not exist is
dropped by Streamlit with a warning in the server log (no run follows: only the sending client waits).
"""

from __future__ import annotations

import logging
import threading

import streamlit as st

_LOGGER = logging.getLogger(__name__)
_STATE_MODULE = "streamlit.runtime.state.session_state"
_refused = threading.local()  # Streamlit runs a session's script (and its on_script_will_rerun) in one thread


def _user_key(widget_id: str) -> str:
    """The widget's own key where it has one (Streamlit's ids end ``-<key>``), else the id."""
    from streamlit.runtime.state.common import user_key_from_element_id

    try:
        return user_key_from_element_id(widget_id) or widget_id
    except Exception:
        return widget_id


def refused_keys() -> list[str]:
    """The widget keys refused in this thread since the last :func:`announce_refused` (oldest first)."""
    return list(getattr(_refused, "keys", []))


def installed() -> bool:
    """Whether Streamlit's widget-value reader is wrapped by :func:`install`."""
    import importlib

    module = importlib.import_module(_STATE_MODULE)
    return getattr(module.WStates.__getitem__, "convviz", False)


def install() -> bool:
    """Wrap Streamlit's widget-value reader (see the module docstring); idempotent.

    Returns:
        True when it is wrapped after the call; False (with a warning in the server log) when this Streamlit has
        no ``WStates.__getitem__``, in which case nothing is changed (a missing ``get_serialized`` or
        ``set_widget_from_proto`` raises ``AttributeError``; ``tests/test_hostile.py`` checks all three).
    """
    import importlib

    module = importlib.import_module(_STATE_MODULE)
    states = getattr(module, "WStates", None)
    original = getattr(states, "__getitem__", None)
    if original is None:
        _LOGGER.warning("Streamlit has no %s.WStates.__getitem__: a crafted widget value can break a session",
                        _STATE_MODULE)
        return False
    if getattr(original, "convviz", False):
        return True

    original_serialized = states.get_serialized

    def read_widget_value(self, key):
        try:
            return original(self, key)
        except KeyError:
            raise
        except Exception as exc:  # whatever the deserializer raises: the value is unreadable
            # Left in place (Streamlit may be iterating over the states): every read of it says "no value", and the
            # next run's start drops it, as it drops any widget value whose read raises KeyError.
            _note(key, exc)
            raise KeyError(key) from None

    def serialize_widget_value(self, key, *args, **kwargs):
        try:
            return original_serialized(self, key, *args, **kwargs)
        except Exception as exc:  # a value its deserializer let through (an option index out of range) that
            # the widget's serializer cannot write back: the widget goes back to its default (an empty state reads
            # as "nothing sent"); the key's entry is replaced, never removed (Streamlit may be iterating).
            _note(key, exc)
            self.states[key] = module.Serialized(module.WidgetStateProto(id=key))
            return None

    original_store = states.set_widget_from_proto
    is_element_id = importlib.import_module("streamlit.runtime.state.common").is_element_id

    def store_widget_value(self, widget_state):
        if not is_element_id(widget_state.id):  # no widget has this id: it would pass for a session_state key
            _note(widget_state.id or "(no id)", ValueError(f"not a widget id: {widget_state.id[:80]!r}"))
            return None
        return original_store(self, widget_state)

    read_widget_value.convviz = True
    states.__getitem__ = read_widget_value
    states.get_serialized = serialize_widget_value
    states.set_widget_from_proto = store_widget_value
    return True


def _note(widget_id: str, exc: Exception) -> None:
    """Remember a refused widget for :func:`announce_refused` and log it once per run."""
    if not hasattr(_refused, "keys"):
        _refused.keys = []
    name = _user_key(widget_id)
    if name not in _refused.keys:
        _refused.keys.append(name)
        _LOGGER.warning("refused a widget value the client sent for %r (%s: %s)", name, type(exc).__name__,
                        str(exc)[:200])


def announce_refused() -> list[str]:
    """Show one toast naming the widgets whose sent values were refused in this run, and forget them.

    Returns:
        The widget keys announced (empty when there were none).
    """
    keys = refused_keys()
    _refused.keys = []
    if keys:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        st.toast(f"Ignored a value your browser sent that could not be read (for {shown}): those controls kept "
                 "their values. If a control looks wrong, set it again.", icon=":material/warning:")
    return keys
