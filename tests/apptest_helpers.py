"""Shared helpers of the AppTest page tests (imported by test modules; pytest puts tests/ on sys.path)."""

import time

from streamlit.testing.v1 import AppTest


def run_page(path, timeout: float = 60) -> AppTest:
    """Run the page script at ``path`` once and fail if it raised; returns the AppTest."""
    app = AppTest.from_file(str(path), default_timeout=timeout)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def wait_for(predicate, timeout: float = 60.0) -> bool:
    """Poll ``predicate`` every 0.1 s until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
