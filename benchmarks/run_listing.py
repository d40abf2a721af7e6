"""What listing a learner's runs costs with legal-size metadata that was slow (issue 15, kind 2), before and after.

Not a test: run ``nice -n 19 python benchmarks/run_listing.py`` from the repository root.

Each case is a learner folder built in a temporary folder: one small good run beside

* ``padded``: metadata padded with spaces to 23,990,000 characters (under the old ``MAX_METADATA_CHARS``);
* ``many_keys``: metadata with a million extra keys (within the old value count);
* ``long_string``: metadata with a 23,990,000-character string;
* ``run_50x7500``: a run of 50 epochs x 7,500 batches (the Train page's longest setting), as written now (its
  per-batch values in float64 members) and, for "before", as written before (the whole history in the metadata);
* ``30_runs``: thirty ordinary runs (3 epochs of 94 batches each).

For each it prints, side by side, the seconds and the peak memory (``tracemalloc``, MB) of

* ``before``: each file read as ``list_runs`` read it before this change (the metadata member whole, within
  ``MODEL_LIMITS``, parsed and checked; the 50 x 7,500 run in the layout written before);
* ``after``: ``RunStore.list_runs(batches=False)`` now, as the Train page's table reads (the metadata member read
  piece by piece, refused once more than
  ``MAX_RUN_METADATA_CHARS`` is held; no per-batch member read; a file written before has its per-batch lists checked
  as they stream by and not kept: the ``older file`` row).

Then the Train page's first load (AppTest, a fresh session, Streamlit's caches cleared, TensorFlow already imported
by a warm-up render; no Dask cluster) with the 50 x 7,500 run (the newest, so the run shown, curves and all) written
before and now, in a fresh process each,
with this checkout's code and with each checkout named on the command line (``python benchmarks/run_listing.py
/tmp/main`` after ``git archive main | tar -x -C /tmp/main``: the code before this change).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEARNER = "benchlearner2"
GOOD = "20260102-000000-fast-a00001"
BAD = "20260101-000000-fast-b00001"
LONG = "20260103-000000-fast-a00002"  # the newest: the run the Train page shows first
CONFIG = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 50, "batch_size": 8,
          "learning_rate": 0.001, "seed": 0}


def _history(batches: int, epochs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    loss = (2.3 / (1 + np.arange(batches) / 1000) * rng.uniform(0.8, 1.2, batches)).astype(np.float32)
    accuracy = np.minimum(0.99, 0.1 + np.arange(batches) / max(1, batches)).astype(np.float32)
    return {"batch_loss": [float(v) for v in loss], "batch_accuracy": [float(v) for v in accuracy],
            "epoch_test_loss": [0.1] * epochs, "epoch_test_accuracy": [0.97] * epochs, "epoch": epochs,
            "batch": batches, "batches_per_epoch": batches // epochs, "epochs": epochs, "samples_per_second": 500.0,
            "elapsed_s": 100.0, "eta_s": None, "status": "finished", "error": None}


def _members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)


def _npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def _save(store, run_id, history):
    from convviz.model import ScratchCNN, make_spec

    model = ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)
    return store.save(run_id, model, preset="fast", dataset="Bundled sample", config=CONFIG, history=history,
                      name="Run 1")


def _old_layout(path, run_id) -> None:
    """Rewrite the run at ``path`` as ``run_id`` in the layout written before: the whole history in the metadata."""
    import numpy as np

    from convviz.runs import HISTORY_MEMBERS

    members = _members(path)
    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(members["metadata.npy"]))))
    meta.pop("batch_history")
    meta["run_id"] = run_id
    for key, member in HISTORY_MEMBERS.items():
        meta["history"][key] = np.lib.format.read_array(io.BytesIO(members.pop(f"{member}.npy"))).tolist()
    members["metadata.npy"] = _npy(np.array(json.dumps(meta)))
    _write(path.with_name(f"{run_id}.npz"), members)


def _bad_metadata(store, case: str) -> None:
    import numpy as np

    members = _members(store.path(GOOD))
    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(members["metadata.npy"]))))
    meta["run_id"] = BAD
    size = 23_990_000
    if case == "padded":
        text = json.dumps(meta)[:-1] + " " * (size - len(json.dumps(meta))) + "}"
    elif case == "many_keys":
        text = json.dumps(dict(meta, **{f"k{i}": 0 for i in range(1_000_000)}))
    else:
        text = json.dumps(dict(meta, notes="x" * size))
    members["metadata.npy"] = _npy(np.array(text))
    _write(store.path(BAD), members)


def _measure(action) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        action()
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, peak / 2**20


def _before(store) -> None:
    """What ``list_runs`` did with each file before this change: the metadata member read whole (within
    ``MODEL_LIMITS``), its values counted, parsed, and the history and settings checked."""
    from convviz.npzfile import MAX_METADATA_CHARS, MODEL_LIMITS, parse_json, read_npz
    from convviz.runs import MAX_METADATA_VALUES, check_history, check_settings

    for path in sorted(store.root.glob("*.npz")):
        try:
            text = read_npz(path, "run", keys=["metadata"], limits=MODEL_LIMITS)["metadata"]
            meta = parse_json(text, "its metadata", max_chars=MAX_METADATA_CHARS, max_values=MAX_METADATA_VALUES)
            check_history(meta.get("history") or {}, "metadata['history']")
            check_settings(meta["config"], "metadata['config']")
        except ValueError:
            pass


def _folder(root: Path, case: str):
    from convviz.runs import RunStore

    store = RunStore(root / case / LEARNER)
    if case == "30_runs":
        for i in range(30):
            _save(store, f"20260102-0000{i:02d}-fast-a000{i:02d}", _history(282, 3))
        return store, store
    _save(store, GOOD, _history(3, 1))
    if case == "run_50x7500":
        history = _history(375_000, 50)
        _save(store, LONG, history)
        old = RunStore(root / "old" / LEARNER)
        _save(old, GOOD, _history(3, 1))
        _save(old, LONG, history)
        _old_layout(old.path(LONG), LONG)  # the same run as written before
        return store, old
    _bad_metadata(store, case)
    return store, store


def _first_page_loads(code: Path, warm: Path, runs: Path) -> float:
    """In a fresh process running the code checked out at ``code``: a warm-up render (``warm``), then the Train
    page's first load with the runs root ``runs``; returns its seconds."""
    import subprocess

    script = (f"import sys, time; sys.path.insert(0, {str(code)!r})\n"
              "import os\n"
              "from streamlit.testing.v1 import AppTest\n"
              "def load(root):\n"
              "    os.environ['CONVVIZ_RUNS_DIR'] = root\n"
              f"    at = AppTest.from_file({str(code / 'app_pages' / '3_Train.py')!r}, default_timeout=300)\n"
              f"    at.query_params['learner'] = {LEARNER!r}\n"
              "    start = time.perf_counter(); at.run(); elapsed = time.perf_counter() - start\n"
              "    assert not at.exception, [e.value for e in at.exception]\n"
              "    return elapsed\n"
              f"load({str(warm)!r})\n"
              f"print(load({str(runs)!r}))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=code, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, CONVVIZ_DASK_SCHEDULER="not-a-scheduler"))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main(codes: list) -> None:
    """Print the listing table, then the first page loads (for each checkout in ``codes``)."""
    os.environ["CONVVIZ_DASK_SCHEDULER"] = "not-a-scheduler"
    print(f"{'case':<12} {'before_s':>9} {'before_MB':>10} {'after_s':>8} {'after_MB':>9}  after: listed / skipped")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pages = {}
        for case in ("padded", "many_keys", "long_string", "run_50x7500", "30_runs"):
            store, old = _folder(root, case)
            before_s, before_mb = _measure(lambda: _before(old))
            result = {}
            after_s, after_mb = _measure(lambda: result.update(zip(("records", "skipped"),
                                                                   store.list_runs(batches=False))))
            skipped = "; ".join(s.reason.split(": ", 1)[-1][:70] for s in result["skipped"]) or "-"
            print(f"{case:<12} {before_s:>9.2f} {before_mb:>10.1f} {after_s:>8.3f} {after_mb:>9.2f}  "
                  f"{len(result['records'])} / {skipped}")
            if case == "run_50x7500":
                pages = {"now": store.root.parent, "before": old.root.parent}
                after_s, after_mb = _measure(lambda: result.update(zip(("records", "skipped"),
                                                                       old.list_runs(batches=False))))
                print(f"{'  older file':<12} {'':>9} {'':>10} {after_s:>8.3f} {after_mb:>9.2f}  "
                      f"{len(result['records'])} / {len(result['skipped'])} (the same run written before, listed now)")
        warm = root / "30_runs"  # the warm-up render: imports TensorFlow and Streamlit's page machinery
        for label, folder in (("before", pages["before"]), ("now", pages["now"])):
            for code in codes:
                print(f"Train page first load, 50 x 7,500 run written {label}, code {code}: "
                      f"{_first_page_loads(code, warm, folder):.2f} s")


if __name__ == "__main__":
    # optional: another checkout (e.g. `git archive main | tar -x -C /tmp/main`) whose Train page is timed too
    codes = [ROOT] + [Path(p).resolve() for p in sys.argv[1:]]
    main(codes)
