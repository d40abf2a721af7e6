"""Filter atlas: what each filter of conv1 and conv2 looks for, and what each class looks like to the network."""

import streamlit as st

from convviz.ui import atlas as ui

st.set_page_config(page_title="Filter atlas · ConvViz", page_icon="🗺️", layout="wide")
st.markdown("## Filter atlas: what each filter looks for")
st.caption("Every filter of a trained network answers to some pattern. Two ways to see which: the test digits "
           "where it fires most, cut to the part of the digit it sees, and an input built from scratch to make it "
           "fire. Computed once per model, then kept.")

choice = ui.choose_model()
if choice is not None:
    atlas = ui.atlas_or_progress(choice)
    if atlas is not None:
        ui.show_atlas(atlas, choice)
ui.keep_learner_in_address()
