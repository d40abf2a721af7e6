"""The 2-D convolution, one window position at a time, in plain numpy.

This module is the arithmetic that ConvViz draws: for every position of the
sliding window it records which input cells the kernel taps touch (with
stride, padding and dilation), the element-wise products and their sum. The
geometry itself (sizes, the one meaning of padding, argument checks) is
:mod:`convviz.geometry`'s. It imports numpy only (never TensorFlow or
Streamlit), so pages that step through a small convolution stay fast.

Terminology. Deep learning frameworks call *cross-correlation* "convolution":
``y[i, j] = sum_{a, b} x[i*s + a*d, j*s + b*d] * k[a, b]``. True (mathematical)
convolution flips the kernel first: ``k[kh-1-a, kw-1-b]``. Every function here
computes cross-correlation unless ``flip_kernel=True`` is given.

Layout. A matrix is ``(height, width)``; a multi-channel input is
``(height, width, channels)`` (NHWC without the batch axis); a bank of
filters is ``(kernel_height, kernel_width, in_channels, filters)``.

Output sizes follow :func:`convviz.geometry.output_size` (V. Dumoulin and
F. Visin, "A guide to convolution arithmetic for deep learning", 2016,
relationship 15: ``o = floor((n + 2p - d(k - 1) - 1) / s) + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convviz.geometry import conv_geometry, positive_int

__all__ = [
    "WindowStep",
    "check_finite",
    "conv2d_naive",
    "conv2d_patches",
    "conv2d_steps",
    "describe_sum",
    "depthwise_conv2d_naive",
    "pad2d",
]

def check_finite(array, name: str) -> np.ndarray:
    """Return ``array`` as a float64 array, or raise if it is not all finite numbers.

    Args:
        array: anything ``np.asarray`` turns into numbers.
        name: how the error message calls it (e.g. ``"x"``, ``"kernel"``).

    Returns:
        ``np.ndarray`` of dtype float64, same shape.

    Raises:
        ValueError: non-numeric entries, or NaN / infinity, naming the first
            bad position and value.
    """
    try:
        arr = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must contain only numbers: {exc}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must contain only finite numbers, got {name}{list(pos)}={float(arr[pos])!r}"
        )
    return arr


def pad2d(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Zero-pad the first two axes of ``x``.

    Args:
        x: array of shape ``(height, width)`` or ``(height, width, channels)``.
        pads: ``((top, bottom), (left, right))`` numbers of zero cells.

    Returns:
        Array of shape ``(height + top + bottom, width + left + right[, channels])``.
    """
    widths = [pads[0], pads[1]] + [(0, 0)] * (x.ndim - 2)
    return np.pad(x, widths, mode="constant", constant_values=0)


@dataclass(frozen=True)
class WindowStep:
    """One position of the sliding window.

    Attributes:
        index: position in row-major order, 0-based.
        out_index: ``(i, j)``, the output cell this window fills.
        rows: padded-input row of each kernel tap row, length ``kernel_height``.
        cols: padded-input column of each kernel tap column, length ``kernel_width``.
        on_padding: bool ``(kernel_height, kernel_width)``, True where a tap
            falls on a padding zero rather than on the input.
        patch: the input values under the taps, ``(kh, kw)`` or ``(kh, kw, channels)``.
        kernel: the kernel as applied (flipped if ``flip_kernel``), same shape.
        products: ``patch * kernel`` element-wise, same shape.
        channel_sums: per-channel partial sums ``(channels,)`` for a
            multi-channel input, else ``None``.
        bias: the bias added.
        value: ``products.sum() + bias``, the output cell's value.
    """

    index: int
    out_index: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    on_padding: np.ndarray
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray | None
    bias: float
    value: float


def _check_shapes(x: np.ndarray, kernel: np.ndarray, allow_filters: bool):
    if x.ndim not in (2, 3):
        raise ValueError(f"x must have shape (height, width) or (height, width, channels), got shape {x.shape}")
    if x.ndim == 2:
        if kernel.ndim != 2:
            raise ValueError(f"a (height, width) input needs a (kernel_height, kernel_width) kernel, "
                             f"got kernel shape {kernel.shape}")
    else:
        ok = kernel.ndim == 3 or (allow_filters and kernel.ndim == 4)
        if not ok:
            want = "(kh, kw, channels)" + (" or (kh, kw, channels, filters)" if allow_filters else "")
            raise ValueError(f"a (height, width, channels) input needs a {want} kernel, got kernel shape {kernel.shape}")
        if kernel.shape[2] != x.shape[2]:
            raise ValueError(
                f"kernel channels must match input channels: kernel has {kernel.shape[2]}, "
                f"x has channels={x.shape[2]}"
            )
    if min(x.shape) < 1 or min(kernel.shape) < 1:
        raise ValueError(f"x and kernel must not be empty, got shapes {x.shape} and {kernel.shape}")


def conv2d_steps(x, kernel, strides=1, padding=0, dilation_rate=1, bias: float = 0.0,
                 flip_kernel: bool = False) -> list[WindowStep]:
    """Every position of the sliding window, in row-major order.

    Generalises the seed notebook's ``simple_convolve_operation`` (2-D) and
    ``convolve_depthwise`` (a kernel as deep as its input, products summed
    over channels too: the standard multi-channel convolution).

    Args:
        x: input, ``(height, width)`` or ``(height, width, channels)``.
        kernel: ``(kernel_height, kernel_width)`` for a 2-D input,
            ``(kernel_height, kernel_width, channels)`` for a multi-channel one.
        strides: int or ``(rows, cols)``, window step in cells, >= 1.
        padding: int >= 0, ``"valid"``, ``"same"``, or a pair ``(rows, cols)`` of
            those, each may be ``(before, after)`` (:mod:`convviz.geometry`).
        dilation_rate: int or ``(rows, cols)``, spacing of kernel taps, >= 1.
        bias: number added to every output cell.
        flip_kernel: False (default) for cross-correlation, what deep learning
            frameworks call convolution; True for true convolution, which
            flips the kernel in both spatial axes first.

    Returns:
        A list of :class:`WindowStep`, one per output cell, row-major.

    Raises:
        ValueError: NaN, infinity or non-numbers in ``x``, ``kernel`` or
            ``bias``; mismatched shapes or channels; strides, dilation or
            padding out of range; a kernel larger than the padded input.

    Example:
        >>> x = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1],
        ...      [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
        >>> k = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
        >>> [s.value for s in conv2d_steps(x, k)][:3]
        [4.0, 3.0, 4.0]
    """
    x = check_finite(x, "x")
    kernel = check_finite(kernel, "kernel")
    bias = float(check_finite(bias, "bias"))
    _check_shapes(x, kernel, allow_filters=False)
    (sh, sw), (dh, dw), pads, (h_out, w_out) = conv_geometry(
        x.shape, kernel.shape, strides, padding, dilation_rate)
    if flip_kernel:
        kernel = kernel[::-1, ::-1].copy()
    xp = pad2d(x, pads)
    kh, kw = kernel.shape[:2]
    top, left = pads[0][0], pads[1][0]
    h, w = x.shape[:2]
    tap_r = dh * np.arange(kh)
    tap_c = dw * np.arange(kw)
    steps = []
    for i in range(h_out):
        rows = i * sh + tap_r
        row_pad = (rows < top) | (rows >= top + h)
        for j in range(w_out):
            cols = j * sw + tap_c
            col_pad = (cols < left) | (cols >= left + w)
            patch = xp[np.ix_(rows, cols)]
            products = patch * kernel
            channel_sums = products.sum(axis=(0, 1)) if x.ndim == 3 else None
            steps.append(WindowStep(
                index=len(steps),
                out_index=(i, j),
                rows=tuple(int(r) for r in rows),
                cols=tuple(int(c) for c in cols),
                on_padding=row_pad[:, None] | col_pad[None, :],
                patch=patch,
                kernel=kernel,
                products=products,
                channel_sums=channel_sums,
                bias=bias,
                value=float(products.sum() + bias),
            ))
    return steps


def conv2d_patches(x, kernel_shape, strides=1, padding=0, dilation_rate=1) -> np.ndarray:
    """Every window's patch at once (vectorised "im2col"), the same cells :func:`conv2d_steps` records one by one.

    Args:
        x: input, ``(height, width)`` or ``(height, width, channels)``.
        kernel_shape: ``(kernel_height, kernel_width)``.
        strides, padding, dilation_rate: as in :func:`conv2d_steps`.

    Returns:
        float64 ``(h_out, w_out, kernel_height, kernel_width[, channels])``: ``patches[i, j]`` is the
        (zero-padded) input under the taps of the window that fills output cell ``(i, j)``. The
        cross-correlation is ``np.tensordot(patches, kernel, kernel.ndim)``.

    Raises:
        ValueError: as :func:`conv2d_steps`.

    Example:
        >>> conv2d_patches(np.arange(9).reshape(3, 3), (2, 2))[1, 0].tolist()
        [[3.0, 4.0], [6.0, 7.0]]
    """
    x = check_finite(x, "x")
    if x.ndim not in (2, 3):
        raise ValueError(f"x must have shape (height, width) or (height, width, channels), got shape {x.shape}")
    kh, kw = (positive_int(v, "kernel_shape") for v in tuple(kernel_shape)[:2])
    (sh, sw), (dh, dw), pads, (h_out, w_out) = conv_geometry(x.shape, (kh, kw), strides, padding, dilation_rate)
    rows = (sh * np.arange(h_out))[:, None] + dh * np.arange(kh)[None, :]
    cols = (sw * np.arange(w_out))[:, None] + dw * np.arange(kw)[None, :]
    return pad2d(x, pads)[rows[:, None, :, None], cols[None, :, None, :]]


def conv2d_naive(x, kernel, strides=1, padding=0, dilation_rate=1, bias=0.0,
                 flip_kernel: bool = False) -> np.ndarray:
    """The feature map, assembled window by window from :func:`conv2d_steps`.

    Cross-correlation by default (what ``tf.nn.conv2d`` computes); true
    convolution with ``flip_kernel=True``.

    Args:
        x: ``(height, width)`` or ``(height, width, channels)``.
        kernel: ``(kh, kw)`` for a 2-D input; ``(kh, kw, channels)`` (one
            filter, summed over channels) or ``(kh, kw, channels, filters)``
            for a multi-channel input.
        strides, padding, dilation_rate, flip_kernel: as in :func:`conv2d_steps`.
        bias: a number, or ``(filters,)`` with a 4-D kernel.

    Returns:
        float64 ``(h_out, w_out)`` for a 2-D or 3-D kernel,
        ``(h_out, w_out, filters)`` for a 4-D kernel, where ``h_out`` and
        ``w_out`` come from :func:`convviz.geometry.output_size`.

    Raises:
        ValueError: as :func:`conv2d_steps`.

    Example:
        >>> conv2d_naive(np.arange(9).reshape(3, 3), [[0, 1], [2, 3]]).tolist()
        [[19.0, 25.0], [37.0, 43.0]]
    """
    x = check_finite(x, "x")
    kernel = check_finite(kernel, "kernel")
    _check_shapes(x, kernel, allow_filters=True)
    if kernel.ndim == 4:
        filters = kernel.shape[3]
        biases = np.broadcast_to(check_finite(bias, "bias"), (filters,))
        maps = [conv2d_naive(x, kernel[..., f], strides, padding, dilation_rate, biases[f], flip_kernel)
                for f in range(filters)]
        return np.stack(maps, axis=-1)
    steps = conv2d_steps(x, kernel, strides, padding, dilation_rate, bias, flip_kernel)
    h_out = steps[-1].out_index[0] + 1
    w_out = steps[-1].out_index[1] + 1
    return np.array([s.value for s in steps]).reshape(h_out, w_out)


def depthwise_conv2d_naive(x, kernel, strides=1, padding=0, dilation_rate=1,
                           flip_kernel: bool = False) -> np.ndarray:
    """True depthwise convolution: each channel with its own kernel, no sum over channels.

    Unlike :func:`conv2d_naive` (standard multi-channel convolution, which sums
    the per-channel products into one map per filter), this keeps one output
    map per input channel, as ``tf.nn.depthwise_conv2d`` does.

    Args:
        x: ``(height, width, channels)``.
        kernel: ``(kh, kw, channels)`` or ``(kh, kw, channels, multiplier)``.
        strides, padding, dilation_rate, flip_kernel: as in :func:`conv2d_steps`.

    Returns:
        float64 ``(h_out, w_out, channels * multiplier)``; output channel
        ``c * multiplier + m`` is channel ``c`` with kernel ``[..., c, m]``.

    Raises:
        ValueError: as :func:`conv2d_steps`.
    """
    x = check_finite(x, "x")
    kernel = check_finite(kernel, "kernel")
    if x.ndim != 3:
        raise ValueError(f"depthwise convolution needs x of shape (height, width, channels), got shape {x.shape}")
    if kernel.ndim == 3:
        kernel = kernel[..., None]
    _check_shapes(x, kernel, allow_filters=True)
    maps = [conv2d_naive(x[..., c], kernel[:, :, c, m], strides, padding, dilation_rate, 0.0, flip_kernel)
            for c in range(x.shape[2]) for m in range(kernel.shape[3])]
    return np.stack(maps, axis=-1)


def describe_sum(step: WindowStep, decimals: int = 3) -> str:
    """The step's sum written out with its numbers, e.g. ``1·1 + 1·0 + … = 4``.

    Args:
        step: a 2-D :class:`WindowStep` (for a multi-channel step the
            per-channel partial sums are written instead).
        decimals: rounding of each number shown.

    Returns:
        A string using ``·`` for multiplication; the bias is included when non-zero.
    """
    def fmt(v: float) -> str:
        v = round(float(v), decimals)
        if v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return f"{v:g}"

    def term(a: float, b: float) -> str:
        sb = fmt(b)
        return f"{fmt(a)}·({sb})" if float(b) < 0 else f"{fmt(a)}·{sb}"

    if step.channel_sums is not None:
        terms = [f"({fmt(v)})" if v < 0 else fmt(v) for v in step.channel_sums]
        head = "channel sums: "
    else:
        terms = [term(a, b) for a, b in zip(step.patch.ravel(), step.kernel.ravel())]
        head = ""
    text = " + ".join(terms)
    if step.bias != 0:
        text += f" + ({fmt(step.bias)})" if step.bias < 0 else f" + {fmt(step.bias)}"
    return f"{head}{text} = {fmt(step.value)}"

