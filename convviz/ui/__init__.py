"""Streamlit glue for the ConvViz pages: cached loaders and shared widgets.

This is the only package under ``convviz`` that imports Streamlit; the pages
import it, and it imports the rest of ``convviz``, never the reverse. Importing
it installs :mod:`convviz.ui.runtime`'s end-of-run hook and :mod:`convviz.ui.widget_guard`'s
reader of widget values in the server process.
"""

from convviz.ui import runtime as _runtime
from convviz.ui import widget_guard as _widget_guard

_runtime.install()
_widget_guard.install()
