"""Streamlit glue for the Draw page: the canvas, the upload, the model choice and the renderings.

The preparation of the digit is :mod:`convviz.preprocess` (numpy/Pillow), the look inside the
network :mod:`convviz.explain` (TensorFlow), the figures :mod:`convviz.figures_draw`; this
module only wires them to widgets. ``streamlit_drawable_canvas`` is imported inside
:func:`canvas_image` because importing it outside a running Streamlit raises.
"""

from __future__ import annotations

import binascii
import threading

import numpy as np
import streamlit as st

from convviz import figures_draw as fd
from convviz.images import decode_canvas
from convviz.preprocess import PHOTO_SIDE, DigitStages, prepare_photo
from convviz.ui.text import md
from convviz.ui.training import DRAW_MODEL_KEY

CANVAS_SIZE = 280
"""Side of the drawing canvas, pixels (10x MNIST's 28)."""

_NONCE_KEY = "_draw_canvas_nonce"
_DRAWING_KEY = "_draw_drawing"
"""``st.session_state`` key of the last drawing read from the canvas: ``(json_data, PNG bytes)``, kept when the
learner leaves the page (Streamlit then drops the canvas's own widget state)."""
_INITIAL_KEY = "_draw_canvas_initial"
"""``st.session_state`` key of the drawing the canvas was last mounted with (its ``initial_drawing``)."""
_REFUSED_KEY = "_draw_canvas_refused"
"""``st.session_state`` flag: the last run refused the canvas's state (a toast says so)."""
MAX_KEPT_DRAWING_CHARS = 2_000_000
"""A drawing's Fabric.js JSON (``json_data``) longer than this is not kept across pages (a digit's strokes take
tens of kilobytes; only a crafted client sends more)."""


def canvas_key() -> str:
    """The canvas's current widget key, ``draw_canvas_<n>``; :func:`clear_canvas` moves it on."""
    return f"draw_canvas_{st.session_state.get(_NONCE_KEY, 0)}"


def clear_canvas() -> None:
    """Empty the canvas (a new key gives a fresh component) and forget the kept drawing."""
    st.session_state[_NONCE_KEY] = st.session_state.get(_NONCE_KEY, 0) + 1
    st.session_state.pop(_DRAWING_KEY, None)
    st.session_state.pop(_INITIAL_KEY, None)


def _keep_drawing(json_data, data: bytes) -> None:
    """Remember the drawing just read (its strokes for the canvas, its PNG for the prediction), within the limit."""
    import json

    kept = st.session_state.get(_DRAWING_KEY)
    if kept is not None and kept[1] == data:
        return
    try:
        size = len(json.dumps(json_data))
    except (TypeError, ValueError, RecursionError):
        size = MAX_KEPT_DRAWING_CHARS + 1
    if isinstance(json_data, dict) and size <= MAX_KEPT_DRAWING_CHARS:
        st.session_state[_DRAWING_KEY] = (json_data, data)
    else:
        st.session_state.pop(_DRAWING_KEY, None)


def canvas_image(stroke_width: int) -> np.ndarray | None:
    """Show the 280x280 canvas (white strokes on black); its RGBA image, or None before any drawing.

    The drawing survives leaving the page: the last one read is kept in the session (:data:`_DRAWING_KEY`); when
    the canvas is mounted again (its widget state gone), it starts from those strokes (``initial_drawing``, fixed
    for as long as the canvas stays mounted, so the client never redraws under the pen), and until its client sends
    a new image the kept PNG stands for it. :func:`clear_canvas` forgets it.

    Args:
        stroke_width: pen width, pixels.

    Returns:
        uint8 ``(height, width, 4)`` or None.
    """
    from streamlit_drawable_canvas import st_canvas

    if st.session_state.pop(_REFUSED_KEY, False):
        st.toast("The drawing canvas sent a value no canvas sends; it was reset to your last drawing.")
    key = canvas_key()
    kept = st.session_state.get(_DRAWING_KEY)
    if key not in st.session_state:  # the canvas is mounted afresh (first visit, or back from another page)
        st.session_state[_INITIAL_KEY] = kept[0] if kept is not None else None
    initial = st.session_state.get(_INITIAL_KEY)
    try:  # the component indexes the state its client sent without checking it: a crafted one raises in here
        result = st_canvas(stroke_width=stroke_width, stroke_color="#FFFFFF", background_color="#000000",
                           height=CANVAS_SIZE, width=CANVAS_SIZE, drawing_mode="freedraw", return_image_data=True,
                           initial_drawing=initial, key=key)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:  # {"backgroundFit": 5}, ...
        if key not in st.session_state:  # no state its client sent: not a crafted state (a fresh canvas would
            raise  # raise again: never rerun in a loop)
        _remount_after_crafted_state(exc)  # reruns the page
    try:
        data = result.image_bytes  # the PNG its client sent: untrusted, decoded with our checks
    except (ValueError, TypeError, binascii.Error):  # not a base64 data URL: treat as nothing drawn
        return None
    except AttributeError as exc:  # "data" that is no text ({"drawing": {"data": 5}})
        _remount_after_crafted_state(exc)
    if not data and kept is not None and initial is kept[0]:  # remounted with the kept strokes, nothing sent yet
        data = kept[1]
    if not data:
        return None
    try:
        image = decode_canvas(data, max_side=4 * CANVAS_SIZE)  # the canvas at up to 4 device pixels per pixel
    except ValueError as exc:
        st.warning(f"The drawing could not be read ({exc}); press Clear and draw again.")
        return None
    _keep_drawing(result.json_data, data)
    return image


def _remount_after_crafted_state(exc: Exception) -> None:
    """A canvas state of the wrong shape (only a crafted client sends one): log it, and run the page again with a
    fresh canvas (a new key: Streamlit drops the old key's state) that starts from the kept drawing; that run
    shows a toast saying so."""
    import logging

    logging.getLogger(__name__).warning("refused a drawing-canvas state the client sent (%s: %s)",
                                        type(exc).__name__, str(exc)[:200])
    kept = st.session_state.get(_DRAWING_KEY)
    st.session_state[_NONCE_KEY] = st.session_state.get(_NONCE_KEY, 0) + 1
    st.session_state[_INITIAL_KEY] = kept[0] if kept is not None else None
    st.session_state[_REFUSED_KEY] = True
    st.rerun()


def uploaded_stages() -> tuple[DigitStages | None, str | None]:
    """The uploader; the uploaded digit prepared (:func:`convviz.preprocess.prepare_photo`).

    Returns:
        ``(stages, note)``: the :class:`DigitStages` and a note on inversion, or ``(None, None)``
        when nothing is uploaded. A bad file shows an error on the page and returns ``(None, None)``.
    """
    from convviz.ui.resources import decoded_upload

    upload = st.file_uploader("A photo or scan of one digit (PNG or JPEG, up to 5 MB)", type=["png", "jpg", "jpeg"],
                              key="draw_upload",
                              help="Dark ink on light paper is inverted automatically (MNIST is white on black).")
    if upload is None:
        return None, None
    try:
        pixels = decoded_upload(upload.getvalue(), "L", PHOTO_SIDE)
    except ValueError as exc:
        st.error(f"Could not use '{md(upload.name)}': {exc}")
        return None, None
    stages, inverted = prepare_photo(pixels[:, :, 0])
    note = ("Light paper detected: the image was inverted to white ink on black, as in MNIST." if inverted
            else "Dark background detected: used as it is (white ink on black, as in MNIST).")
    return stages, note


def draw_model():
    """The model the Draw page uses: this session's trained one if chosen, else the shipped one.

    Returns:
        ``(model, description, mine)``, or ``(None, message, False)`` when there is none.
    """
    chosen = st.session_state.get(DRAW_MODEL_KEY)
    if chosen is not None:
        return chosen[0], chosen[1], True
    from convviz.ui.resources import model_or_message

    model, message = model_or_message()
    if model is None:
        return None, message, False
    return model, "the shipped model (convviz/models/default.npz)", False


def use_shipped_model() -> None:
    """Forget this session's chosen model; the shipped one is used again."""
    st.session_state.pop(DRAW_MODEL_KEY, None)


_EXPLAINING = threading.BoundedSemaphore(1)
"""One explanation (every layer's output and a backward pass, ~0.3 s of CPU) computed at a time in this server.

The sessions' TensorFlow work shares one thread pool: when a class draws at once, sixteen explanations queued
there delayed every learner's prediction (a forward pass of a few milliseconds) by seconds. Taking turns for the
heavy panel keeps the pool short, so predictions stay fast and the panels follow one by one."""

_RESULTS_KEY = "_draw_results"
"""``st.session_state`` key of this session's per-drawing cache (see :func:`_cached`)."""
_RESULTS_KEPT = 8


def _cached(kind: str, model, image: np.ndarray, compute):
    """``compute()`` once per (kind, model, drawing) in this session; the last few results are kept.

    A drawing is known by the bytes of its 28x28 image, the model by identity (the entry keeps the model
    itself, so a new model never reuses an old model's result).
    """
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest()
    results = st.session_state.setdefault(_RESULTS_KEY, [])
    for entry_kind, entry_model, entry_digest, value in results:
        if entry_kind == kind and entry_model is model and entry_digest == digest:
            return value
    value = compute()
    results.append((kind, model, digest, value))
    del results[:-_RESULTS_KEPT]
    return value


def predict(model, image: np.ndarray) -> np.ndarray:
    """The model's class probabilities for one digit, cached per drawing (the fast, fused forward pass only).

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in [0, 1].

    Returns:
        float ``(10,)`` probabilities.
    """
    return _cached("probabilities", model, image, lambda: model.predict(image[None])[0])


def show_prediction(probabilities, label: str = "Prediction") -> int:
    """The top class as large text ("Prediction: 7 (98.5%)") over the bar chart of all ten.

    A model whose outputs are not numbers (finite weights can still overflow: a file's weights of 1e38) gets an
    error instead of a made-up class.

    Returns:
        The predicted class, or -1 when the probabilities are not all finite.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.all(np.isfinite(probabilities)):
        st.error(f"{label}: this model's output is not a number (its weights are so large that the computation "
                 "overflows). Use the shipped model or another run on the Train page.")
        return -1
    top = int(np.argmax(probabilities))
    st.markdown(f"## {label}: {top} ({probabilities[top]:.1%})")
    st.plotly_chart(fd.probability_figure(probabilities), key=f"draw_chart_probs_{label.split()[0].lower()}")
    return top


def show_stages(stages: DigitStages, naive=None) -> None:
    """The preparation, stage by stage, with a sentence giving its numbers."""
    st.markdown("### How the digit is prepared")
    st.plotly_chart(fd.stages_figure(stages, naive=naive), key="draw_chart_stages")
    top, left, bottom, right = stages.bbox
    st.caption(f"Ink bounding box {right - left}x{bottom - top} px → scaled to {stages.scaled.shape[1]}x"
               f"{stages.scaled.shape[0]} (longer side 20, aspect kept) → placed at row {stages.offset[0]}, column "
               f"{stages.offset[1]} so that its centre of mass (red dot) lands at ({stages.mass_center[0]:.1f}, "
               f"{stages.mass_center[1]:.1f}), on the field's centre (14, 14) (green cross).")


@st.fragment
def show_inside(model, image: np.ndarray) -> None:
    """Feature maps of each convolution layer and the saliency map, for one digit (a fragment, after the prediction).

    The explanation (:func:`convviz.explain.explain`: every layer's output and a backward pass) is the heavy part
    of the page, so it is computed after the prediction is on the page, and once per drawing.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in [0, 1].
    """
    from convviz.explain import explain

    st.markdown("### Inside the network for this digit")

    def computed():
        with st.spinner("Computing the feature maps and the saliency…"), _EXPLAINING:
            return explain(model, image)

    explanation = _cached("explanation", model, image, computed)
    st.caption("Each convolution layer's feature maps: one small image per filter, bright where the filter found "
               "its pattern (after the ReLU). The first layer finds strokes and edges; the second, combinations.")
    layers = list(explanation.feature_maps.items())
    columns = st.columns(len(layers)) if layers else []
    for column, (name, maps) in zip(columns, layers):
        h, w, f = maps.shape
        column.plotly_chart(fd.feature_maps_figure(maps, columns=8, title=f"{name}: {f} feature maps of {h}x{w}"),
                            key=f"draw_chart_maps_{name}")
    st.caption(f"Saliency: how strongly each input pixel moves the score of class {explanation.prediction} "
               "(the gradient of that score with respect to the pixel, in absolute value). Red pixels matter most.")
    st.plotly_chart(fd.saliency_figure(image, explanation.saliency), key="draw_chart_saliency")
