"""The Stacked Channels page's glue: a bank of filters, the shipped model's maps and a real input, cached.

* :func:`conv_bank` — ``conv2d_naive`` for a bank of filters, cached per input and kernels.
* :func:`model_activations` — the shipped model's layer outputs for one digit, cached per image.
* :func:`real_input_picker` — a digit of the bundled sample or an uploaded image (shrunk to :data:`UPLOAD_SIDE`).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.ui.numbers import number_input
from convviz.ui.text import md

UPLOAD_SIDE = 280
"""An upload on the Stacked Channels page is shrunk to at most this many pixels a side when decoded (its
feature maps are drawn at 28x28 at most), so a huge or very thin picture costs no more than a small one."""


@st.cache_data(show_spinner="Convolving…", max_entries=32)
def conv_bank(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``convviz.ops.conv2d_naive(x, kernel)`` for a bank of filters, cached per input and kernels.

    Args:
        x: ``(height, width, channels)``.
        kernel: ``(kh, kw, channels, filters)``.

    Returns:
        ``(h_out, w_out, filters)``.
    """
    from convviz.ops import conv2d_naive

    return conv2d_naive(x, kernel)


@st.cache_data(show_spinner="Running the shipped model…", max_entries=16)
def model_activations(_model, model_key: str, image: np.ndarray) -> dict:
    """``model.activations`` for one ``(28, 28)`` image, without the batch axis; cached per image.

    Args:
        _model: a :class:`convviz.model.ScratchCNN` (not hashed).
        model_key: tells models apart in the cache (``_model`` is not hashed): ``str(id(model))`` of a model that
            lives as long as the server (the shipped one, kept by ``st.cache_resource``), so its id is never reused.
        image: float ``(28, 28)`` in [0, 1].

    Returns:
        dict ``layer name -> array`` (batch axis removed).
    """
    return {name: value[0] for name, value in _model.activations(image[None]).items()}


def real_input_picker(prefix: str) -> tuple[np.ndarray | None, str]:
    """A digit from the bundled sample or an uploaded PNG/JPEG, as uint8 ``(height, width, channels)``.

    Widget keys: ``{prefix}_source``, ``{prefix}_digit``, ``{prefix}_upload``, ``{prefix}_color``.

    Args:
        prefix: key prefix, e.g. ``"stack"``.

    Returns:
        ``(image, description)``; ``image`` is None when nothing usable was given,
        and a message on the page says why.
    """
    from convviz.images import MAX_UPLOAD_BYTES
    from convviz.ui.resources import decoded_upload, sample_or_message

    source = st.radio("Real input", ["Digit from the bundled sample", "Upload an image"], key=f"{prefix}_source")
    if source == "Upload an image":
        color = st.radio("Channels", ["Grayscale (1)", "RGB (3)"], key=f"{prefix}_color", horizontal=True)
        upload = st.file_uploader("PNG or JPEG, at most 5 MB", type=["png", "jpg", "jpeg"], key=f"{prefix}_upload",
                                  max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024))
        if upload is None:
            st.info("Choose a PNG or JPEG file to use it as the input.")
            return None, ""
        try:
            image = decoded_upload(upload.getvalue(), "L" if color.startswith("Gray") else "RGB", UPLOAD_SIDE)
        except ValueError as exc:
            st.error(f"Cannot use '{md(upload.name)}': {exc}")
            return None, ""
        return image, f"upload '{md(upload.name)}'"
    sample, message = sample_or_message()
    if sample is None:
        st.info(message)
        return None, ""
    x_test, y_test = sample[1]
    index = number_input(st, "Test digit number", 0, len(x_test) - 1, 0, key=f"{prefix}_digit")
    return x_test[index][:, :, None], f"test digit #{index} (label {int(y_test[index])})"
