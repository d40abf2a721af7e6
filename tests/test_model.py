"""convviz.model: specs and presets, forward pass, save / load, rejection of bad model files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from convviz.data import load_sample
from convviz.layers import Conv2D, Dense, Dropout
from convviz.model import (DEFAULT_MODEL_PATH, ARCHITECTURES, ScratchCNN, load_model, make_spec, validate_spec)


@pytest.fixture(scope="module")
def digits():
    (_, _), (x_test, y_test) = load_sample()
    return x_test[:64].astype(np.float32) / 255.0, y_test[:64]


@pytest.fixture(scope="module")
def small_model():
    return ScratchCNN.from_preset("fast", seed=3, filters=(4, 8))


def test_presets_build_the_documented_layers():
    assert set(ARCHITECTURES) == {"seed", "fast"}
    fast = ScratchCNN.from_preset("fast")
    assert [n for n, _ in fast.layers] == ["conv1", "pool1", "conv2", "pool2", "flatten", "dropout", "dense"]
    assert fast.output_shapes == {"conv1": (26, 26, 32), "pool1": (13, 13, 32), "conv2": (11, 11, 64),
                                  "pool2": (5, 5, 64), "flatten": (1600,), "dropout": (1600,), "dense": (10,)}
    assert fast.count_params() == 3 * 3 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 1600 * 10 + 10  # 34,826
    seed = ScratchCNN.from_preset("seed")
    assert [n for n, _ in seed.layers] == ["conv1", "conv2", "flatten", "dense"]
    assert seed.output_shapes["conv2"] == (24, 24, 64) and seed.output_shapes["flatten"] == (36864,)
    conv1 = dict(seed.layers)["conv1"]
    assert isinstance(conv1, Conv2D) and conv1.activation == "relu" and conv1.kernel.shape == (3, 3, 1, 32)
    assert isinstance(dict(seed.layers)["dense"], Dense)


def test_preset_options_filters_kernel_size_dropout():
    model = ScratchCNN.from_preset("fast", filters=(8, 16), kernel_size=5, dropout=0.25)
    assert model.output_shapes["conv1"] == (24, 24, 8) and model.output_shapes["conv2"] == (8, 8, 16)
    assert dict(model.layers)["dropout"].rate == 0.25
    assert ScratchCNN.from_preset("seed", filters=(2, 3), kernel_size=7).output_shapes["conv2"] == (16, 16, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "resnet"}, "unknown preset 'resnet'"),
    ({"preset": "fast", "filters": (32,)}, r"filters must be a pair .* filters=\(32,\)"),
    ({"preset": "fast", "filters": (0, 64)}, "filters must be >= 1, got filters=0"),
    ({"preset": "fast", "kernel_size": 0}, "kernel_size must be >= 1, got kernel_size=0"),
    ({"preset": "fast", "kernel_size": 11}, "layer 'conv2' .* spans 11 cells"),  # 28-10=18 -> 9 < 11
    ({"preset": "fast", "dropout": 1.0}, r"dropout must be in \[0, 1\), got dropout=1.0"),
])
def test_make_spec_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_spec(**kwargs)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.__setitem__(0, {**s[0], "type": "lambda"}), "unknown type='lambda'"),
    (lambda s: s.__setitem__(0, {**s[0], "code": "import os"}), r"unknown arguments \['code'\]"),
    (lambda s: s.__setitem__(0, {**s[0], "activation": "eval"}), "unknown activation 'eval'"),
    (lambda s: s.__setitem__(1, {**s[1], "name": "conv1"}), "repeats name='conv1'"),
    (lambda s: s.__setitem__(1, {**s[1], "name": "../x"}), r"name='\.\./x'"),
    (lambda s: s.pop(4), "needs a flat input"),  # no flatten before dense
    (lambda s: s[-1].__setitem__("units", 7), "must output 10 class scores"),
    (lambda s: s[0].pop("filters"), r"missing \['filters'\]"),
])
def test_validate_spec_rejects_unknown_or_inconsistent_layers(mutate, message):
    spec = make_spec("fast")
    mutate(spec)
    with pytest.raises(ValueError, match=message):
        validate_spec(spec)


def test_seed_makes_initial_weights_repeatable():
    a, b, c = (ScratchCNN.from_preset("fast", seed=s, filters=(4, 8)) for s in (1, 1, 2))
    wa, wb, wc = a.weights(), b.weights(), c.weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not np.array_equal(wa["conv1/kernel"], wc["conv1/kernel"])
    assert not np.array_equal(wa["conv1/kernel"].ravel()[:8], wa["conv2/kernel"].ravel()[:8])


def test_activations_every_layer_and_probabilities_last(small_model, digits):
    x, _ = digits
    acts = small_model.activations(x[:5])
    assert list(acts) == ["conv1", "pool1", "conv2", "pool2", "flatten", "dropout", "dense", "softmax"]
    assert acts["conv1"].shape == (5, 26, 26, 4) and acts["pool2"].shape == (5, 5, 5, 8)
    assert np.all(acts["conv1"] >= 0)  # relu
    assert np.array_equal(acts["dropout"], acts["flatten"])  # inference: dropout is the identity
    np.testing.assert_allclose(acts["softmax"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(acts["softmax"], small_model.predict(x[:5]), atol=1e-6)
    # pool1 really is the 2x2 max of conv1
    conv1 = acts["conv1"]
    np.testing.assert_allclose(acts["pool1"], conv1.reshape(5, 13, 2, 13, 2, 4).max(axis=(2, 4)), atol=0)


def test_predict_matches_the_logits_and_accepts_both_layouts(small_model, digits):
    x, _ = digits
    probs = small_model.predict(x)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, tf.nn.softmax(small_model(tf.constant(x[..., None]))).numpy(), atol=1e-6)
    np.testing.assert_array_equal(probs, small_model.predict(x[..., None], batch_size=7))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 28, 27)), r"got \(2, 28, 27\)"),
    (np.full((1, 28, 28), np.nan), "NaN"),
])
def test_predict_rejects_bad_images(small_model, bad, message):
    with pytest.raises(ValueError, match=message):
        small_model.predict(bad)


def test_dropout_in_training_is_repeatable_with_a_stateless_seed(small_model, digits):
    x = tf.constant(digits[0][:8, ..., None])
    seed = tf.constant([5, 9], tf.int64)
    a = small_model(x, training=True, seed=seed).numpy()
    b = small_model(x, training=True, seed=seed).numpy()
    c = small_model(x, training=True, seed=tf.constant([5, 10], tf.int64)).numpy()
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert isinstance(dict(small_model.layers)["dropout"], Dropout)


def test_save_load_round_trip_gives_identical_predictions(tmp_path, small_model, digits):
    path = small_model.save(tmp_path / "sub" / "model.npz")
    assert os.listdir(path.parent) == ["model.npz"]  # no temporary file left behind
    loaded = load_model(path)
    assert loaded.spec == small_model.spec
    x, _ = digits
    np.testing.assert_array_equal(loaded.predict(x), small_model.predict(x))
    with np.load(path, allow_pickle=False) as f:
        assert json.loads(str(f["spec"])) == small_model.spec
    seed_model = ScratchCNN.from_preset("seed", seed=1, filters=(2, 3))
    np.testing.assert_array_equal(load_model(seed_model.save(tmp_path / "s.npz")).predict(x[:4]),
                                  seed_model.predict(x[:4]))


def test_save_overwrites_atomically(tmp_path, small_model):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    small_model.save(path)
    assert zipfile.is_zipfile(path) and sorted(os.listdir(tmp_path)) == ["m.npz"]


def _rewrite(src: Path, dst: Path, change) -> Path:
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__("conv1/kernel", a["conv1/kernel"][:2]), r"conv1/kernel has shape \(2, 3, 1, 4\)"),
    (lambda a: a.pop("dense/b"), "do not match the spec's variables"),
    (lambda a: a.__setitem__("extra", np.zeros(3)), "do not match the spec's variables"),
    (lambda a: a.__setitem__("dense/w", np.full_like(a["dense/w"], np.nan)), "NaN"),
    (lambda a: a.__setitem__("spec", np.array("{not json")), "not valid JSON"),
    (lambda a: a.__setitem__("spec", np.array(json.dumps([{"type": "lambda", "name": "x",
                                                             "function": "__import__('os')"}]))),
     "unknown type='lambda'"),
    (lambda a: a.__setitem__("format_version", np.array(99)), "format_version must be 1"),
    (lambda a: a.pop("spec"), "missing the 'spec' text"),
])
def test_mismatched_model_files_are_rejected_naming_the_file(tmp_path, small_model, change, message):
    bad = _rewrite(small_model.save(tmp_path / "good.npz"), tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=message) as info:
        load_model(bad)
    assert str(bad) in str(info.value)


def test_truncated_corrupt_and_missing_model_files(tmp_path, small_model):
    good = small_model.save(tmp_path / "good.npz")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz.*not a .npz archive"):
        load_model(truncated)
    flipped = bytearray(data)
    middle = len(flipped) // 2  # inside compressed weights: the zip directory is intact, the data is not
    flipped[middle: middle + 64] = bytes(64)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt.npz"):
        load_model(corrupt)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, spec=np.array([{"type": "dense"}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        load_model(pickled)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_model(tmp_path / "nope.npz")


def test_shipped_default_model_is_accurate():
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.fail(f"the shipped model {DEFAULT_MODEL_PATH} is missing")
    assert DEFAULT_MODEL_PATH.stat().st_size < 500_000
    model = load_model(DEFAULT_MODEL_PATH)
    (_, _), (x_test, y_test) = load_sample()
    accuracy = (model.predict(x_test / 255.0).argmax(axis=1) == y_test).mean()
    assert accuracy >= 0.98
    full = os.environ.get("CONVVIZ_MNIST") or str(Path(__file__).resolve().parents[2] / "shared/data/mnist.npz")
    if Path(full).is_file():  # the documented figure, on all 10,000 test digits
        from convviz.data import read_mnist_file

        (_, _), (x_test, y_test) = read_mnist_file(full)
        assert (model.predict(x_test / 255.0).argmax(axis=1) == y_test).mean() >= 0.990


def test_blocks_fuse_conv_pool_pairs_and_own_their_layers(small_model):
    from convviz.layers import ConvPool

    assert [name for name, _ in small_model.blocks] == ["conv1+pool1", "conv2+pool2", "flatten", "dropout", "dense"]
    block = dict(small_model.blocks)["conv1+pool1"]
    assert isinstance(block, ConvPool)
    assert block.conv is small_model.get_layer("conv1") and block.pool is small_model.get_layer("pool1")
    # Each variable once, though the blocks and the layers both hold the layers.
    assert len(small_model.trainable_variables) == 6
    seed = ScratchCNN.from_preset("seed", filters=(2, 3))
    assert [name for name, _ in seed.blocks] == [name for name, _ in seed.layers]


def test_get_layer_and_set_weights(tmp_path, small_model, digits):
    x, _ = digits
    assert small_model.get_layer("conv1").kernel.shape == (3, 3, 1, 4)
    with pytest.raises(ValueError, match=r"no layer 'conv9'; its layers are \['conv1', 'pool1'"):
        small_model.get_layer("conv9")
    other = ScratchCNN.from_preset("fast", seed=11, filters=(4, 8))
    assert not np.array_equal(other.predict(x[:4]), small_model.predict(x[:4]))
    other.set_weights(small_model.weights())
    np.testing.assert_array_equal(other.predict(x[:4]), small_model.predict(x[:4]))
    assert set(other.weights()) >= {"dense/w", "dense/b"}  # a Dense layer's kernel / bias keep format 1's names
    weights = small_model.weights()
    before = other.weights()
    for change, message in [
        (lambda w: w.pop("dense/b"), "do not match the spec's variables"),
        (lambda w: w.__setitem__("conv1/kernel", w["conv1/kernel"][:2]), r"conv1/kernel has shape \(2, 3, 1, 4\)"),
        (lambda w: w.__setitem__("dense/w", w["dense/w"].astype(np.float64)), "dense/w .* dtype float64"),
        (lambda w: w.__setitem__("conv2/bias", np.full(8, np.inf, np.float32)), "conv2/bias contains NaN or inf"),
    ]:
        bad = dict(weights)
        change(bad)
        with pytest.raises(ValueError, match=message):
            other.set_weights(bad)
        after = other.weights()
        assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing assigned


# --- what one image costs (#15 kind 2: a legal spec must not cost gigabytes per pass or minutes per digit) ---

_HEAVY_SPEC = [  # the breaker's legal 20 MB model: 3.9 G multiply-adds and 21 MB per digit
    {"type": "conv2d", "name": "conv1", "filters": 1024, "kernel_size": 1, "activation": "relu"},
    {"type": "conv2d", "name": "conv2", "filters": 1024, "kernel_size": 2, "padding": "same", "activation": "relu"},
    {"type": "conv2d", "name": "conv3", "filters": 740, "kernel_size": 1, "activation": "relu"},
    {"type": "maxpool2d", "name": "pool1", "pool_size": 27},
    {"type": "flatten", "name": "flatten"},
    {"type": "dense", "name": "dense", "units": 10},
]


def test_forward_cost_counts_by_hand():
    from convviz.model import ForwardCost, forward_cost
    # seed 32/64 k3: conv1 26x26 windows of 3x3x1 to 32; conv2 24x24 windows of 3x3x32 to 64; dense 36,864 -> 10
    macs = 26 * 26 * 9 * 32 + 24 * 24 * 9 * 32 * 64 + 36_864 * 10
    numbers = 784 + 26 * 26 * 32 + 24 * 24 * 64 + 36_864 + 10 + 24 * 24 * 9 * 32
    assert forward_cost(make_spec("seed", (32, 64), 3)) == ForwardCost(macs, numbers) == (11_180_160, 262_042)


@pytest.mark.parametrize("spec, words", [
    (_HEAVY_SPEC, "the model up to layer 'conv2' needs 3,289,137,152 multiply-adds per image, over the limit of MAX_MULTIPLY_ADDS"),
    ([{"type": "conv2d", "name": "c", "filters": 1024, "kernel_size": 1},
      {"type": "conv2d", "name": "d", "filters": 1024, "kernel_size": 1},
      {"type": "conv2d", "name": "e", "filters": 300, "kernel_size": 1},
      {"type": "flatten", "name": "f"}, {"type": "dense", "name": "o", "units": 10}],
     "the model up to layer 'e' needs 1,063,731,200 multiply-adds per image"),
])
def test_a_spec_costing_too_much_per_image_is_refused_before_anything_is_built(spec, words):
    from convviz.model import MAX_MULTIPLY_ADDS
    with pytest.raises(ValueError) as info:
        ScratchCNN(spec)
    assert words in str(info.value) and f"{MAX_MULTIPLY_ADDS:,}" in str(info.value)


def test_the_train_pages_largest_architecture_is_within_the_cost_limits():
    from convviz.model import MAX_MULTIPLY_ADDS, forward_cost
    for preset in ("seed", "fast"):
        for k in (1, 3, 5, 7, 9):
            assert forward_cost(make_spec(preset, (128, 128), k)).multiply_adds <= MAX_MULTIPLY_ADDS
    assert forward_cost(make_spec("seed", (256, 256), 7)).multiply_adds == 828_810_240  # a run's largest settings


def test_inference_passes_are_cut_to_the_pass_limit(monkeypatch):
    import convviz.model as model_module
    from convviz.model import images_per_pass
    model = ScratchCNN(make_spec("seed", (4, 8), 3), seed=0)
    per_image = model.cost.numbers
    monkeypatch.setattr(model_module, "MAX_PASS_NUMBERS", per_image * 7 + 3)
    assert images_per_pass(model.cost, 1000) == 7 and images_per_pass(model.cost, 5) == 5
    sizes = []
    original = model._logits

    def counting(x):
        sizes.append(int(x.shape[0]))
        return original(x)

    x = np.random.default_rng(0).random((30, 28, 28)).astype(np.float32)
    expected = np.concatenate([model._logits(x[i:i + 1, :, :, None]).numpy() for i in range(30)])
    monkeypatch.setattr(model, "_logits", counting)
    got = model.logits(x)  # the default batch of 1000 is cut to 7
    assert sizes == [7, 7, 7, 7, 2]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_training_batch_over_the_step_limit_is_refused_with_the_largest_that_fits():
    from convviz.config import TrainConfig
    from convviz.model import check_training_batch
    from convviz.train import train
    spec = make_spec("seed", (128, 128), 7)
    with pytest.raises(ValueError) as info:
        check_training_batch(spec, 512)
    assert str(info.value) == ("a training batch of 512 digits through this architecture holds 887,763,968 numbers "
                               "per step (about 3.3 GiB before the gradients), over MAX_STEP_NUMBERS=268,435,456: "
                               "use a batch of at most 154")
    check_training_batch(spec, 154)
    check_training_batch(spec, 128)
    check_training_batch(make_spec("seed", (32, 64), 3), 1024)
    tiny = ((np.zeros((4, 28, 28), np.uint8), np.arange(4) % 10), (np.zeros((2, 28, 28), np.uint8), np.arange(2)))
    with pytest.raises(ValueError, match="use a batch of at most 154"):  # before any step runs
        train(ScratchCNN(spec, seed=0), tiny, TrainConfig(epochs=1, batch_size=512))


def test_a_pooling_whose_windows_overlap_counts_its_stack_of_windows():
    """The final breaker's N1: a max pooling with strides below its pool size stacks its windows (tensor_ops), which
    the cost did not count: conv 1024 k1 -> maxpool 14 stride 1 needed ~18 GB for a pass the limit allowed."""
    from convviz.model import MAX_PATCH_NUMBERS, forward_cost
    spec = [{"type": "conv2d", "name": "c", "filters": 1024, "kernel_size": 1},
            {"type": "maxpool2d", "name": "p", "pool_size": 14, "strides": 1},
            {"type": "flatten", "name": "f"}, {"type": "dense", "name": "o", "units": 10}]
    with pytest.raises(ValueError) as info:
        ScratchCNN(spec)
    assert (f"layer 'p' (maxpool2d) stacks 15x15 windows of 14x14x1024 = {15 * 15 * 196 * 1024:,} numbers per image, "
            f"over the limit of MAX_PATCH_NUMBERS={MAX_PATCH_NUMBERS:,}") == str(info.value)
    small = [{"type": "conv2d", "name": "c", "filters": 8, "kernel_size": 3},
             {"type": "maxpool2d", "name": "p", "pool_size": 3, "strides": 1},
             {"type": "flatten", "name": "f"}, {"type": "dense", "name": "o", "units": 10}]
    cost = forward_cost(small)
    outputs = 784 + 26 * 26 * 8 + 24 * 24 * 8 + 24 * 24 * 8 + 10
    assert cost.numbers == outputs + 24 * 24 * 9 * 8  # the stack (41,472) is larger than the conv's patches (6,084)
    tiled = [dict(small[0]), {"type": "maxpool2d", "name": "p", "pool_size": 2}, *small[2:]]
    assert forward_cost(tiled).numbers == 784 + 26 * 26 * 8 + 13 * 13 * 8 * 2 + 10 + 26 * 26 * 9
