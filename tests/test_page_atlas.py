"""AppTest of the Filter atlas page: the shipped model's atlas from its file, a saved run's computed with a progress
bar and kept, the layer, filter and model switched by widget key, a model without conv2, corrupt files."""

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import plotly_values, rerun, run_page, runs_folder

from convviz import atlas as atlas_lib
from convviz.data import load_sample
from convviz.model import DEFAULT_MODEL_PATH, ScratchCNN, load_model, make_spec
from convviz.ui import atlas as ui
from convviz.ui import training as tr

PAGE = Path(__file__).resolve().parent.parent / "app_pages" / "6_Filter_Atlas.py"
LEARNER = "learner0atlas1"


@pytest.fixture
def runs(monkeypatch, tmp_path):
    return runs_folder(monkeypatch, tmp_path, LEARNER)


@pytest.fixture(scope="module")
def shipped_atlas():
    """A quick atlas of the shipped model (a few ascent steps, 60 sample digits), as a file would hold it."""
    (_, _), (x, y) = load_sample()
    model = load_model(DEFAULT_MODEL_PATH)
    return atlas_lib.compute_atlas(model, x[:60], y[:60], "60 digits of a test", atlas_lib.AscentSettings(steps=4))


def _page() -> AppTest:
    return run_page(PAGE, timeout=120, query_params={"learner": LEARNER})


def _charts(at) -> dict:
    """``chart key -> Plotly JSON`` of the page's charts."""
    found = {}
    for el in at.get("plotly_chart"):
        for key in ("atlas_fig_patches", "atlas_fig_synth", "atlas_fig_filter", "atlas_fig_classes"):
            if key in el.proto.id:
                found[key] = json.loads(el.proto.spec)
    return found


def _progress(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def _until_atlas(at, timeout=240.0) -> AppTest:
    """Rerun the page until the atlas is on it (the computation runs in the background meanwhile)."""
    deadline = time.monotonic() + timeout
    while "atlas_fig_classes" not in _charts(at):
        assert time.monotonic() < deadline, "the atlas was not computed in time"
        time.sleep(0.5)
        rerun(at)
    return at


def _points(chart) -> int:
    """How many patches (or images) a grid figure labels: its hover markers."""
    return len(plotly_values(chart["data"][1]["x"]))


def _small_run(store, spec=None, name="Run 1") -> str:
    model = ScratchCNN(spec or make_spec("fast", filters=(4, 8)), seed=0)
    run_id = store.new_run_id("fast")
    store.save(run_id, model, preset="fast", dataset=tr.SAMPLE_LABEL, name=name,
               config={"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": 1, "batch_size": 512,
                       "learning_rate": 1e-3, "seed": 0},
               history={"epoch": 1, "epoch_test_accuracy": [0.5], "epoch_test_loss": [1.0], "status": "finished"})
    return run_id


def test_the_shipped_models_atlas_is_read_from_its_file_and_layer_and_filter_switch(runs, shipped_atlas):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    at = _page()
    assert not _progress(at)  # nothing to compute
    charts = _charts(at)
    assert set(charts) == {"atlas_fig_patches", "atlas_fig_synth", "atlas_fig_filter", "atlas_fig_classes"}
    assert any("60 digits of a test" in c.value for c in at.caption)
    assert at.radio(key="atlas_layer").options == ["conv1 (32 filters)", "conv2 (64 filters)"]
    assert "conv1" in charts["atlas_fig_patches"]["layout"]["title"]["text"]
    assert _points(charts["atlas_fig_patches"]) == 32 * 9
    assert any("conv1 (3×3): 1 + (3 − 1)·1 = **3**" in m.value for m in at.caption)
    first = shipped_atlas.layers["conv1"].patches.values[0]  # filter 0, shown whole: its nine may all tie
    tie_note = [c.value for c in at.caption if "tie at" in c.value]
    assert tie_note == ([f"All 9 shown tie at {first[0]:.2f}: more test digits may drive this filter just as hard (a "
                         "fully inked patch often does); tied digits are shown in test-set order."]
                        if first[0] == first[-1] else [])

    at = rerun(at.radio(key="atlas_layer").set_value("conv2"))
    charts = _charts(at)
    title = charts["atlas_fig_patches"]["layout"]["title"]["text"]
    assert "conv2" in title and "8×8" in title and _points(charts["atlas_fig_patches"]) == 64 * 9
    assert any("conv2 (3×3): 4 + (3 − 1)·2 = **8**" in m.value for m in at.caption)
    assert "conv2 filter 0" in charts["atlas_fig_filter"]["layout"]["title"]["text"]

    at = rerun(at.selectbox(key="atlas_filter_conv2").set_value(5))
    filter_chart = _charts(at)["atlas_fig_filter"]
    assert "conv2 filter 5" in filter_chart["layout"]["title"]["text"]
    values = [a["text"] for a in filter_chart["layout"]["annotations"][:9]]
    assert values == [f"{v:.2f}" for v in shipped_atlas.layers["conv2"].patches.values[5]]


def test_a_saved_run_is_computed_with_a_progress_bar_then_kept(runs, shipped_atlas):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    run_id = _small_run(runs)
    at = _page()
    assert _points(_charts(at)["atlas_fig_patches"]) == 32 * 9  # the shipped model first

    at = rerun(at.selectbox(key="atlas_model").set_value(run_id))
    assert _progress(at) and "Computing the atlas" in _progress(at)[0]
    assert "atlas_fig_patches" not in _charts(at)
    _until_atlas(at)
    charts = _charts(at)
    assert _points(charts["atlas_fig_patches"]) == 4 * 9 and not _progress(at)
    searched = re.compile(r"Patches searched in the [\d,]+ (digits of the full MNIST test set|test digits of the "
                          r"bundled MNIST sample \(the full MNIST is not available on this server\))")
    assert any("Run 1" in c.value and searched.search(c.value) for c in at.caption)
    kept = atlas_lib.load_atlas(runs.atlas_path(run_id), runs.load(run_id)[0])  # the file, checked
    assert list(kept.layers) == ["conv1", "conv2"] and kept.layers["conv2"].filters == 8

    again = _page()  # another session: from this server's memory, nothing computed
    again = rerun(again.selectbox(key="atlas_model").set_value(run_id))
    assert not _progress(again) and _points(_charts(again)["atlas_fig_patches"]) == 4 * 9

    at = rerun(at.selectbox(key="atlas_model").set_value(ui.SHIPPED))  # and back
    assert _points(_charts(at)["atlas_fig_patches"]) == 32 * 9

    runs.delete(run_id)  # deleting the run deletes its atlas
    assert not runs.atlas_path(run_id).exists()


def test_a_model_without_conv2_shows_conv1_and_says_conv2_is_missing(runs, shipped_atlas):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    spec = [{"type": "conv2d", "name": "conv1", "filters": 3, "kernel_size": 5, "activation": "relu"},
            {"type": "maxpool2d", "name": "pool1", "pool_size": 2},
            {"type": "flatten", "name": "flatten"}, {"type": "dense", "name": "dense", "units": 10}]
    run_id = _small_run(runs, spec)
    at = _page()
    at = _until_atlas(rerun(at.selectbox(key="atlas_model").set_value(run_id)))
    assert any("no conv2" in w.value and "conv1" in w.value for w in at.warning)
    assert at.radio(key="atlas_layer").options == ["conv1 (3 filters)"]
    charts = _charts(at)
    assert _points(charts["atlas_fig_patches"]) == 3 * 9
    assert "5×5" in charts["atlas_fig_patches"]["layout"]["title"]["text"]


def test_corrupt_run_files_get_a_clear_message_and_are_left_as_they_are(runs, shipped_atlas):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    runs.root.mkdir(parents=True)
    junk = runs.root / "20260101-000000-fast-abcdef.npz"
    junk.write_bytes(b"PK\x03\x04 this is no zip archive" * 10)
    broken = _small_run(runs, name="Run 2")
    with np.load(runs.path(broken), allow_pickle=False) as f:
        arrays = dict(f)
    arrays["conv1/kernel"] = arrays["conv1/kernel"].copy()
    arrays["conv1/kernel"][0, 0, 0, 0] = np.nan  # the metadata lists fine; the weights do not load
    np.savez_compressed(runs.path(broken), **arrays)
    before = {p.name: p.read_bytes() for p in runs.root.iterdir()}

    at = _page()
    assert any(junk.name in w.value and "left as it is" in w.value for w in at.warning)
    assert "atlas_fig_classes" in _charts(at)  # the shipped model still shown
    at = rerun(at.selectbox(key="atlas_model").set_value(broken))
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Run 2 cannot be shown" in errors[0]
    assert "NaN" in errors[0] and "left as it is" in errors[0]
    assert not _charts(at) and not _progress(at)
    assert {p.name: p.read_bytes() for p in runs.root.iterdir()} == before  # nothing written, nothing lost


def test_a_corrupt_atlas_file_is_computed_again_and_replaced(runs, shipped_atlas):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    run_id = _small_run(runs)
    runs.atlas_path(run_id).write_bytes(b"not an atlas")
    at = _page()
    at = rerun(at.selectbox(key="atlas_model").set_value(run_id))
    assert any("could not be used, so it is computed again" in i.value for i in at.info)
    _until_atlas(at)
    atlas_lib.load_atlas(runs.atlas_path(run_id), runs.load(run_id)[0])  # replaced by a valid one


def test_an_atlas_that_cannot_be_saved_is_shown_and_kept_in_memory(runs, shipped_atlas, monkeypatch):
    atlas_lib.save_atlas(shipped_atlas, runs.root.parent / ui.SHIPPED_CACHE)
    run_id = _small_run(runs)

    def read_only(*args, **kwargs):
        raise OSError("[Errno 30] Read-only file system")

    monkeypatch.setattr(atlas_lib, "save_atlas", read_only)
    at = _page()
    at = _until_atlas(rerun(at.selectbox(key="atlas_model").set_value(run_id)))
    assert any("memory only" in c.value and "Read-only file system" in c.value for c in at.caption)
    assert not runs.atlas_path(run_id).exists()
