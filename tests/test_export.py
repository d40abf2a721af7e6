"""Take the model home: the generated Keras script and the .keras file compute what ConvViz's model computes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from convviz import export
from convviz.data import load_mnist, load_sample
from convviz.model import DEFAULT_MODEL_PATH, ScratchCNN, load_model, make_spec

TOLERANCE = 1e-5  # probabilities


@pytest.fixture(scope="module")
def digits():
    """1,000 test digits as float32 (1000, 28, 28) in [0, 1]: full MNIST's when CONVVIZ_MNIST is set, else the sample's."""
    if os.environ.get("CONVVIZ_MNIST"):
        (_, _), (x, _) = load_mnist(os.environ["CONVVIZ_MNIST"], download=False)
    else:
        (_, _), (x, _) = load_sample()
    assert len(x) >= 1000
    return x[:1000].astype(np.float32) / 255.0


def _run_script(model, tmp_path, digits, stem="convviz_model"):
    """Write the weights and the script into tmp_path, run the script on ``digits``; its probabilities."""
    (tmp_path / f"{stem}.npz").write_bytes(export.weights_npz(model))
    script = tmp_path / f"{stem}_keras.py"
    script.write_text(export.keras_script(model.spec, stem=stem, title="A test model", source="tests/test_export.py"))
    np.save(tmp_path / "digits.npy", digits)
    result = subprocess.run([sys.executable, script.name, "--images", "digits.npy", "--save-probabilities", "p.npy"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(digits)} digits in all" in result.stdout
    return np.load(tmp_path / "p.npy")


def _load_keras(model, tmp_path):
    import keras

    path = tmp_path / "model.keras"
    path.write_bytes(export.keras_file(model))
    return keras.models.load_model(path)


def _agree(ours, theirs, exact_labels=True):
    assert theirs.shape == ours.shape
    assert np.max(np.abs(theirs - ours)) <= TOLERANCE
    if exact_labels:
        assert np.array_equal(theirs.argmax(axis=1), ours.argmax(axis=1))
    else:  # an untrained model may have near ties: the labels must agree wherever the top two differ clearly
        top2 = np.sort(ours, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCE
        assert clear.mean() > 0.9
        assert np.array_equal(theirs.argmax(axis=1)[clear], ours.argmax(axis=1)[clear])


def test_the_script_of_the_shipped_model_predicts_as_convviz_on_1000_digits(tmp_path, digits):
    model = load_model(DEFAULT_MODEL_PATH)
    _agree(model.predict(digits), _run_script(model, tmp_path, digits, stem="convviz_default"))


def test_the_keras_file_of_the_shipped_model_loads_and_predicts_as_convviz(tmp_path, digits):
    model = load_model(DEFAULT_MODEL_PATH)
    loaded = _load_keras(model, tmp_path)
    assert [layer.name for layer in loaded.layers] == ["conv1", "pool1", "conv2", "pool2", "flatten", "dropout",
                                                       "dense", "softmax"]
    _agree(model.predict(digits), loaded.predict(digits[..., None], batch_size=1000, verbose=0))


def test_the_script_predicts_a_picture_dark_on_light_as_convviz_does(tmp_path, digits):
    from PIL import Image

    model = load_model(DEFAULT_MODEL_PATH)
    stem = "convviz_default"
    (tmp_path / f"{stem}.npz").write_bytes(export.weights_npz(model))
    (tmp_path / f"{stem}_keras.py").write_text(export.keras_script(model.spec, stem=stem))
    picture = Image.fromarray((255 - digits[0] * 255).round().astype(np.uint8)).resize((56, 56))  # ink dark, 2x
    picture.save(tmp_path / "digit.png")
    seen = 1.0 - np.asarray(picture.convert("L").resize((28, 28)), dtype=np.float32) / 255.0  # the script's way
    probabilities = model.predict(seen[None])[0]
    result = subprocess.run([sys.executable, f"{stem}_keras.py", "--image", "digit.png"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"image 1: predicted {probabilities.argmax()} ({probabilities.max():.1%})" in result.stdout
    assert probabilities.argmax() == model.predict(digits[:1])[0].argmax()


SPECS = {
    "seed": make_spec("seed", filters=(4, 8)),
    "fast-k5": make_spec("fast", filters=(6, 8), kernel_size=5, dropout=0.25),
    "padding-dilation-strides": [
        {"type": "conv2d", "name": "conv1", "filters": 4, "kernel_size": 3, "padding": 2, "dilation_rate": 2,
         "activation": "leaky_relu"},
        {"type": "conv2d", "name": "conv1_pad", "filters": 5, "kernel_size": [3, 2], "strides": [2, 1],
         "padding": "same", "activation": "sigmoid"},
        {"type": "maxpool2d", "name": "pool", "pool_size": 3, "strides": 2},
        {"type": "conv2d", "name": "image", "filters": 6, "kernel_size": 2, "padding": 1, "dilation_rate": [1, 2],
         "activation": "softmax"},
        {"type": "flatten", "name": "flatten"},
        {"type": "dense", "name": "hidden", "units": 16, "activation": "relu"},
        {"type": "dropout", "name": "drop", "rate": 0.0},
        {"type": "dense", "name": "dense", "units": 10},
    ],
}


@pytest.mark.parametrize("name", list(SPECS))
def test_script_and_keras_file_match_for_each_spec(name, tmp_path, digits):
    model = ScratchCNN(SPECS[name], seed=3)
    ours = model.predict(digits)
    _agree(ours, _run_script(model, tmp_path, digits), exact_labels=False)
    _agree(ours, _load_keras(model, tmp_path).predict(digits[..., None], batch_size=1000, verbose=0),
           exact_labels=False)


def test_integer_padding_is_a_zero_padding_layer_with_a_name_of_its_own():
    plan = export.keras_plan(SPECS["padding-dilation-strides"])
    names = [(layer.keras_class, layer.kwargs["name"]) for layer in plan]
    # conv1's padding layer cannot be "conv1_pad": the spec has a layer of that name
    assert names[:3] == [("ZeroPadding2D", "conv1_pad_2"), ("Conv2D", "conv1"), ("Conv2D", "conv1_pad")]
    assert plan[0].kwargs["padding"] == ((2, 2), (2, 2)) and plan[1].kwargs["padding"] == "valid"
    assert plan[0].shape == (32, 32, 1) and plan[1].shape == (28, 28, 4)
    assert plan[2].kwargs["padding"] == "same" and plan[2].kwargs["strides"] == (2, 1)
    assert names[-1] == ("Softmax", "softmax") and len({n for _, n in names}) == len(names)
    script = export.keras_script(SPECS["padding-dilation-strides"])
    assert 'keras.Input(shape=(28, 28, 1), name="image_2")' in script  # "image" is a layer of the spec


def test_the_plan_matches_the_model_shapes_and_weights():
    model = ScratchCNN(SPECS["fast-k5"], seed=0)
    plan = export.keras_plan(model.spec)
    shapes = model.output_shapes
    assert all(layer.shape == shapes[layer.source] for layer in plan if layer.source)
    assert sorted(key for layer in plan for key in layer.weights) == sorted(model.weights())


@pytest.mark.parametrize("strides, dilation", [(2, 2), ([1, 2], [2, 1])])
def test_a_convolution_keras_cannot_express_is_refused_by_name(strides, dilation):
    spec = [{"type": "conv2d", "name": "wide", "filters": 2, "kernel_size": 3, "strides": strides,
             "dilation_rate": dilation},
            {"type": "flatten", "name": "flatten"}, {"type": "dense", "name": "dense", "units": 10}]
    model = ScratchCNN(spec, seed=0)  # a valid ConvViz model
    for call in (lambda: export.keras_plan(spec), lambda: export.keras_script(spec), lambda: export.keras_file(model)):
        with pytest.raises(ValueError, match=r"layer 'wide': Keras's Conv2D cannot combine strides > 1 with "
                                             r"dilation_rate > 1, got strides=\(\d, \d\), dilation_rate=\(\d, \d\)"):
            call()
    assert export.weights_npz(model)  # its weights still export


def test_the_weights_file_is_the_models_own_format(tmp_path):
    model = ScratchCNN(SPECS["seed"], seed=1)
    path = tmp_path / "w.npz"
    path.write_bytes(export.weights_npz(model))
    again = load_model(path)
    assert again.spec == model.spec
    assert all(np.array_equal(again.weights()[k], v) for k, v in model.weights().items())


@pytest.mark.parametrize("stem", ["../evil", "", ".hidden", "a b", "x" * 101, None])
def test_a_bad_file_stem_is_refused(stem):
    with pytest.raises(ValueError, match="stem must be"):
        export.keras_script(make_spec("seed"), stem=stem)


@pytest.mark.parametrize("title", ['Run """ + __import__("os").getcwd() + """', "two\nlines \\ back", "x" * 300,
                                   "", None, '"'])
def test_a_learners_run_name_cannot_break_out_of_the_docstring(title):
    text = export.keras_script(make_spec("seed"), title=title, source=title)
    compile(text, "script.py", "exec")
    docstring = text[: text.index("import argparse")]
    namespace = {}
    exec(compile(docstring, "docstring", "exec"), namespace)  # the docstring alone: one string, nothing run
    assert set(namespace) <= {"__builtins__", "__doc__"} and namespace["__doc__"].startswith(("Run", "two", "x", "A ConvViz"))
    assert docstring.count('"""') == 2 and len(docstring.splitlines()[0]) < 300


def test_the_script_is_valid_python_with_its_usage_example():
    text = export.keras_script(make_spec("fast"), stem="convviz_run-3", title="Run 3", source="run 20260101")
    compile(text, "convviz_run-3_keras.py", "exec")
    assert "from convviz_run_3_keras import build_model, load_weights, load_image" in text
    assert 'WEIGHTS = Path(__file__).with_name("convviz_run-3.npz")' in text
    assert "model.predict(load_image(" in text and "keras.layers.Conv2D(" in text
    assert "tf.nn" not in text
