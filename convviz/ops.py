"""The 2-D convolution, one window position at a time, in plain numpy.

This module is the geometry and arithmetic that ConvViz draws: for every
position of the sliding window it records which input cells the kernel taps
touch (with stride, padding and dilation), the element-wise products and
their sum. It imports numpy only (never TensorFlow or Streamlit), so pages
that step through a small convolution stay fast.

Terminology. Deep learning frameworks call *cross-correlation* "convolution":
``y[i, j] = sum_{a, b} x[i*s + a*d, j*s + b*d] * k[a, b]``. True (mathematical)
convolution flips the kernel first: ``k[kh-1-a, kw-1-b]``. Every function here
computes cross-correlation unless ``flip_kernel=True`` is given.

Layout. A matrix is ``(height, width)``; a multi-channel input is
``(height, width, channels)`` (NHWC without the batch axis); a bank of
filters is ``(kernel_height, kernel_width, in_channels, filters)``.

Source of the size formula: V. Dumoulin and F. Visin, "A guide to
convolution arithmetic for deep learning", 2016, relationship 15:
``o = floor((n + 2p - d(k - 1) - 1) / s) + 1``; for the transposed convolution
(:func:`transposed_geometry`) relationship 14, ``o' = s(i' - 1) + a + k - 2p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np

__all__ = [
    "MAX_TRANSPOSED_SIDE",
    "WindowStep",
    "check_finite",
    "conv2d_naive",
    "conv2d_patches",
    "conv2d_steps",
    "conv_geometry",
    "describe_sum",
    "depthwise_conv2d_naive",
    "output_size",
    "pad2d",
    "padding_amounts",
    "transposed_geometry",
]

def _positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value!r}")
    return int(value)


def _pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """Expand an int or a pair of ints to ``(rows, cols)``, validating both."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {name}={value!r}")
        return (_positive_int(value[0], name, minimum), _positive_int(value[1], name, minimum))
    v = _positive_int(value, name, minimum)
    return (v, v)


def padding_amounts(n: int, kernel_size: int, strides: int = 1, padding=0,
                    dilation_rate: int = 1) -> tuple[int, int]:
    """Zeros added before and after the input along one axis.

    Args:
        n: input length along the axis (cells), >= 1.
        kernel_size: kernel length along the axis (taps), >= 1.
        strides: step of the window (cells), >= 1.
        padding: an int >= 0 (that many zeros on each side), ``"valid"`` (none)
            or ``"same"`` (TensorFlow's meaning: enough zeros that the output
            length is ``ceil(n / strides)``; when the total is odd the extra
            zero goes after, i.e. to the bottom or right).
        dilation_rate: spacing between kernel taps (cells), >= 1.

    Returns:
        ``(before, after)``: numbers of zero cells.

    Raises:
        ValueError: an argument out of range, naming it and its value.
    """
    n = _positive_int(n, "n")
    k = _positive_int(kernel_size, "kernel_size")
    s = _positive_int(strides, "strides")
    d = _positive_int(dilation_rate, "dilation_rate")
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0)
        if mode == "same":
            effective = d * (k - 1) + 1
            out = -(-n // s)
            total = max((out - 1) * s + effective - n, 0)
            return (total // 2, total - total // 2)
        raise ValueError(f"padding must be 'valid', 'same' or an integer >= 0, got padding={padding!r}")
    p = _positive_int(padding, "padding", minimum=0)
    return (p, p)


def output_size(n: int, kernel_size: int, strides: int = 1, padding=0,
                dilation_rate: int = 1) -> int:
    """Length of the output along one axis.

    ``floor((n + p_before + p_after - d*(k - 1) - 1) / s) + 1``, which is
    Dumoulin & Visin's ``floor((n + 2p - d(k - 1) - 1) / s) + 1`` when the
    padding is symmetric ("A guide to convolution arithmetic for deep
    learning", 2016).

    Args:
        n: input length (cells), >= 1.
        kernel_size: kernel length (taps), >= 1.
        strides: window step (cells), >= 1.
        padding: int >= 0, ``"valid"`` or ``"same"`` (see :func:`padding_amounts`).
        dilation_rate: spacing between taps (cells), >= 1.

    Returns:
        The output length (cells), >= 1.

    Raises:
        ValueError: an argument out of range, or a dilated kernel longer than
            the padded input (the result would be < 1).

    Example:
        >>> output_size(5, 3)
        3
        >>> output_size(28, 3, strides=2, padding="same")
        14
    """
    before, after = padding_amounts(n, kernel_size, strides, padding, dilation_rate)
    effective = dilation_rate * (kernel_size - 1) + 1
    padded = n + before + after
    if effective > padded:
        raise ValueError(
            f"kernel_size={kernel_size} with dilation_rate={dilation_rate} spans {effective} cells, "
            f"more than the padded input (n={n} + padding {before}+{after} = {padded} cells)"
        )
    return (padded - effective) // strides + 1


MAX_TRANSPOSED_SIDE = 64
"""Most cells a side of a transposed convolution's uncropped output that :func:`transposed_geometry` accepts (the
Convolution page draws every one of them, at every step)."""


def transposed_geometry(x_shape, k_shape, strides=1, padding=0, dilation_rate=1, output_padding=0):
    """The geometry of a transposed convolution along both axes, with every argument checked.

    A transposed convolution scatters each input cell ``x[i, j]`` times the kernel onto an *uncropped* output
    (the "canvas"): tap ``(a, b)`` lands on canvas cell ``(i*s + a*d, j*s + b*d)``. The canvas has
    ``(n - 1)*s + d*(k - 1) + 1 + output_padding`` cells along an axis (the output padding is a band of cells at
    the bottom / right that the scatter never reaches); ``padding`` crops cells from both ends. Along one axis::

        out = (n - 1)*s - (p_before + p_after) + d*(k - 1) + 1 + output_padding

    which is Dumoulin & Visin's relationship 14, ``o' = s(i' - 1) + a + k - 2p`` with the output padding ``a``
    and a dilated kernel's size ``d(k - 1) + 1`` for ``k`` ("A guide to convolution arithmetic for deep
    learning", 2016). It is the gradient of the forward convolution of an ``out``-cell input with the same
    strides, padding and dilation (:func:`conv_geometry` of ``out`` gives back ``n``), which is how
    ``tf.nn.conv2d_transpose`` is defined. ``"same"`` padding is TensorFlow's: the output has ``n*s`` cells,
    cropped as :func:`padding_amounts` pads a forward ``"same"`` convolution of that output (when the kernel is
    shorter than the stride the canvas then ends with ``s - d*(k - 1) - 1`` output-padding cells).

    Args:
        x_shape: the input's shape, ``(height, width)``.
        k_shape: the kernel's shape, ``(kernel_height, kernel_width)``.
        strides, dilation_rate: an int or ``(rows, cols)``, >= 1.
        padding: an int >= 0 (cells cropped from each end), ``"valid"`` (none) or ``"same"``, or a pair of those.
        output_padding: an int or ``(rows, cols)``, >= 0 and smaller than the stride along its axis (TensorFlow's
            rule: a larger one would not give back ``n`` under the forward convolution); 0 with ``"same"``.

    Returns:
        ``(strides, dilation_rate, crop, output_padding, out_shape, canvas_shape)``: ``(sh, sw)``, ``(dh, dw)``,
        ``((top, bottom), (left, right))`` cells cropped, ``(oph, opw)`` (for ``"same"`` the band the canvas ends
        with), ``(h_out, w_out)`` and the uncropped ``(canvas_height, canvas_width)``.

    Raises:
        ValueError: an argument out of range (naming it and its value and the axis), an output padding not
            smaller than the stride, a padding that crops the whole output, or a canvas over
            :data:`MAX_TRANSPOSED_SIDE` cells a side.

    Example:
        >>> transposed_geometry((3, 3), (3, 3), strides=2, padding=1, output_padding=1)[4:]
        ((6, 6), (8, 8))
    """
    s = _pair(strides, "strides")
    d = _pair(dilation_rate, "dilation_rate")
    op = _pair(output_padding, "output_padding", minimum=0)
    if isinstance(padding, tuple | list):
        if len(padding) != 2:
            raise ValueError(f"padding must be an int, 'valid', 'same' or a pair, got padding={padding!r}")
        pad_rc = tuple(padding)
    else:
        pad_rc = (padding, padding)
    crop, pads_out, out, canvas = [], [], [], []
    for axis, name in ((0, "height"), (1, "width")):
        n = _positive_int(x_shape[axis], f"input {name}")
        k = _positive_int(k_shape[axis], f"kernel {name}")
        effective = d[axis] * (k - 1) + 1
        reach = (n - 1) * s[axis] + effective
        if op[axis] >= s[axis]:
            raise ValueError(f"along the {name}: output_padding must be smaller than strides (TensorFlow's rule), "
                             f"got output_padding={op[axis]} with strides={s[axis]}")
        mode = pad_rc[axis].lower() if isinstance(pad_rc[axis], str) else None
        if mode == "same":
            if op[axis]:
                raise ValueError(f"along the {name}: output_padding must be 0 with padding='same' (the output is "
                                 f"input x strides), got output_padding={op[axis]}")
            length = n * s[axis]
            before, after = padding_amounts(length, k, s[axis], "same", d[axis])
            extra = length + before + after - reach
        else:
            try:
                before, after = padding_amounts(n, k, s[axis], pad_rc[axis], d[axis])
            except ValueError as exc:
                raise ValueError(f"along the {name}: {exc}") from None
            extra = op[axis]
            length = reach + extra - before - after
        if length < 1:
            raise ValueError(f"along the {name}: padding={pad_rc[axis]!r} crops {before + after} cells from a "
                             f"{reach + extra}-cell result, leaving nothing: use less padding")
        if reach + extra > MAX_TRANSPOSED_SIDE:
            raise ValueError(
                f"along the {name}: the uncropped output would be {reach + extra} cells (input {n}, stride {s[axis]}, "
                f"kernel_size={k}, dilation {d[axis]}), more than MAX_TRANSPOSED_SIDE={MAX_TRANSPOSED_SIDE}: use a "
                "smaller input, kernel, stride or dilation")
        crop.append((before, after))
        pads_out.append(extra)
        out.append(length)
        canvas.append(reach + extra)
    return s, d, tuple(crop), tuple(pads_out), tuple(out), tuple(canvas)


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


def conv_geometry(x_shape, k_shape, strides=1, padding=0, dilation_rate=1):
    """The sliding window's geometry along both axes, with every argument checked.

    Args:
        x_shape: the input's shape, ``(height, width[, channels])``.
        k_shape: the kernel's shape, ``(kernel_height, kernel_width[, ...])``.
        strides, dilation_rate: an int or ``(rows, cols)``, >= 1.
        padding: an int >= 0, ``"valid"``, ``"same"``, or a pair of those (see :func:`padding_amounts`).

    Returns:
        ``(strides, dilation_rate, pads, out_shape)``: ``(sh, sw)``, ``(dh, dw)``,
        ``((top, bottom), (left, right))`` zero cells and ``(h_out, w_out)``.

    Raises:
        ValueError: an argument out of range, or a kernel larger than the padded input, naming the axis.

    Example:
        >>> conv_geometry((5, 5), (3, 3), strides=2, padding="same")
        ((2, 2), (1, 1), ((1, 1), (1, 1)), (3, 3))
    """
    s = _pair(strides, "strides")
    d = _pair(dilation_rate, "dilation_rate")
    if isinstance(padding, tuple | list):
        if len(padding) != 2:
            raise ValueError(f"padding must be an int, 'valid', 'same' or a pair, got padding={padding!r}")
        pad_rc = padding
    else:
        pad_rc = (padding, padding)
    pads = []
    out = []
    for axis, name in ((0, "height"), (1, "width")):
        n, k = x_shape[axis], k_shape[axis]
        try:
            pads.append(padding_amounts(n, k, s[axis], pad_rc[axis], d[axis]))
            out.append(output_size(n, k, s[axis], pad_rc[axis], d[axis]))
        except ValueError as exc:
            raise ValueError(f"along the {name}: {exc}") from None
    return s, d, tuple(pads), tuple(out)


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
        padding: int >= 0, ``"valid"``, ``"same"``, or a pair of those
            (rows, cols). See :func:`padding_amounts`.
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
    kh, kw = (_positive_int(v, "kernel_shape") for v in tuple(kernel_shape)[:2])
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
        ``w_out`` come from :func:`output_size`.

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

