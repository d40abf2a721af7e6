"""The from-scratch tensor ops of ConvViz's network, each with its hand-written gradient.

:mod:`convviz.layers` holds the layers (their variables, their calls); the math they call lives here:
:func:`conv2d` (im2col and one matrix product, the backward pass a convolution with the flipped kernel),
:func:`max_pool2d`, :func:`conv2d_maxpool` (convolution -> bias -> activation -> 2x2 pool fused, for
training) and the activations. Everything is our own code on TensorFlow tensor primitives (``tf.pad``,
``tf.gather``, ``tf.reshape``, ``tf.matmul``, ``tf.custom_gradient``); none of it calls ``tf.nn.conv2d``,
``tf.nn.convolution``, ``tf.nn.max_pool`` or a Keras layer: those are the references the tests check against
(``tests/test_layers.py`` parses this module and ``layers.py`` to make sure).

Layout: images are NHWC, ``(batch, height, width, channels)``, float32; a convolution kernel is
``(kernel_height, kernel_width, in_channels, filters)``. Geometry (sizes, padding) is
:mod:`convviz.geometry`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convviz.geometry import effective_size, output_size, padding_2d, pair

__all__ = ["ACTIVATIONS", "MONOTONE_ACTIVATIONS", "conv2d", "conv2d_maxpool", "get_activation", "log_softmax",
           "max_pool2d", "softmax"]


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


MONOTONE_ACTIVATIONS = {
    "linear": None,
    "relu": lambda a: tf.cast(a > 0, a.dtype),
    "leaky_relu": lambda a: 1.0 - 0.8 * tf.cast(a <= 0, a.dtype),  # 1 above 0, 0.2 at and below
    "sigmoid": lambda a: a * (1.0 - a),
}
"""The non-decreasing activations, each with its derivative written in terms of the activation's output ``a``
(``None``: 1): the ones that commute with max pooling, so :func:`conv2d_maxpool` can fuse them."""


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


def _pad(t, pads):
    """``t`` zero-padded by ``(top, bottom, left, right)`` cells (itself when all are 0)."""
    return t if not any(pads) else tf.pad(t, [[0, 0], pads[0:2], pads[2:4], [0, 0]])


def _conv_sizes(x, kernel, strides, padding, dilation):
    """A convolution's checked sizes: ``((top, bottom, left, right), (h_out, w_out))``.

    Raises:
        ValueError: a channel mismatch, a padding :mod:`convviz.geometry` refuses, or a dilated kernel larger
            than the padded input.
    """
    kh, kw, c_in, _ = kernel.shape
    _, h, w, c = x.shape
    if c != c_in:
        raise ValueError(f"input has channels={c} but the kernel expects in_channels={c_in}")
    (top, bottom), (left, right) = pads = padding_2d((h, w), (kh, kw), strides, padding, dilation)
    hp, wp = h + top + bottom, w + left + right
    eff_h, eff_w = effective_size(kh, dilation[0]), effective_size(kw, dilation[1])
    if eff_h > hp or eff_w > wp:
        raise ValueError(f"kernel {kh}x{kw} with dilation_rate={dilation} spans {eff_h}x{eff_w} cells, "
                         f"more than the padded input {hp}x{wp}")
    out = tuple(output_size(n, k, s, p, d) for n, k, s, p, d in zip((h, w), (kh, kw), strides, pads, dilation))
    return (top, bottom, left, right), out


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
            or ``(rows, cols)`` of those, each may be ``(before, after)`` (:mod:`convviz.geometry`).
        dilation_rate: int or ``(rows, cols)`` >= 1.

    Returns:
        float32 ``(batch, h_out, w_out, filters)``; ``h_out`` as in
        :func:`convviz.geometry.output_size`.

    Raises:
        ValueError: channel mismatch, arguments out of range, or a kernel
            larger than the padded input.
    """
    strides = pair(strides, "strides")
    dilation = pair(dilation_rate, "dilation_rate")
    kh, kw, c, filters = kernel.shape
    _, h, w, _ = x.shape
    (top, bottom, left, right), (h_out, w_out) = _conv_sizes(x, kernel, strides, padding, dilation)
    hp, wp = h + top + bottom, w + left + right
    eff_h, eff_w = effective_size(kh, dilation[0]), effective_size(kw, dilation[1])
    # Rows and columns reached by some window (the rest of the padded input gets no gradient).
    reach_h, reach_w = strides[0] * (h_out - 1) + eff_h, strides[1] * (w_out - 1) + eff_w

    @tf.custom_gradient
    def _conv(x, kernel):
        n = tf.shape(x)[0]
        cols = _im2col(_pad(x, [top, bottom, left, right]), kh, kw, h_out, w_out, strides, dilation)
        y = tf.reshape(tf.matmul(cols, tf.reshape(kernel, [kh * kw * c, filters])), [n, h_out, w_out, filters])

        def grad(dy):
            dkernel = tf.reshape(tf.matmul(cols, tf.reshape(dy, [-1, filters]), transpose_a=True), kernel.shape)
            full = _pad(_spread(dy, strides), [eff_h - 1, eff_h - 1, eff_w - 1, eff_w - 1])
            flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])  # (kh, kw, filters, c)
            dcols = _im2col(full, kh, kw, reach_h, reach_w, (1, 1), dilation)
            dxp = tf.reshape(tf.matmul(dcols, tf.reshape(flipped, [kh * kw * filters, c])), [n, reach_h, reach_w, c])
            dxp = _pad(dxp, [0, hp - reach_h, 0, wp - reach_w])
            return dxp[:, top: top + h, left: left + w, :], dkernel

        return y, grad

    return _conv(x, kernel)


def max_pool2d(x, pool_size=2, strides=None):
    """Max pooling over ``pool_size`` windows, from scratch ("valid": no padding).

    When the stride equals the pool size (the usual case) the input is
    cropped to a multiple of the pool size, reshaped and transposed so that
    each window's cells lie on one axis, then reduced with ``tf.reduce_max``;
    the backward pass is written by hand. Otherwise each window is gathered
    by strided slices. The gradient flows to the maximum of each window
    (split equally among ties).

    Args:
        x: ``(batch, height, width, channels)``.
        pool_size: int or ``(rows, cols)`` >= 1.
        strides: int or ``(rows, cols)`` >= 1; ``None`` means ``pool_size``.

    Returns:
        ``(batch, (height - ph) // sh + 1, (width - pw) // sw + 1, channels)``.

    Raises:
        ValueError: sizes < 1, or an input smaller than the pool.
    """
    (ph, pw) = pool_size = pair(pool_size, "pool_size")
    (sh, sw) = pool_size if strides is None else pair(strides, "strides")
    _, h, w, _ = x.shape
    if h < ph or w < pw:
        raise ValueError(f"pool_size={pool_size} is larger than the input {h}x{w}")
    h_out, w_out = output_size(h, ph, sh), output_size(w, pw, sw)
    if (ph, pw) == (sh, sw):
        return _max_pool_tiled(x, pool_size, h_out, w_out)
    windows = [x[:, a: a + sh * (h_out - 1) + 1: sh, b: b + sw * (w_out - 1) + 1: sw, :]
               for a in range(ph) for b in range(pw)]
    return tf.reduce_max(tf.stack(windows, axis=0), axis=0)


def _max_pool_tiled(x, pool_size, h_out, w_out):
    """Non-overlapping windows: crop, move each window's cells onto one axis, take the max.

    The hand-written gradient sends each upstream value to the cells that
    hold its window's maximum (shared equally among ties), then undoes the
    transpose and the crop. Reducing one contiguous axis after a cheap
    transpose is several times faster on CPU than reducing the two
    non-adjacent window axes of the reshaped tensor (see BENCHMARKS.md).
    """
    (ph, pw), (_, h, w, c) = pool_size, x.shape

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


@dataclass(frozen=True)
class _FusedSizes:
    """The sizes of one :func:`conv2d_maxpool` call (cells), checked, and its gather index."""

    h: int
    w: int
    channels: int
    kh: int
    kw: int
    filters: int
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    h_out: int  # pooled rows
    w_out: int  # pooled columns
    dilation: tuple[int, int]

    @property
    def hp(self) -> int:
        return self.h + self.pads[0] + self.pads[1]

    @property
    def wp(self) -> int:
        return self.w + self.pads[2] + self.pads[3]

    def index(self) -> np.ndarray:
        """``(4, 1, cells)``: :func:`_pooled_patch_indices`, ready to be offset per image."""
        return _pooled_patch_indices(self.wp, self.kh, self.kw, self.h_out, self.w_out, self.dilation)[:, None, :]


def _fused_sizes(x, kernel, bias, padding, dilation_rate, activation) -> _FusedSizes:
    """:func:`conv2d_maxpool`'s arguments checked (see its ``Raises``), as sizes."""
    if not isinstance(activation, str) or activation not in MONOTONE_ACTIVATIONS:
        raise ValueError(f"conv2d_maxpool handles the non-decreasing activations {sorted(MONOTONE_ACTIVATIONS)}, "
                         f"got activation={activation!r}")
    dilation = pair(dilation_rate, "dilation_rate")
    for value, name, rank in ((x, "x", 4), (kernel, "kernel", 4), (bias, "bias", 1)):
        if len(getattr(value, "shape", ())) != rank:
            raise ValueError(f"{name} must be a tensor of rank {rank}, got shape {getattr(value, 'shape', None)}")
    kh, kw, c, filters = kernel.shape
    pads, (h_conv, w_conv) = _conv_sizes(x, kernel, (1, 1), padding, dilation)
    if tuple(bias.shape) != (filters,):
        raise ValueError(f"bias must have shape ({filters},), got {tuple(bias.shape)}")
    sizes = _FusedSizes(x.shape[1], x.shape[2], c, kh, kw, filters, pads, h_conv // 2, w_conv // 2, dilation)
    if h_conv < 2 or w_conv < 2:
        raise ValueError(f"kernel {kh}x{kw} with dilation_rate={dilation} on the padded input {sizes.hp}x{sizes.wp} "
                         f"gives a {h_conv}x{w_conv} map, smaller than the 2x2 pool")
    return sizes


def _fused_forward(f: _FusedSizes, index, x, kernel, bias, act):
    """The forward pass: ``(y, patches, winners)``; ``winners`` say which side of each pool window won."""
    n = tf.shape(x)[0]
    xp = _pad(x, list(f.pads))
    # Cell indices into the whole batch as one (batch * hp * wp, c) table: (4, batch, cells).
    batch_index = index + (tf.range(n) * (f.hp * f.wp))[None, :, None]
    patches = tf.reshape(tf.gather(tf.reshape(xp, [-1, f.channels]), tf.reshape(batch_index, [-1])),
                         [4, -1, f.kh * f.kw * f.channels])  # (pool position, batch * h_out * w_out, taps * c)
    z_tl, z_tr, z_bl, z_br = tf.unstack(tf.matmul(patches, tf.reshape(kernel, [f.kh * f.kw * f.channels, f.filters])))
    z_top, z_bottom = tf.maximum(z_tl, z_tr), tf.maximum(z_bl, z_br)
    # Which side won (1.0) or lost (0.0); a tie goes to the first in row-major order.
    winners = (tf.cast(z_tl >= z_tr, z_tl.dtype), tf.cast(z_bl >= z_br, z_tl.dtype),
               tf.cast(z_top >= z_bottom, z_tl.dtype))
    y = act(tf.reshape(tf.maximum(z_top, z_bottom), [n, f.h_out, f.w_out, f.filters]) + bias)
    return y, patches, winners


def _fused_backward(f: _FusedSizes, dy, y, patches, winners, kernel, slope):
    """The hand-written backward pass of :func:`conv2d_maxpool`: ``(dx, dkernel, dbias)``."""
    n, (tl_won, bl_won, top_won) = tf.shape(dy)[0], winners
    (dh, dw), (top, bottom, left, right) = f.dilation, f.pads
    zh, zw = 2 * f.h_out, 2 * f.w_out  # the convolution cells the pool reads
    g = dy if slope is None else dy * slope(y)
    dbias = tf.reduce_sum(g, axis=[0, 1, 2])
    g = tf.reshape(g, [-1, f.filters])
    g_top = g * top_won
    g_bottom = g - g_top
    d_tl = g_top * tl_won
    d_bl = g_bottom * bl_won
    dz = [d_tl, g_top - d_tl, d_bl, g_bottom - d_bl]
    dkernel = tf.add_n([tf.matmul(patches[q], dz[q], transpose_a=True) for q in range(4)])
    # Back to image layout (batch, zh, zw, filters): interleave columns, then rows.
    rows = [tf.stack([tf.reshape(d, [n, f.h_out, f.w_out, f.filters]) for d in dz[2 * r: 2 * r + 2]], axis=3)
            for r in range(2)]
    dz_map = tf.reshape(tf.stack(rows, axis=2), [-1, f.filters])
    # col2im: one matrix product per tap (k[a, b]^T), each tap's share padded to its offset.
    per_tap = tf.matmul(dz_map[None], tf.reshape(kernel, [f.kh * f.kw, f.channels, f.filters]), transpose_b=True)
    per_tap = tf.reshape(per_tap, [f.kh * f.kw, n, zh, zw, f.channels])
    taps = [(a * dh, b * dw) for a in range(f.kh) for b in range(f.kw)]
    dxp = tf.add_n([tf.pad(per_tap[t], [[0, 0], [a, f.hp - zh - a], [b, f.wp - zw - b], [0, 0]])
                    for t, (a, b) in enumerate(taps)])
    if top or bottom or left or right:
        dxp = dxp[:, top: top + f.h, left: left + f.w, :]
    return dxp, tf.reshape(dkernel, kernel.shape), dbias


def conv2d_maxpool(x, kernel, bias, padding="valid", dilation_rate=1, activation: str = "relu"):
    """Convolution (strides 1) -> bias -> activation -> 2x2 max pooling (strides 2), fused for training.

    Gives the same values as ``MaxPool2D(2)`` applied to a :class:`convviz.layers.Conv2D`'s
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
      that remember which side won (:func:`_fused_forward`).

    The gradient of the max goes back along the winners to exactly one cell
    per window: the first maximum of ``z`` in row-major order, as
    ``tf.nn.max_pool``'s gradient does on its input. (Ties are decided on the
    raw ``z``, before the bias: two different ``z`` that round to the same
    ``z + b`` are not a tie here. The unfused :class:`convviz.layers.MaxPool2D` splits a tie
    equally instead; away from ties all of these agree.)

    Backward (:func:`_fused_backward`; ``g`` = upstream gradient at the pooled output):
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
        padding: as in :func:`conv2d` (:mod:`convviz.geometry`'s one meaning).
        dilation_rate: int or ``(rows, cols)`` >= 1.
        activation: ``"relu"``, ``"linear"``, ``"leaky_relu"`` or ``"sigmoid"``.

    Returns:
        float32 ``(batch, h_conv // 2, w_conv // 2, filters)`` where ``h_conv``,
        ``w_conv`` are the convolution's output size
        (:func:`convviz.geometry.output_size` with strides 1).

    Raises:
        ValueError: wrong ranks, channel or bias size mismatch, an activation
            other than the four above, arguments out of range, a kernel
            larger than the padded input, or a convolution output smaller
            than 2x2.
    """
    sizes = _fused_sizes(x, kernel, bias, padding, dilation_rate, activation)
    slope, act, index = MONOTONE_ACTIVATIONS[activation], get_activation(activation), sizes.index()

    @tf.custom_gradient
    def _block(x, kernel, bias):
        y, patches, winners = _fused_forward(sizes, index, x, kernel, bias, act)

        def grad(dy):
            return _fused_backward(sizes, dy, y, patches, winners, kernel, slope)

        return y, grad

    return _block(x, kernel, bias)
