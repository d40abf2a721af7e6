"""The Convolution page's forward mode beside the step-through: TensorFlow's check and the output-size formula.

* :func:`tf_reference_map` — the same convolution by ``tf.nn.conv2d``
  (TensorFlow imported lazily, only when asked).
* :func:`output_size_formula` — the output-size formula with the numbers plugged in.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.ui.resources import get_tensorflow


@st.cache_data(show_spinner="Checking against TensorFlow…", max_entries=64)
def tf_reference_map(x: np.ndarray, kernel: np.ndarray, strides: int, pads: tuple, dilation_rate: int,
                     bias: float, flip_kernel: bool) -> np.ndarray:
    """The same 2-D convolution by ``tf.nn.conv2d`` (an independent reference).

    The input is zero-padded explicitly (so TensorFlow sees the same, possibly
    asymmetric, padding), then convolved with VALID padding. TensorFlow's CPU
    kernel refuses strides > 1 together with dilation > 1; then the stride-1
    map is subsampled, which is the same thing.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)`` as the user gave it (not flipped).
        strides, dilation_rate: ints >= 1.
        pads: ``((top, bottom), (left, right))``.
        bias: added to every cell.
        flip_kernel: flip the kernel first (true convolution).

    Returns:
        float64 ``(h_out, w_out)``.
    """
    tf = get_tensorflow()
    k = kernel[::-1, ::-1] if flip_kernel else kernel
    xp = np.pad(x, pads)
    both = strides > 1 and dilation_rate > 1
    y = tf.nn.conv2d(tf.constant(xp[None, :, :, None], tf.float64), tf.constant(k[:, :, None, None], tf.float64),
                     strides=1 if both else strides, padding="VALID", dilations=dilation_rate)
    y = y.numpy()[0, :, :, 0] + bias
    return y[::strides, ::strides] if both else y


def output_size_formula(n: int, kernel_size: int, strides: int, pads: tuple[int, int], dilation_rate: int,
                        n_name: str, out_name: str) -> str:
    """The output-size formula with the numbers plugged in, as Markdown.

    ``out = floor((n + p_before + p_after − d·(k − 1) − 1) / s) + 1`` (Dumoulin & Visin, 2016).

    Args:
        n, kernel_size, strides, dilation_rate: the sizes along one axis.
        pads: ``(before, after)`` zero cells.
        n_name, out_name: symbols, e.g. ``"H"`` and ``"H′"``.

    Returns:
        e.g. ``"H′ = ⌊(5 + 0 + 0 − 1·(3 − 1) − 1) / 1⌋ + 1 = **3**"``.
    """
    from convviz.geometry import output_size

    before, after = pads
    value = output_size(n, kernel_size, strides, pads, dilation_rate)
    return (f"{out_name} = ⌊({n} + {before} + {after} − {dilation_rate}·({kernel_size} − 1) − 1) / {strides}⌋ + 1"
            f" = **{value}**")
