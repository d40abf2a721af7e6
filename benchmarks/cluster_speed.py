"""Training speed of a run started the way the Train page starts it (a Dask task) against the CLI.

Rounds alternate, CLI then cluster, on the same data, batch size, preset and seed:

* ``cli``: ``python -m convviz.train --epochs E --batch-size B [--sample]`` in a subprocess (its own
  process, normal CPU priority), reading the digits/s it prints;
* ``cluster``: :meth:`convviz.jobs.JobManager.launch` on an embedded ``LocalCluster`` of one worker
  process started exactly as the web server starts it (niceness 10, progress written every 0.5 s,
  checkpoints every epoch), reading the digits/s from the run's progress record.

Both figures are :attr:`convviz.train.History.samples_per_second` at the end of the run (the
throughput of the last 50 steps), so they measure the same thing. It prints each round's pair and the
median of the per-round ratios ``cluster / cli``; the issue asks for >= 0.8 alone on the machine.

Usage (from the repository root)::

    CONVVIZ_MNIST=../shared/data/mnist.npz python benchmarks/cluster_speed.py --rounds 2 --epochs 1 --batch-size 128

This is a benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convviz import jobs  # noqa: E402


def cli_run(epochs: int, batch_size: int, sample: bool) -> tuple[float, float]:
    """One CLI run; returns ``(digits/s, wall seconds)``."""
    cmd = [sys.executable, "-m", "convviz.train", "--epochs", str(epochs), "--batch-size", str(batch_size)]
    if sample:
        cmd.append("--sample")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    match = re.search(r"trained [\d.]+ s, (\d+) digits/s", out)
    if not match:
        raise RuntimeError(f"no digits/s in the CLI's output:\n{out}")
    return float(match.group(1)), wall


def cluster_run(manager: jobs.JobManager, files: jobs.JobFiles, epochs: int, batch_size: int,
                sample: bool) -> tuple[float, float]:
    """One run through the job manager; returns ``(digits/s, wall seconds from launch to the end)``."""
    settings = {"preset": "fast", "filters": (32, 64), "kernel_size": 3, "epochs": epochs, "batch_size": batch_size,
                "learning_rate": 1e-3, "seed": 0}
    t0 = time.perf_counter()
    run_id = manager.launch(files, settings, jobs.SAMPLE_LABEL if sample else jobs.FULL_LABEL)
    while True:
        state = manager.state(files, run_id)
        if state.state in jobs.ENDED:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if state.state != "finished":
        raise RuntimeError(f"the run ended {state.state}: {state.error}")
    return float(state.history["samples_per_second"]), wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="digits/s of a Dask-started run vs the CLI, interleaved.")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of CLI then cluster (default: 2)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample", action="store_true", help="the bundled sample instead of the full MNIST")
    args = parser.parse_args(argv)
    manager = jobs.JobManager(n_workers=1)  # as the web server makes it (niceness 10)
    with tempfile.TemporaryDirectory() as tmp:
        files = jobs.JobFiles(tmp, "benchmark01")
        try:
            if not manager.wait_ready(300):
                print(f"the cluster did not start: {manager.status}", file=sys.stderr)
                return 1
            cluster_run(manager, files, 1, 512, True)  # warm-up: the worker imports TensorFlow once
            ratios = []
            for i in range(args.rounds):
                cli, cli_wall = cli_run(args.epochs, args.batch_size, args.sample)
                dask, dask_wall = cluster_run(manager, files, args.epochs, args.batch_size, args.sample)
                ratios.append(dask / cli)
                print(f"round {i + 1}: cli {cli:,.0f} digits/s ({cli_wall:.1f} s wall)   "
                      f"cluster {dask:,.0f} digits/s ({dask_wall:.1f} s wall)   ratio {dask / cli:.2f}", flush=True)
            print(f"median cluster/cli ratio over {len(ratios)} round(s): {statistics.median(ratios):.2f}")
        finally:
            manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
