"""AppTest of the Train page's "Take your model home": downloads for the shipped model and a saved run; a corrupt run warns."""

import io
import zipfile

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from test_page_runs import LEARNER, _page, _saved_run, runs  # noqa: F401  (runs: the fixture)

from convviz.model import load_model
from fuzz_files import _members, _npy, _zip


@pytest.fixture
def served(monkeypatch):
    """What the page hands to its download buttons: ``file name -> bytes`` (a deferred file: ``-> callable``)."""
    files = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        files[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)

    def record_deferred(self, data_callable, mimetype, coordinates, file_name=None, *, element_id=""):
        files[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, element_id=element_id)

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    return files


def _keys(at):
    return {b.proto.id for b in at.get("download_button")}


def _has(at, key):
    return any(i.endswith(key) for i in _keys(at))


def test_the_shipped_model_and_a_saved_run_can_be_taken_home(runs, served, tmp_path):
    run_id = _saved_run(runs)
    at = _page()
    for slot in ("default", "run"):
        for kind in ("npz", "py", "keras"):
            assert _has(at, f"export_{slot}_{kind}"), (slot, kind, _keys(at))
    stem = f"convviz_{run_id}"  # a run without a saved name has no number
    assert set(served) >= {"convviz_default.npz", "convviz_default_keras.py", "convviz_default.keras",
                           f"{stem}.npz", f"{stem}_keras.py", f"{stem}.keras"}
    # the weights: the model's own format, loadable, the run's weights
    (tmp_path / "w.npz").write_bytes(served[f"{stem}.npz"])
    assert load_model(tmp_path / "w.npz").weights().keys() == runs.load(run_id)[0].weights().keys()
    script = served[f"{stem}_keras.py"]
    script = script.decode() if isinstance(script, bytes) else script
    assert f'WEIGHTS = Path(__file__).with_name("{stem}.npz")' in script and "keras.layers.Conv2D(4," in script
    compile(script, "script.py", "exec")
    default_script = served["convviz_default_keras.py"]
    assert b"keras.layers.Conv2D(32," in (default_script if isinstance(default_script, bytes) else default_script.encode())
    # the .keras file is made only when clicked (deferred), then it is a Keras zip
    assert callable(served[f"{stem}.keras"])
    keras_bytes = served[f"{stem}.keras"]()
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())
    assert any("Take the shipped model home" in m.value for m in at.markdown)
    assert any("_keras.py --image digit.png" in c.value for c in at.caption)


def test_a_run_with_corrupt_weights_gets_a_message_and_the_rest_still_downloads(runs, served):
    good = _saved_run(runs)
    bad = _saved_run(runs)
    path = runs.path(bad)
    members = _members(path.read_bytes())
    members["conv1/kernel.npy"] = _npy(np.full((3, 3, 1, 4), np.nan, np.float32))  # the metadata stays readable
    path.write_bytes(_zip(list(members.items())))
    before = path.read_bytes()
    at = _page()
    assert at.selectbox(key="runs_choice").value == max(good, bad)
    at.selectbox(key="runs_choice").set_value(bad).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(bad in e and "cannot be downloaded" in e and "NaN" in e and "left as it is" in e for e in errors), errors
    assert not _has(at, "export_run_npz") and _has(at, "export_default_npz") and _has(at, "export_default_keras")
    assert path.read_bytes() == before  # nothing lost
    at.selectbox(key="runs_choice").set_value(good).run()
    assert not at.exception and not at.error
    assert _has(at, "export_run_npz") and _has(at, "export_run_keras")


def test_a_truncated_run_file_is_skipped_and_the_shipped_model_still_downloads(runs, served):
    run_id = _saved_run(runs)
    path = runs.path(run_id)
    path.write_bytes(path.read_bytes()[:200])
    at = _page()
    assert any(path.name in w.value and "left as it is" in w.value for w in at.warning)
    assert _has(at, "export_default_npz") and not _has(at, "export_run_npz")
    assert len(path.read_bytes()) == 200


def test_a_run_keras_cannot_express_offers_its_weights_only(runs, served):
    from convviz.model import ScratchCNN

    spec = [{"type": "conv2d", "name": "wide", "filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
            {"type": "flatten", "name": "flatten"}, {"type": "dense", "name": "dense", "units": 10}]
    run_id = _saved_run(runs)
    runs.save(run_id, ScratchCNN(spec, seed=0), preset="fast", dataset=runs.record(run_id).dataset,
              config=runs.record(run_id).config, history=runs.record(run_id).history)
    at = _page()
    warnings = [w.value for w in at.warning]
    assert any("Only the weights of" in w and "strides > 1 with dilation_rate > 1" in w for w in warnings), warnings
    buttons = {b.proto.id.split("export_run_")[-1]: b for b in at.get("download_button") if "export_run_" in b.proto.id}
    assert not buttons["npz"].proto.disabled and buttons["py"].proto.disabled and buttons["keras"].proto.disabled
    assert served[f"convviz_{run_id}.npz"]


def _stopped_mid_epoch(store, epochs_done, batch, bpe=10):
    """A run saved as a stop writes it: ``epochs_done`` finished epochs, then ``batch`` of ``bpe`` batches kept."""
    from convviz.model import ScratchCNN, make_spec
    from convviz.ui import training as ui

    model = ScratchCNN(make_spec("fast", filters=(4, 8)), seed=0)
    config = {"preset": "fast", "filters": [4, 8], "kernel_size": 3, "epochs": 3, "batch_size": 512,
              "learning_rate": 1e-3, "seed": 0}
    steps = bpe * epochs_done + batch
    history = {"batch_loss": [2.3 - 0.01 * i for i in range(steps)],
               "batch_accuracy": [0.1 + 0.005 * i for i in range(steps)],
               "epoch_test_loss": [0.9] * epochs_done, "epoch_test_accuracy": [0.8] * epochs_done,
               "epoch": epochs_done, "batch": batch, "batches_per_epoch": bpe, "epochs": 3,
               "samples_per_second": 100.0, "elapsed_s": 5.0, "eta_s": 0.0, "status": "stopped", "error": None,
               "final_test_loss": 0.7, "final_test_accuracy": 0.75}
    run_id = store.new_run_id("fast")
    store.save(run_id, model, preset="fast", dataset=ui.SAMPLE_LABEL, config=config, history=history)
    return run_id


@pytest.mark.parametrize("epochs_done, batch, said", [(0, 3, "after 3 of 10 batches of epoch 1"),
                                                      (2, 7, "after 7 of 10 batches of epoch 3"),
                                                      (2, 10, "after epoch 2")])
def test_a_run_stopped_mid_epoch_is_named_by_what_its_file_holds(runs, epochs_done, batch, said):
    """One fact, one wording: the downloads, the saved-runs list and the Draw page's model name what the checkpoint
    holds (the batches kept of the epoch it stopped in), never "after epoch 0" for weights trained 3 batches."""
    from convviz.ui import training as ui

    run_id = _stopped_mid_epoch(runs, epochs_done, batch)
    at = _page()
    take_home = [m.value for m in at.markdown if m.value.startswith("**Take ")]
    assert take_home and f"(its weights {said})" in take_home[0], take_home
    assert any(f"Weights saved {said}, last at" in c.value for c in at.caption), [c.value for c in at.caption]
    assert f"weights {said}, 75.00% test accuracy" in ui.draw_description(runs.record(run_id))
    text = " ".join(e.value for e in [*at.markdown, *at.caption] if isinstance(e.value, str))
    assert "after epoch 0" not in text and ("epoch(s) saved" not in text)


def test_weights_when_words_each_state():
    from convviz.ui.training import weights_when

    assert weights_when({"epoch": 0, "batch": 0, "batches_per_epoch": 469}) == "before any training"
    assert weights_when({"epoch": 0, "batch": 312, "batches_per_epoch": 469}) == "after 312 of 469 batches of epoch 1"
    assert weights_when({"epoch": 1, "batch": 469, "batches_per_epoch": 469}) == "after epoch 1"
    assert weights_when({"epoch": 1, "batch": 0, "batches_per_epoch": 469}) == "after epoch 1"
    assert weights_when({"epoch": 4, "batch": 1200, "batches_per_epoch": 1200}) == "after epoch 4"
    assert weights_when({"epoch": 3}) == "after epoch 3"  # an older file without batch counts
