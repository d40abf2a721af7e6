"""convviz.tensor_ops.conv2d_maxpool (the fused convolution -> activation -> 2x2 pool used in training)
against the unfused layers and against TensorFlow's own ops: values, gradients, ties, errors."""

import numpy as np
import pytest
import tensorflow as tf

from convviz import layers as layers_module
from convviz import model as model_module
from convviz.layers import Conv2D, MaxPool2D, can_fuse_conv_pool
from convviz.model import ScratchCNN
from convviz.tensor_ops import conv2d, conv2d_maxpool, get_activation

_TF_ACTIVATIONS = {"relu": tf.nn.relu, "linear": lambda z: z, "sigmoid": tf.math.sigmoid,
                   "leaky_relu": lambda z: tf.nn.leaky_relu(z, 0.2)}

# (height, width, channels, filters, kh, kw, padding, dilation, activation): even and odd maps
# (an odd last row/column is never pooled), 1-3 channels, non-square kernels, paddings, dilation.
CASES = [
    (28, 28, 1, 4, 3, 3, "valid", 1, "relu"),   # the "fast" preset's first block, 26x26 -> 13x13
    (13, 13, 3, 5, 3, 3, "valid", 1, "relu"),   # its second block: 11x11, the last row/column unused
    (9, 12, 2, 3, 2, 3, "same", 1, "linear"),
    (10, 7, 1, 2, 3, 2, 1, 2, "sigmoid"),
    (8, 9, 3, 4, 3, 3, ((0, 1), (2, 0)), 1, "leaky_relu"),
    (12, 11, 2, 3, 3, 3, "same", 2, "relu"),
    (4, 4, 1, 1, 3, 3, "valid", 1, "relu"),      # the smallest map: 2x2 -> 1x1
]


def _tf_padded(x, padding, kh, kw, dilation):
    """x padded as conv2d pads it, so that TensorFlow's reference can run "VALID"."""
    from convviz.geometry import padding_amounts
    if isinstance(padding, tuple):
        (top, bottom), (left, right) = padding
    else:
        top, bottom = padding_amounts(x.shape[1], kh, 1, padding, dilation)
        left, right = padding_amounts(x.shape[2], kw, 1, padding, dilation)
    return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])


@pytest.mark.parametrize("h,w,c,f,kh,kw,padding,dilation,activation", CASES)
def test_fused_block_matches_layers_and_tensorflow(h, w, c, f, kh, kw, padding, dilation, activation):
    rng = np.random.default_rng(h * 100 + w * 10 + c)
    x = tf.constant(rng.standard_normal((3, h, w, c)), tf.float32)
    k = tf.constant(rng.standard_normal((kh, kw, c, f)), tf.float32)
    b = tf.constant(rng.standard_normal(f), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k, b])
        y = conv2d_maxpool(x, k, b, padding, dilation, activation)
        # Layer by layer, our own unfused code.
        y_layers = MaxPool2D(2)(get_activation(activation)(conv2d(x, k, 1, padding, dilation) + b))
        # TensorFlow's ops (tf.nn.convolution has CPU gradients for dilation > 1).
        z_ref = tf.nn.convolution(_tf_padded(x, padding, kh, kw, dilation), k, 1, "VALID", dilations=dilation)
        y_ref = tf.nn.max_pool2d(_TF_ACTIVATIONS[activation](z_ref + b), 2, 2, "VALID")
        upstream = tf.constant(rng.standard_normal(y_ref.shape), tf.float32)
        loss, loss_ref = tf.reduce_sum(y * upstream), tf.reduce_sum(y_ref * upstream)
    assert y.shape == y_ref.shape == y_layers.shape
    np.testing.assert_allclose(y, y_layers, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(tape.gradient(loss, [x, k, b]), tape.gradient(loss_ref, [x, k, b])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_ties_go_to_the_first_maximum_like_tf_nn():
    # Windows with every kind of tie: all four equal, two equal maxima in each arrangement.
    windows = [[[1, 1], [1, 1]], [[1, 3], [3, 2]], [[2, 2], [0, 1]], [[0, 1], [0, 1]], [[0, 0], [5, 5]],
               [[4, 0], [4, 0]], [[1, 2], [2, 2]], [[7, 1], [2, 7]]]
    x = np.zeros((1, 2, 2 * len(windows), 1), np.float32)
    for i, window in enumerate(windows):
        x[0, :, 2 * i: 2 * i + 2, 0] = window
    x = tf.constant(x)
    identity = tf.ones((1, 1, 1, 1))  # a 1x1 kernel of 1: the convolution is the input itself
    upstream = tf.constant(np.arange(1, len(windows) + 1, dtype=np.float32).reshape(1, 1, -1, 1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(conv2d_maxpool(x, identity, tf.zeros([1]), activation="linear") * upstream)
        loss_ref = tf.reduce_sum(tf.nn.max_pool2d(x, 2, 2, "VALID") * upstream)
    got, want = tape.gradient(loss, x).numpy(), tape.gradient(loss_ref, x).numpy()
    np.testing.assert_array_equal(got, want)
    # One cell per window gets the whole upstream value.
    assert np.count_nonzero(got) == len(windows) and got.sum() == upstream.numpy().sum()


def test_relu_slope_is_zero_at_zero_like_tf_nn_relu():
    x = tf.zeros((1, 4, 4, 1))
    k, b = tf.ones((3, 3, 1, 1)), tf.zeros([1])
    with tf.GradientTape() as tape:
        tape.watch([k, b])
        y = conv2d_maxpool(x, k, b)
        total = tf.reduce_sum(y)
    np.testing.assert_array_equal(y, np.zeros((1, 1, 1, 1)))
    dk, db = tape.gradient(total, [k, b])
    assert float(tf.reduce_sum(tf.abs(dk))) == 0.0 and float(db[0]) == 0.0


@pytest.mark.parametrize("call,message", [
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 2)), tf.zeros((3, 3, 1, 4)), tf.zeros([4])),
     "channels=2 but the kernel expects in_channels=1"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([3])),
     r"bias must have shape \(4,\), got \(3,\)"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), activation="softmax"),
     r"non-decreasing activations \['leaky_relu', 'linear', 'relu', 'sigmoid'\], got activation='softmax'"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), activation=["relu"]),
     r"got activation=\['relu'\]"),
    (lambda: conv2d_maxpool(tf.zeros((1, 2, 6, 1)), tf.zeros((5, 3, 1, 4)), tf.zeros([4])),
     "kernel 5x3 with dilation_rate=.1, 1. spans 5x3 cells, more than the padded input 2x6"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), ((0, -1), (0, 0))),
     "padding must be >= 0, got padding=-1"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), ((0, 1.5), (0, 0))),
     "padding must be an integer >= 0, got padding=1.5"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), ((0, 1), (0, 0), (1, 1))),
     r"got padding=\(\(0, 1\), \(0, 0\), \(1, 1\)\)"),
    (lambda: conv2d_maxpool(tf.zeros((6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4])),
     r"x must be a tensor of rank 4, got shape \(6, 6, 1\)"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), [0.0] * 4),
     "bias must be a tensor of rank 1, got shape None"),
    (lambda: conv2d_maxpool(tf.zeros((1, 3, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4])),
     "gives a 1x4 map, smaller than the 2x2 pool"),
    (lambda: conv2d_maxpool(tf.zeros((1, 6, 6, 1)), tf.zeros((3, 3, 1, 4)), tf.zeros([4]), dilation_rate=0),
     "dilation_rate must be >= 1, got dilation_rate=0"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_which_pairs_are_fused():
    conv = Conv2D(1, 4, 3, activation="relu")
    assert can_fuse_conv_pool(conv, MaxPool2D(2))
    assert can_fuse_conv_pool(Conv2D(1, 4, 3, padding="same", dilation_rate=2, activation="sigmoid"), MaxPool2D(2))
    assert not can_fuse_conv_pool(Conv2D(1, 4, 3, strides=2), MaxPool2D(2))
    assert not can_fuse_conv_pool(Conv2D(1, 4, 3, activation="softmax"), MaxPool2D(2))
    assert not can_fuse_conv_pool(conv, MaxPool2D(3))
    assert not can_fuse_conv_pool(conv, MaxPool2D(2, strides=1))
    assert not can_fuse_conv_pool(MaxPool2D(2), conv)


def test_model_runs_fused_blocks_with_the_same_numbers(monkeypatch):
    model = ScratchCNN.from_preset("fast", seed=5, filters=(4, 8))
    x = tf.constant(np.random.default_rng(0).random((6, 28, 28, 1)), tf.float32)
    calls = []
    fused = layers_module.conv2d_maxpool  # what the model's ConvPool blocks call
    monkeypatch.setattr(layers_module, "conv2d_maxpool", lambda *a, **k: calls.append(1) or fused(*a, **k))
    with tf.GradientTape(persistent=True) as tape:
        logits = model(x)  # conv1+pool1 and conv2+pool2 fused
        layer_by_layer = x
        for _, module in model.layers:
            layer_by_layer = module(layer_by_layer)
        loss, loss_layers = tf.reduce_sum(logits[:, 3]), tf.reduce_sum(layer_by_layer[:, 3])
    assert len(calls) == 2
    np.testing.assert_allclose(logits, layer_by_layer, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.activations(x.numpy())["dense"], logits, rtol=1e-5, atol=1e-5)
    for got, want in zip(tape.gradient(loss, model.trainable_variables),
                         tape.gradient(loss_layers, model.trainable_variables)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size,batch", [(3, 1), (5, 0), (7, 2)])
def test_model_predicts_any_batch_and_kernel_size_like_its_layers(kernel_size, batch):
    model = ScratchCNN(model_module.make_spec("fast", filters=(4, 8), kernel_size=kernel_size), seed=1)
    x = np.random.default_rng(kernel_size).random((batch, 28, 28)).astype(np.float32)
    probabilities = model.predict(x)
    assert probabilities.shape == (batch, 10)
    np.testing.assert_allclose(probabilities, model.activations(x)["softmax"], atol=1e-6)


def test_conv_pool_block_refuses_a_pair_that_cannot_fuse():
    from convviz.layers import ConvPool

    with pytest.raises(ValueError, match="'c' -> 'p' cannot run fused"):
        ConvPool(Conv2D(1, 4, 3, strides=2, name="c"), MaxPool2D(2, name="p"))
    block = ConvPool(Conv2D(1, 4, 3, activation="relu", name="c"), MaxPool2D(2, name="p"))
    x = tf.random.stateless_normal((2, 9, 9, 1), seed=[5, 6])
    np.testing.assert_allclose(block(x), block.pool(block.conv(x)), atol=1e-6)
