"""Draw a digit (or upload one), see it prepared the way MNIST's digits were, and what the network makes of it."""

import streamlit as st

from convviz.preprocess import naive_resize, prepare_canvas
from convviz.ui import drawing as ui

st.set_page_config(page_title="Draw · ConvViz", page_icon="✏️", layout="wide")
st.markdown("## Draw a digit and ask the network")
st.caption("Draw one digit, 0 to 9, large and in the middle or anywhere: it is cropped, scaled to fit 20x20 and "
           "centred by its centre of mass in 28x28, exactly how MNIST's digits were made, before the network sees it.")

left, right = st.columns([2, 3], gap="large")
with left:
    source = st.radio("Input", ["Draw", "Upload a photo"], key="draw_source", horizontal=True)
    if source == "Draw":
        stroke = st.slider("Pen width (pixels)", 6, 40, 20, key="draw_stroke",
                           help="MNIST strokes are 2-3 pixels wide after shrinking 280 → 28: about 20-30 here.")
        rgba = ui.canvas_image(stroke)
        st.button("Clear", key="draw_clear", on_click=ui.clear_canvas, help="Erase the canvas and start again.")
        stages = prepare_canvas(rgba) if rgba is not None else None
    else:
        stages, note = ui.uploaded_stages()
        if note:
            st.caption(note)
    compare = st.toggle("Compare with a naive resize", key="draw_compare",
                        help="Squeeze the whole input to 28x28 without cropping or centring, and predict on that too.")
    naive = naive_resize(stages.gray) if compare and stages is not None and not stages.blank else None

model, model_text, mine = ui.draw_model()
with right:
    if model is None:
        st.warning(model_text)
    else:
        st.caption(f"Model: {model_text}.")
        if mine:
            st.button("Use the shipped model instead", key="draw_use_shipped", on_click=ui.use_shipped_model)
    if stages is None or stages.blank:
        st.info("Draw a digit on the canvas (or upload a photo of one) to see what the network predicts.")
    elif model is not None:
        ui.show_prediction(ui.predict(model, stages.digit()))  # first: the heavier panels come after it
        if compare:
            ui.show_prediction(ui.predict(model, naive), label="Naive resize prediction")

if stages is not None and not stages.blank:
    ui.show_stages(stages, naive)
    if model is not None:
        ui.show_inside(model, stages.digit())
