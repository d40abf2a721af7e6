"""Shared helpers of the AppTest page tests (imported by test modules; pytest puts tests/ on sys.path).

Every AppTest of a page starts it with :func:`run_page` and may rerun it with :func:`rerun`.
"""

import base64
import time

import numpy as np
from streamlit.testing.v1 import AppTest

from convviz.ui.navigation import PAGES_DIR

APP = PAGES_DIR.parent / "app.py"
"""The app's entry script (``streamlit run app.py``)."""


def run_page(path, timeout: float = 60, query_params: dict | None = None, session_state: dict | None = None) -> AppTest:
    """Run the page script at ``path`` once and fail if it raised; returns the AppTest.

    Args:
        path: the page script (``app.py`` or a file of ``app_pages/``).
        timeout: seconds a run may take (the first one imports TensorFlow).
        query_params: set in the page's address before the run (e.g. ``{"learner": "learner0test1"}``).
        session_state: set in the session before the run.
    """
    app = AppTest.from_file(str(path), default_timeout=timeout)
    for key, value in (query_params or {}).items():
        app.query_params[key] = value
    for key, value in (session_state or {}).items():
        app.session_state[key] = value
    return rerun(app)


def rerun(app_or_widget) -> AppTest:
    """Run the page again and fail if it raised; returns the AppTest.

    Pass the AppTest, or a widget after its ``set_value`` / ``click`` (its ``run()`` reruns the page).
    """
    app = app_or_widget.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def runs_folder(monkeypatch, tmp_path, learner: str):
    """A fresh runs folder for one test: ``CONVVIZ_RUNS_DIR`` at ``tmp_path/runs``, no outside Dask scheduler.

    Returns:
        The learner's :class:`convviz.runs.RunStore` (``tmp_path/runs/<learner>``).
    """
    from convviz import jobs
    from convviz.runs import RunStore

    folder = tmp_path / "runs"
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(folder))
    monkeypatch.delenv(jobs.SCHEDULER_ENV, raising=False)
    return RunStore(folder / learner)


def wait_for(predicate, timeout: float = 60.0) -> bool:
    """Poll ``predicate`` every 0.1 s until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def plotly_values(array) -> np.ndarray:
    """A Plotly JSON array as numbers: a (nested) list, or ``{"dtype", "bdata"[, "shape"]}`` (base64 of the raw
    numbers, as plotly.py sends numpy arrays); ``None`` cells become NaN."""
    if isinstance(array, dict):
        values = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = array.get("shape")
        return values.reshape([int(n) for n in str(shape).split(",")]) if shape else values
    return np.array(array, dtype=float)
