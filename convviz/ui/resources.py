"""Cached loaders shared by every page (``st.cache_resource``: one copy per server).

``get_sample()`` and ``get_default_model()`` raise what the loaders raise
(a missing or damaged file); failures are not cached, so a file that appears
later is picked up on the next run. ``sample_or_message()`` and
``model_or_message()`` turn those failures into a sentence for ``st.info``.
"""

from __future__ import annotations

import streamlit as st

from convviz.ui.runtime import freeze_long_lived
from convviz.ui.text import md


@st.cache_resource(show_spinner="Loading the bundled MNIST sample…")
def get_sample():
    """The bundled MNIST sample, loaded once per server.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 ``(5000, 28, 28)``,
        ``(5000,)``, ``(1000, 28, 28)``, ``(1000,)`` (see :func:`convviz.data.load_sample`).

    Raises:
        FileNotFoundError, ValueError: the bundled file is missing or damaged.
    """
    from convviz.data import load_sample

    return load_sample()


@st.cache_resource(show_spinner="Loading the shipped model…")
def get_default_model():
    """The shipped, trained model (``convviz.model.DEFAULT_MODEL_PATH``), loaded once per server.

    Its compiled forward pass is traced here, on one blank digit, so that the first drawing a learner
    makes is answered as fast as the next ones (tracing took about 2 s on 2 cores).

    Returns:
        A :class:`convviz.model.ScratchCNN`; shared by all sessions, so treat it as read-only.

    Raises:
        FileNotFoundError, ValueError: the model file is missing or invalid.
    """
    import numpy as np

    from convviz.model import DEFAULT_MODEL_PATH, load_model

    model = load_model(DEFAULT_MODEL_PATH)
    model.predict(np.zeros((1, 28, 28), np.float32))
    freeze_long_lived()  # TensorFlow and the model live as long as the server: out of the collector's way
    return model


def sample_or_message():
    """``(sample, None)``, or ``(None, message)`` when the bundled sample cannot be loaded."""
    try:
        return get_sample(), None
    except (FileNotFoundError, ValueError, OSError, ImportError) as exc:
        return None, f"The bundled MNIST sample is not available ({md(exc)}), so real digits cannot be shown."


def model_or_message():
    """``(model, None)``, or ``(None, message)`` when the shipped model cannot be loaded."""
    try:
        return get_default_model(), None
    except (FileNotFoundError, ValueError, OSError, ImportError) as exc:
        return None, (f"The shipped model is not available ({md(exc)}). Train one on the Train page, "
                      "or run `python -m convviz.train` to create it.")


@st.cache_resource(show_spinner="Loading TensorFlow…")
def get_tensorflow():
    """The ``tensorflow`` module, imported on first use only (it takes seconds)."""
    import tensorflow as tf

    freeze_long_lived()
    return tf


@st.cache_data(show_spinner="Reading the picture…", max_entries=8)
def decoded_upload(data: bytes, mode: str, max_side: int):
    """:func:`convviz.images.decode_upload` of an uploaded file, cached per file content, mode and size, so the
    page's reruns (a slider moved) do not decode a large picture again (a 5000x5000 PNG: about 0.5 s).

    Returns:
        uint8 ``(height, width, 1 or 3)``, longer side at most ``max_side`` pixels.

    Raises:
        ValueError: the upload is refused; the message says why (refusals are not cached).
    """
    from convviz.images import decode_upload

    return decode_upload(data, mode, max_side=max_side)
