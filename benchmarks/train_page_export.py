"""Train page render time with the "Take your model home" downloads, and the cost of each download.

Renders ``app_pages/3_Train.py`` under Streamlit's AppTest with a runs folder of ``--runs`` saved runs (small
"fast" models) and the shipped model: the first run of the script (cold: TensorFlow, the runs list, each
model file read once), then ``--repeats`` reruns (warm), then reruns that each show another saved run
(that run's file read for the first time). ``--root`` points at another checkout (e.g. the commit before
the downloads) to compare the same figures before and after. In this tree it also times the files
themselves: the weights and the script (what a first render adds per model) and the ``.keras`` file (made
on click: cold, then cached).

Usage:
    python benchmarks/train_page_export.py                         # this tree
    git archive dc4e884 | tar -x -C /tmp/before && python benchmarks/train_page_export.py --root /tmp/before

Timings on a shared machine drift: compare runs side by side and quote ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _file_costs(export) -> str:
    """What each download of the shipped model costs: the weights and the script together, then the .keras file."""
    from convviz.model import DEFAULT_MODEL_PATH, load_model

    shipped = load_model(DEFAULT_MODEL_PATH)
    start = time.perf_counter()
    for _ in range(10):
        export.weights_npz(shipped)
        export.keras_script(shipped.spec, stem="convviz_default")
    files = (time.perf_counter() - start) / 10
    start = time.perf_counter()
    first = export.keras_file(shipped)
    keras_first = time.perf_counter() - start
    start = time.perf_counter()
    export.keras_file(shipped)
    keras_again = time.perf_counter() - start
    return (f"shipped model: weights .npz + script {files * 1000:.0f} ms; .keras ({len(first) / 1e3:.0f} kB) "
            f"{keras_first:.2f} s the first time in a process, {keras_again:.2f} s the next "
            "(the page caches it by the weights' content: a repeated click costs nothing)")


def _save_runs(folder: Path, learner: str, count: int) -> list[str]:
    """``count`` small finished runs of the "fast" preset in ``learner``'s runs folder; their ids."""
    from convviz.jobs import SAMPLE_LABEL
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore

    store = RunStore(folder / learner)
    ids = []
    for index in range(count):
        model = ScratchCNN(make_spec("fast", filters=(8, 16)), seed=index)
        history = {"batch_loss": [2.3, 2.0], "batch_accuracy": [0.1, 0.3], "epoch_test_loss": [1.0],
                   "epoch_test_accuracy": [0.7], "epoch": 1, "batch": 2, "batches_per_epoch": 2, "epochs": 1,
                   "samples_per_second": 100.0, "elapsed_s": 1.0, "eta_s": 0.0, "status": "finished", "error": None}
        run_id = store.new_run_id("fast")
        store.save(run_id, model, preset="fast", dataset=SAMPLE_LABEL, config={"epochs": 1}, history=history,
                   name=f"Run {index + 1}")
        ids.append(run_id)
    return ids


def _time_downloads(spent: list[float]) -> bool:
    """Wrap ``convviz.ui.export.downloads`` so each call's seconds go to ``spent``; False for a tree without it."""
    try:
        import convviz.ui.export as export_ui
    except ImportError:
        return False
    drawn = export_ui.downloads

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return drawn(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    export_ui.downloads = timed  # the page calls it through the module
    return True


def _measure_page(root: Path, learner: str, ids: list[str], repeats: int, spent: list[float]) -> dict:
    """The Train page in AppTest: its first render, ``repeats`` warm reruns and showing each other saved run, seconds
    (``spent``: the downloads sections' share of each)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(root / "app_pages" / "3_Train.py"), default_timeout=300)
    at.query_params["learner"] = learner
    start = time.perf_counter()
    at.run()
    cold = time.perf_counter() - start
    assert not at.exception, at.exception
    cold_spent, warm_spent = sum(spent), []
    warm = []
    for _ in range(repeats):
        spent.clear()
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
        warm_spent.append(sum(spent))
    switch = []
    for run_id in sorted(ids)[:-1]:  # the list shows the newest id first
        at.selectbox(key="runs_choice").set_value(run_id)
        start = time.perf_counter()
        at.run()
        switch.append(time.perf_counter() - start)
    return {"cold": cold, "warm": warm, "switch": switch, "cold_spent": cold_spent, "warm_spent": warm_spent,
            "buttons": len(at.get("download_button"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the checkout to measure")
    parser.add_argument("--runs", type=int, default=3, help="saved runs in the folder")
    parser.add_argument("--repeats", type=int, default=5, help="warm reruns")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    folder = Path(tempfile.mkdtemp(prefix="convviz-bench-runs-"))
    os.environ["CONVVIZ_RUNS_DIR"] = str(folder)
    os.environ.setdefault("CONVVIZ_MNIST", "/nonexistent.npz")  # no download attempt

    learner = "learner0bench1"
    ids = _save_runs(folder, learner, args.runs)
    files_line = None
    try:  # first, before the page starts its Dask cluster (its workers import TensorFlow and take the CPU)
        from convviz import export

        files_line = _file_costs(export)
    except ImportError:  # a checkout from before the downloads
        pass
    spent = []  # seconds in the downloads sections, per call (a tree that has them)
    measured = _time_downloads(spent)
    m = _measure_page(root, learner, ids, args.repeats, spent)
    warm, switch = m["warm"], m["switch"]
    print(f"tree: {root}")
    print(f"Train page, {args.runs} saved runs: first render {m['cold']:.2f} s; warm rerun median "
          f"{statistics.median(warm) * 1000:.0f} ms (min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f}); "
          f"showing another run (first time) median {statistics.median(switch) * 1000:.0f} ms; "
          f"{m['buttons']} download buttons")
    if measured:
        print(f"of which the two downloads sections: first render {m['cold_spent'] * 1000:.0f} ms (each model file "
              f"read once), warm rerun median {statistics.median(m['warm_spent']) * 1000:.0f} ms")
    if files_line:
        print(files_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
