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
           "can_fuse_conv_pool", "conv2d", "conv2d_maxpool", "get_activation", "glorot_normal", "log_softmax",
           "softmax"]


def log_softmax(x):
    """Log-probabilities over the last axis: ``x - logsumexp(x)`` (``tf.reduce_logsumexp`` shifts by the max, so
    large scores neither overflow nor give ``log(0)``). Takes a tensor or a numpy array; returns a tensor."""
    x = tf.convert_to_tensor(x)
    return x - tf.reduce_logsumexp(x, axis=-1, keepdims=True)


def softmax(x):
    """Probabilities over the last axis, ``exp(log_softmax(x))``: the one softmax of ConvViz (the ``softmax``
    activation, :meth:`convviz.model.ScratchCNN.predict`, the training loss's :func:`log_softmax`)."""
    return tf.exp(log_softmax(x))


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: tf.maximum(x, 0.0),
    "leaky_relu": lambda x: tf.where(x > 0, x, 0.2 * x),  # slope 0.2, as tf.nn.leaky_relu
    "sigmoid": tf.math.sigmoid,
    "softmax": softmax,
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


def _explicit_padding(padding, h: int, w: int, kh: int, kw: int, strides, dilation) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` zeros for :func:`conv2d` / :func:`conv2d_maxpool`'s ``padding``.

    Accepts ``"valid"``, ``"same"``, an int >= 0, or ``((top, bottom), (left, right))`` of ints >= 0.

    Raises:
        ValueError: any other value, echoing it.
    """
    if isinstance(padding, tuple | list) and padding and isinstance(padding[0], tuple | list):
        if len(padding) != 2 or any(not isinstance(pair, tuple | list) or len(pair) != 2 for pair in padding):
            raise ValueError("padding must be 'valid', 'same', an integer >= 0 or ((top, bottom), (left, right)), "
                             f"got padding={padding!r}")
        (top, bottom), (left, right) = padding
        return tuple(_positive_int(v, "padding", minimum=0) for v in (top, bottom, left, right))
    top, bottom = padding_amounts(h, kh, strides[0], padding, dilation[0])
    left, right = padding_amounts(w, kw, strides[1], padding, dilation[1])
    return top, bottom, left, right


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
    top, bottom, left, right = _explicit_padding(padding, h, w, kh, kw, strides, dilation)
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


# Non-decreasing activations, with their derivative written in terms of the activation's output
# ``a``: these are the ones that commute with max pooling (see conv2d_maxpool).
_MONOTONE_SLOPES = {
    "linear": None,
    "relu": lambda a: tf.cast(a > 0, a.dtype),
    "leaky_relu": lambda a: 1.0 - 0.8 * tf.cast(a <= 0, a.dtype),  # 1 above 0, 0.2 at and below
    "sigmoid": lambda a: a * (1.0 - a),
}


def can_fuse_conv_pool(conv, pool) -> bool:
    """Whether ``pool(conv(x))`` can run as one :func:`conv2d_maxpool` call.

    True when ``conv`` is a :class:`Conv2D` with strides 1 and a non-decreasing
    activation (``linear``, ``relu``, ``leaky_relu``, ``sigmoid``) and ``pool``
    is a :class:`MaxPool2D` with 2x2 windows and strides 2 — the "fast"
    preset's two blocks. Other pairs run layer by layer.
    """
    return (isinstance(conv, Conv2D) and isinstance(pool, MaxPool2D) and conv.strides == (1, 1)
            and conv.activation in _MONOTONE_SLOPES and pool.pool_size == (2, 2) and pool.strides == (2, 2))


def _pooled_patch_indices(width: int, kh: int, kw: int, h_out: int, w_out: int, dilation) -> np.ndarray:
    """:func:`_patch_indices` for a convolution followed by 2x2 pooling, windows grouped by pool position.

    Returns:
        int32 ``(4, h_out * w_out * kh * kw)``: row ``q`` lists, for every pooled
        cell ``(i, j)``, the input cells under each tap of the convolution window
        at ``(2i + r, 2j + s)`` where ``(r, s)`` is ``(0, 0)``, ``(0, 1)``,
        ``(1, 0)``, ``(1, 1)`` for ``q`` = 0..3 (top left, top right, bottom
        left, bottom right); flat index ``row * width + col`` as in
        :func:`_patch_indices`.
    """
    dh, dw = dilation
    q_rows, q_cols = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    rows = (2 * np.arange(h_out)[None, :, None, None, None] + q_rows[:, None, None, None, None]
            + dh * np.arange(kh)[None, None, None, :, None])
    cols = (2 * np.arange(w_out)[None, None, :, None, None] + q_cols[:, None, None, None, None]
            + dw * np.arange(kw)[None, None, None, None, :])
    return (rows * width + cols).reshape(4, -1).astype(np.int32)


def conv2d_maxpool(x, kernel, bias, padding="valid", dilation_rate=1, activation: str = "relu"):
    """Convolution (strides 1) -> bias -> activation -> 2x2 max pooling (strides 2), fused for training.

    Gives the same values as ``MaxPool2D(2)`` applied to a :class:`Conv2D`'s
    output, in less time and memory, with a backward pass written by hand.
    Three facts make it cheaper than running the layers one by one:

    * **Pooling commutes with the bias and the activation.** Within one
      window the bias is the same number and the activation never decreases,
      so ``max_w act(z_w + b) = act(max_w z_w + b)``. The block pools the raw
      convolution ``z`` and adds the bias and applies the activation to a
      quarter of the cells.
    * **Only pooled cells are computed.** With an odd number of convolution
      rows (columns), the pool never reads the last one, so it is never
      computed (11x11 -> 10x10 for the "fast" preset's second block).
    * **Windows are listed by their place in the pool.** The patch matrix
      (im2col, as in :func:`conv2d`) lists first the windows at every pool's
      top-left cell, then top-right, bottom-left, bottom-right. The matrix
      product then gives four maps ``z_tl, z_tr, z_bl, z_br`` of shape
      ``(batch * h_out * w_out, filters)``, and the pool is just
      ``max(max(z_tl, z_tr), max(z_bl, z_br))`` — three element-wise maxima
      that remember which side won.

    The gradient of the max goes back along the winners to exactly one cell
    per window: the first maximum of ``z`` in row-major order, as
    ``tf.nn.max_pool``'s gradient does on its input. (Ties are decided on the
    raw ``z``, before the bias: two different ``z`` that round to the same
    ``z + b`` are not a tie here. The unfused :class:`MaxPool2D` splits a tie
    equally instead; away from ties all of these agree.)

    Backward (``g`` = upstream gradient at the pooled output):
    ``g * act'`` -> bias gradient (its sum over batch and cells) -> routed to
    the winning convolution cells (``dz``) -> kernel gradient
    ``patches^T @ dz`` and input gradient by **col2im**: ``dz @ k[a, b]^T``
    gives, for every window, what flows back to the input cell under tap
    ``(a, b)``, and each tap's share is added back at its offset (the
    transpose of im2col; V. Dumoulin and F. Visin, "A guide to convolution
    arithmetic for deep learning", 2016, section 4).

    Args:
        x: float32 ``(batch, height, width, in_channels)``.
        kernel: float32 ``(kernel_height, kernel_width, in_channels, filters)``.
        bias: float32 ``(filters,)``.
        padding: ``"valid"``, ``"same"``, an int >= 0, or
            ``((top, bottom), (left, right))``, as in :func:`conv2d`.
        dilation_rate: int or ``(rows, cols)`` >= 1.
        activation: ``"relu"``, ``"linear"``, ``"leaky_relu"`` or ``"sigmoid"``.

    Returns:
        float32 ``(batch, h_conv // 2, w_conv // 2, filters)`` where ``h_conv``,
        ``w_conv`` are the convolution's output size
        (:func:`convviz.ops.output_size` with strides 1).

    Raises:
        ValueError: wrong ranks, channel or bias size mismatch, an activation
            other than the four above, arguments out of range, a kernel
            larger than the padded input, or a convolution output smaller
            than 2x2.
    """
    if not isinstance(activation, str) or activation not in _MONOTONE_SLOPES:
        raise ValueError(f"conv2d_maxpool handles the non-decreasing activations {sorted(_MONOTONE_SLOPES)}, "
                         f"got activation={activation!r}")
    slope = _MONOTONE_SLOPES[activation]
    act = get_activation(activation)
    dh, dw = _pair(dilation_rate, "dilation_rate")
    for value, name, rank in ((x, "x", 4), (kernel, "kernel", 4), (bias, "bias", 1)):
        if len(getattr(value, "shape", ())) != rank:
            raise ValueError(f"{name} must be a tensor of rank {rank}, got shape {getattr(value, 'shape', None)}")
    kh, kw, c_in, filters = kernel.shape
    _, h, w, c = x.shape
    if c != c_in:
        raise ValueError(f"input has channels={c} but the kernel expects in_channels={c_in}")
    if tuple(bias.shape) != (filters,):
        raise ValueError(f"bias must have shape ({filters},), got {tuple(bias.shape)}")
    top, bottom, left, right = _explicit_padding(padding, h, w, kh, kw, (1, 1), (dh, dw))
    padded = bool(top or bottom or left or right)
    hp, wp = h + top + bottom, w + left + right
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if eff_h > hp or eff_w > wp:
        raise ValueError(f"kernel {kh}x{kw} with dilation_rate={(dh, dw)} spans {eff_h}x{eff_w} cells, "
                         f"more than the padded input {hp}x{wp}")
    h_conv, w_conv = hp - eff_h + 1, wp - eff_w + 1
    if h_conv < 2 or w_conv < 2:
        raise ValueError(f"kernel {kh}x{kw} with dilation_rate={(dh, dw)} on the padded input {hp}x{wp} "
                         f"gives a {h_conv}x{w_conv} map, smaller than the 2x2 pool")
    h_out, w_out = h_conv // 2, w_conv // 2
    zh, zw = 2 * h_out, 2 * w_out  # the convolution cells the pool reads
    index = _pooled_patch_indices(wp, kh, kw, h_out, w_out, (dh, dw))[:, None, :]  # (4, 1, cells)
    taps = [(a * dh, b * dw) for a in range(kh) for b in range(kw)]

    @tf.custom_gradient
    def _block(x, kernel, bias):
        n = tf.shape(x)[0]
        xp = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) if padded else x
        # Cell indices into the whole batch as one (batch * hp * wp, c) table: (4, batch, cells).
        batch_index = index + (tf.range(n) * (hp * wp))[None, :, None]
        patches = tf.reshape(tf.gather(tf.reshape(xp, [-1, c]), tf.reshape(batch_index, [-1])),
                             [4, -1, kh * kw * c])  # (pool position, batch * h_out * w_out, taps * c)
        z_tl, z_tr, z_bl, z_br = tf.unstack(tf.matmul(patches, tf.reshape(kernel, [kh * kw * c, filters])))
        z_top, z_bottom = tf.maximum(z_tl, z_tr), tf.maximum(z_bl, z_br)
        # Which side won (1.0) or lost (0.0); a tie goes to the first in row-major order.
        tl_won, bl_won = tf.cast(z_tl >= z_tr, z_tl.dtype), tf.cast(z_bl >= z_br, z_tl.dtype)
        top_won = tf.cast(z_top >= z_bottom, z_tl.dtype)
        y = act(tf.reshape(tf.maximum(z_top, z_bottom), [n, h_out, w_out, filters]) + bias)

        def grad(dy):
            g = dy if slope is None else dy * slope(y)
            dbias = tf.reduce_sum(g, axis=[0, 1, 2])
            g = tf.reshape(g, [-1, filters])
            g_top = g * top_won
            g_bottom = g - g_top
            d_tl = g_top * tl_won
            d_bl = g_bottom * bl_won
            dz = [d_tl, g_top - d_tl, d_bl, g_bottom - d_bl]
            dkernel = tf.add_n([tf.matmul(patches[q], dz[q], transpose_a=True) for q in range(4)])
            # Back to image layout (batch, zh, zw, filters): interleave columns, then rows.
            rows = [tf.stack([tf.reshape(d, [n, h_out, w_out, filters]) for d in dz[2 * r: 2 * r + 2]], axis=3)
                    for r in range(2)]
            dz_map = tf.reshape(tf.stack(rows, axis=2), [-1, filters])
            # col2im: one matrix product per tap (k[a, b]^T), each tap's share padded to its offset.
            per_tap = tf.matmul(dz_map[None], tf.reshape(kernel, [kh * kw, c, filters]), transpose_b=True)
            per_tap = tf.reshape(per_tap, [kh * kw, n, zh, zw, c])
            dxp = tf.add_n([tf.pad(per_tap[t], [[0, 0], [a, hp - zh - a], [b, wp - zw - b], [0, 0]])
                            for t, (a, b) in enumerate(taps)])
            if padded:
                dxp = dxp[:, top: top + h, left: left + w, :]
            return dxp, tf.reshape(dkernel, kernel.shape), dbias

        return y, grad

    return _block(x, kernel, bias)


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
