"""ConvViz: run with ``streamlit run app.py``; the sidebar lists "Home" and the pages in ``app_pages/``.

Navigation is ``st.navigation`` (see ``convviz/ui/navigation.py`` for why the page scripts are in
``app_pages/`` and keep their old addresses). The home page's content lives in ``convviz/ui/home.py``.
Every run, after the page is drawn, makes sure the training cluster is starting (once per server, in a background
thread: :func:`convviz.ui.training.get_manager`), so its workers are up by the time a learner reaches Train.
"""

import streamlit as st

from convviz.ui import home, navigation, training, widget_guard


def home_page() -> None:
    """The home page."""
    home.render()


st.set_page_config(page_title="ConvViz — how a CNN works", page_icon="🔍", layout="wide")
if training.LEARNER_PARAM in st.query_params:  # any page opened with ?learner=…: the session keeps the key, since
    training.learner_key()  # moving to another page drops the address's query (the Train page then finds the runs)
try:
    navigation.navigation(home_page).run()
finally:  # whatever page came first, once it is drawn (also after its st.stop()): the cluster starts in the background
    training.get_manager()
widget_guard.announce_refused()  # values the browser sent that could not be read (see convviz/ui/widget_guard.py)
