"""Where a sliding window goes: the one owner of convolution geometry (sizes, strides, padding, dilation).

Every module that needs a window's geometry asks this one, in plain numpy-free Python: the numpy step
records (:mod:`convviz.ops`, :mod:`convviz.backprop`), the TensorFlow ops (:mod:`convviz.tensor_ops`), the
layers and the model's spec checks (:mod:`convviz.layers`, :mod:`convviz.model`), the atlas, the Keras export
and the pages. Arguments are checked here, once, and a ``ValueError`` names the bad value.

**Padding has one meaning**, Keras's ``ZeroPadding2D`` plus the two strings of Keras's ``Conv2D``:

* ``"valid"``: no padding;
* ``"same"``: TensorFlow's meaning, enough zeros that the output has ``ceil(n / strides)`` cells; when the
  total is odd the extra zero goes after (bottom / right);
* an int ``p >= 0``: ``p`` zeros on every side;
* a pair ``(rows, cols)``, one entry per axis, each an int, ``"valid"``, ``"same"`` or ``(before, after)``:
  so ``((top, bottom), (left, right))`` pads each side on its own.

The functions of one axis (:func:`padding_amounts`, :func:`output_size`) take one entry: an int, a string or
``(before, after)``.

Sources: the output size is V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
2016, relationship 15, ``o = floor((n + 2p - d(k - 1) - 1) / s) + 1`` (here with ``p_before + p_after`` for
``2p``); the transposed convolution's is their relationship 14, ``o' = s(i' - 1) + a + k - 2p``; ``"same"`` is
TensorFlow's (``tf.nn.convolution``'s documentation: output ``ceil(n / s)``, the extra zero after).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

__all__ = [
    "MAX_TRANSPOSED_SIDE",
    "axis_padding",
    "conv_geometry",
    "effective_size",
    "output_size",
    "padding_2d",
    "padding_amounts",
    "pair",
    "positive_int",
    "split_padding",
    "transposed_geometry",
    "transposed_output_size",
]

_PADDING_FORMS = "'valid', 'same', an integer >= 0 or (before, after)"


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or a ``ValueError`` naming it.

    Args:
        value: a Python or numpy integer (a bool is refused).
        name: how the message calls it.
        minimum: the smallest value accepted.

    Raises:
        ValueError: not an integer, or below ``minimum``, e.g. ``"strides must be >= 1, got strides=0"``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value!r}")
    return int(value)


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as ``(rows, cols)``, both checked by :func:`positive_int`.

    Raises:
        ValueError: a sequence that is not a pair, or an entry out of range, naming it.
    """
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {name}={value!r}")
        return (positive_int(value[0], name, minimum), positive_int(value[1], name, minimum))
    v = positive_int(value, name, minimum)
    return (v, v)


def effective_size(kernel_size: int, dilation_rate: int) -> int:
    """Cells a dilated kernel spans along one axis, ``d*(k - 1) + 1`` (Dumoulin & Visin's ``k̂``)."""
    return dilation_rate * (kernel_size - 1) + 1


def axis_padding(padding):
    """One axis's padding, checked: ``"valid"``, ``"same"`` (lower case) or ``(before, after)`` ints >= 0.

    Args:
        padding: an int >= 0, ``"valid"`` / ``"same"`` (any case) or ``(before, after)``.

    Raises:
        ValueError: anything else, echoing it.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode in ("valid", "same"):
            return mode
        raise ValueError(f"padding must be {_PADDING_FORMS}, got padding={padding!r}")
    if isinstance(padding, tuple | list):
        if len(padding) != 2:
            raise ValueError(f"padding must be {_PADDING_FORMS}, got padding={padding!r}")
        return (positive_int(padding[0], "padding", 0), positive_int(padding[1], "padding", 0))
    p = positive_int(padding, "padding", 0)
    return (p, p)


def split_padding(padding) -> tuple:
    """A 2-D padding (see the module's docstring) as its ``(rows, cols)`` entries, each checked.

    Returns:
        The entries as given (``3``, ``"same"``, ``(0, 1)``), each accepted by :func:`axis_padding`.

    Raises:
        ValueError: a sequence that is not a pair, or an entry :func:`axis_padding` refuses, echoing it.

    Example:
        >>> split_padding(1), split_padding(((0, 1), "same"))
        ((1, 1), ((0, 1), 'same'))
    """
    if isinstance(padding, tuple | list):
        if len(padding) != 2:
            raise ValueError(f"padding must be 'valid', 'same', an int >= 0, or a pair (rows, cols) of those "
                             f"(each may be (before, after)), got padding={padding!r}")
        rows, cols = padding
    else:
        rows = cols = padding
    axis_padding(rows)
    axis_padding(cols)
    return rows, cols


def padding_amounts(n: int, kernel_size: int, strides: int = 1, padding=0,
                    dilation_rate: int = 1) -> tuple[int, int]:
    """Zeros added before and after the input along one axis.

    Args:
        n: input length along the axis (cells), >= 1.
        kernel_size: kernel length along the axis (taps), >= 1.
        strides: step of the window (cells), >= 1.
        padding: an int >= 0 (that many zeros on each side), ``"valid"`` (none), ``"same"`` (TensorFlow's
            meaning: enough zeros that the output length is ``ceil(n / strides)``; when the total is odd the
            extra zero goes after, i.e. to the bottom or right) or ``(before, after)``.
        dilation_rate: spacing between kernel taps (cells), >= 1.

    Returns:
        ``(before, after)``: numbers of zero cells.

    Raises:
        ValueError: an argument out of range, naming it and its value.

    Example:
        >>> padding_amounts(6, 2, padding="same"), padding_amounts(6, 3, padding=(0, 2))
        ((0, 1), (0, 2))
    """
    n = positive_int(n, "n")
    k = positive_int(kernel_size, "kernel_size")
    s = positive_int(strides, "strides")
    d = positive_int(dilation_rate, "dilation_rate")
    mode = axis_padding(padding)
    if mode == "valid":
        return (0, 0)
    if mode == "same":
        total = max((-(-n // s) - 1) * s + effective_size(k, d) - n, 0)
        return (total // 2, total - total // 2)
    return mode


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
        padding: int >= 0, ``"valid"``, ``"same"`` or ``(before, after)`` (see :func:`padding_amounts`).
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
    effective = effective_size(kernel_size, dilation_rate)
    padded = n + before + after
    if effective > padded:
        raise ValueError(
            f"kernel_size={kernel_size} with dilation_rate={dilation_rate} spans {effective} cells, "
            f"more than the padded input (n={n} + padding {before}+{after} = {padded} cells)"
        )
    return (padded - effective) // strides + 1


def padding_2d(in_shape, k_shape, strides=1, padding=0, dilation_rate=1):
    """Zeros around a 2-D input: ``((top, bottom), (left, right))``.

    Args:
        in_shape: ``(height, width[, ...])``; k_shape: ``(kernel_height, kernel_width[, ...])``.
        strides, dilation_rate: an int or ``(rows, cols)``, >= 1.
        padding: see the module's docstring.

    Raises:
        ValueError: an argument out of range, naming the axis and the value.
    """
    s, d = pair(strides, "strides"), pair(dilation_rate, "dilation_rate")
    pads = []
    for axis, (name, entry) in enumerate(zip(("height", "width"), split_padding(padding))):
        try:
            pads.append(padding_amounts(in_shape[axis], k_shape[axis], s[axis], entry, d[axis]))
        except ValueError as exc:
            raise ValueError(f"along the {name}: {exc}") from None
    return tuple(pads)


def conv_geometry(x_shape, k_shape, strides=1, padding=0, dilation_rate=1):
    """The sliding window's geometry along both axes, with every argument checked.

    Args:
        x_shape: the input's shape, ``(height, width[, channels])``.
        k_shape: the kernel's shape, ``(kernel_height, kernel_width[, ...])``.
        strides, dilation_rate: an int or ``(rows, cols)``, >= 1.
        padding: see the module's docstring.

    Returns:
        ``(strides, dilation_rate, pads, out_shape)``: ``(sh, sw)``, ``(dh, dw)``,
        ``((top, bottom), (left, right))`` zero cells and ``(h_out, w_out)``.

    Raises:
        ValueError: an argument out of range, or a kernel larger than the padded input, naming the axis.

    Example:
        >>> conv_geometry((5, 5), (3, 3), strides=2, padding="same")
        ((2, 2), (1, 1), ((1, 1), (1, 1)), (3, 3))
    """
    s, d = pair(strides, "strides"), pair(dilation_rate, "dilation_rate")
    pads = padding_2d(x_shape, k_shape, s, padding, d)
    out = []
    for axis, name in ((0, "height"), (1, "width")):
        try:
            out.append(output_size(x_shape[axis], k_shape[axis], s[axis], pads[axis], d[axis]))
        except ValueError as exc:
            raise ValueError(f"along the {name}: {exc}") from None
    return s, d, pads, tuple(out)


MAX_TRANSPOSED_SIDE = 64
"""Most cells a side of a transposed convolution's uncropped output that :func:`transposed_geometry` accepts (the
Convolution page draws every one of them, at every step)."""


def _transposed_axis(n, k, s, d, padding, op, name):
    """One axis of :func:`transposed_geometry`: ``(crop, output padding, output length, canvas length)``."""
    n = positive_int(n, f"input {name}")
    k = positive_int(k, f"kernel {name}")
    reach = (n - 1) * s + effective_size(k, d)
    if op >= s:
        raise ValueError(f"along the {name}: output_padding must be smaller than strides (TensorFlow's rule), "
                         f"got output_padding={op} with strides={s}")
    if axis_padding(padding) == "same":
        if op:
            raise ValueError(f"along the {name}: output_padding must be 0 with padding='same' (the output is "
                             f"input x strides), got output_padding={op}")
        length = n * s
        before, after = padding_amounts(length, k, s, "same", d)
        extra = length + before + after - reach
    else:
        before, after = padding_amounts(n, k, s, padding, d)
        extra = op
        length = reach + extra - before - after
    if length < 1:
        raise ValueError(f"along the {name}: padding={padding!r} crops {before + after} cells from a "
                         f"{reach + extra}-cell result, leaving nothing: use less padding")
    if reach + extra > MAX_TRANSPOSED_SIDE:
        raise ValueError(
            f"along the {name}: the uncropped output would be {reach + extra} cells (input {n}, stride {s}, "
            f"kernel_size={k}, dilation {d}), more than MAX_TRANSPOSED_SIDE={MAX_TRANSPOSED_SIDE}: use a "
            "smaller input, kernel, stride or dilation")
    return (before, after), extra, length, reach + extra


def transposed_output_size(n: int, kernel_size: int, strides: int = 1, padding=0, dilation_rate: int = 1,
                           output_padding: int = 0) -> int:
    """Length of a transposed convolution's output along one axis, checked as :func:`transposed_geometry` checks it.

    ``(n - 1)*s - (p_before + p_after) + d*(k - 1) + 1 + output_padding`` (Dumoulin & Visin, 2016, relationship 14).

    Args:
        n, kernel_size: input and kernel lengths (cells), >= 1; strides, dilation_rate: >= 1.
        padding: the cells cropped: an int >= 0, ``"valid"``, ``"same"`` or ``(before, after)``.
        output_padding: >= 0, smaller than ``strides``.

    Raises:
        ValueError: as :func:`transposed_geometry`.

    Example:
        >>> transposed_output_size(5, 3, strides=2, padding=1, output_padding=1)
        10
    """
    s, d = positive_int(strides, "strides"), positive_int(dilation_rate, "dilation_rate")
    op = positive_int(output_padding, "output_padding", minimum=0)
    return _transposed_axis(n, kernel_size, s, d, padding, op, "axis")[2]


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
        padding: as everywhere (the module's docstring), here the cells *cropped*: an int >= 0 from each end,
            ``"valid"`` (none), ``"same"``, or a pair of those (each may be ``(before, after)``).
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
    s, d = pair(strides, "strides"), pair(dilation_rate, "dilation_rate")
    op = pair(output_padding, "output_padding", minimum=0)
    entries = split_padding(padding)
    axes = []
    for axis, name in ((0, "height"), (1, "width")):
        try:
            axes.append(_transposed_axis(x_shape[axis], k_shape[axis], s[axis], d[axis], entries[axis], op[axis],
                                         name))
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message if message.startswith("along the") else f"along the {name}: {message}") from None
    crop, pads_out, out, canvas = zip(*axes)
    return s, d, crop, pads_out, out, canvas
