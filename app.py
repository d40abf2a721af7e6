"""ConvViz home page: what the app teaches and where to start.

Run with ``streamlit run app.py``; the pages in ``pages/`` appear in the sidebar.
"""

import numpy as np
import streamlit as st

from convviz.ops import conv2d_naive

st.set_page_config(page_title="ConvViz — how a CNN works", page_icon="🔍", layout="wide")

st.title("ConvViz: how a convolutional neural network works")
st.markdown(
    "ConvViz builds a convolutional neural network **from scratch** in TensorFlow — our own "
    "`tf.Module` layers on tensor primitives, never `tf.keras.layers` or `tf.nn.conv2d` inside them — "
    "and lets you watch every step: the sliding window, the channels, the training, the prediction."
)

NOTEBOOK_X = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
NOTEBOOK_K = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])

left, mid, right = st.columns([5, 3, 3])
with left:
    st.subheader("The whole idea in one line")
    st.markdown(
        "Slide a small **kernel** over the input; at each position multiply the cells under it "
        "element-wise and add the products. Each sum is one cell of the **feature map**. "
        "Here is the 5×5 input and 3×3 kernel of our seed notebook:"
    )
with mid:
    st.caption("input (5×5)")
    st.dataframe(NOTEBOOK_X, hide_index=True)
    st.caption("kernel (3×3)")
    st.dataframe(NOTEBOOK_K, hide_index=True)
with right:
    st.caption("feature map (3×3), computed now by `convviz.ops.conv2d_naive`")
    st.dataframe(conv2d_naive(NOTEBOOK_X, NOTEBOOK_K).astype(int), hide_index=True)

st.subheader("Where to go")
c1, c2, c3, c4 = st.columns(4)
with c1:
    st.page_link("pages/1_Convolution.py", label="**1 · Convolution**", icon="🔢")
    st.caption("Edit a matrix and a kernel and step through the sliding window: padding, stride, "
               "dilation, the products, the sum written out, the output-size formula.")
with c2:
    st.page_link("pages/2_Stacked_Channels.py", label="**2 · Stacked channels**", icon="🧱")
    st.caption("A kernel as deep as its input, per-channel sums adding up, many filters making a "
               "stack of feature maps — on toy matrices and on real digits.")
with c3:
    st.page_link("pages/3_Train.py", label="**3 · Train**", icon="📈")
    st.caption("Train the from-scratch CNN on MNIST with live loss and accuracy charts, then see "
               "where it fails and what its kernels learned.")
with c4:
    st.page_link("pages/4_Draw.py", label="**4 · Draw**", icon="✏️")
    st.caption("Draw a digit and watch the network classify it, layer by layer.")

st.divider()
st.caption("MNIST (LeCun, Cortes & Burges) is used under CC BY-SA 3.0. Layout throughout: NHWC — "
           "(batch, height, width, channels); kernels (kernel_height, kernel_width, in_channels, filters).")
