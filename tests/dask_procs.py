"""A Dask scheduler and worker started with Dask's own commands (``dask scheduler`` / ``dask worker``) on
loopback, for tests; stopped by their process groups, checked gone. Plain Python, no pytest."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in Path("/proc").iterdir():  # killpg(0) also succeeds for zombies: look for a live member
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL after ``grace`` seconds.

    Raises:
        RuntimeError: a process of the group is still alive afterwards.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + grace
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _group_alive(proc.pid):
            return
    raise RuntimeError(f"process group {proc.pid} ({proc.args[:4]}) is still alive after SIGKILL")


class DaskProcesses:
    """``dask scheduler --port P`` and ``dask worker tcp://127.0.0.1:P --nworkers 1 --nthreads 1`` (with its nanny).

    Args:
        log_path: file for both processes' output.
        workers: worker processes (``--nworkers``).

    Attributes:
        address: ``tcp://127.0.0.1:P`` once started.
    """

    def __init__(self, log_path, workers: int = 1):
        self.log_path = Path(log_path)
        self.workers = workers
        self.address = None
        self.procs: list[subprocess.Popen] = []
        self._log = None

    def _start(self, *args) -> subprocess.Popen:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=self._log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.procs.append(proc)
        return proc

    def start(self) -> "DaskProcesses":
        """Start the scheduler, then the worker; returns self (the worker registers a few seconds later)."""
        self._log = open(self.log_path, "ab")
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self._start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        self._start("worker", self.address, "--nworkers", str(self.workers), "--nthreads", "1", "--no-dashboard",
                    "--host", "127.0.0.1")
        return self

    def stop(self) -> None:
        """Stop the worker, then the scheduler (whole process groups, checked gone)."""
        errors = []
        for proc in reversed(self.procs):
            try:
                stop_group(proc)
            except RuntimeError as exc:
                errors.append(str(exc))
        self.procs = []
        if self._log is not None:
            self._log.close()
            self._log = None
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> "DaskProcesses":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
