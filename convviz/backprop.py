"""Backpropagation through a convolution, 2x2 max pooling and ReLU, step by step, in plain numpy.

The records here are what the Backpropagation page draws (what is done with the gradients, the losses, a
descent step and the "Learn a kernel" demo, is :mod:`convviz.descent`'s). Like :mod:`convviz.ops` (whose
window records they reuse, with :mod:`convviz.geometry`'s geometry) this module imports numpy only, never
TensorFlow or Streamlit.

The forward pass is the cross-correlation of :func:`convviz.ops.conv2d_steps`,
``y[i, j] = sum_{a, b} xp[i*s + a*d, j*s + b*d] * k[a, b] + bias`` (``xp`` the zero-padded input).
Given ``grad_output = dL/dy`` (written ``g``), the chain rule gives three gradients:

* the kernel's, ``dK = sum_{i, j} g[i, j] * patch(i, j)``: each window's patch, scaled by the gradient
  of the output cell it filled, added in (:class:`KernelGradStep`);
* the input's, two ways. *Scatter*: each output cell sends ``g[i, j] * k`` back onto the cells its window
  covered; what lands on padding is dropped (:class:`ScatterStep`). *Gather*: each input cell collects
  ``dX[r, c] = sum_{a, b} G[r + a*d, c + b*d] * k[kh-1-a, kw-1-b]``, the correlation of the
  stride-spread, padded ``g`` (``G``) with the flipped kernel: the convolution's transpose,
  V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning", 2016, section 4
  (transposed convolution arithmetic: a stride becomes ``s - 1`` zeros between the cells of ``g``, padding
  ``p`` becomes ``d*(k - 1) - p`` zeros before them);
* the bias's, ``db = sum_{i, j} g[i, j]``.

Layout: a matrix is ``(height, width)``, a multi-channel input ``(height, width, channels)`` with a kernel
``(kernel_height, kernel_width, channels)`` (one filter, summed over channels), as in :mod:`convviz.ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convviz.geometry import conv_geometry, transposed_geometry
from convviz.ops import WindowStep, check_finite, conv2d_steps

__all__ = [
    "ConvBackward",
    "ConvTranspose",
    "KernelGradStep",
    "PoolBackward",
    "PoolWindow",
    "ReluBackward",
    "ScatterStep",
    "conv2d_backward_steps",
    "conv2d_transpose_steps",
    "max_pool_backward",
    "relu_backward",
]

# --------------------------------------------------------------------------- convolution
@dataclass(frozen=True)
class KernelGradStep:
    """One window position's share of the kernel gradient.

    Attributes:
        window: the forward pass's record of this position (:class:`convviz.ops.WindowStep`: ``out_index``,
            the taps' ``rows`` / ``cols`` in the padded input, ``on_padding``, the ``patch``).
        grad: ``grad_output[i, j]`` of the output cell ``(i, j)`` the window filled.
        contribution: ``grad * window.patch``, added into ``dK`` at this position.
        total: ``dK`` after this position (the running sum), the kernel's shape.
    """

    window: WindowStep
    grad: float
    contribution: np.ndarray
    total: np.ndarray


@dataclass(frozen=True)
class ScatterStep:
    """One output cell sending its gradient back onto the input cells its window covered.

    Attributes:
        window: the forward pass's record of this position (its ``on_padding`` taps' shares are dropped).
        grad: ``grad_output[i, j]``.
        contribution: ``grad * kernel``, ``(kh, kw[, channels])``, the padding taps' shares included.
        total: ``dX`` after this position, ``(height, width[, channels])`` (the unpadded input's shape).
    """

    window: WindowStep
    grad: float
    contribution: np.ndarray
    total: np.ndarray


@dataclass(frozen=True)
class ConvBackward:
    """Everything the backward pass of one convolution computes, step by step.

    Attributes:
        x: the input, ``(height, width[, channels])``.
        kernel: ``(kh, kw[, channels])``.
        grad_output: ``g = dL/dy``, ``(h_out, w_out)``.
        strides, dilation_rate: ``(rows, cols)``.
        pads: ``((top, bottom), (left, right))`` zero cells of the forward pass.
        forward: the forward pass's window positions (:func:`convviz.ops.conv2d_steps`).
        kernel_steps: one :class:`KernelGradStep` per window position, row-major.
        scatter_steps: one :class:`ScatterStep` per window position, row-major.
        spread_grad: ``G``, ``(height + dh*(kh-1), width + dw*(kw-1))``: ``g`` with ``sh - 1`` zero rows
            (``sw - 1`` zero columns) between its cells and ``d*(k-1) - p_before`` zeros before them (a
            negative count crops: those cells reach only padding), zeros after them up to the size.
        spread_source: int ``(G_rows, G_cols, 2)``: the ``(i, j)`` of the ``g`` cell at each cell of ``G``,
            ``(-1, -1)`` for an inserted or padding zero.
        flipped_kernel: ``kernel[::-1, ::-1]``.
        gather_steps: one list of :class:`convviz.ops.WindowStep` per input channel (one list for a 2-D
            input): the correlation of ``G`` with the flipped kernel (dilated as the forward pass), step
            ``r * width + c`` computing ``dX[r, c]`` (of that channel).
        grad_kernel: ``dK``, the kernel's shape.
        grad_input: ``dX``, the input's shape.
        grad_bias: ``db``, a number.
    """

    x: np.ndarray
    kernel: np.ndarray
    grad_output: np.ndarray
    strides: tuple[int, int]
    dilation_rate: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    forward: list[WindowStep]
    kernel_steps: list[KernelGradStep]
    scatter_steps: list[ScatterStep]
    spread_grad: np.ndarray
    spread_source: np.ndarray
    flipped_kernel: np.ndarray
    gather_steps: tuple[list[WindowStep], ...]
    grad_kernel: np.ndarray
    grad_input: np.ndarray
    grad_bias: float


def _spread(g: np.ndarray, size: tuple[int, int], offset: tuple[int, int], strides: tuple[int, int]):
    """``G`` and its source map: ``g[i, j]`` placed at ``(offset_r + i*sh, offset_c + j*sw)`` when inside ``size``."""
    spread = np.zeros(size)
    source = np.full(size + (2,), -1, dtype=int)
    rows = offset[0] + strides[0] * np.arange(g.shape[0])
    cols = offset[1] + strides[1] * np.arange(g.shape[1])
    keep_r = (rows >= 0) & (rows < size[0])
    keep_c = (cols >= 0) & (cols < size[1])
    at = np.ix_(rows[keep_r], cols[keep_c])
    spread[at] = g[np.ix_(keep_r, keep_c)]
    source[at] = np.stack(np.meshgrid(np.flatnonzero(keep_r), np.flatnonzero(keep_c), indexing="ij"), axis=-1)
    return spread, source


def conv2d_backward_steps(x, kernel, grad_output, strides=1, padding=0, dilation_rate=1) -> ConvBackward:
    """The gradients of a convolution, recorded window by window (``dK``, ``dX`` by scatter and by gather, ``db``).

    Same geometry as :func:`convviz.ops.conv2d_steps` (stride, padding, dilation, channels). The bias does
    not change any gradient, so it is not an argument.

    Args:
        x: input, ``(height, width)`` or ``(height, width, channels)``.
        kernel: ``(kh, kw)`` for a 2-D input, ``(kh, kw, channels)`` for a multi-channel one.
        grad_output: ``dL/dy``, ``(h_out, w_out)``: the output's shape
            (:func:`convviz.geometry.output_size` along each axis).
        strides, padding, dilation_rate: as in :func:`convviz.ops.conv2d_steps`.

    Returns:
        :class:`ConvBackward`; ``grad_kernel``, ``grad_input`` and ``grad_bias`` are what
        ``tf.GradientTape`` gives for ``tf.nn.convolution`` with the loss ``sum(grad_output * y)``.

    Raises:
        ValueError: as :func:`convviz.ops.conv2d_steps`; NaN, infinity or non-numbers in ``grad_output``, or
            a ``grad_output`` whose shape is not the output's.

    Example:
        >>> back = conv2d_backward_steps([[1, 2], [3, 4]], [[1]], [[1, 0], [0, 2]])
        >>> back.grad_kernel.tolist(), back.grad_input.tolist(), back.grad_bias
        ([[9.0]], [[1.0, 0.0], [0.0, 2.0]], 3.0)
    """
    forward = conv2d_steps(x, kernel, strides, padding, dilation_rate)
    x = check_finite(x, "x")
    kernel = check_finite(kernel, "kernel")
    g = check_finite(grad_output, "grad_output")
    (sh, sw), (dh, dw), pads, out_shape = conv_geometry(x.shape, kernel.shape, strides, padding, dilation_rate)
    if g.shape != out_shape:
        raise ValueError(f"grad_output must have the output's shape {out_shape}, got grad_output shape {g.shape}")
    (top, _), (left, _) = pads
    h, w = x.shape[:2]
    kh, kw = kernel.shape[:2]

    kernel_steps, scatter_steps = [], []
    dk = np.zeros_like(kernel)
    dx = np.zeros_like(x)
    for step in forward:
        gij = float(g[step.out_index])
        contribution = gij * step.patch
        dk = dk + contribution
        kernel_steps.append(KernelGradStep(step, gij, contribution, dk))
        sent = gij * kernel
        dx = dx.copy()
        for a, r in enumerate(step.rows):
            for b, c in enumerate(step.cols):
                if not step.on_padding[a, b]:
                    dx[r - top, c - left] += sent[a, b]
        scatter_steps.append(ScatterStep(step, gij, sent, dx))

    size = (h + dh * (kh - 1), w + dw * (kw - 1))
    spread, source = _spread(g, size, (dh * (kh - 1) - top, dw * (kw - 1) - left), (sh, sw))
    flipped = kernel[::-1, ::-1].copy()
    if x.ndim == 2:
        gather = (conv2d_steps(spread, flipped, 1, 0, (dh, dw)),)
    else:
        gather = tuple(conv2d_steps(spread, flipped[:, :, c], 1, 0, (dh, dw)) for c in range(x.shape[2]))
    grad_input = np.stack([np.array([s.value for s in steps]).reshape(h, w) for steps in gather], axis=-1)
    return ConvBackward(
        x=x, kernel=kernel, grad_output=g, strides=(sh, sw), dilation_rate=(dh, dw), pads=pads, forward=forward,
        kernel_steps=kernel_steps, scatter_steps=scatter_steps, spread_grad=spread, spread_source=source,
        flipped_kernel=flipped, gather_steps=gather, grad_kernel=dk,
        grad_input=grad_input[:, :, 0] if x.ndim == 2 else grad_input, grad_bias=float(g.sum()),
    )


# --------------------------------------------------------------------------- transposed convolution
@dataclass(frozen=True)
class ConvTranspose:
    """A transposed convolution, input cell by input cell: each cell scatters ``value · kernel`` onto the output.

    The geometry is the forward convolution's whose input gradient this is (:func:`conv2d_backward_steps` with
    ``grad_output = x``): the *canvas* below is that forward convolution's padded input, the crop its padding.

    Attributes:
        x: the input, ``(height, width)``.
        kernel: ``(kh, kw)``.
        strides, dilation_rate: ``(rows, cols)``.
        crop: ``((top, bottom), (left, right))`` canvas cells cropped off (the padding).
        output_padding: ``(rows, cols)``: cells at the canvas's bottom / right that the scatter never reaches.
        canvas_shape: ``(canvas_height, canvas_width)``, the uncropped output:
            ``(n - 1)*s + d*(k - 1) + 1 + output_padding`` along each axis.
        output_shape: ``(h_out, w_out)``, the canvas less the crop (:func:`convviz.geometry.transposed_geometry`).
        steps: one :class:`ScatterStep` per input cell, row-major: ``window.out_index`` is the input cell
            ``(i, j)``, ``window.rows`` / ``window.cols`` the canvas rows / columns its taps land on
            (``i*s + a*d``), ``window.on_padding`` the taps that land on the cropped border, ``grad`` the cell's
            value, ``contribution`` ``value · kernel`` (``(kh, kw)``), ``total`` the (cropped) output so far.
            (The window's ``patch``, ``products`` and ``value`` are the forward pass's over a zero input: not used.)
        canvas_totals: ``(len(steps), canvas_height, canvas_width)``: the uncropped output after each step.
        output: the result, ``(h_out, w_out)`` (``steps[-1].total``).
        gathered: the same result computed the other way, as the correlation of the stride-spread, padded input
            with the flipped kernel (:attr:`ConvBackward.grad_input`).
    """

    x: np.ndarray
    kernel: np.ndarray
    strides: tuple[int, int]
    dilation_rate: tuple[int, int]
    crop: tuple[tuple[int, int], tuple[int, int]]
    output_padding: tuple[int, int]
    canvas_shape: tuple[int, int]
    output_shape: tuple[int, int]
    steps: list[ScatterStep]
    canvas_totals: np.ndarray
    output: np.ndarray
    gathered: np.ndarray


def conv2d_transpose_steps(x, kernel, strides=1, padding=0, dilation_rate=1, output_padding=0) -> ConvTranspose:
    """A 2-D transposed convolution recorded input cell by input cell (what ``tf.nn.conv2d_transpose`` computes).

    ``out = crop(canvas)`` with ``canvas[i*s + a*d, j*s + b*d] += x[i, j] * kernel[a, b]``: the input gradient
    of the forward convolution (of an ``output_shape`` input, same strides, padding and dilation) for
    ``grad_output = x``, so the records are :func:`conv2d_backward_steps`'s scatter steps.

    Args:
        x: input, ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, padding, dilation_rate, output_padding: as in :func:`convviz.geometry.transposed_geometry`.

    Returns:
        :class:`ConvTranspose`; ``output`` has shape ``output_shape``,
        ``(n - 1)*s - (p_before + p_after) + d*(k - 1) + 1 + output_padding`` along each axis.

    Raises:
        ValueError: NaN, infinity or non-numbers; an input or kernel that is not 2-D or is empty; anything
            :func:`convviz.geometry.transposed_geometry` refuses (checked before anything is allocated).

    Example:
        >>> tc = conv2d_transpose_steps([[1, 2], [3, 4]], [[1, 1], [1, 1]], strides=2)
        >>> tc.output.tolist()
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
    """
    x = check_finite(x, "x")
    kernel = check_finite(kernel, "kernel")
    if x.ndim != 2 or kernel.ndim != 2 or min(x.shape + kernel.shape) < 1:
        raise ValueError(f"a transposed convolution here needs a non-empty (height, width) input and "
                         f"(kernel_height, kernel_width) kernel, got shapes {x.shape} and {kernel.shape}")
    s, d, crop, extra, out_shape, canvas_shape = transposed_geometry(
        x.shape, kernel.shape, strides, padding, dilation_rate, output_padding)
    back = conv2d_backward_steps(np.zeros(out_shape), kernel, x, s, padding, d)
    landed = np.zeros((len(back.scatter_steps),) + canvas_shape)
    for k, step in enumerate(back.scatter_steps):
        landed[k][np.ix_(step.window.rows, step.window.cols)] = step.contribution
    return ConvTranspose(
        x=x, kernel=kernel, strides=s, dilation_rate=d, crop=crop, output_padding=extra, canvas_shape=canvas_shape,
        output_shape=out_shape, steps=back.scatter_steps, canvas_totals=np.cumsum(landed, axis=0),
        output=back.scatter_steps[-1].total, gathered=back.grad_input,
    )


# --------------------------------------------------------------------------- pooling and ReLU
@dataclass(frozen=True)
class PoolWindow:
    """One max-pooling window and where its gradient goes.

    Attributes:
        index: position in row-major order, 0-based.
        out_index: ``(i, j)``, the pooled cell.
        rows, cols: the input rows / columns the window covers.
        values: the input under the window, ``(pool, pool)``.
        argmax: ``(a, b)`` inside the window of the maximum that gets the gradient: the first in row-major
            order when several cells tie, as TensorFlow's ``MaxPoolGrad`` does.
        ties: how many cells hold the maximum.
        value: the maximum.
        grad: ``grad_output[i, j]``.
        routed: ``(pool, pool)``, ``grad`` at ``argmax``, 0 elsewhere.
    """

    index: int
    out_index: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    values: np.ndarray
    argmax: tuple[int, int]
    ties: int
    value: float
    grad: float
    routed: np.ndarray


@dataclass(frozen=True)
class PoolBackward:
    """Max pooling's forward and backward pass.

    Attributes:
        x: the input, ``(height, width)``.
        output: the pooled map, ``(height // pool, width // pool)``.
        grad_output: its gradient, same shape.
        windows: one :class:`PoolWindow` per pooled cell, row-major.
        grad_input: ``(height, width)``; rows / columns past the last whole window get 0.
    """

    x: np.ndarray
    output: np.ndarray
    grad_output: np.ndarray
    windows: list[PoolWindow]
    grad_input: np.ndarray


def max_pool_backward(x, grad_output, pool_size: int = 2) -> PoolBackward:
    """Max pooling (``pool_size`` square windows, stride ``pool_size``, valid) and its gradient, window by window.

    Each window's gradient goes to its maximum, all of it to the first maximum in row-major order when
    several cells tie (TensorFlow's rule; tested against ``tf.nn.max_pool2d`` under ``tf.GradientTape``).

    Args:
        x: ``(height, width)``, at least ``pool_size`` each way.
        grad_output: ``(height // pool_size, width // pool_size)``.
        pool_size: window side and stride (cells), >= 1.

    Returns:
        :class:`PoolBackward`.

    Raises:
        ValueError: NaN, infinity or non-numbers; a 2-D input smaller than the window; a ``grad_output`` of
            the wrong shape; ``pool_size`` < 1.

    Example:
        >>> back = max_pool_backward([[1, 3], [3, 2]], [[5]])
        >>> back.output.tolist(), back.windows[0].ties, back.grad_input.tolist()
        ([[3.0]], 2, [[0.0, 5.0], [0.0, 0.0]])
    """
    x = check_finite(x, "x")
    g = check_finite(grad_output, "grad_output")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ValueError(f"pool_size must be an integer >= 1, got pool_size={pool_size!r}")
    p = pool_size
    if x.ndim != 2 or x.shape[0] < p or x.shape[1] < p:
        raise ValueError(f"x must be a (height, width) matrix at least {p}×{p}, got shape {x.shape}")
    out_shape = (x.shape[0] // p, x.shape[1] // p)
    if g.shape != out_shape:
        raise ValueError(f"grad_output must have the pooled shape {out_shape}, got grad_output shape {g.shape}")
    windows = []
    output = np.zeros(out_shape)
    dx = np.zeros_like(x)
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            rows, cols = tuple(range(i * p, i * p + p)), tuple(range(j * p, j * p + p))
            values = x[i * p:i * p + p, j * p:j * p + p]
            a, b = divmod(int(np.argmax(values)), p)  # np.argmax: the first maximum in row-major order
            routed = np.zeros((p, p))
            routed[a, b] = g[i, j]
            dx[i * p:i * p + p, j * p:j * p + p] = routed
            output[i, j] = values[a, b]
            windows.append(PoolWindow(len(windows), (i, j), rows, cols, values, (a, b),
                                      int((values == values[a, b]).sum()), float(values[a, b]), float(g[i, j]),
                                      routed))
    return PoolBackward(x, output, g, windows, dx)


@dataclass(frozen=True)
class ReluBackward:
    """ReLU's forward and backward pass.

    Attributes:
        x: the input ``z``, any shape.
        output: ``max(z, 0)``.
        mask: bool, ``z > 0``: where the gradient passes (at ``z = 0`` it does not, as in TensorFlow).
        grad_output: ``dL/d relu(z)``.
        grad_input: ``grad_output * mask``.
    """

    x: np.ndarray
    output: np.ndarray
    mask: np.ndarray
    grad_output: np.ndarray
    grad_input: np.ndarray


def relu_backward(x, grad_output) -> ReluBackward:
    """ReLU and its gradient: the upstream gradient where the input was positive, 0 elsewhere.

    Args:
        x: ``z``, any shape.
        grad_output: the same shape.

    Returns:
        :class:`ReluBackward`.

    Raises:
        ValueError: NaN, infinity or non-numbers, or shapes that differ.

    Example:
        >>> relu_backward([-1, 0, 2], [5, 5, 5]).grad_input.tolist()
        [0.0, 0.0, 5.0]
    """
    x = check_finite(x, "x")
    g = check_finite(grad_output, "grad_output")
    if g.shape != x.shape:
        raise ValueError(f"grad_output must have the input's shape {x.shape}, got grad_output shape {g.shape}")
    mask = x > 0
    return ReluBackward(x, np.maximum(x, 0.0), mask, g, np.where(mask, g, 0.0))
