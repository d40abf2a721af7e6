"""Backpropagation, step by step: dK, dX (scatter and gather), db, one descent step, pooling and ReLU, and a
kernel that learns itself."""

import streamlit as st

from convviz.backprop import conv2d_backward_steps
from convviz.descent import linear_loss, mse_loss
from convviz.geometry import conv_geometry
from convviz.ops import conv2d_naive
from convviz.examples import (GRAD_OUTPUT_PRESETS, INPUT_PRESETS, KERNEL_PRESETS, NOTEBOOK_INPUT, NOTEBOOK_KERNEL,
                              TARGET_PRESETS, input_preset, kernel_preset, map_preset)
from convviz.ui import backprop as bp
from convviz.ui import animations as animation_ui
from convviz.ui import matrix_editor as editor_ui
from convviz.ui.numbers import number_input

st.set_page_config(page_title="Backpropagation · ConvViz", page_icon="🔁", layout="wide")
animation_ui.count_server_run("bp")
st.markdown("## Backpropagation, step by step")
st.caption("How a convolution learns: from the loss's gradient at the output (grad_output), the chain rule gives "
           "the gradient of every weight (dK), of every input cell (dX) and of the bias (db). Gradient descent then "
           "moves the weights a small step against their gradient.")

LOSS_MSE, LOSS_TYPED = "Mean squared error against a target map", "grad_output typed in directly"
x0, k0 = bp.starting_matrices(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)  # the Convolution page's, if edited there
with st.expander("✏️ Edit the input, the kernel and the loss (cell by cell, sizes, presets)"):
    col_x, col_k, col_l = st.columns([3, 2, 3], gap="large")
    with col_x:
        st.caption(f"Input: up to {bp.INPUT_LIMIT}×{bp.INPUT_LIMIT}.")
        x = editor_ui.matrix_editor("bp_x", x0, bp.INPUT_LIMIT, [p for p in INPUT_PRESETS if p != "MNIST digit"],
                             lambda name, r, c, n: input_preset(name, r, c, seed=n), "Input")
    with col_k:
        st.caption(f"Kernel: up to {bp.KERNEL_LIMIT}×{bp.KERNEL_LIMIT}.")
        k = editor_ui.matrix_editor("bp_k", k0, bp.KERNEL_LIMIT, list(KERNEL_PRESETS),
                             lambda name, r, c, n: kernel_preset(name), "Kernel")
    with col_l:
        loss_kind = st.radio("Loss", [LOSS_MSE, LOSS_TYPED], key="bp_loss")
        st.caption("The target, or grad_output, must have the output's size.")
        mse = loss_kind == LOSS_MSE
        out0 = (x0.shape[0] - k0.shape[0] + 1, x0.shape[1] - k0.shape[1] + 1)  # the first output (valid, stride 1)
        ref = editor_ui.matrix_editor("bp_t" if mse else "bp_g", map_preset("All 3s" if mse else "All ones", *out0),
                               bp.INPUT_LIMIT + 4, list(TARGET_PRESETS if mse else GRAD_OUTPUT_PRESETS),
                               lambda name, r, c, n: map_preset(name, r, c, seed=n), "Target" if mse else "grad_output")

with st.sidebar:
    st.subheader("The convolution")
    pad_choice = st.selectbox("Padding", ["valid", "same", "0", "1", "2"], key="bp_padding")
    strides = st.slider("Stride", 1, 3, 1, key="bp_stride")
    dilation = st.slider("Dilation", 1, 3, 1, key="bp_dilation")
    bias = number_input(st, "Bias", value=0.0, step=0.5, min_value=-editor_ui.MAX_CELL, max_value=editor_ui.MAX_CELL,
                        key="bp_bias",
                        help=f"Between {-editor_ui.MAX_CELL:g} and {editor_ui.MAX_CELL:g}, like the matrices' cells.")
    st.caption("The bias shifts the output (and so the loss), not dK or dX.")
    speed = animation_ui.speed_picker("bp")


def step_through() -> None:
    """Everything about the editable convolution; a bad input stops only this part (the demo below still runs)."""
    # (a bad cell is refused by the editor itself, with a message under the table, and keeps its previous value)
    padding = pad_choice if pad_choice in ("valid", "same") else int(pad_choice)
    try:
        _, _, _, out_shape = conv_geometry(x.shape, k.shape, strides, padding, dilation)
    except ValueError as exc:
        st.error(f"The kernel does not fit the input: {exc}. Use a smaller kernel or dilation, or more padding.")
        return
    what = "target" if loss_kind == LOSS_MSE else "grad_output"
    if ref.shape != out_shape:
        prefix = "bp_t" if loss_kind == LOSS_MSE else "bp_g"
        st.warning(f"The {what} is {ref.shape[0]}×{ref.shape[1]} but the output is {out_shape[0]}×{out_shape[1]}: "
                   f"set the {what}'s Rows and Columns to {out_shape[0]} and {out_shape[1]} in the editor above "
                   "(or press the button). Your other edits are kept.")
        st.button(f"Resize the {what} to {out_shape[0]}×{out_shape[1]}", key="bp_resize_ref",
                  on_click=editor_ui.resize_matrix, args=(prefix, *out_shape, bp.INPUT_LIMIT + 4,
                                                   "Target" if loss_kind == LOSS_MSE else "grad_output"))
        return

    y = conv2d_naive(x, k, strides, padding, dilation, float(bias))

    def loss(output):
        return mse_loss(output, ref) if loss_kind == LOSS_MSE else linear_loss(output, ref)

    value, grad = loss(y)
    bp.loss_panel(y, float(bias), value, grad, ref if loss_kind == LOSS_MSE else None)
    back = conv2d_backward_steps(x, k, grad, strides, padding, dilation)
    h, w = x.shape
    animations = bp.backprop_animations(x, k, grad, strides, padding, dilation, max(h, w) <= 10, speed)
    bp.show_steps(animations, "bp")
    bp.bias_line(grad)
    bp.tf_check(back)
    bp.descent_panel(x, k, float(bias), loss, strides, padding, dilation)


step_through()
bp.pool_relu_panel(speed)
bp.learn_kernel_demo()
