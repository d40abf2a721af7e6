"""Streamlit glue for the ConvViz pages: cached loaders and shared widgets.

This is the only package under ``convviz`` that imports Streamlit; the pages
import it, and it imports the rest of ``convviz``, never the reverse. Importing
it installs :mod:`convviz.ui.runtime`'s end-of-run hook in the server process.
"""

from convviz.ui import runtime as _runtime

_runtime.install()
