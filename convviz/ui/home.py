"""The home page: what ConvViz teaches and where to start (rendered by ``app.py``'s navigation)."""

import streamlit as st

from convviz.figures import matrix_figure
from convviz.ops import conv2d_naive
from convviz.examples import NOTEBOOK_KERNEL, NOTEBOOK_INPUT

PAGES = (
    ("pages/1_Convolution.py", "**1 · Convolution**", ":material/grid_on:",
     "Edit a matrix and a kernel and step through the sliding window: padding, stride, dilation, the "
     "products, the sum written out, the output-size formula."),
    ("pages/2_Stacked_Channels.py", "**2 · Stacked channels**", ":material/layers:",
     "A kernel as deep as its input, per-channel sums adding up, many filters making a stack of feature "
     "maps — on toy matrices and on real digits."),
    ("pages/3_Train.py", "**3 · Train**", ":material/monitoring:",
     "Train the from-scratch CNN on MNIST with live loss and accuracy charts, then see where it fails "
     "and what its kernels learned."),
    ("pages/4_Draw.py", "**4 · Draw**", ":material/draw:",
     "Draw a digit and watch the network classify it, layer by layer."),
    ("pages/5_Backpropagation.py", "**5 · Backpropagation**", ":material/undo:",
     "How it learns: step through the gradient of a convolution (dK, dX both ways, db), one descent step, "
     "pooling and ReLU backwards, and a kernel that learns itself."),
    ("pages/6_Filter_Atlas.py", "**6 · Filter atlas**", ":material/grid_view:",
     "What each filter learned: the test patches that make it fire most, the input it likes best, and the "
     "input each class likes best — for the shipped model or any saved run."),
)


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
        for column, (page, label, icon, text) in zip(st.columns(per_row), PAGES[start:start + per_row]):
            with column:
                st.page_link(page, label=label, icon=icon)
                st.caption(text)

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
