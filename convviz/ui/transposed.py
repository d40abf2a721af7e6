"""The Convolution page's "Transposed" mode.

:func:`show_transposed` draws :func:`transposed_animation` (every input cell's scatter as one browser-side figure),
the finished output, the size formula (:func:`transposed_size_formula`) and the ``tf.nn.conv2d_transpose`` check
(:func:`tf_transposed_map`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from convviz.ui.animations import Animation, build_animation, show_animation
from convviz.ui.matrix_editor import matrix_table
from convviz.ui.resources import get_tensorflow


@st.cache_resource(show_spinner="Preparing every input cell's scatter…", max_entries=32)
def transposed_animation(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int,
                         output_padding: int, show_numbers: bool, steps_per_second: float) -> Animation:
    """Every input cell of a transposed convolution as one browser-side animation, cached per input and settings.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0 (cells cropped from each side).
        output_padding: int, 0 <= output_padding < strides.
        show_numbers: write the values in the input's and the output's cells.
        steps_per_second: Play's speed (input cells per second).

    Returns:
        :class:`convviz.ui.animations.Animation` of :func:`convviz.figures_transposed.transposed_steps_figure`
        (``positions``: input cells; ``result``: the output, ``(h_out, w_out)``).

    Raises:
        ValueError: as :func:`convviz.geometry.transposed_geometry`.
    """
    from convviz.backprop import conv2d_transpose_steps
    from convviz.figures_transposed import transposed_steps_figure

    records = []

    def build():
        records.append(conv2d_transpose_steps(x, kernel, strides, padding, dilation_rate, output_padding))
        return transposed_steps_figure(records[0], show_numbers, steps_per_second), len(records[0].steps)

    return replace(build_animation(build), result=records[0].output)


@st.cache_data(show_spinner="Checking against TensorFlow…", max_entries=64)
def tf_transposed_map(x: np.ndarray, kernel: np.ndarray, strides: int, crop: tuple, dilation_rate: int,
                      output_shape: tuple[int, int]) -> np.ndarray:
    """The same transposed convolution by ``tf.nn.conv2d_transpose`` (:func:`convviz.tf_reference.conv2d_transpose`).

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        crop: ``((top, bottom), (left, right))`` cells cropped.
        output_shape: ``(h_out, w_out)``.

    Returns:
        float64 ``output_shape``.
    """
    get_tensorflow()
    from convviz.tf_reference import conv2d_transpose

    return conv2d_transpose(x, kernel, (strides, strides), crop, (dilation_rate, dilation_rate), output_shape)


def transposed_size_formula(n: int, kernel_size: int, strides: int, crop: tuple[int, int], dilation_rate: int,
                            output_padding: int, n_name: str, out_name: str) -> str:
    """The transposed convolution's output-size formula with the numbers plugged in, as Markdown.

    ``out = (n − 1)·s − (p_before + p_after) + d·(k − 1) + 1 + output_padding`` (Dumoulin & Visin, 2016,
    relationship 14, with a dilated kernel's size ``d·(k − 1) + 1``).

    Args:
        n, kernel_size, strides, dilation_rate, output_padding: the sizes along one axis.
        crop: ``(before, after)`` cells cropped (the padding).
        n_name, out_name: symbols, e.g. ``"H"`` and ``"H′"``.

    Returns:
        e.g. ``"H′ = (5 − 1)·2 − (1 + 1) + 1·(3 − 1) + 1 + 1 = **10**"``.
    """
    from convviz.geometry import transposed_output_size

    before, after = crop
    value = transposed_output_size(n, kernel_size, strides, crop, dilation_rate, output_padding)
    return (f"{out_name} = ({n} − 1)·{strides} − ({before} + {after}) + {dilation_rate}·({kernel_size} − 1) + 1 + "
            f"{output_padding} = **{value}**")


def show_transposed(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int,
                    output_padding: int, steps_per_second: float) -> None:
    """The Convolution page's "Transposed" mode: the step-through, the finished output, its size and TensorFlow's check.

    Bad settings (an output padding not smaller than the stride, a padding that crops everything, an output over
    :data:`convviz.geometry.MAX_TRANSPOSED_SIDE`) give an ``st.error`` saying what to change; the learner's input and
    kernel are not touched.

    Args:
        x: ``(height, width)``; kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        output_padding: int >= 0.
        steps_per_second: Play's speed.
    """
    from convviz.geometry import transposed_geometry

    (h, w), (kh, kw) = x.shape, kernel.shape
    try:
        _, _, crop, extra, (h_out, w_out), _ = transposed_geometry(x.shape, kernel.shape, strides, padding,
                                                                   dilation_rate, output_padding)
    except ValueError as exc:
        st.error(f"These settings do not make a transposed convolution: {exc}. Your input and kernel are kept; "
                 "change the setting named (sidebar) or the sizes.")
        return
    animation = transposed_animation(x, kernel, strides, padding, dilation_rate, output_padding, max(h, w) <= 16,
                                     steps_per_second)
    st.markdown("Each **input cell** in turn multiplies the whole kernel by its value and adds the products into the "
                "output where the kernel lands; the next cell lands **stride** cells further on, so overlaps add up. "
                "The output is drawn before cropping: **padding** crops that many cells from each side (beige), "
                "**output padding** adds cells at the bottom and right. Move the **slider** or press **▶ Play**: "
                "every step is already in your browser.")
    show_animation(animation, "conv_fig_transposed", "conv", what="input cells' steps")
    output = animation.result
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown(f"**The finished output** ({h_out}×{w_out}, after cropping):")
        (st.table if max(h_out, w_out) <= 16 else st.dataframe)(matrix_table(output))
    with right:
        st.markdown(f"**Output size** ({h}×{w} input, {kh}×{kw} kernel, stride {strides}, dilation {dilation_rate}, "
                    f"cropped {crop[0][0]}+{crop[0][1]} rows, {crop[1][0]}+{crop[1][1]} columns, output padding "
                    f"{extra[0]} row(s), {extra[1]} column(s)):")
        st.markdown("- " + transposed_size_formula(h, kh, strides, crop[0], dilation_rate, extra[0], "H", "H′"))
        st.markdown("- " + transposed_size_formula(w, kw, strides, crop[1], dilation_rate, extra[1], "W", "W′"))
        st.caption("(n − 1)·stride − (padding before + padding after) + dilation·(k − 1) + 1 + output padding — "
                   "Dumoulin & Visin, *A guide to convolution arithmetic for deep learning* (2016), relationship 14 "
                   "(a dilated kernel counts d·(k − 1) + 1 cells). The transposed convolution is the gradient of the "
                   f"forward one with the same stride, padding and dilation on a {h_out}×{w_out} input. "
                   f"{h * w} input cells, one step each.")
        reference = tf_transposed_map(x, kernel, strides, crop, dilation_rate, (h_out, w_out))
        diff = float(np.abs(reference - output).max())
        verdict = "✅ equals" if diff < 1e-9 else "❌ differs from"
        how = (" (TensorFlow's CPU kernel takes no dilation: it gets the kernel with zeros between the taps)"
               if dilation_rate > 1 else "")
        st.success(f"The finished output {verdict} TensorFlow's `tf.nn.conv2d_transpose` on the same input"
                   f"{how} (max absolute difference {diff:.2g}).")
