"""Streamlit glue for the ConvViz pages: cached loaders and shared widgets.

This is the only package under ``convviz`` that imports Streamlit; the pages
import it, and it imports the rest of ``convviz``, never the reverse.
"""
