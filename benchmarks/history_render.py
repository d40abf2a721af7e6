"""What a long training history costs the Train page, and what a history over the limit costs.

Not a test: run ``python benchmarks/history_render.py [repeats]`` from the repository root.

A saved run keeps a loss and an accuracy per batch; the Train page reads every run's metadata on each render
(``RunStore.list_runs``) and draws the chosen run's curves (thinned to ``MAX_CURVE_POINTS``). For a run of
375,000 batches (the page's longest: 50 epochs at batch size 8 on the full MNIST) and one of 2,300,000 (the
breaker's file, now over ``MAX_HISTORY_BATCHES`` and refused by its length before its numbers are read), this
prints, median over ``repeats`` (the 2.3 million batches are ``0.5`` / ``0.9``, as short as numbers get, so the
metadata fits under ``MAX_METADATA_CHARS`` and only the history's length refuses it):

* ``metadata_MB``: the run's metadata JSON;
* ``list_s``: ``RunStore.list_runs()`` on a folder holding that run and one small run;
* ``page_s``: a whole Train page render (AppTest, no Dask cluster: ``CONVVIZ_DASK_SCHEDULER`` set to a
  malformed address, so only the saved runs are drawn), the long run chosen when it is listed.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEARNER = "benchlearner1"
SMALL = "20260102-000000-fast-a00001"
LONG = "20260103-000000-fast-a00002"


def _history(n: int, short: bool = False) -> dict:
    """``n`` batches of six-decimal numbers, or of ``0.5`` / ``0.9`` (``short``: 2.3 million of those fit under
    ``MAX_METADATA_CHARS``, as in the breaker's file, so only the history's length can refuse it)."""
    if short:
        loss, accuracy = [0.5] * n, [0.9] * n
    else:
        loss = [round(2.3 / (1 + i / 1000), 6) for i in range(n)]
        accuracy = [round(min(0.99, 0.1 + i / n), 6) for i in range(n)]
    return {"batch_loss": loss, "batch_accuracy": accuracy,
            "epoch_test_loss": [0.1], "epoch_test_accuracy": [0.97], "epoch": 1, "batch": n, "batches_per_epoch": n,
            "epochs": 1, "samples_per_second": 500.0, "elapsed_s": 100.0, "eta_s": None, "status": "finished",
            "error": None}


def _folder(root: Path, n: int) -> float:
    """A learner folder with a small run and one of ``n`` batches; returns the long run's metadata size, MB."""
    import numpy as np

    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore

    store = RunStore(root / LEARNER)
    model = ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)
    config = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 1, "batch_size": 8,
              "learning_rate": 0.001, "seed": 0}
    store.save(SMALL, model, preset="fast", dataset="Bundled sample", config=config, history=_history(3))
    with zipfile.ZipFile(store.path(SMALL)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(members["metadata.npy"]))))
    meta.update(run_id=LONG, history=_history(n, short=n > 1_000_000))
    text = json.dumps(meta)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(text), allow_pickle=False)
    members["metadata.npy"] = buffer.getvalue()
    with zipfile.ZipFile(store.path(LONG), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return len(text) / 1e6


def main(repeats: int = 3) -> None:
    from streamlit.testing.v1 import AppTest

    from convviz.runs import RunStore

    print(f"{'batches':>10} {'metadata_MB':>12} {'listed':>7} {'list_s':>7} {'page_s':>7}")
    for n in (375_000, 2_300_000):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            size = _folder(root, n)
            store = RunStore(root / LEARNER)
            lists, pages = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                records, _ = store.list_runs()
                lists.append(time.perf_counter() - start)
            listed = LONG in {r.run_id for r in records}
            os.environ["CONVVIZ_RUNS_DIR"] = str(root)
            os.environ["CONVVIZ_DASK_SCHEDULER"] = "not-a-scheduler"
            at = AppTest.from_file(str(ROOT / "app_pages" / "3_Train.py"), default_timeout=300)
            at.query_params["learner"] = LEARNER
            at.run()  # the first render imports and warms up; not counted
            if listed:
                at.selectbox(key="runs_choice").set_value(LONG)
            for _ in range(repeats):
                start = time.perf_counter()
                at.run()
                pages.append(time.perf_counter() - start)
            assert not at.exception, [e.value for e in at.exception]
            print(f"{n:>10,} {size:>12.1f} {str(listed):>7} {statistics.median(lists):>7.2f} "
                  f"{statistics.median(pages):>7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
