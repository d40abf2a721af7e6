"""Convolution, one window at a time: edit a matrix and a kernel, then step the window across."""

import numpy as np
import streamlit as st

from convviz.geometry import padding_2d
from convviz.ops import conv2d_naive
from convviz.examples import (INPUT_PRESETS, KERNEL_PRESETS, NOTEBOOK_INPUT, NOTEBOOK_KERNEL, input_preset,
                              kernel_preset)
from convviz.ui import animations as animation_ui
from convviz.ui import convolution as ui
from convviz.ui import matrix_editor as editor_ui
from convviz.ui import transposed as transposed_ui
from convviz.ui.numbers import number_input
from convviz.ui.resources import sample_or_message

st.set_page_config(page_title="Convolution · ConvViz", page_icon="🔢", layout="wide")
animation_ui.count_server_run("conv")
st.markdown("## Convolution, one window at a time")
direction = st.radio("Direction", ["Forward", "Transposed"], key="conv_direction", horizontal=True,
                     help="Forward: the kernel slides over the input and each window's sum is one output cell. "
                          "Transposed: each input cell scatters value × kernel into a larger output (how decoders "
                          "and GANs go back up in size; also the input gradient of a forward convolution).")
transposed = direction == "Transposed"
if transposed:
    st.caption("Transposed convolution: each input cell multiplies the kernel by its value and adds the products "
               "into the output where the kernel lands; stride spreads the landings apart, padding crops the result.")
else:
    st.caption("Slide the kernel over the input; at each position multiply the cells under it by the kernel's "
               "weights and add the products (plus the bias): each sum is one cell of the output feature map.")


def make_input(name, rows, cols, counter):
    digit = None
    if name == "MNIST digit":
        sample, message = sample_or_message()
        if sample is None:
            raise ValueError(message)
        x_test = sample[1][0]
        digit = x_test[counter % len(x_test)]
        rows, cols = max(rows, 14), max(cols, 14)
    return input_preset(name, rows, cols, seed=counter, digit=digit)


with st.expander("✏️ Edit the input and the kernel (cell by cell, sizes, presets)"):
    col_x, col_k = st.columns([3, 2], gap="large")
    with col_x:
        st.caption("Input: up to 16×16 with the numbers shown, up to 28×28 without. The digit preset is "
                   "resampled to at least 14×14 (set 28×28 and Reload for full resolution).")
        x = editor_ui.matrix_editor("conv_x", NOTEBOOK_INPUT, 28, list(INPUT_PRESETS), make_input, "Input")
    with col_k:
        st.caption("Kernel: up to 7×7.")
        k = editor_ui.matrix_editor("conv_k", NOTEBOOK_KERNEL, 7, list(KERNEL_PRESETS),
                                      lambda name, r, c, n: kernel_preset(name), "Kernel")

with st.sidebar:
    st.subheader("The operation")
    pad_choice = st.selectbox("Padding", ["valid", "same", "0", "1", "2", "3"], key="conv_padding")
    st.caption("Transposed: cells cropped from each side of the output; *same* makes it input × stride."
               if transposed else "Zeros added around the input; *same* keeps the size at stride 1.")
    strides = st.slider("Stride", 1, 4, 1, key="conv_stride")
    st.caption("Transposed: how far apart neighbouring input cells land in the output (stride − 1 gaps)."
               if transposed else "How many cells the window jumps per step.")
    dilation = st.slider("Dilation", 1, 3, 1, key="conv_dilation")
    st.caption("Transposed: spacing between the cells each input cell writes: a wider spread with the same weights."
               if transposed else "Spacing between the kernel's taps: a wider view with the same weights.")
    output_padding = number_input(st, "Output padding", min_value=0, max_value=3, value=0, step=1,
                                  key="conv_output_padding", disabled=not transposed)
    st.caption("Transposed only: cells added at the bottom and right of the output; must be smaller than the "
               "stride (TensorFlow's rule).")
    bias = number_input(st, "Bias", -editor_ui.MAX_CELL, editor_ui.MAX_CELL, 0.0, 0.5, key="conv_bias",
                        disabled=transposed)
    st.caption("A number added to every sum (forward only).")
    mode = st.radio("Operation", ["Cross-correlation", "True convolution"], key="conv_mode", disabled=transposed)
    st.caption("CNNs compute cross-correlation; true convolution flips the kernel (rows and columns) first "
               "(forward only).")
    speed = animation_ui.speed_picker("conv")


padding = pad_choice if pad_choice in ("valid", "same") else int(pad_choice)
if transposed:
    transposed_ui.show_transposed(x, k, strides, padding, dilation, int(output_padding or 0), speed)
    st.stop()
flip = mode == "True convolution"
(h, w), (kh, kw) = x.shape, k.shape
try:
    feature_map = conv2d_naive(x, k, strides, padding, dilation, float(bias), flip_kernel=flip)
except ValueError as exc:
    st.error(f"The kernel does not fit the input: {exc}. Use a smaller kernel or dilation, or more padding.")
    st.stop()
animation = animation_ui.conv_animation(x, k, strides, padding, dilation, float(bias), flip, max(h, w) <= 16, speed)

st.markdown("Click a number on the **slider** under the panels (or drag it), or press **▶ Play**: every window "
            "position is already in your browser. Red outlines: the cells under the kernel's taps (beige cells are "
            "padding zeros).")
animation_ui.show_animation(animation, "conv_fig_steps", "conv")

pads = padding_2d((h, w), (kh, kw), strides, padding, dilation)
h_out, w_out = feature_map.shape
left, right = st.columns([2, 3], gap="large")
with left:
    st.markdown(f"**The finished output feature map** ({h_out}×{w_out}):")
    (st.table if max(h_out, w_out) <= 16 else st.dataframe)(editor_ui.matrix_table(feature_map))
with right:
    st.markdown(f"**Output size** ({h}×{w} input, {kh}×{kw} kernel, stride {strides}, dilation {dilation}, "
                f"padding {pads[0][0]}+{pads[0][1]} rows, {pads[1][0]}+{pads[1][1]} columns):")
    st.markdown("- " + ui.output_size_formula(h, kh, strides, pads[0], dilation, "H", "H′"))
    st.markdown("- " + ui.output_size_formula(w, kw, strides, pads[1], dilation, "W", "W′"))
    st.caption("⌊(n + padding before + padding after − dilation·(k − 1) − 1) / stride⌋ + 1 — Dumoulin & Visin, "
               f"*A guide to convolution arithmetic for deep learning* (2016). {h_out * w_out} window positions.")
    reference = ui.tf_reference_map(x, k, strides, pads, dilation, float(bias), flip)
    diff = float(np.abs(reference - feature_map).max())
    verdict = "✅ equals" if diff < 1e-9 else "❌ differs from"
    st.success(f"The finished map {verdict} TensorFlow's `tf.nn.conv2d` on the same input"
               f"{' with the kernel flipped' if flip else ''} (max absolute difference {diff:.2g}).")
