"""Shared helpers of the AppTest page tests (imported by test modules; pytest puts tests/ on sys.path)."""

import base64
import time

import numpy as np
from streamlit.testing.v1 import AppTest


def run_page(path, timeout: float = 60) -> AppTest:
    """Run the page script at ``path`` once and fail if it raised; returns the AppTest."""
    app = AppTest.from_file(str(path), default_timeout=timeout)
    app.run()
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
