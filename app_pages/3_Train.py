"""Train the from-scratch CNN on MNIST and watch it learn: curves, kernels, confusion matrix, mistakes."""

import streamlit as st

from convviz.ui import export as export_ui
from convviz.ui import runs as runs_ui
from convviz.ui import training as ui
from convviz.ui import training_panel as panel_ui
from convviz.ui.numbers import number_input

st.set_page_config(page_title="Train · ConvViz", page_icon="🏋️", layout="wide")
st.markdown("## Train the network and watch it learn")
st.caption("The model is our own from-scratch CNN (convolutions with a hand-written backward pass, Adam written "
           "out). Training runs on a separate worker process, not in this web server: you can change pages, close "
           "the tab and come back with the same address, it keeps going.")
ui.cluster_notice()

ARCHITECTURE_LABELS = {
    "fast": "fast: conv → max-pool → conv → max-pool → dropout → dense (quick to train)",
    "seed": "seed: conv → conv → dense, no pooling (the seed notebook's design; slower)",
}
# Streamlit forgets a page's widget values when another page is shown; keep them as the defaults.
saved = st.session_state.setdefault("_train_saved", {})


def remembered(key, default):
    return saved.get(key, default)


run = ui.current_run()
busy = run is not None and run.active

with st.expander("Settings" + (" (locked while training)" if busy else ""), expanded=not busy):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    preset_options = list(ARCHITECTURE_LABELS)
    preset = c1.radio("Architecture", preset_options, format_func=ARCHITECTURE_LABELS.get, key="train_preset",
                      index=preset_options.index(remembered("train_preset", "fast")), disabled=busy)
    filters1 = number_input(c2, "Filters in conv1", 1, 128, remembered("train_filters1", 32), key="train_filters1",
                            disabled=busy, help="Number of kernels of the first convolution.")
    filters2 = number_input(c2, "Filters in conv2", 1, 128, remembered("train_filters2", 64), key="train_filters2",
                            disabled=busy)
    kernel_size = c3.select_slider("Kernel size", [1, 3, 5, 7, 9], remembered("train_kernel", 3), key="train_kernel",
                                   disabled=busy, help="Side of the square kernels of both convolutions (pixels).")
    epochs = number_input(c3, "Epochs", 1, 50, remembered("train_epochs", 2), key="train_epochs", disabled=busy,
                          help="Passes over the training digits.")
    batch_size = c4.select_slider("Batch size", [8, 16, 32, 64, 128, 256, 512], remembered("train_batch", 128),
                                  key="train_batch", disabled=busy, help="Digits per gradient step.")
    learning_rate = c4.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                                     remembered("train_lr", 1e-3), format_func=lambda v: f"{v:g}", key="train_lr",
                                     disabled=busy, help="Adam's step size.")
    seed = number_input(c4, "Seed", 0, 2**31 - 1, remembered("train_seed", 0), key="train_seed", disabled=busy,
                        help="Same seed and settings → the same starting weights, shuffling and dropout.")
    dataset = ui.dataset_picker(remembered("train_dataset", ui.FULL_LABEL))

for key in ("train_preset", "train_filters1", "train_filters2", "train_kernel", "train_epochs", "train_batch",
            "train_lr", "train_seed"):
    saved[key] = st.session_state[key]
if "train_dataset" in st.session_state:  # drawn only when the full MNIST is there
    saved["train_dataset"] = st.session_state["train_dataset"]

_, cap_warning = ui.max_jobs()
if cap_warning:
    st.warning(cap_warning)
settings = {"preset": preset, "filters": (int(filters1), int(filters2)), "kernel_size": int(kernel_size),
            "epochs": int(epochs), "batch_size": int(batch_size), "learning_rate": float(learning_rate),
            "seed": int(seed)}
start_col, stop_col, _ = st.columns([1, 1, 4])
with stop_col:
    ui.stop_button(run)
if start_col.button("Start training", key="train_start", type="primary", disabled=busy,
                    help=ui.start_help()):
    problem = ui.start_run(settings, dataset)
    if problem:
        st.error(problem)
    else:
        st.rerun()

run = ui.current_run()
if run is None:
    st.info("Choose the settings and press **Start training**. A quick first run: the bundled sample, "
            "1 epoch, batch size 64 (a few seconds).")
else:
    panel_ui.show_run(run)
    panel_ui.show_results(run)

st.divider()
runs_ui.past_runs(busy=run is not None and run.active)
st.divider()
export_ui.shipped_model_downloads()
