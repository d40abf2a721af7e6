"""ConvViz home page: run with ``streamlit run app.py``; the pages in ``pages/`` appear in the sidebar.

The home page's content lives in ``convviz/ui/home.py``. (Navigation is Streamlit's ``pages/``
folder. ``st.navigation`` would let the sidebar call this page "Home" instead of "app", but with a
``pages/`` folder present Streamlit decides per server process which mechanism to use from the first
page visited, so a deep link opened first would get different navigation than the home page.)
"""

import streamlit as st

from convviz.ui import home, training

st.set_page_config(page_title="ConvViz — how a CNN works", page_icon="🔍", layout="wide")
home.render()
training.get_manager()  # starts the training cluster in the background (returns at once), so it is warm by Train
