"""Shared Streamlit widgets for the Convolution and Stacked Channels pages.

* :func:`matrix_editor` — a cell-by-cell editable matrix with size controls
  and presets that keeps the user's edits across reruns and resizes.
* :func:`parse_matrix` — edited table -> numbers, or a message naming the bad cell.
* :func:`conv_animation` / :func:`stacked_animation` — every window position as one Plotly
  figure whose frames step in the browser (slider, Previous / Next, Play / Pause), cached per
  input; :func:`show_animation` places it, :func:`count_server_run`
  counts the server's runs of the page.
* :func:`tf_reference_map` — the same convolution by ``tf.nn.conv2d``
  (TensorFlow imported lazily, only when asked).
* :func:`matrix_table` — a matrix as a small text table (numbers findable as text).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from convviz.figures import format_number
from convviz.ui.resources import get_tensorflow

MAX_CELL = 1e9
"""Largest magnitude accepted in a matrix cell: a 7x7 window of products stays far from float overflow."""



# --------------------------------------------------------------------------- matrices
def parse_matrix(table, name: str) -> np.ndarray:
    """Numbers from an edited table, or a ``ValueError`` naming the first bad cell.

    Args:
        table: a ``pandas.DataFrame`` (or anything 2-D) from ``st.data_editor``.
        name: what the message calls it, e.g. ``"Input"``.

    Returns:
        float64 ``(rows, cols)``.

    Raises:
        ValueError: a blank, non-numeric, NaN or infinite cell, or one past :data:`MAX_CELL`, e.g.
            ``"Input cell (row 2, column 3) is blank: type a number there."`` (1-based).
    """
    df = pd.DataFrame(table)
    if df.size == 0:
        raise ValueError(f"{name} is empty: give it at least one row and one column.")
    for r in range(df.shape[0]):
        for c in range(df.shape[1]):
            raw = df.iat[r, c]
            where = f"{name} cell (row {r + 1}, column {c + 1})"
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise ValueError(f"{where} is blank: type a number there.")
            try:
                v = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{where} is not a number ({raw!r}): type a number there.") from None
            if np.isnan(v):
                raise ValueError(f"{where} is blank or not a number (NaN): type a number there.")
            if np.isinf(v):
                raise ValueError(f"{where} is infinite ({raw!r}): type a finite number there.")
            if abs(v) > MAX_CELL:
                raise ValueError(f"{where} is too large ({v:g}): use numbers between {-MAX_CELL:g} and "
                                 f"{MAX_CELL:g} (larger ones overflow the sums).")
    return df.to_numpy(dtype=np.float64)


def resized(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Crop or zero-extend ``values`` to ``(rows, cols)``, keeping the top-left block (NaN cells become 0)."""
    out = np.zeros((rows, cols))
    r, c = min(rows, values.shape[0]), min(cols, values.shape[1])
    out[:r, :c] = np.nan_to_num(values[:r, :c])
    return out


def set_matrix(prefix: str, values: np.ndarray) -> None:
    """Replace the editor's matrix (and its size widgets); the editor starts fresh."""
    ss = st.session_state
    ss[f"{prefix}_base"] = np.asarray(values, dtype=np.float64).copy()
    ss[f"{prefix}_current"] = ss[f"{prefix}_base"]
    ss[f"{prefix}_ver"] = ss.get(f"{prefix}_ver", 0) + 1
    ss[f"{prefix}_rows"], ss[f"{prefix}_cols"] = (int(v) for v in np.shape(values))


def editor_key(prefix: str) -> str:
    """The ``st.data_editor`` key currently used by :func:`matrix_editor` (it changes when the matrix is replaced)."""
    return f"{prefix}_editor_{st.session_state.get(f'{prefix}_ver', 0)}"


def _on_resize(prefix: str, limit: int) -> None:
    ss = st.session_state
    rows, cols = ss[f"{prefix}_rows"], ss[f"{prefix}_cols"]
    if rows is None or cols is None or not (1 <= rows <= limit and 1 <= cols <= limit):
        return  # the page reports the bad size; keep the matrix (and the user's edits) as they are
    current = np.nan_to_num(np.asarray(ss.get(f"{prefix}_current", ss[f"{prefix}_base"]), dtype=float))
    set_matrix(prefix, resized(current, int(rows), int(cols)))


def matrix_editor(prefix: str, default: np.ndarray, limit: int, presets: list[str],
                  make_preset: Callable[[str, int, int, int], np.ndarray], label: str) -> tuple[np.ndarray | None, str | None]:
    """Size controls, a preset picker and an editable table for one matrix.

    Widget keys: ``{prefix}_rows``, ``{prefix}_cols``, ``{prefix}_preset``,
    ``{prefix}_reload`` and the data editor :func:`editor_key` ``(prefix)``.

    Args:
        prefix: key prefix, e.g. ``"conv_x"``.
        default: the matrix shown first.
        limit: largest accepted rows / columns.
        presets: preset names for the picker.
        make_preset: ``(name, rows, cols, counter) -> matrix``; may raise ``ValueError``
            (shown as a warning). ``counter`` grows each time a preset is loaded (for seeds).
        label: the matrix's name in messages, e.g. ``"Input"``.

    Returns:
        ``(matrix, None)`` or ``(None, message)`` naming what to fix; the user's edits are kept either way.
    """
    ss = st.session_state
    if f"{prefix}_base" not in ss:
        set_matrix(prefix, default)
        ss[f"{prefix}_ver"] = 0

    def load_preset() -> None:
        ss[f"{prefix}_counter"] = ss.get(f"{prefix}_counter", 0) + 1
        rows = ss[f"{prefix}_rows"] if 1 <= (ss[f"{prefix}_rows"] or 0) <= limit else default.shape[0]
        cols = ss[f"{prefix}_cols"] if 1 <= (ss[f"{prefix}_cols"] or 0) <= limit else default.shape[1]
        try:
            set_matrix(prefix, make_preset(ss[f"{prefix}_preset"], int(rows), int(cols), ss[f"{prefix}_counter"]))
            ss.pop(f"{prefix}_preset_error", None)
        except ValueError as exc:
            ss[f"{prefix}_preset_error"] = str(exc)

    c1, c2 = st.columns(2)
    c1.number_input("Rows", min_value=1, max_value=99, step=1, key=f"{prefix}_rows",
                    on_change=_on_resize, args=(prefix, limit))
    c2.number_input("Columns", min_value=1, max_value=99, step=1, key=f"{prefix}_cols",
                    on_change=_on_resize, args=(prefix, limit))
    p1, p2 = st.columns([3, 1], vertical_alignment="bottom")
    p1.selectbox(f"{label} preset", presets, key=f"{prefix}_preset", on_change=load_preset)
    p2.button("Reload", key=f"{prefix}_reload", on_click=load_preset, help="Load the chosen preset again "
              "(a new random draw or digit).")
    if ss.get(f"{prefix}_preset_error"):
        st.warning(ss[f"{prefix}_preset_error"])

    base = ss[f"{prefix}_base"]
    frame = pd.DataFrame(base, columns=[str(j + 1) for j in range(base.shape[1])])
    edited = st.data_editor(
        frame, key=editor_key(prefix), num_rows="fixed", hide_index=True, width="stretch",
        column_config={c: st.column_config.NumberColumn(c, required=True, width="small") for c in frame.columns},
    )
    ss[f"{prefix}_current"] = pd.DataFrame(edited).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)

    rows, cols = ss[f"{prefix}_rows"], ss[f"{prefix}_cols"]
    if rows is None or cols is None:
        return None, f"{label} size is blank: set Rows and Columns (1 to {limit})."
    if rows > limit or cols > limit:
        return None, (f"{label} size {rows}×{cols} is past the limit of {limit}×{limit}: "
                      f"lower Rows/Columns to {limit} or less.")
    try:
        return parse_matrix(edited, label), None
    except ValueError as exc:
        return None, str(exc)


def matrix_table(values: np.ndarray, decimals: int = 2) -> pd.DataFrame:
    """A matrix as strings for ``st.table`` (rows and columns numbered from 1).

    Args:
        values: ``(rows, cols)``; NaN is shown blank.
        decimals: at most this many decimals.

    Returns:
        A ``DataFrame`` of strings.
    """
    values = np.asarray(values, dtype=float)
    return pd.DataFrame([[format_number(v, decimals) for v in row] for row in values],
                        columns=[str(j + 1) for j in range(values.shape[1])],
                        index=[str(i + 1) for i in range(values.shape[0])])


# --------------------------------------------------------------------------- stepping (in the browser)
PLAY_SPEEDS = (0.5, 1.0, 2.0, 4.0)
"""Play speeds offered, window positions per second."""

LARGE_FIGURE_BYTES = 500_000
"""An animation larger than this gets a note on the page saying how much is sent to the browser."""


@dataclass(frozen=True)
class Animation:
    """A step-through figure and what the page says about it.

    Attributes:
        figure: the Plotly figure with one animation frame per window position.
        positions: number of window positions (frames).
        size_bytes: the figure's JSON size, as sent to the browser (bytes).
        build_s: server time to compute the positions and build the figure (seconds).
    """

    figure: object
    positions: int
    size_bytes: int
    build_s: float


def build_animation(build) -> Animation:
    """Run ``build() -> (figure, positions)`` and time it and measure the figure as sent (for :class:`Animation`)."""
    import plotly.io as pio

    start = time.perf_counter()
    fig, positions = build()
    size = len(pio.to_json(fig, validate=False).encode("utf-8"))
    return Animation(fig, positions, size, time.perf_counter() - start)


@st.cache_resource(show_spinner="Preparing every window position…", max_entries=32)
def conv_animation(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int, bias: float,
                   flip_kernel: bool, show_numbers: bool, steps_per_second: float) -> Animation:
    """Every window position of a 2-D convolution as one browser-side animation, cached per input and settings.

    One object per distinct input is shared by every session (``st.cache_resource``); pages never change it.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)`` as the user gave it.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        bias: added to every sum.
        flip_kernel: true convolution (the kernel flipped) instead of cross-correlation.
        show_numbers: write the values in the input and output cells.
        steps_per_second: Play's speed (window positions per second).

    Returns:
        :class:`Animation` of :func:`convviz.figures.conv_steps_figure`.

    Raises:
        ValueError: as :func:`convviz.ops.conv2d_steps` (e.g. a kernel larger than the padded input).
    """
    from convviz.figures import conv_steps_figure
    from convviz.ops import conv2d_steps, padding_amounts

    def build():
        steps = conv2d_steps(x, kernel, strides, padding, dilation_rate, bias, flip_kernel=flip_kernel)
        (h, w), (kh, kw) = x.shape, kernel.shape
        pads = (padding_amounts(h, kh, strides, padding, dilation_rate),
                padding_amounts(w, kw, strides, padding, dilation_rate))
        title = "Kernel (flipped)" if flip_kernel else "Kernel"
        return conv_steps_figure(x, pads, steps, show_numbers, title, steps_per_second), len(steps)

    return build_animation(build)


@st.cache_resource(show_spinner="Preparing every window position…", max_entries=32)
def stacked_animation(x: np.ndarray, kernel: np.ndarray, out_map: np.ndarray, channels: tuple[int, ...],
                      depthwise: bool, steps_per_second: float) -> Animation:
    """The stacked-channels window positions as one browser-side animation, cached per input and settings.

    Args:
        x: ``(height, width, channels)``.
        kernel: ``(kh, kw, channels)``.
        out_map: ``(h_out, w_out)``, the map drawn filling in.
        channels: indices of the channels drawn.
        depthwise: the sums are kept apart (depthwise convolution).
        steps_per_second: Play's speed.

    Returns:
        :class:`Animation` of :func:`convviz.figures.stacked_steps_figure`.
    """
    from convviz.figures import stacked_steps_figure
    from convviz.ops import conv2d_steps

    def build():
        steps = conv2d_steps(x, kernel)
        return stacked_steps_figure(x, kernel, steps, out_map, list(channels), depthwise, steps_per_second), len(steps)

    return build_animation(build)


def speed_picker(prefix: str) -> float:
    """The Play speed, window positions per second (widget key ``{prefix}_speed``)."""
    return float(st.select_slider("Play speed (steps/s)", PLAY_SPEEDS, value=2.0, key=f"{prefix}_speed",
                                  help="How fast ▶ Play moves the window. Changing it rebuilds the animation "
                                       "(back to position 1)."))


def show_animation(animation: Animation, key: str, prefix: str, note: bool = True) -> None:
    """Place the step-through figure, then a line on what was sent and how often the server ran this page.

    Args:
        animation: from :func:`conv_animation` or :func:`stacked_animation`.
        key: the chart's widget key (browser tests find it as ``.st-key-<key>``).
        prefix: the page's prefix for :func:`count_server_run` (e.g. ``"conv"``).
        note: write the line (False: the figure alone, e.g. one of two side by side).
    """
    st.plotly_chart(animation.figure, key=key, width="stretch", config={"displayModeBar": False})
    if not note:
        return
    kb = animation.size_bytes / 1000
    runs = st.session_state.get(f"_{prefix}_server_runs", 0)
    text = (f"All {animation.positions} window positions are in your browser ({kb:,.0f} kB): the slider, Previous / "
            f"Next and Play move between them without asking the server. Server runs of this page for you: {runs} "
            "(one each time you change the input, the kernel or a setting).")
    if animation.size_bytes > LARGE_FIGURE_BYTES:
        st.info(f"This input has many window positions, so the animation is large and may take a moment to arrive "
                f"on a slow connection; a smaller input or a larger stride sends less. {text}")
    else:
        st.caption(text)


def count_server_run(prefix: str) -> int:
    """Count this run of the page's script for this session; :func:`show_animation` writes the count on the page.

    Kept under the non-widget key ``_{prefix}_server_runs`` of ``st.session_state``. Browser tests read the
    number to check that stepping and Play never rerun the page.

    Returns:
        How many times the server has run this page for this session, this run included.
    """
    key = f"_{prefix}_server_runs"
    st.session_state[key] = st.session_state.get(key, 0) + 1
    return st.session_state[key]


# --------------------------------------------------------------------------- TensorFlow check
@st.cache_data(show_spinner="Checking against TensorFlow…", max_entries=64)
def tf_reference_map(x: np.ndarray, kernel: np.ndarray, strides: int, pads: tuple, dilation_rate: int,
                     bias: float, flip_kernel: bool) -> np.ndarray:
    """The same 2-D convolution by ``tf.nn.conv2d`` (an independent reference).

    The input is zero-padded explicitly (so TensorFlow sees the same, possibly
    asymmetric, padding), then convolved with VALID padding. TensorFlow's CPU
    kernel refuses strides > 1 together with dilation > 1; then the stride-1
    map is subsampled, which is the same thing.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)`` as the user gave it (not flipped).
        strides, dilation_rate: ints >= 1.
        pads: ``((top, bottom), (left, right))``.
        bias: added to every cell.
        flip_kernel: flip the kernel first (true convolution).

    Returns:
        float64 ``(h_out, w_out)``.
    """
    tf = get_tensorflow()
    k = kernel[::-1, ::-1] if flip_kernel else kernel
    xp = np.pad(x, pads)
    both = strides > 1 and dilation_rate > 1
    y = tf.nn.conv2d(tf.constant(xp[None, :, :, None], tf.float64), tf.constant(k[:, :, None, None], tf.float64),
                     strides=1 if both else strides, padding="VALID", dilations=dilation_rate)
    y = y.numpy()[0, :, :, 0] + bias
    return y[::strides, ::strides] if both else y


def output_size_formula(n: int, kernel_size: int, strides: int, pads: tuple[int, int], dilation_rate: int,
                        n_name: str, out_name: str) -> str:
    """The output-size formula with the numbers plugged in, as Markdown.

    ``out = floor((n + p_before + p_after − d·(k − 1) − 1) / s) + 1`` (Dumoulin & Visin, 2016).

    Args:
        n, kernel_size, strides, dilation_rate: the sizes along one axis.
        pads: ``(before, after)`` zero cells.
        n_name, out_name: symbols, e.g. ``"H"`` and ``"H′"``.

    Returns:
        e.g. ``"H′ = ⌊(5 + 0 + 0 − 1·(3 − 1) − 1) / 1⌋ + 1 = **3**"``.
    """
    before, after = pads
    value = (n + before + after - dilation_rate * (kernel_size - 1) - 1) // strides + 1
    return (f"{out_name} = ⌊({n} + {before} + {after} − {dilation_rate}·({kernel_size} − 1) − 1) / {strides}⌋ + 1"
            f" = **{value}**")


# --------------------------------------------------------------------------- stacked channels
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
        model_key: identifies the model for the cache (e.g. its file's modification time).
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
    from convviz.images import MAX_UPLOAD_BYTES, decode_upload
    from convviz.ui.resources import sample_or_message

    source = st.radio("Real input", ["Digit from the bundled sample", "Upload an image"], key=f"{prefix}_source")
    if source == "Upload an image":
        color = st.radio("Channels", ["Grayscale (1)", "RGB (3)"], key=f"{prefix}_color", horizontal=True)
        upload = st.file_uploader("PNG or JPEG, at most 5 MB", type=["png", "jpg", "jpeg"], key=f"{prefix}_upload",
                                  max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024))
        if upload is None:
            st.info("Choose a PNG or JPEG file to use it as the input.")
            return None, ""
        try:
            image = decode_upload(upload.getvalue(), "L" if color.startswith("Gray") else "RGB")
        except ValueError as exc:
            st.error(f"Cannot use {upload.name!r}: {exc}")
            return None, ""
        return image, f"upload {upload.name!r}"
    sample, message = sample_or_message()
    if sample is None:
        st.info(message)
        return None, ""
    x_test, y_test = sample[1]
    index = st.number_input("Test digit number", 0, len(x_test) - 1, 0, key=f"{prefix}_digit")
    return x_test[index][:, :, None], f"test digit #{index} (label {int(y_test[index])})"
