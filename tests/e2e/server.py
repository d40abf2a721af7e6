"""Start and stop a headless ``streamlit run app.py`` on a free loopback port.

Used by the browser tests' session fixture (``tests/e2e/conftest.py``) and by
``scripts/screenshots.py``; :func:`server_log_errors` finds the tracebacks in the server's log that
concern the app. Plain Python, no pytest.

The server runs in its own process group (``start_new_session=True``) so that stopping it
kills Streamlit and anything it started, and :meth:`StreamlitServer.stop` checks that the
group is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (where ``app.py`` lives)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now, chosen by the OS (bind to port 0).

    Returns:
        the port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` in the background, headless, on 127.0.0.1 and a free port.

    Args:
        runs_dir: directory for ``CONVVIZ_RUNS_DIR`` (training checkpoints); a fresh temporary
            directory when None. ``CONVVIZ_MNIST`` is passed through from the environment.
        log_path: file that receives the server's stdout and stderr; a temporary file when None.
        app: the script to run, relative to the repository root.
        env: extra environment variables for the server (e.g. ``CONVVIZ_DASK_SCHEDULER``).

    Example:
        >>> with StreamlitServer() as server:  # doctest: +SKIP
        ...     print(server.url)
        http://127.0.0.1:41234
    """

    def __init__(self, runs_dir: str | os.PathLike | None = None, log_path: str | os.PathLike | None = None,
                 app: str = "app.py", env: dict | None = None):
        self._tmp = None
        if runs_dir is None or log_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="convviz-e2e-")
        self.runs_dir = Path(runs_dir) if runs_dir is not None else Path(self._tmp.name) / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_path) if log_path is not None else Path(self._tmp.name) / "streamlit.log"
        self.app = app
        self.extra_env = dict(env or {})
        self.port = None
        self.proc = None
        self._log = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_size(self) -> int:
        """Current size of the server log, bytes (to read only what a test added)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The server log from byte ``offset`` on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 90.0) -> "StreamlitServer":
        """Start the server and wait until ``/_stcore/health`` answers ``ok``.

        Args:
            timeout: seconds to wait for the health check.

        Returns:
            self.

        Raises:
            RuntimeError: the server exited or did not become healthy in time (the message
                carries the end of its log).
        """
        env = dict(os.environ)
        env["CONVVIZ_RUNS_DIR"] = str(self.runs_dir)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        self.port = free_port()
        cmd = [sys.executable, "-m", "streamlit", "run", self.app,
               "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(self.port),
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode} before it was healthy; "
                                   f"log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit on port {self.port} was not healthy after {timeout:.0f} s; "
                                   f"log:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server's whole process group (SIGTERM, then SIGKILL after ``grace`` seconds).

        Raises:
            RuntimeError: a process of the group is still alive afterwards.
        """
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + grace
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                _signal_group(pgid, signal.SIGKILL)
                self.proc.wait(timeout=grace)
                deadline = time.monotonic() + grace
                while _group_alive(pgid) and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.proc = None
            if _group_alive(pgid):
                raise RuntimeError(f"streamlit's process group {pgid} is still alive after SIGKILL")
        if self._log is not None:
            self._log.close()
            self._log = None

    def rss_bytes(self) -> int:
        """Resident memory of the server's whole process group now, bytes (0 when it is not running).

        Returns:
            the sum of ``VmRSS`` over the live processes of the group (see :func:`group_rss_bytes`).
        """
        return 0 if self.proc is None else group_rss_bytes(self.proc.pid)

    def cleanup(self) -> None:
        """Stop the server and delete the temporary directory, if one was made."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "StreamlitServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any process (zombies excluded) is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies; look for a live member in /proc where there is one.
    if not Path("/proc").is_dir():
        return True
    return bool(group_pids(pgid))


def group_pids(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group ``pgid``, read from ``/proc`` (empty without it)."""
    pids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of process group ``pgid``: the sum of ``VmRSS`` in ``/proc/<pid>/status``, bytes.

    Shared pages are counted once per process, so this is an upper bound (Streamlit's group is
    normally a single Python process).
    """
    total = 0
    for pid in group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024  # reported in kB
                    break
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return total


_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_BENIGN = ("WebSocketDisconnect", "ClientDisconnect")
"""Final exceptions of tracebacks that Streamlit's own web server logs when a browser tab closes its socket."""


def _tracebacks(log: str):
    """The Python tracebacks in ``log``: ``(text, final exception lines, the line before it)``, chains merged."""
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback (most recent call last):"):
            i += 1
            continue
        start, finals = i, []
        while True:
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                i += 1  # the frames
            if i >= len(lines):
                break
            finals.append(lines[i])  # the exception line
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].startswith(_CHAINED):
                j += 1
                while j < len(lines) and not lines[j].strip():
                    j += 1
                if j < len(lines) and lines[j].startswith("Traceback"):
                    i = j
                    continue
            break
        yield "\n".join(lines[max(0, start - 1):i + 1]), finals, lines[start - 1] if start else ""
        i += 1


def server_log_errors(log: str) -> list[str]:
    """The tracebacks in a server log that point at the app, leaving out Streamlit's socket-closed noise."""
    errors = []
    for text, finals, before in _tracebacks(log):
        benign = (before.startswith("Exception in ASGI application") and finals
                  and all(any(b in f for b in _BENIGN) for f in finals))
        if not benign:
            errors.append(text)
    return errors
