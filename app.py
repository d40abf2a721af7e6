"""ConvViz: run with ``streamlit run app.py``.

This entry point only sets up the navigation; the home page is ``convviz/ui/home.py`` and the
other pages are the files in ``pages/``.
"""

import streamlit as st

from convviz.ui import home

st.set_page_config(page_title="ConvViz — how a CNN works", page_icon="🔍", layout="wide")

navigation = st.navigation([
    st.Page(home.render, title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/1_Convolution.py", title="Convolution", icon=":material/grid_on:", url_path="Convolution"),
    st.Page("pages/2_Stacked_Channels.py", title="Stacked Channels", icon=":material/layers:", url_path="Stacked_Channels"),
    st.Page("pages/3_Train.py", title="Train", icon=":material/monitoring:", url_path="Train"),
    st.Page("pages/4_Draw.py", title="Draw", icon=":material/draw:", url_path="Draw"),
])
navigation.run()
