"""Where the CPU went during a benchmark: the web server, its Dask workers, the browsers, the rest of the machine.

Not a test. Used by ``load_test.py`` and ``draw_latency.py``: both run the learners' browsers on the same machine
as the server, which a class does not, so they print how many cores each part used::

    meter = CpuMeter(server_pid=server.proc.pid).start()
    mark = meter.snapshot()
    ...                       # the phase to account
    print(meter.describe(mark))

Linux only (reads ``/proc``). Every ``every_s`` s it reads ``utime + stime`` (``/proc/<pid>/stat`` fields 14 and
15, clock ticks) of every process started by this benchmark and adds each one's increase to its group:

* ``server``: the Streamlit process itself;
* ``workers``: the rest of the server's process group (the Dask nannies and workers it starts);
* ``browsers``: every other process below this one (Chromium's browser, GPU and renderer processes);

and reads the machine's busy time from ``/proc/stat`` (every CPU state but idle and iowait), so ``rest`` is what
other people's processes used. A process that exits between two readings loses at most ``every_s`` of its time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("server", "workers", "browsers")


def _stat(pid: int) -> tuple[int, int, float] | None:
    """``(ppid, pgid, cpu seconds)`` of ``pid`` from ``/proc/<pid>/stat``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    try:
        return int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICK
    except (IndexError, ValueError):
        return None


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot, summed over cores (``/proc/stat``'s first line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


class CpuMeter(threading.Thread):
    """Accumulates CPU seconds per group (see the module docstring) in a background thread."""

    def __init__(self, server_pid: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.server_pid, self.every_s = server_pid, every_s
        self.root = os.getpid()
        self.totals = dict.fromkeys(GROUPS, 0.0)
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def start(self) -> "CpuMeter":
        self.read()
        super().start()
        return self

    def read(self) -> None:
        """One reading: add every known process's CPU increase to its group."""
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                s = _stat(int(entry.name))
                if s is not None:
                    stats[int(entry.name)] = s
        with self._lock:
            first = not self._last
            for pid, (_, pgid, cpu) in stats.items():
                group = self._group(pid, pgid, stats)
                if group is None:
                    continue
                before = self._last.get(pid, None if first else 0.0)  # new since the last reading: all its time
                self._last[pid] = cpu
                if before is not None and cpu >= before:
                    self.totals[group] += cpu - before

    def _group(self, pid: int, pgid: int, stats: dict) -> str | None:
        if pid == self.server_pid:
            return "server"
        if pgid == self.server_pid:
            return "workers"
        seen = 0
        parent = stats[pid][0]
        while parent > 1 and seen < 64:  # below this benchmark process?
            if parent == self.root:
                return "browsers"
            if parent not in stats:
                return None
            parent = stats[parent][0]
            seen += 1
        return None

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            self.read()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def snapshot(self) -> dict[str, float]:
        """The totals so far, with the wall clock and the machine's busy seconds: pass it to :meth:`describe`."""
        self.read()
        with self._lock:
            return {**self.totals, "wall": time.perf_counter(), "machine": machine_busy_s()}

    def cores(self, since: dict[str, float]) -> dict[str, float]:
        """Average cores used per group between ``since`` and now, with ``machine`` and ``rest``."""
        now = self.snapshot()
        wall = max(now["wall"] - since["wall"], 1e-9)
        used = {g: (now[g] - since[g]) / wall for g in GROUPS}
        used["machine"] = (now["machine"] - since["machine"]) / wall
        used["rest"] = max(used["machine"] - sum(used[g] for g in GROUPS), 0.0)
        return used

    def describe(self, since: dict[str, float]) -> str:
        """``cores_used server=… workers=… browsers=… rest=… machine=… of N``: averages since ``since``."""
        used = self.cores(since)
        parts = " ".join(f"{k}={used[k]:.2f}" for k in (*GROUPS, "rest", "machine"))
        return f"cores_used {parts} of {os.cpu_count()}"
