"""convviz.layers against TensorFlow's own ops: values, gradients, shapes and errors."""

import ast
import inspect

import numpy as np
import pytest
import tensorflow as tf
from conv_grid import GRID
from conv_grid import fits as _fits

from convviz import layers, tensor_ops
from convviz.geometry import output_size, padding_amounts
from convviz.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D
from convviz.ops import conv2d_naive
from convviz.tensor_ops import conv2d


def _reference(x, kernel, strides, padding, dilation, op=tf.nn.conv2d):
    """TensorFlow's convolution; integer padding is done first by tf.pad, then "VALID"."""
    if isinstance(padding, int):
        x = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        padding = "valid"
    return op(x, kernel, strides, padding.upper(), dilations=dilation)


def test_grid_is_large_enough():
    assert len(GRID) >= 50
    assert {g[2] for g in GRID} == {1, 2, 3, 4}
    assert {g[6] for g in GRID} == {1, 2, 3} and {g[8] for g in GRID} == {1, 2, 3}
    assert {str(g[7]) for g in GRID} == {"valid", "same", "0", "1", "2"}


@pytest.mark.parametrize("h,w,c,f,kh,kw,s,p,d", GRID)
def test_conv2d_matches_tf_nn_conv2d(h, w, c, f, kh, kw, s, p, d):
    if not _fits(h, w, kh, kw, p, d):
        pytest.skip("dilated kernel larger than the padded input")
    rng = np.random.default_rng(h * 1000 + w * 100 + c * 10 + f)
    x = tf.constant(rng.standard_normal((2, h, w, c)), tf.float32)
    k = tf.constant(rng.standard_normal((kh, kw, c, f)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        y = conv2d(x, k, s, p, d)
        y_ref = _reference(x, k, s, p, d)
        # tf.nn.conv2d has no CPU gradient for dilation > 1; tf.nn.convolution (same forward) has.
        y_grad_ref = _reference(x, k, s, p, d, op=tf.nn.conv2d if d == 1 else tf.nn.convolution)
        upstream = tf.constant(rng.standard_normal(y_ref.shape), tf.float32)
        loss, loss_ref = tf.reduce_sum(y * upstream), tf.reduce_sum(y_grad_ref * upstream)
    # Shapes: the layer, the reference and the formula agree.
    assert y.shape == y_ref.shape
    assert y.shape[1:3] == (output_size(h, kh, s, p, d), output_size(w, kw, s, p, d))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    # The numpy engine agrees too (first image, float64).
    naive = conv2d_naive(x[0].numpy(), k.numpy(), s, p, d)
    np.testing.assert_allclose(naive, y_ref[0], rtol=1e-5, atol=1e-4)
    # Hand-written gradients agree with TensorFlow's.
    dx, dk = tape.gradient(loss, [x, k])
    dx_ref, dk_ref = tape.gradient(loss_ref, [x, k])
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("s,p", [(1, "valid"), (2, "same"), (3, "same"), (2, 1)])
def test_output_size_matches_tf_shape_on_28(s, p):
    x = tf.zeros((1, 28, 28, 1))
    k = tf.zeros((3, 3, 1, 1))
    assert _reference(x, k, s, p, 1).shape[1] == output_size(28, 3, s, p)


def test_conv2d_layer_notebook_numbers():
    x = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], np.float32)
    k = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)
    layer = Conv2D(32, 64, 3)
    layer.kernel.assign(np.broadcast_to(k[:, :, None, None], (3, 3, 32, 64)))
    out = layer(tf.constant(np.broadcast_to(x[None, :, :, None], (1, 5, 5, 32))))
    assert out.shape == (1, 3, 3, 64)
    assert (out.numpy()[0, :, :, 5] == [[128, 96, 128], [64, 128, 96], [64, 96, 128]]).all()


def test_conv2d_layer_init_and_activation():
    layer = Conv2D(3, 8, (3, 5), padding="same", activation="relu", seed=1)
    assert layer.kernel.shape == (3, 5, 3, 8) and layer.bias.shape == (8,)
    expected_std = np.sqrt(2 / (15 * 3 + 15 * 8))
    assert abs(np.std(layer.kernel.numpy()) - expected_std) < 0.25 * expected_std
    out = layer(tf.random.normal((2, 6, 7, 3)))
    assert out.shape == (2, 6, 7, 8) and float(tf.reduce_min(out)) >= 0
    assert np.array_equal(Conv2D(3, 8, 3, seed=4).kernel.numpy(), Conv2D(3, 8, 3, seed=4).kernel.numpy())


def test_dense_matches_reference():
    layer = Dense(6, 4, activation="softmax", seed=0)
    assert layer.kernel.shape == (6, 4) and layer.bias.shape == (4,)
    x = tf.random.normal((3, 6))
    expected = tf.nn.softmax(x @ layer.kernel + layer.bias)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)


@pytest.mark.parametrize("name,ref", [("linear", lambda z: z), ("relu", tf.nn.relu), ("leaky_relu", tf.nn.leaky_relu),
                                      ("sigmoid", tf.nn.sigmoid), ("softmax", tf.nn.softmax)])
def test_activations(name, ref):
    z = tf.constant([[-2.0, -0.5, 0.0, 0.7, 3.0]])
    np.testing.assert_allclose(tensor_ops.get_activation(name)(z), ref(z), rtol=1e-6)


def test_maxpool_matches_tf():
    x = tf.random.normal((2, 11, 13, 3))
    np.testing.assert_array_equal(MaxPool2D(2)(x), tf.nn.max_pool2d(x, 2, 2, "VALID"))
    np.testing.assert_array_equal(MaxPool2D(3, 2)(x), tf.nn.max_pool2d(x, 3, 2, "VALID"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = tf.reduce_sum(MaxPool2D(2)(x) ** 2), tf.reduce_sum(tf.nn.max_pool2d(x, 2, 2, "VALID") ** 2)
    np.testing.assert_allclose(tape.gradient(a, x), tape.gradient(b, x), rtol=1e-6)


def test_flatten_and_dropout():
    x = tf.reshape(tf.range(24, dtype=tf.float32), (2, 2, 3, 2))
    assert Flatten()(x).shape == (2, 12)
    drop = Dropout(0.5)
    assert drop(x) is x
    y = drop(tf.ones((1000, 10)), training=True, seed=tf.constant([1, 2]))
    kept = float(tf.reduce_mean(tf.cast(y > 0, tf.float32)))
    assert 0.45 < kept < 0.55 and set(np.unique(y.numpy())) == {0.0, 2.0}
    np.testing.assert_array_equal(y, drop(tf.ones((1000, 10)), training=True, seed=tf.constant([1, 2])))


@pytest.mark.parametrize("make,message", [
    (lambda: Dense(3, 2, activation="swish"), "unknown activation 'swish'"),
    (lambda: Conv2D(1, 4, 3, activation="tanhh"), "unknown activation 'tanhh'"),
    (lambda: Conv2D(1, 4, 3, strides=0), "strides must be >= 1, got strides=0"),
    (lambda: Conv2D(1, 4, 0), "kernel_size must be >= 1, got kernel_size=0"),
    (lambda: Conv2D(1, 4, 3, padding="full"), "padding='full'"),
    (lambda: Dense(0, 2), "input_size must be >= 1, got input_size=0"),
    (lambda: Dropout(1.0), r"rate must be in \[0, 1\), got rate=1.0"),
    (lambda: MaxPool2D(0), "pool_size must be >= 1, got pool_size=0"),
])
def test_bad_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_calls():
    with pytest.raises(ValueError, match="channels=2 but the kernel expects in_channels=3"):
        Conv2D(3, 4, 3)(tf.zeros((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="more than the padded input 5x5"):
        Conv2D(1, 4, 6)(tf.zeros((1, 5, 5, 1)))
    with pytest.raises(ValueError, match="larger than the input"):
        MaxPool2D(4)(tf.zeros((1, 3, 3, 1)))


def test_same_padding_puts_extra_zero_after():
    assert padding_amounts(6, 2, 1, "same") == (0, 1)


def _dotted_names(tree):
    """Every dotted name used in code (docstrings and comments are not code)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts, cur = [node.attr], node.value
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                yield ".".join([cur.id] + parts[::-1])
        elif isinstance(node, ast.ImportFrom):
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_layers_are_from_scratch():
    """The layers and the ops they call (convviz.tensor_ops), read together."""
    used = {name for module in (layers, tensor_ops) for name in _dotted_names(ast.parse(inspect.getsource(module)))}
    banned = {name for name in used
              if name.startswith(("tf.nn.conv", "tf.nn.max_pool", "tf.nn.depthwise", "tf.keras", "keras",
                                  "tf.image.extract_patches", "tf.nn.dropout"))}
    assert banned == set()
    assert "tf.custom_gradient" in used and "tf.matmul" in used
