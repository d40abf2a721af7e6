"""What ConvViz changes in the Streamlit server process it runs in: no full garbage collection after every script run.

Streamlit ends every script run (every rerun and fragment run of every learner's page) with
``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``, which calls
``keras.backend.clear_session()`` whenever ``keras`` is imported, and ``import tensorflow`` imports it.
Keras 3's ``clear_session`` resets its layer-name counters, clears TensorFlow's eager kernel cache and
calls ``gc.collect()``: a full collection of every object in the process. With TensorFlow loaded that is
about 390,000 objects, measured at 2.1–3.3 s a call on the shared 2-core machine (``gc.freeze()`` first:
4 ms), holding the GIL, after every run of every page: one learner's Train page refreshing its live
chart delayed every other learner's drawing by seconds. (Keras's own docstring: "it may take a few
seconds to execute".)

ConvViz builds its networks from ``tf.Module`` code, never from Keras layers, so it has no Keras global
state to reset. :func:`install` (called when :mod:`convviz.ui` is imported, i.e. by every page)
therefore

1. replaces that end-of-run hook by one that does the rest of what Streamlit's does (closing
   ``matplotlib.pyplot`` figures) but not the Keras reset, and
2. offers :func:`freeze_long_lived`, which the cached loaders call once TensorFlow and the shipped model
   are loaded: ``gc.freeze()`` moves every object alive then out of the collector's reach, so Python's
   own occasional full collections stay cheap too.

The hook is a private Streamlit function: ``requirements.txt`` pins Streamlit, and
``tests/test_ui_runtime.py`` fails if a new version renames it (so the fix cannot silently stop working).
"""

from __future__ import annotations

import gc
import logging
import sys

_LOGGER = logging.getLogger(__name__)

_HOOK_MODULE = "streamlit.runtime.scriptrunner.script_runner"
_HOOK_NAME = "_clean_problem_modules"


def _close_matplotlib_figures() -> None:
    """What Streamlit's end-of-run hook does besides the Keras reset: close every ``matplotlib.pyplot`` figure."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # as Streamlit's: never fail a page for this
            pass


_close_matplotlib_figures.convviz = True  # marks the hook as installed (see install / installed)

streamlit_hook = None
"""Streamlit's own end-of-run hook, kept by :func:`install` (None before it ran)."""


def installed() -> bool:
    """Whether Streamlit's end-of-run hook is ConvViz's (no Keras ``clear_session`` after each run)."""
    module = sys.modules.get(_HOOK_MODULE)
    return module is not None and getattr(getattr(module, _HOOK_NAME, None), "convviz", False)


def install() -> bool:
    """Replace Streamlit's end-of-run hook (see the module docstring); idempotent.

    Returns:
        True when the hook is ConvViz's after the call; False (with a warning in the server log) when this
        Streamlit has no such hook, in which case nothing is changed.
    """
    import importlib

    module = importlib.import_module(_HOOK_MODULE)
    if not hasattr(module, _HOOK_NAME):
        _LOGGER.warning("Streamlit has no %s.%s: each script run may pay a full garbage collection",
                        _HOOK_MODULE, _HOOK_NAME)
        return False
    global streamlit_hook
    current = getattr(module, _HOOK_NAME)
    if not getattr(current, "convviz", False):
        streamlit_hook = current
    setattr(module, _HOOK_NAME, _close_matplotlib_figures)
    return True


def freeze_long_lived() -> int:
    """Collect garbage once, then move every object alive into the collector's permanent generation.

    For objects that live as long as the server (TensorFlow's modules, a cached model): later full
    collections no longer scan them. Call it after loading them, not on every run.

    Returns:
        How many objects are frozen now (``gc.get_freeze_count()``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
