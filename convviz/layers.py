"""From-scratch neural-network layers as ``tf.Module``.

Every layer here is our own code on TensorFlow tensor primitives (``tf.pad``,
slicing, ``tf.reshape``, ``tf.matmul``, ``tf.custom_gradient``). None of them
calls ``tf.nn.conv2d``, ``tf.nn.convolution``, ``tf.nn.max_pool`` or a Keras
layer: those are the references the tests check against.

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

from convviz.ops import _pair, _positive_int, padding_amounts

__all__ = ["ACTIVATIONS", "Conv2D", "Dense", "Dropout", "Flatten", "MaxPool2D",
           "conv2d", "get_activation", "glorot_normal"]


def _softmax(x):
    """Softmax over the last axis, shifted by the max for numerical safety."""
    e = tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: tf.maximum(x, 0.0),
    "leaky_relu": lambda x: tf.where(x > 0, x, 0.2 * x),  # slope 0.2, as tf.nn.leaky_relu
    "sigmoid": tf.math.sigmoid,
    "softmax": _softmax,
}


def get_activation(name: str):
    """Return the activation function called ``name``.

    Args:
        name: one of ``linear``, ``relu``, ``leaky_relu`` (slope 0.2 below 0),
            ``sigmoid``, ``softmax`` (over the last axis).

    Raises:
        ValueError: an unknown name, echoing it.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


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
    """A fully connected layer: ``activation(x @ w + b)``.

    As in the seed notebook, ``w`` is ``(input_size, output_size)`` drawn by
    :func:`glorot_normal`. Unlike the notebook, which shared one scalar bias
    among all units, ``b`` has one entry per output unit ``(output_size,)``,
    as every framework does: a shared scalar cannot shift units separately.

    Args:
        input_size: features in, >= 1.
        output_size: units out, >= 1.
        activation: a name accepted by :func:`get_activation`.
        seed: initialisation seed (``None``: random).
        name: the module's name.

    Call:
        ``x`` of shape ``(batch, input_size)`` -> ``(batch, output_size)``.

    Raises:
        ValueError: a size < 1 or an unknown activation.
    """

    def __init__(self, input_size: int, output_size: int, activation: str = "linear",
                 seed: int | None = None, name: str | None = None):
        super().__init__(name=name)
        self.input_size = _positive_int(input_size, "input_size")
        self.output_size = _positive_int(output_size, "output_size")
        self.activation = activation
        self._activation = get_activation(activation)
        self.w = tf.Variable(glorot_normal((input_size, output_size), input_size, output_size, seed), name="w")
        self.b = tf.Variable(tf.zeros([output_size]), name="b")

    def __call__(self, x):
        return self._activation(tf.matmul(x, self.w) + self.b)


def _patch_indices(width: int, kh: int, kw: int, h_out: int, w_out: int, strides, dilation) -> np.ndarray:
    """Flat cell index (``row * width + col``) of every kernel tap of every window.

    Returns:
        int32 ``(h_out * w_out * kh * kw,)`` in (window row, window column, tap
        row, tap column) order: the geometry of :func:`convviz.ops.conv2d_steps`
        (rows ``i*s + a*d``, columns ``j*s + b*d``), all windows at once.
    """
    (sh, sw), (dh, dw) = strides, dilation
    rows = sh * np.arange(h_out)[:, None, None, None] + dh * np.arange(kh)[None, None, :, None]
    cols = sw * np.arange(w_out)[None, :, None, None] + dw * np.arange(kw)[None, None, None, :]
    return (rows * width + cols).reshape(-1).astype(np.int32)


def _im2col(xp, kh, kw, h_out, w_out, strides, dilation):
    """Patches of a padded NHWC tensor as a matrix ``(batch * h_out * w_out, kh * kw * channels)``.

    One ``tf.gather`` of whole channel vectors at the cells listed by
    :func:`_patch_indices`; each row is one window, flattened in (tap row,
    tap column, channel) order, which matches
    ``tf.reshape(kernel, (kh * kw * channels, filters))``.
    """
    _, hp, wp, c = xp.shape
    index = _patch_indices(wp, kh, kw, h_out, w_out, strides, dilation)
    cells = tf.gather(tf.reshape(xp, [-1, hp * wp, c]), index, axis=1)
    return tf.reshape(cells, [-1, kh * kw * c])


def _spread(t, strides):
    """Insert ``stride - 1`` zeros between neighbouring cells (the transpose of a strided slice)."""
    sh, sw = strides
    if sh == 1 and sw == 1:
        return t
    n, h, w, c = tf.shape(t)[0], t.shape[1], t.shape[2], t.shape[3]
    t = tf.reshape(t, [n, h, 1, w, 1, c])
    t = tf.pad(t, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
    t = tf.reshape(t, [n, h * sh, w * sw, c])
    return t[:, : (h - 1) * sh + 1, : (w - 1) * sw + 1, :]


def conv2d(x, kernel, strides=1, padding="valid", dilation_rate=1):
    """Multi-channel 2-D cross-correlation (what frameworks call convolution), from scratch.

    Forward ("im2col"): zero-pad, gather every window's cells into one row of
    a patch matrix, then one matrix product ``patches @ kernel``:
    ``y[n, i, j, f] = sum_{a, b, c} xp[n, i*s + a*d, j*s + b*d, c] * k[a, b, c, f]``.

    Backward, written by hand (``tf.custom_gradient``):

    * ``dL/dk = patches^T @ dL/dy`` — the same patches, reused;
    * ``dL/dx`` is a *full convolution of dL/dy with the kernel*: every input
      cell collects ``dy[n, i, j, :] @ k[a, b]^T`` from each window ``(i, j)``
      whose tap ``(a, b)`` read it. Written as a cross-correlation, that is:
      spread ``dL/dy`` by the stride (``s - 1`` zeros between cells), pad it
      by ``d*(k - 1)`` on every side, and correlate it (stride 1, dilation
      ``d``) with the kernel **flipped** in both spatial axes and with its
      in/out channels **swapped** — the same im2col-and-matmul as the
      forward pass. Cells that no window reached get 0; the padding is
      cropped off.

    Args:
        x: float32 ``(batch, height, width, in_channels)``.
        kernel: float32 ``(kernel_height, kernel_width, in_channels, filters)``.
        strides: int or ``(rows, cols)`` >= 1.
        padding: ``"valid"``, ``"same"`` (TensorFlow's meaning), an int >= 0,
            or ``((top, bottom), (left, right))``.
        dilation_rate: int or ``(rows, cols)`` >= 1.

    Returns:
        float32 ``(batch, h_out, w_out, filters)``; ``h_out`` as in
        :func:`convviz.ops.output_size`.

    Raises:
        ValueError: channel mismatch, arguments out of range, or a kernel
            larger than the padded input.
    """
    strides = _pair(strides, "strides")
    dilation = _pair(dilation_rate, "dilation_rate")
    kh, kw, c_in, filters = kernel.shape
    _, h, w, c = x.shape
    if c != c_in:
        raise ValueError(f"input has channels={c} but the kernel expects in_channels={c_in}")
    if isinstance(padding, tuple | list) and isinstance(padding[0], tuple | list):
        (top, bottom), (left, right) = padding
    else:
        top, bottom = padding_amounts(h, kh, strides[0], padding, dilation[0])
        left, right = padding_amounts(w, kw, strides[1], padding, dilation[1])
    hp, wp = h + top + bottom, w + left + right
    eff_h, eff_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if eff_h > hp or eff_w > wp:
        raise ValueError(f"kernel {kh}x{kw} with dilation_rate={dilation} spans {eff_h}x{eff_w} cells, "
                         f"more than the padded input {hp}x{wp}")
    h_out = (hp - eff_h) // strides[0] + 1
    w_out = (wp - eff_w) // strides[1] + 1
    # Rows and columns reached by some window (the rest of the padded input gets no gradient).
    reach_h, reach_w = strides[0] * (h_out - 1) + eff_h, strides[1] * (w_out - 1) + eff_w

    def pad(t, pads):
        return t if not any(pads) else tf.pad(t, [[0, 0], pads[0:2], pads[2:4], [0, 0]])

    @tf.custom_gradient
    def _conv(x, kernel):
        n = tf.shape(x)[0]
        cols = _im2col(pad(x, [top, bottom, left, right]), kh, kw, h_out, w_out, strides, dilation)
        y = tf.reshape(tf.matmul(cols, tf.reshape(kernel, [kh * kw * c, filters])), [n, h_out, w_out, filters])

        def grad(dy):
            dkernel = tf.reshape(tf.matmul(cols, tf.reshape(dy, [-1, filters]), transpose_a=True), kernel.shape)
            full = pad(_spread(dy, strides), [eff_h - 1, eff_h - 1, eff_w - 1, eff_w - 1])
            flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])  # (kh, kw, filters, c)
            dcols = _im2col(full, kh, kw, reach_h, reach_w, (1, 1), dilation)
            dxp = tf.reshape(tf.matmul(dcols, tf.reshape(flipped, [kh * kw * filters, c])), [n, reach_h, reach_w, c])
            dxp = pad(dxp, [0, hp - reach_h, 0, wp - reach_w])
            return dxp[:, top: top + h, left: left + w, :], dkernel

        return y, grad

    return _conv(x, kernel)


class Conv2D(tf.Module):
    """A 2-D convolution layer (cross-correlation, as in every framework), from scratch.

    Computes ``activation(conv2d(x, kernel) + bias)`` with :func:`conv2d`,
    whose backward pass is written by hand.

    Args:
        in_channels: channels of the input, >= 1.
        filters: number of kernels = output channels, >= 1.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(rows, cols)``, >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        dilation_rate: int or ``(rows, cols)``, >= 1.
        activation: a name accepted by :func:`get_activation`.
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

    def __init__(self, in_channels: int, filters: int, kernel_size, strides=1, padding="valid",
                 dilation_rate=1, activation: str = "linear", seed: int | None = None,
                 name: str | None = None):
        super().__init__(name=name)
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        padding_amounts(1, 1, 1, padding, 1)  # validates the padding argument
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.activation = activation
        self._activation = get_activation(activation)
        kh, kw = self.kernel_size
        self.kernel = tf.Variable(
            glorot_normal((kh, kw, in_channels, filters), kh * kw * in_channels, kh * kw * filters, seed),
            name="kernel")
        self.bias = tf.Variable(tf.zeros([filters]), name="bias")

    def __call__(self, x):
        y = conv2d(x, self.kernel, self.strides, self.padding, self.dilation_rate)
        return self._activation(y + self.bias)


class MaxPool2D(tf.Module):
    """Max pooling over ``pool_size`` windows, from scratch ("valid": no padding).

    When the stride equals the pool size (the usual case) the input is
    cropped to a multiple of the pool size, reshaped and transposed so that
    each window's cells lie on one axis, then reduced with ``tf.reduce_max``;
    the backward pass is written by hand. Otherwise each window is gathered
    by strided slices. The gradient flows to the maximum of each window
    (split equally among ties).

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
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")

    def __call__(self, x):
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        _, h, w, c = x.shape
        if h < ph or w < pw:
            raise ValueError(f"pool_size={self.pool_size} is larger than the input {h}x{w}")
        h_out, w_out = (h - ph) // sh + 1, (w - pw) // sw + 1
        if (ph, pw) == (sh, sw):
            return self._pool_tiled(x, h_out, w_out)
        windows = [x[:, a: a + sh * (h_out - 1) + 1: sh, b: b + sw * (w_out - 1) + 1: sw, :]
                   for a in range(ph) for b in range(pw)]
        return tf.reduce_max(tf.stack(windows, axis=0), axis=0)

    def _pool_tiled(self, x, h_out, w_out):
        """Non-overlapping windows: crop, move each window's cells onto one axis, take the max.

        The hand-written gradient sends each upstream value to the cells that
        hold its window's maximum (shared equally among ties), then undoes the
        transpose and the crop. Reducing one contiguous axis after a cheap
        transpose is several times faster on CPU than reducing the two
        non-adjacent window axes of the reshaped tensor (see BENCHMARKS.md).
        """
        (ph, pw), (_, h, w, c) = self.pool_size, x.shape

        @tf.custom_gradient
        def _pool(x):
            n = tf.shape(x)[0]
            x6 = tf.reshape(x[:, : h_out * ph, : w_out * pw, :], [n, h_out, ph, w_out, pw, c])
            windows = tf.reshape(tf.transpose(x6, [0, 1, 3, 2, 4, 5]), [n, h_out, w_out, ph * pw, c])
            y = tf.reduce_max(windows, axis=3)

            def grad(dy):
                mask = tf.cast(tf.equal(windows, y[:, :, :, None, :]), dy.dtype)
                share = dy / tf.reduce_sum(mask, axis=3)
                g = tf.reshape(mask * share[:, :, :, None, :], [n, h_out, w_out, ph, pw, c])
                dx = tf.reshape(tf.transpose(g, [0, 1, 3, 2, 4, 5]), [n, h_out * ph, w_out * pw, c])
                return tf.pad(dx, [[0, 0], [0, h - h_out * ph], [0, w - w_out * pw], [0, 0]])

            return y, grad

        return _pool(x)


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
