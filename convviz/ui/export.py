"""Streamlit glue for "Take your model home" on the Train page: three downloads for a saved run or the shipped model.

The files come from :mod:`convviz.export`: the weights ``.npz`` (the model's own format), a generated
``tf.keras`` script that loads them, and the model in Keras's ``.keras`` format. The weights and the
script are made when the section is drawn, from the model file read once per version of it
(``st.cache_data`` keyed by the file's path, modification time and size: tens of milliseconds the first
time, nothing after). The ``.keras`` file takes TensorFlow seconds (Keras builds and saves the model), so
it is made only when its button is clicked (Streamlit's deferred download), from the very weights
offered next to it, and cached by their content.

A model file that cannot be read (a corrupt run) gets an error for that model only; nothing is deleted,
and the other runs and the shipped model can still be downloaded. Widget keys: ``export_<slot>_npz``,
``export_<slot>_py``, ``export_<slot>_keras`` with slot ``run`` (the saved run chosen in the list) or
``default`` (the shipped model).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from convviz import export
from convviz.ui.text import md
from convviz.ui.training import weights_when

_HOW_TO = ("Keep the weights (.npz) next to the script: `python {stem}_keras.py --image digit.png` predicts a picture "
           "of a digit, and the script's docstring shows how to use the model in your own code; the .keras file is "
           "the same model for `keras.models.load_model`. The script only turns the picture grey and resizes it to "
           "28×28, while the Draw page also crops it to the ink, scales it to 20×20 and centres it, as MNIST's digits "
           "were made: the same picture can get a different confidence (give the script an MNIST-style 28×28 image "
           "for the same numbers).")


@st.cache_data(max_entries=8, show_spinner=False)
def _files(path: str, stamp: tuple, stem: str, title: str, source: str) -> tuple[bytes, str | None, str | None]:
    """``(weights .npz bytes, script text or None, why there is no Keras export or None)`` for a model file.

    ``stamp`` (modification time in ns, size in bytes) is part of the cache key only, so a file replaced by a
    newer checkpoint is read again.

    Raises:
        ValueError, FileNotFoundError, OSError: the file cannot be read as a model (not cached).
    """
    from convviz.model import load_model

    model = load_model(path)
    try:
        return export.weights_npz(model), export.keras_script(model.spec, stem=stem, title=title, source=source), None
    except ValueError as exc:  # an architecture Keras cannot express exactly: the weights alone
        return export.weights_npz(model), None, str(exc)


@st.cache_data(max_entries=4, show_spinner=False)
def _keras_bytes(npz: bytes) -> bytes:
    """The ``.keras`` file of the model whose weights file is ``npz`` (cached by content)."""
    import tempfile

    from convviz.model import load_model

    with tempfile.TemporaryDirectory(prefix="convviz-export-") as folder:
        path = Path(folder) / "model.npz"
        path.write_bytes(npz)
        model = load_model(path)
    return export.keras_file(model)


def downloads(slot: str, path: Path, stem: str, title: str, source: str) -> bool:
    """Three download buttons (weights ``.npz``, Keras script ``.py``, ``.keras``) for the model file at ``path``.

    Args:
        slot: ``"run"`` or ``"default"``: the widget keys' middle part.
        path: the model file (a run's checkpoint or the shipped model).
        stem: the downloads' file name without suffix, e.g. ``convviz_run3_20260101-000000-fast-abcdef``.
        title: how the script names the model (``"Run 3"``).
        source: where it came from, for the script (the run id, or the shipped file's name).

    Returns:
        True when the buttons are shown, False when the file could not be read (an error says why).
    """
    try:
        info = path.stat()
        npz, script, problem = _files(str(path), (info.st_mtime_ns, info.st_size), stem, title, source)
    except (ValueError, OSError) as exc:  # FileNotFoundError is an OSError
        st.error(f"{md(title)} cannot be downloaded: {md(exc)}. The file was left as it is; the other models on this page "
                 "can still be downloaded.")
        return False
    weights, code, keras = st.columns(3)
    weights.download_button("Weights (.npz)", data=npz, file_name=f"{stem}.npz", mime="application/octet-stream",
                            key=f"export_{slot}_npz", on_click="ignore", icon=":material/download:",
                            help="The trained weights in ConvViz's own format: convviz.model.load_model reads it, "
                                 "and so does the Keras script.")
    code.download_button("Keras script (.py)", data=script or "", file_name=f"{stem}_keras.py", mime="text/x-python",
                         key=f"export_{slot}_py", on_click="ignore", icon=":material/code:", disabled=script is None,
                         help="A Python script that builds this network from tf.keras layers and loads the weights "
                              "file; run it next to the .npz.")
    keras.download_button("Keras model (.keras)", data=(lambda: _keras_bytes(npz)) if script else "",
                          file_name=f"{stem}.keras", mime="application/zip", key=f"export_{slot}_keras",
                          on_click="ignore", icon=":material/deployed_code:", disabled=script is None,
                          help="The same model saved by Keras (keras.models.load_model opens it). Made when you "
                               "click: a few seconds the first time.")
    if problem:
        st.warning(f"Only the weights of {md(title)} can be downloaded: {problem}.")
    else:
        st.caption(_HOW_TO.format(stem=stem))
    return True


def run_downloads(record) -> None:
    """The three downloads of a saved run (its checkpoint as it is now).

    Args:
        record: a :class:`convviz.runs.RunRecord`.
    """
    st.markdown(f"**Take {md(record.name)} home** (its weights {weights_when(record.history)})")
    number = f"run{record.number}_" if record.number is not None else ""
    downloads("run", record.path, f"convviz_{number}{record.run_id}", record.name, f"run {record.run_id}")


def shipped_model_downloads() -> None:
    """The three downloads of the shipped model (``convviz/models/default.npz``)."""
    from convviz.model import DEFAULT_MODEL_PATH

    st.markdown("**Take the shipped model home** (the trained model the Draw page uses by default)")
    downloads("default", DEFAULT_MODEL_PATH, "convviz_default", "The shipped model",
              f"the shipped model, {DEFAULT_MODEL_PATH.name}")
