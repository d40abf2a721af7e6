"""Tests of convviz.explain: per-convolution feature maps and the saliency map."""

import numpy as np
import pytest
import tensorflow as tf

from convviz.explain import explain, saliency
from convviz.model import ScratchCNN


@pytest.fixture(scope="module")
def models():
    return {"seed": ScratchCNN.from_preset("seed", seed=3, filters=(4, 6)),
            "fast": ScratchCNN.from_preset("fast", seed=3, filters=(5, 7), kernel_size=5)}


@pytest.fixture(scope="module")
def digit():
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 0.8, (28, 28)).astype(np.float32)  # away from 0 so few ReLUs sit on their kink


@pytest.mark.parametrize("preset, shapes", [("seed", {"conv1": (26, 26, 4), "conv2": (24, 24, 6)}),
                                            ("fast", {"conv1": (24, 24, 5), "conv2": (8, 8, 7)})])
def test_feature_maps_are_the_conv_outputs(models, digit, preset, shapes):
    model = models[preset]
    maps = explain(model, digit).feature_maps  # the one pass that also gives the saliency
    assert {k: v.shape for k, v in maps.items()} == shapes
    assert list(maps) == ["conv1", "conv2"]
    # conv1 by hand: relu(cross-correlation + bias), checked against TensorFlow's own conv2d
    conv1 = dict(model.layers)["conv1"]
    ref = tf.nn.relu(tf.nn.conv2d(digit[None, :, :, None], conv1.kernel, 1, "VALID") + conv1.bias).numpy()[0]
    np.testing.assert_allclose(maps["conv1"], ref, atol=1e-5)
    assert (maps["conv2"] >= 0).all()


@pytest.mark.parametrize("preset", ["seed", "fast"])
def test_saliency_matches_finite_differences(models, digit, preset):
    model = models[preset]
    sal, target = saliency(model, digit)
    assert sal.shape == (28, 28) and sal.dtype == np.float32 and (sal >= 0).all()
    assert target == int(np.argmax(model.predict(digit[None])[0]))

    def score(image):
        return float(model.logits(image[None].astype(np.float32))[0, target])

    eps = 1e-3
    top = tuple(int(v) for v in np.unravel_index(np.argmax(sal), sal.shape))
    assert sal[top] > 1e-3
    for i, j in [top, (14, 14), (5, 20), (22, 7), (10, 10), (0, 27)]:
        up, down = digit.copy(), digit.copy()
        up[i, j] += eps
        down[i, j] -= eps
        numeric = abs(score(up) - score(down)) / (2 * eps)
        assert sal[i, j] == pytest.approx(numeric, rel=0.05, abs=1e-4), (i, j, sal[i, j], numeric)


def test_saliency_for_a_chosen_class(models, digit):
    model = models["seed"]
    for target in (0, 9):
        sal, used = saliency(model, digit, target=target)
        assert used == target
        with tf.GradientTape() as tape:
            x = tf.constant(digit[None, :, :, None])
            tape.watch(x)
            s = model(x)[0, target]
        np.testing.assert_allclose(sal, np.abs(tape.gradient(s, x).numpy()[0, :, :, 0]), rtol=1e-5, atol=1e-7)


def test_explain_bundles_everything(models, digit):
    e = explain(models["fast"], digit)
    assert e.probabilities.shape == (10,) and e.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert e.prediction == int(np.argmax(e.probabilities))
    assert list(e.feature_maps) == ["conv1", "conv2"]
    np.testing.assert_allclose(e.saliency, saliency(models["fast"], digit, e.prediction)[0], rtol=1e-5)
    e_blank = explain(models["fast"], np.zeros((28, 28)))
    assert np.isfinite(e_blank.saliency).all()


def test_bad_input_is_named(models):
    with pytest.raises(ValueError, match=r"shape \(28, 28\), got \(27, 28\)"):
        explain(models["seed"], np.zeros((27, 28)))
    with pytest.raises(ValueError, match="NaN"):
        saliency(models["seed"], np.full((28, 28), np.nan))
    with pytest.raises(ValueError, match="target=10"):
        saliency(models["seed"], np.zeros((28, 28)), target=10)


def test_saliency_shares_tied_pool_windows_instead_of_drawing_a_grid():
    # A real digit on MNIST's blank background: every all-zero 2x2 pool window is a tie.
    from convviz.data import load_sample
    from convviz.model import DEFAULT_MODEL_PATH, load_model
    model = load_model(DEFAULT_MODEL_PATH)
    (_, _), (x_test, _) = load_sample()
    image = x_test[1].astype(np.float32) / 255.0
    sal, target = saliency(model, image)
    x = tf.constant(image[None, :, :, None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for _, layer in model.layers:  # every layer on its own: MaxPool2D shares a tie's gradient
            h = layer(h)
        score = h[0, target]
    np.testing.assert_allclose(sal, np.abs(tape.gradient(score, x).numpy()[0, :, :, 0]), rtol=1e-5, atol=1e-7)
    # On the blank pixels the four cells of the 2x2 grid (row and column parity) get similar shares
    # (1.13 : 1 between the largest and smallest here; sending ties to one cell gives 1.81 : 1).
    blank = image == 0
    shares = np.array([[sal[r::2, c::2][blank[r::2, c::2]].sum() for c in (0, 1)] for r in (0, 1)])
    assert shares.max() / shares.min() < 1.4, shares / shares.sum()
