"""convviz.ui.runtime: no Keras clear_session (a full garbage collection) after each Streamlit script run."""

import gc
import sys

import keras
from streamlit.testing.v1 import AppTest

from convviz.ui import runtime

_SCRIPT = """
import streamlit as st
import convviz.ui  # what every page imports
st.write("ran")
"""


def test_importing_convviz_ui_installs_the_end_of_run_hook():
    import convviz.ui  # noqa: F401

    assert runtime.installed()
    assert runtime.install() is True  # idempotent
    assert runtime.installed()


def test_a_script_run_no_longer_resets_keras(monkeypatch):
    """Streamlit 1.67 calls keras.backend.clear_session() after every run while keras is imported; not with ConvViz."""
    assert "keras" in sys.modules  # TensorFlow imports it: the case that made every run pay a full gc.collect()
    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    app = AppTest.from_string(_SCRIPT, default_timeout=60)
    app.run()
    app.run()
    assert not app.exception
    assert [m.value for m in app.markdown] == ["ran"]
    assert calls == []


def test_without_the_hook_streamlit_would_reset_keras(monkeypatch):
    """The check above can fail: Streamlit's own hook, put back, calls clear_session after each run."""
    from streamlit.runtime.scriptrunner import script_runner

    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    assert runtime.streamlit_hook is not None and runtime.streamlit_hook.__module__ == script_runner.__name__
    monkeypatch.setattr(script_runner, "_clean_problem_modules", runtime.streamlit_hook)
    app = AppTest.from_string('import streamlit as st\nst.write("ran")', default_timeout=60)
    app.run()
    assert calls, "Streamlit's hook no longer calls keras.backend.clear_session: runtime.py may be unnecessary"


def test_freeze_long_lived_moves_objects_out_of_the_collectors_way():
    try:
        frozen = runtime.freeze_long_lived()  # other threads may free or create objects meanwhile: no exact count
        assert frozen > 1000 and gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
