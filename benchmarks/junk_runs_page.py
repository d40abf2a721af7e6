"""The Train page with 3,000 junk files in a learner's runs folder (issue 15, the breaker's K4), checkouts side by side.

Not a test: ``nice -n 19 python benchmarks/junk_runs_page.py [CHECKOUT ...]`` from the repository root; each
CHECKOUT (e.g. ``/tmp/before`` after ``git archive <commit> | tar -x -C /tmp/before``) is run beside this one.

For each checkout, in a fresh process: a learner folder with 3,000 one-byte files named ``x00000.npz``... and one
good run; the Train page (AppTest, no Dask cluster) is run three times in one session. Printed: seconds per page run
(the script run on the server; the browser's drawing of the alerts comes on top) and the number of warnings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JUNK = 3000
RUNS = 3


def _one(code: str) -> None:
    """Build the folder and time the page with the code at ``code`` (in this process)."""
    sys.path.insert(0, code)
    root = tempfile.mkdtemp(prefix="junk_runs_")
    os.environ.update(CONVVIZ_RUNS_DIR=root, CONVVIZ_DASK_SCHEDULER="not-a-scheduler")
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore

    store = RunStore(Path(root) / "learner0junk1")
    store.root.mkdir(parents=True)
    for i in range(JUNK):
        (store.root / f"x{i:05d}.npz").write_bytes(b"x")
    config = {"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": 1, "batch_size": 512,
              "learning_rate": 1e-3, "seed": 0}
    history = {"batch_loss": [2.3] * 10, "batch_accuracy": [0.1] * 10, "epoch_test_loss": [0.9],
               "epoch_test_accuracy": [0.5], "epoch": 1, "batch": 10, "batches_per_epoch": 10, "epochs": 1,
               "samples_per_second": 100.0, "elapsed_s": 5.0, "eta_s": 0.0, "status": "finished", "error": None}
    store.save(store.new_run_id("fast"), ScratchCNN(make_spec("fast", filters=(4, 8)), seed=0), preset="fast",
               dataset="the bundled sample", config=config, history=history)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(code) / "app_pages" / "3_Train.py"), default_timeout=300)
    at.query_params["learner"] = "learner0junk1"
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    print(f"| {code} | {' / '.join(f'{t:.2f}' for t in times)} | {len(at.warning):,} | {bool(at.exception)} |")


def main(codes: list[str]) -> None:
    print(f"| checkout | Train page runs 1 / 2 / 3 (s) | warnings | exception |\n|---|---|---|---|")
    for code in [str(Path(__file__).resolve().parent.parent), *codes]:
        subprocess.run([sys.executable, __file__, "--one", code], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(sys.argv[2])
    else:
        main(sys.argv[1:])
