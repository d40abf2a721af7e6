"""ConvViz: run with ``streamlit run app.py``; the sidebar lists "Home" and the pages in ``app_pages/``.

Navigation is ``st.navigation`` (see ``convviz/ui/navigation.py`` for why the page scripts are in
``app_pages/`` and keep their old addresses). The home page's content lives in ``convviz/ui/home.py``.
"""

import streamlit as st

from convviz.ui import home, navigation, training, widget_guard


def home_page() -> None:
    """The home page; it also starts the training cluster in the background (returns at once), so it is warm by Train."""
    home.render()
    training.get_manager()


st.set_page_config(page_title="ConvViz — how a CNN works", page_icon="🔍", layout="wide")
if training.LEARNER_PARAM in st.query_params:  # any page opened with ?learner=…: the session keeps the key, since
    training.learner_key()  # moving to another page drops the address's query (the Train page then finds the runs)
navigation.navigation(home_page).run()
widget_guard.announce_refused()  # values the browser sent that could not be read (see convviz/ui/widget_guard.py)
