"""The home page: what ConvViz teaches and where to start (rendered by ``app.py``'s navigation)."""

import streamlit as st

from convviz.figures import matrix_figure
from convviz.ops import conv2d_naive
from convviz.examples import NOTEBOOK_KERNEL, NOTEBOOK_INPUT
from convviz.ui.navigation import PAGES


def render() -> None:
    """Draw the home page."""
    st.title("ConvViz: how a convolutional neural network works")
    st.markdown(
        "ConvViz builds a convolutional neural network **from scratch** in TensorFlow — our own `tf.Module` "
        "layers on tensor primitives, never `tf.keras.layers` or `tf.nn.conv2d` inside them — and lets you "
        "watch every step: the sliding window, the channels, the training, the prediction."
    )
    per_row = 3  # five labels side by side would be cut short at 1280 px
    for start in range(0, len(PAGES), per_row):
        for column, page in zip(st.columns(per_row), PAGES[start:start + per_row]):
            with column:
                st.page_link(page.script, label=page.card, icon=page.icon)
                st.caption(page.text)

    st.subheader("The whole idea in one picture")
    st.markdown(
        "Slide a small **kernel** over the input; at each position multiply the cells under it element-wise "
        "and add the products. Each sum is one cell of the **feature map**. The seed notebook's 5×5 input and "
        "3×3 kernel, computed now by `convviz.ops.conv2d_naive`:"
    )
    feature_map = conv2d_naive(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)
    left, op1, mid, op2, right = st.columns([5, 1, 4, 1, 4], vertical_alignment="center")
    left.plotly_chart(matrix_figure(NOTEBOOK_INPUT, "input (5×5)", height=280), key="home_input")
    op1.markdown("## ⊛")
    mid.plotly_chart(matrix_figure(NOTEBOOK_KERNEL, "kernel (3×3)", signed=True, height=250), key="home_kernel")
    op2.markdown("## =")
    right.plotly_chart(matrix_figure(feature_map, "feature map (3×3)", height=250), key="home_output")
    st.caption("MNIST (LeCun, Cortes & Burges) is used under CC BY-SA 3.0. Layout throughout: NHWC — "
               "(batch, height, width, channels); kernels (kernel_height, kernel_width, in_channels, filters).")
