"""Stacked channels: a kernel as deep as its input, many filters, and the shipped model's feature maps."""

import numpy as np
import streamlit as st

from convviz import figures
from convviz.images import fit_image
from convviz.ops import conv2d_naive, depthwise_conv2d_naive
from convviz.preprocess import prepare_photo
from convviz.examples import random_filters, stacked_notebook_example
from convviz.ui import animations as animation_ui
from convviz.ui import matrix_editor as editor_ui
from convviz.ui import stacked as stacked_ui
from convviz.ui.numbers import number_input
from convviz.ui.resources import model_or_message

st.set_page_config(page_title="Stacked channels · ConvViz", page_icon="🧱", layout="wide")
animation_ui.count_server_run("stack")
st.markdown("## Stacked channels: a kernel as deep as its input")

with st.sidebar:
    st.subheader("Section 1: the notebook's example")
    channels = st.slider("Channels C", 1, 64, 32, key="stack_channels")
    mode = st.radio("Operation", ["Standard (sum over channels)", "Depthwise (one map per channel)"],
                    key="stack_mode")
    speed = animation_ui.speed_picker("stack")
    st.caption("Standard multi-channel convolution multiplies each channel by its own slice of the kernel and adds "
               "everything into one map per filter — this is what the notebook's `convolve_depthwise` computed. "
               "True depthwise convolution keeps one map per channel and never adds across channels.")
    st.subheader("Sections 2–3: real input")
    image, image_label = stacked_ui.real_input_picker("stack")

depthwise = mode.startswith("Depthwise")
x, kernel = stacked_notebook_example(channels)
partial = np.stack([conv2d_naive(x[:, :, c], kernel[:, :, c]) for c in range(channels)], axis=-1)
out = depthwise_conv2d_naive(x, kernel) if depthwise else conv2d_naive(x, kernel)
shown = list(range(min(channels, 4)))

st.markdown(f"#### 1 · The notebook's 5×5 matrix, stacked {channels} deep")
st.markdown(f"Input `(5, 5, {channels})` ⊛ kernel `(3, 3, {channels})` → "
            + (f"`(3, 3, {channels})`: one map per channel, no sum." if depthwise
               else "`(3, 3)`: each window multiplies all channels at once and adds **everything** up."))


out_map = out[:, :, 0] if depthwise else out
animation = animation_ui.stacked_animation(x, kernel, out_map, tuple(shown), depthwise, speed)
animation_ui.show_animation(animation, "stack_fig_steps", "stack")
cols = st.columns([3, 1])
with cols[0]:
    label = "Output maps (no sum)" if depthwise else "Per-channel partial maps (they are added up)"
    st.plotly_chart(figures.map_grid_figure(partial[:, :, :8], [f"channel {c + 1}" for c in range(min(channels, 8))],
                                            columns=8, show_numbers=True, shared_scale=True, title=label,
                                            cell_height=120),
                    key="stack_fig_partial", width="stretch", config={"displayModeBar": False})
    if channels > 8:
        st.caption(f"… and {channels - 8} more channels like these.")
with cols[1]:
    if depthwise:
        st.markdown(f"**Each of the {channels} maps** (channel 1 shown):")
        st.table(editor_ui.matrix_table(out[:, :, 0]))
    else:
        st.markdown(f"**Sum over the {channels} channels:**")
        st.table(editor_ui.matrix_table(out))

st.markdown("#### 2 · Many filters: a stack of feature maps")
model, model_message = model_or_message()
c1, c2, c3 = st.columns([2, 2, 1])
filters = c1.slider("Filters F", 1, 64, 64, key="stack_filters")
source = c2.radio("Kernels", ["Random (seeded)", "Learned: the shipped model's conv1"], key="stack_kernels",
                  horizontal=True)
seed = number_input(c3, "Seed", 0, 10_000, 0, key="stack_seed")
if image is None:
    st.info("Pick a digit or upload an image in the sidebar to see feature maps of a real input.")
    st.stop()
real = fit_image(image, 28, min_side=3)
if fit_image(image, 28).shape != real.shape:
    st.caption(f"The input is thinner than the 3×3 kernels after fitting into 28×28, so its edge pixels were "
               f"repeated to make it {real.shape[0]}×{real.shape[1]}.")
bank = None
if source.startswith("Random"):
    bank = random_filters(3, real.shape[2], filters, seed=int(seed))
elif model is None:
    st.info(model_message)
else:
    learned = model.get_layer("conv1").kernel.numpy().astype(np.float64)
    if real.shape[2] != learned.shape[2]:
        real = real.mean(axis=2, keepdims=True)
        st.caption("conv1 was trained on 1-channel digits, so the RGB input is averaged to grayscale here.")
    if filters > learned.shape[3]:
        st.caption(f"conv1 has {learned.shape[3]} filters; showing all of them.")
    bank = learned[..., :filters]
if bank is not None and min(real.shape[:2]) < max(bank.shape[:2]):
    st.info(f"The {bank.shape[0]}×{bank.shape[1]} kernels do not fit the {real.shape[0]}×{real.shape[1]} input; "
            "upload a larger picture.")
    bank = None
if bank is not None:
    maps = stacked_ui.conv_bank(real, bank)
    pic, text = st.columns([1, 7], vertical_alignment="center")
    pic.image(real[:, :, 0] if real.shape[2] == 1 else real, caption=f"{real.shape[0]}×{real.shape[1]} input",
              width=96, clamp=True)
    text.markdown(f"Input {image_label} `{real.shape}` ⊛ kernels `{bank.shape}` → feature maps `{maps.shape}` "
                  "— (H, W, C) ⊛ (kh, kw, C, F) → (H′, W′, F). Each map is scaled to its own range.")
    st.plotly_chart(figures.map_grid_figure(maps, columns=16, cell_height=95), key="stack_fig_bank",
                    width="stretch", config={"displayModeBar": False})

st.markdown("#### 3 · Through the shipped model: conv1, then conv2")
if model is None:
    st.info(model_message)
    st.stop()
stages, inverted = prepare_photo(image)  # as the Draw page prepares an upload: MNIST-style
digit = stages.image
if stages.blank:
    st.caption("No ink was found in this picture: the model sees an empty 28×28 field.")
acts = stacked_ui.model_activations(model, str(id(model)), digit)
names = [name for name in acts if name.startswith("conv")][:2]
pic, text = st.columns([1, 7], vertical_alignment="center")
pic.image(digit, caption="What the model sees", width=96, clamp=True)
text.markdown(" → ".join([f"input `(28, 28, 1)`"] + [f"{n} `{acts[n].shape}`" for n in names])
              + " — prepared as on the Draw page: cropped to the ink, scaled to 20×20 and centred, like MNIST's digits"
              + (" (and inverted to white-on-black)" if inverted else ""))
for name in names:
    st.plotly_chart(figures.map_grid_figure(acts[name], columns=16, cell_height=95,
                                            title=f"{name}: {acts[name].shape[2]} feature maps"),
                    key=f"stack_fig_{name}", width="stretch", config={"displayModeBar": False})
