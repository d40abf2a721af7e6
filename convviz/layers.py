"""From-scratch neural-network layers as ``tf.Module``, shaped like Keras's.

Each layer checks its arguments and creates its own variables in ``__init__`` (``tf.Module`` has no
``build``, so the input's size is an argument), and its ``__call__`` is a few lines that call one op of
:mod:`convviz.tensor_ops`, where the math and its hand-written gradients live. Names are the field's
(Keras's): ``filters``, ``kernel_size``, ``strides``, ``padding``, ``dilation_rate``, ``units``, and every
layer with weights has a ``kernel`` and a ``bias``. Nothing here calls ``tf.nn.conv2d``,
``tf.nn.convolution``, ``tf.nn.max_pool`` or a Keras layer (``tests/test_layers.py`` checks it).

:class:`ConvPool` is a block: a :class:`Conv2D` and the :class:`MaxPool2D` after it, run as one fused
:func:`convviz.tensor_ops.conv2d_maxpool` call (the model's fast path, :func:`can_fuse_conv_pool` says when).

Layout: images are NHWC, ``(batch, height, width, channels)``, float32.
A convolution kernel is ``(kernel_height, kernel_width, in_channels, filters)``.

Initialisation (the seed notebook's "Xavier-style" rule): weights are drawn
from a normal distribution with standard deviation ``sqrt(2 / (fan_in +
fan_out))`` (X. Glorot and Y. Bengio, "Understanding the difficulty of
training deep feedforward neural networks", AISTATS 2010). Biases start at 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from convviz.geometry import pair, positive_int, split_padding
from convviz.tensor_ops import MONOTONE_ACTIVATIONS, conv2d, conv2d_maxpool, get_activation, max_pool2d

__all__ = ["ConvPool", "Conv2D", "Dense", "Dropout", "Flatten", "MaxPool2D", "can_fuse_conv_pool", "glorot_normal"]


def glorot_normal(shape, fan_in: int, fan_out: int, seed: int | None = None) -> np.ndarray:
    """Normal weights with standard deviation ``sqrt(2 / (fan_in + fan_out))``.

    Args:
        shape: the array's shape.
        fan_in: inputs feeding one unit (``in_channels * kh * kw`` for a convolution).
        fan_out: units fed by one input (``filters * kh * kw`` for a convolution).
        seed: seed of numpy's generator; ``None`` draws fresh randomness.

    Returns:
        float32 ``np.ndarray`` of ``shape``.
    """
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


class Dense(tf.Module):
    """A fully connected layer: ``activation(x @ kernel + bias)``.

    As in the seed notebook, ``kernel`` is ``(input_size, units)`` drawn by
    :func:`glorot_normal`. Unlike the notebook, which shared one scalar bias
    among all units, ``bias`` has one entry per unit ``(units,)``,
    as every framework does: a shared scalar cannot shift units separately.

    Args:
        input_size: features in, >= 1.
        units: units out, >= 1.
        activation: a name accepted by :func:`convviz.tensor_ops.get_activation`.
        seed: initialisation seed (``None``: random).
        name: the module's name.

    Variables:
        ``kernel`` ``(input_size, units)``, ``bias`` ``(units,)`` zeros. In a model file they are
        ``<name>/w`` and ``<name>/b`` (:attr:`saved_names`, the file format's names since version 1).

    Call:
        ``x`` of shape ``(batch, input_size)`` -> ``(batch, units)``.

    Raises:
        ValueError: a size < 1 or an unknown activation.
    """

    saved_names = {"kernel": "w", "bias": "b"}
    """Variable -> its name in a model file (``dense/w``, ``dense/b``)."""

    def __init__(self, input_size: int, units: int, activation: str = "linear",
                 seed: int | None = None, name: str | None = None):
        super().__init__(name=name)
        self.input_size = positive_int(input_size, "input_size")
        self.units = positive_int(units, "units")
        self.activation = activation
        self._activation = get_activation(activation)
        self.kernel = tf.Variable(glorot_normal((input_size, units), input_size, units, seed), name="kernel")
        self.bias = tf.Variable(tf.zeros([units]), name="bias")

    def __call__(self, x):
        return self._activation(tf.matmul(x, self.kernel) + self.bias)


class Conv2D(tf.Module):
    """A 2-D convolution layer (cross-correlation, as in every framework), from scratch.

    Computes ``activation(conv2d(x, kernel) + bias)`` with :func:`convviz.tensor_ops.conv2d`,
    whose backward pass is written by hand.

    Args:
        in_channels: channels of the input, >= 1.
        filters: number of kernels = output channels, >= 1.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(rows, cols)``, >= 1.
        padding: ``"valid"``, ``"same"``, an int >= 0, or ``(rows, cols)`` of those (each may be
            ``(before, after)``): :mod:`convviz.geometry`'s one meaning.
        dilation_rate: int or ``(rows, cols)``, >= 1.
        activation: a name accepted by :func:`convviz.tensor_ops.get_activation`.
        seed: initialisation seed (``None``: random).
        name: the module's name.

    Variables:
        ``kernel`` ``(kh, kw, in_channels, filters)`` by :func:`glorot_normal`
        with ``fan_in = kh*kw*in_channels``, ``fan_out = kh*kw*filters``;
        ``bias`` ``(filters,)`` zeros.

    Call:
        ``x`` float32 ``(batch, height, width, in_channels)`` ->
        ``(batch, h_out, w_out, filters)``.

    Raises:
        ValueError: arguments out of range or an unknown activation (at
            construction); channel mismatch or a too-small input (at call).
    """

    saved_names = {"kernel": "kernel", "bias": "bias"}
    """Variable -> its name in a model file (``conv1/kernel``, ``conv1/bias``)."""

    def __init__(self, in_channels: int, filters: int, kernel_size, strides=1, padding="valid",
                 dilation_rate=1, activation: str = "linear", seed: int | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.in_channels = positive_int(in_channels, "in_channels")
        self.filters = positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        split_padding(padding)  # checks it
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.activation = activation
        self._activation = get_activation(activation)
        kh, kw = self.kernel_size
        self.kernel = tf.Variable(
            glorot_normal((kh, kw, in_channels, filters), kh * kw * in_channels, kh * kw * filters, seed),
            name="kernel")
        self.bias = tf.Variable(tf.zeros([filters]), name="bias")

    def __call__(self, x):
        return self._activation(conv2d(x, self.kernel, self.strides, self.padding, self.dilation_rate) + self.bias)


class MaxPool2D(tf.Module):
    """Max pooling over ``pool_size`` windows, from scratch ("valid": no padding):
    :func:`convviz.tensor_ops.max_pool2d`, whose gradient flows to each window's maximum (split among ties).

    Args:
        pool_size: int or ``(rows, cols)`` >= 1.
        strides: int or ``(rows, cols)`` >= 1; ``None`` means ``pool_size``.
        name: the module's name.

    Call:
        ``(batch, height, width, channels)`` ->
        ``(batch, (height - ph) // sh + 1, (width - pw) // sw + 1, channels)``.

    Raises:
        ValueError: sizes < 1, or an input smaller than the pool.
    """

    def __init__(self, pool_size=2, strides=None, name: str | None = None):
        super().__init__(name=name)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")

    def __call__(self, x):
        return max_pool2d(x, self.pool_size, self.strides)


def can_fuse_conv_pool(conv, pool) -> bool:
    """Whether ``pool(conv(x))`` can run as one :func:`convviz.tensor_ops.conv2d_maxpool` call.

    True when ``conv`` is a :class:`Conv2D` with strides 1 and a non-decreasing
    activation (``linear``, ``relu``, ``leaky_relu``, ``sigmoid``) and ``pool``
    is a :class:`MaxPool2D` with 2x2 windows and strides 2 — the "fast"
    preset's two blocks. Other pairs run layer by layer.
    """
    return (isinstance(conv, Conv2D) and isinstance(pool, MaxPool2D) and conv.strides == (1, 1)
            and conv.activation in MONOTONE_ACTIVATIONS and pool.pool_size == (2, 2) and pool.strides == (2, 2))


class ConvPool(tf.Module):
    """A block: a :class:`Conv2D` and the 2x2 :class:`MaxPool2D` after it, fused into one op.

    Calling the block gives ``pool(conv(x))`` by :func:`convviz.tensor_ops.conv2d_maxpool`: the same values,
    in less time and memory. Its gradient sends a tied pool window's gradient to one cell (the first maximum,
    as ``tf.nn.max_pool``), where the two layers on their own share it among the tied cells.

    Args:
        conv: the convolution; pool: the pooling after it (both kept, with their names and variables).

    Raises:
        ValueError: a pair :func:`can_fuse_conv_pool` refuses, naming the layers.
    """

    def __init__(self, conv: Conv2D, pool: MaxPool2D):
        if not can_fuse_conv_pool(conv, pool):
            raise ValueError(f"{getattr(conv, 'name', conv)!r} -> {getattr(pool, 'name', pool)!r} cannot run fused: "
                             "it needs a Conv2D with strides 1 and a non-decreasing activation, then MaxPool2D(2)")
        super().__init__(name=f"{conv.name}_{pool.name}")
        self.conv, self.pool = conv, pool

    def __call__(self, x):
        conv = self.conv
        return conv2d_maxpool(x, conv.kernel, conv.bias, conv.padding, conv.dilation_rate, conv.activation)


class Flatten(tf.Module):
    """``(batch, d1, d2, ...)`` -> ``(batch, d1*d2*...)``, row-major (NHWC order)."""

    def __call__(self, x):
        return tf.reshape(x, [tf.shape(x)[0], -1])


class Dropout(tf.Module):
    """Inverted dropout: in training, zero each value with probability ``rate``
    and scale the rest by ``1 / (1 - rate)``; at inference, the identity
    (N. Srivastava et al., "Dropout", JMLR 2014).

    Args:
        rate: probability of dropping, ``0 <= rate < 1``.
        name: the module's name.

    Call:
        ``layer(x, training=False, seed=None)``; ``seed`` is a shape-(2,) int
        tensor for ``tf.random.stateless_uniform`` (repeatable runs); ``None``
        uses the global generator.

    Raises:
        ValueError: ``rate`` outside ``[0, 1)``.
    """

    def __init__(self, rate: float = 0.5, name: str | None = None):
        super().__init__(name=name)
        if not (isinstance(rate, int | float) and 0.0 <= rate < 1.0):
            raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
        self.rate = float(rate)

    def __call__(self, x, training: bool = False, seed=None):
        if not training or self.rate == 0.0:
            return x
        shape = tf.shape(x)
        if seed is None:
            u = tf.random.uniform(shape)
        else:
            u = tf.random.stateless_uniform(shape, seed=seed)
        return tf.where(u >= self.rate, x / (1.0 - self.rate), tf.zeros_like(x))
