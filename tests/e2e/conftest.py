"""Fixtures for the browser tests: one Streamlit server per session, Debian's Chromium via pytest-playwright.

- ``chromium_executable``: ``/usr/bin/chromium`` (or ``$CONVVIZ_E2E_CHROMIUM``). Missing -> the tests
  skip and say how to install it; under ``CI=true`` a missing browser fails them instead.
- ``streamlit_server`` / ``base_url``: ``streamlit run app.py`` headless on a free loopback port,
  ``CONVVIZ_RUNS_DIR`` in a temporary directory, ``CONVVIZ_MNIST`` passed through; stopped (its
  whole process group, checked) at the end of the session. ``page.goto("/Draw")`` works because
  pytest-playwright hands ``base_url`` to every browser context.
- ``browser_type_launch_args``: pytest-playwright's, plus Debian's Chromium and sandbox-free flags
  (Playwright's own browser download is never used).
- ``server_errors`` (autouse for tests that use ``page``): fails a test whose run put a Python
  traceback into the server log (Streamlit's own closed-socket noise excepted).
"""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from .server import StreamlitServer, server_log_errors

# Playwright's 5 s default is too short on a shared 2-core machine while a training run competes for
# the CPU (seen in CI: a page's table rendered after more than 5 s); waits still end as soon as the
# condition holds.
expect.set_options(timeout=30_000)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "CONVVIZ_E2E_CHROMIUM"
"""Environment variable naming another Chromium executable (used instead of CHROMIUM when set)."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of Debian's Chromium (or of ``$CONVVIZ_E2E_CHROMIUM``); skips, or fails under CI=true, when missing."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        path = override if os.access(override, os.X_OK) else None
        where = f"{CHROMIUM_ENV}={override!r}"
    else:
        path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
        where = f"{CHROMIUM} or on PATH"
    if path:
        return path
    message = (f"Chromium not found at {where}; the browser tests need Debian's Chromium: "
               "`sudo apt-get update && sudo apt-get install -y chromium`")
    if _in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def streamlit_server(chromium_executable, tmp_path_factory):
    """The running app: a :class:`StreamlitServer` on 127.0.0.1 and a free port, for the whole session."""
    tmp = tmp_path_factory.mktemp("e2e-server")
    server = StreamlitServer(runs_dir=tmp / "runs", log_path=tmp / "streamlit.log")
    server.start(timeout=120)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(streamlit_server) -> str:
    """The app's URL; pytest-playwright gives it to each browser context, so ``page.goto("/Train")`` works."""
    return streamlit_server.url + "/"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, chromium_executable):
    """pytest-playwright's launch options plus Debian's Chromium and the flags it needs here."""
    return {**browser_type_launch_args, "executable_path": chromium_executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """Every test page is 1280x800, the size of the screenshots in docs/."""
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture(autouse=True)
def server_errors(request):
    """Fail a browser test whose run put a Python traceback (other than a closed socket's) into the server log."""
    if "page" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("streamlit_server")
    start = server.log_size()
    yield
    errors = server_log_errors(server.log_since(start))
    if errors:
        pytest.fail("the server logged an error during this test:\n" + "\n\n".join(errors)[:8000], pytrace=False)
