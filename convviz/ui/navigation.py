"""The app's pages and its sidebar: one table, read by ``app.py``'s ``st.navigation`` and the home page's cards.

``st.navigation`` (rather than Streamlit's older ``pages/`` folder) lets the first sidebar entry read
"Home" instead of the entry script's name ("app"). The page scripts live in ``app_pages/``, not
``pages/``: with a ``pages/`` folder next to ``app.py``, Streamlit 1.67 decides once per server process
(``PagesManager.uses_pages_directory``, from the first page visited) whether it runs the folder's
pages itself, so a deep link opened first would bypass ``st.navigation``. Each page keeps its old
address (``url_path``: ``/Convolution``, ``/Stacked_Channels``, ...), so bookmarks, ``?learner=``
links and the browser tests work as before.
"""

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parents[2] / "app_pages"
"""The folder of the page scripts (next to ``app.py``)."""

HOME_TITLE = "Home"
"""The first sidebar entry: the home page (``/``)."""


@dataclass(frozen=True)
class PageEntry:
    """One page of the app.

    Attributes:
        script: the page script's path relative to the repository root (``app_pages/1_Convolution.py``).
        title: its sidebar entry (the name Streamlit's ``pages/`` folder gave it before).
        url_path: its address below the app's root (``Convolution`` -> ``/Convolution``).
        card: the home page's link label.
        icon: the home page's link icon (a Material icon name).
        text: the home page's caption under the link.
    """

    script: str
    title: str
    url_path: str
    card: str
    icon: str
    text: str


PAGES = (
    PageEntry("app_pages/1_Convolution.py", "Convolution", "Convolution", "**1 · Convolution**", ":material/grid_on:",
              "Edit a matrix and a kernel and step through the sliding window: padding, stride, dilation, the "
              "products, the sum written out, the output-size formula."),
    PageEntry("app_pages/2_Stacked_Channels.py", "Stacked Channels", "Stacked_Channels", "**2 · Stacked channels**",
              ":material/layers:",
              "A kernel as deep as its input, per-channel sums adding up, many filters making a stack of feature "
              "maps — on toy matrices and on real digits."),
    PageEntry("app_pages/3_Train.py", "Train", "Train", "**3 · Train**", ":material/monitoring:",
              "Train the from-scratch CNN on MNIST with live loss and accuracy charts, then see where it fails "
              "and what its kernels learned."),
    PageEntry("app_pages/4_Draw.py", "Draw", "Draw", "**4 · Draw**", ":material/draw:",
              "Draw a digit and watch the network classify it, layer by layer."),
    PageEntry("app_pages/5_Backpropagation.py", "Backpropagation", "Backpropagation", "**5 · Backpropagation**",
              ":material/undo:",
              "How it learns: step through the gradient of a convolution (dK, dX both ways, db), one descent step, "
              "pooling and ReLU backwards, and a kernel that learns itself."),
    PageEntry("app_pages/6_Filter_Atlas.py", "Filter Atlas", "Filter_Atlas", "**6 · Filter atlas**",
              ":material/grid_view:",
              "What each filter learned: the test patches that make it fire most, the input it likes best, and the "
              "input each class likes best — for the shipped model or any saved run."),
)
"""Every page after the home page, in sidebar order."""


def navigation(home) -> st.Page:
    """The app's navigation: ``home`` (a function drawing the home page) as "Home" at ``/``, then :data:`PAGES`.

    Args:
        home: a callable with no arguments that draws the home page.

    Returns:
        Streamlit's ``StreamlitPage`` for this run's page; ``app.py`` calls its ``run()``.
    """
    root = PAGES_DIR.parent
    pages = [st.Page(home, title=HOME_TITLE, default=True)]
    pages += [st.Page(str(root / p.script), title=p.title, url_path=p.url_path) for p in PAGES]
    return st.navigation(pages)
