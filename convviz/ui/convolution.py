"""Shared Streamlit widgets for the Convolution and Stacked Channels pages.

* :func:`matrix_editor` — a cell-by-cell editable matrix with size controls
  and presets that keeps the user's edits across reruns and resizes, and refuses bad edits
  (the previous value stays, with a message).
* :func:`apply_edits` / :func:`parse_cell` — the editor's state (never trusted) -> numbers, refused
  cells keep their previous values, edits outside the matrix are ignored.
* :func:`conv_animation` / :func:`stacked_animation` — every window position as one Plotly
  figure whose frames step in the browser (slider, Play / Pause / Reset), cached per
  input; :func:`show_animation` places it, :func:`count_server_run`
  counts the server's runs of the page.
* :func:`tf_reference_map` — the same convolution by ``tf.nn.conv2d``
  (TensorFlow imported lazily, only when asked).
* :func:`show_transposed` — the page's "Transposed" mode: :func:`transposed_animation` (every input cell's
  scatter as one browser-side figure), the finished output, the size formula (:func:`transposed_size_formula`)
  and the ``tf.nn.conv2d_transpose`` check (:func:`tf_transposed_map`).
* :func:`matrix_table` — a matrix as a small text table (numbers findable as text).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import streamlit as st

from convviz.figures import format_number
from convviz.ui.numbers import number_input, settle
from convviz.ui.resources import get_tensorflow
from convviz.ui.text import md

MAX_CELL = 1e9
"""Largest magnitude accepted in a matrix cell: a 7x7 window of products stays far from float overflow."""

MIN_CELL = 1e-300
"""Smallest magnitude accepted in a matrix cell other than 0. Closer to 0, a number is stored inexactly or not at
all (``1e-400`` would silently become 0), so such a cell is refused with a message instead."""

UPLOAD_SIDE = 280
"""An upload on the Stacked Channels page is shrunk to at most this many pixels a side when decoded (its
feature maps are drawn at 28x28 at most), so a huge or very thin picture costs no more than a small one."""



# --------------------------------------------------------------------------- matrices
_MAX_CELL_TEXT = 64  # characters: longer text in a cell is not a number


def parse_cell(raw, where: str) -> float:
    """One matrix cell as the editor sends it (the text typed, or a number), checked.

    Args:
        raw: text such as ``"-2.5"`` or ``"1e-3"``, an int or a float; anything else is refused.
        where: the cell in messages, e.g. ``"Input cell (row 2, column 3)"``.

    Returns:
        The number, finite and within ±:data:`MAX_CELL`; 0 or at least :data:`MIN_CELL` away from 0.

    Raises:
        ValueError: blank, longer than 64 characters, not a number, NaN, infinite, past :data:`MAX_CELL`, or closer to 0 than
            :data:`MIN_CELL` (it would not be stored as typed: ``1e-400`` would become 0), e.g.
            ``"Input cell (row 2, column 3) is not a number ('abc')"``.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(f"{where} is blank")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | np.integer | np.floating):
        raise ValueError(f"{where} is not a number ({str(raw)[:40]!r})")
    if isinstance(raw, str) and len(raw.strip()) > _MAX_CELL_TEXT:
        raise ValueError(f"{where} is too long ({len(raw.strip()):,} characters, at most {_MAX_CELL_TEXT}; write it "
                         "shorter, e.g. 1.5e-7)")
    try:
        if isinstance(raw, str):
            value = float(raw.strip().replace("−", "-"))
        else:
            value = float(raw)
    except (ValueError, OverflowError):
        raise ValueError(f"{where} is not a number ({str(raw)[:40]!r})") from None
    if np.isnan(value):
        raise ValueError(f"{where} is blank or not a number (NaN)")
    if np.isinf(value):
        raise ValueError(f"{where} is infinite ({str(raw)[:40]!r}): type a finite number")
    if abs(value) > MAX_CELL:
        raise ValueError(f"{where} is too large ({value:g}): use numbers between {-MAX_CELL:g} and {MAX_CELL:g} "
                         "(larger ones overflow the sums)")
    if abs(value) < MIN_CELL and (value != 0 or _nonzero_digits(raw)):
        raise ValueError(f"{where} is too close to 0 ({str(raw)[:40]!r}): a number nearer to 0 than {MIN_CELL:g} "
                         "is not kept as typed (1e-400 would become 0); type 0, or a number at least "
                         f"{MIN_CELL:g} away from 0")
    return value + 0.0  # -0 is 0


def _nonzero_digits(raw) -> bool:
    """Whether a cell's text writes a number other than 0 (``"1e-400"`` does; ``"0.0e5"`` and ``"-0"`` do not)."""
    if not isinstance(raw, str):
        return False
    mantissa = raw.strip().lower().split("e")[0]
    return any(c in "123456789" for c in mantissa)


def cell_text(value: float) -> str:
    """How the editor shows a cell: ``"3"``, ``"-0.25"``, ``"1e-05"`` (Python's shortest exact form)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def apply_edits(base: np.ndarray, previous: np.ndarray, state, label: str) -> tuple[np.ndarray, list[str], bool]:
    """The matrix after the editor's edits, each checked; what the editor's client sends is never trusted.

    A cell edit that :func:`parse_cell` refuses keeps the cell's previous value. Edits outside the
    matrix (a row or column that does not exist, added or deleted rows, anything malformed) are
    ignored, so the matrix keeps its size whatever the client sends.

    Args:
        base: ``(rows, cols)``, the matrix the editor was created with.
        previous: ``(rows, cols)``, the last accepted matrix (the value a refused cell keeps).
        state: the ``st.data_editor`` state, ``{"edited_rows": {row: {"column": value}}, "added_rows": [...],
            "deleted_rows": [...]}`` (rows 0-based, columns named ``"1"``, ``"2"``, ...), or None: no edit sent,
            or Streamlit dropped the editor's state (it does when another page is shown or the editor is not
            drawn in a run), so ``previous`` is kept, never ``base``, and the editor rebuilt when they differ.
        label: the matrix's name in messages, e.g. ``"Input"``.

    Returns:
        ``(matrix, notes, rebuild)``: float64 ``(rows, cols)``; a message per refusal; whether the
        editor must be rebuilt from ``matrix`` (something was refused or ignored).
    """
    if state is None:  # nothing sent, or Streamlit forgot the editor (another page was shown, it was not drawn)
        kept = np.array(previous, dtype=np.float64)
        return kept, [], kept.shape != np.shape(base) or not np.array_equal(kept, base)
    matrix = np.array(base, dtype=np.float64)
    rows, cols = matrix.shape
    if not isinstance(state, dict):
        return np.array(previous, dtype=np.float64), [f"An unreadable edit of the {label.lower()} was ignored."], True
    notes, ignored = [], 0
    edited = state.get("edited_rows") or {}
    if not isinstance(edited, dict):
        edited, ignored = {}, 1
    columns = {str(j + 1): j for j in range(cols)}
    for row, changes in edited.items():
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < rows or not isinstance(changes, dict):
            ignored += len(changes) if isinstance(changes, dict) else 1
            continue
        for column, raw in changes.items():
            if not isinstance(column, str) or column not in columns:
                ignored += 1
                continue
            c = columns[column]
            try:
                matrix[row, c] = parse_cell(raw, f"{label} cell (row {row + 1}, column {c + 1})")
            except ValueError as exc:
                matrix[row, c] = previous[row, c]
                notes.append(f"{exc}: type a number there. The cell keeps its previous value "
                             f"{cell_text(previous[row, c])}; your other edits are kept.")
    for key in ("added_rows", "deleted_rows"):
        extra = state.get(key)
        if extra:
            ignored += len(extra) if isinstance(extra, list | dict) else 1
    if ignored:
        notes.append(f"{ignored} edit(s) outside the {rows}×{cols} {label.lower()} were ignored (its size is set "
                     "by Rows and Columns).")
    return matrix, notes, bool(notes)


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


def _remember(prefix: str, limit: int, values: np.ndarray, fresh: bool = False) -> None:
    """Keep every cell the learner has given in a ``limit x limit`` memory, so growing the matrix brings them back."""
    ss = st.session_state
    if fresh or f"{prefix}_memory" not in ss:
        ss[f"{prefix}_memory"] = np.zeros((limit, limit))
    r, c = values.shape
    ss[f"{prefix}_memory"][:r, :c] = values


def _valid_size(value, limit: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and 1 <= value <= limit


def _editor_state(prefix: str):
    """What the editor's client sent for the current editor (never trusted), or ``"unreadable"``."""
    try:
        return st.session_state.get(editor_key(prefix))
    except Exception:  # noqa: BLE001 - a client message Streamlit itself cannot decode
        return "unreadable"


def _take_pending_edits(prefix: str, limit: int, label: str) -> None:
    """Apply the edits the client sent in the same message as a resize, before the editor is rebuilt.

    A callback (Rows / Columns, the Resize button) runs before the page, and rebuilding the editor drops
    its state: so the pending edits are checked (:func:`apply_edits`) and kept in the matrix and its memory
    first; a refused one keeps the previous value, and the page shows each refusal.
    """
    ss = st.session_state
    matrix, notes, _ = apply_edits(ss[f"{prefix}_base"], ss[f"{prefix}_current"], _editor_state(prefix), label)
    ss[f"{prefix}_current"] = matrix
    _remember(prefix, limit, matrix)
    ss.setdefault(f"_{prefix}_notes", []).extend(notes)


def resize_matrix(prefix: str, rows: int, cols: int, limit: int, label: str) -> None:
    """Show the top-left ``rows x cols`` of the remembered matrix (a callback, e.g. a "Resize" button).

    Edits sent with the same message are applied first (:func:`_take_pending_edits`), so nothing typed is
    dropped; cells outside the old size come back from the memory (zeros where never typed).

    Raises:
        ValueError: ``rows`` / ``cols`` outside ``1..limit``, echoing them.
    """
    if not (_valid_size(rows, limit) and _valid_size(cols, limit)):
        raise ValueError(f"rows and cols must be whole numbers from 1 to {limit}, got rows={rows!r}, cols={cols!r}")
    _take_pending_edits(prefix, limit, label)
    set_matrix(prefix, st.session_state[f"{prefix}_memory"][: int(rows), : int(cols)])


def _wanted_size(prefix: str, limit: int, label: str) -> tuple[int, int] | None:
    """The size Rows / Columns ask for, when it differs from the matrix's; a blank, out-of-range or fractional one is
    refused (put back to the matrix's, with a note for the page) by :func:`convviz.ui.numbers.settle`; a size field
    Streamlit forgot (another page was shown, or the editor was not drawn) gets the matrix's size back silently."""
    ss = st.session_state
    old_rows, old_cols = np.shape(ss[f"{prefix}_current"])
    wanted = []
    for name, key, old in (("Rows", "rows", old_rows), ("Columns", "cols", old_cols)):
        value, note = settle(f"{prefix}_{key}", f"{label} {name}", 1, limit, True, int(old))
        wanted.append(value)
        if note:
            ss.setdefault(f"_{prefix}_notes", []).append(note)
    return None if tuple(wanted) == (old_rows, old_cols) else tuple(wanted)


def _on_resize(prefix: str, limit: int, label: str) -> None:
    """Rows / Columns changed: show that part of the remembered matrix, or refuse the size and keep the old one.

    Edits sent in the same message are kept either way: applied first when the size is accepted
    (:func:`resize_matrix`), or left to the page's own run when it is refused."""
    size = _wanted_size(prefix, limit, label)
    if size is not None:
        resize_matrix(prefix, *size, limit, label)


def matrix_editor(prefix: str, default: np.ndarray, limit: int, presets: list[str],
                  make_preset: Callable[[str, int, int, int], np.ndarray], label: str) -> np.ndarray:
    """Size controls, a preset picker and an editable table for one matrix; bad edits are refused, never kept.

    Every cell is text in the editor and checked here (:func:`apply_edits`): a refused cell keeps its
    previous value and the editor is rebuilt showing it; a size left empty or out of range keeps the
    previous size. Each refusal is a warning right under the table, where the learner is typing.
    Shrinking hides rows and columns without forgetting them: growing brings them back.

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
        float64 ``(rows, cols)`` with ``1 <= rows, cols <= limit``, every cell finite and within ±:data:`MAX_CELL`.
    """
    ss = st.session_state
    if f"{prefix}_base" not in ss:
        set_matrix(prefix, default)
        ss[f"{prefix}_ver"] = 0
        _remember(prefix, limit, ss[f"{prefix}_base"], fresh=True)

    def load_preset() -> None:
        ss[f"{prefix}_counter"] = ss.get(f"{prefix}_counter", 0) + 1
        rows, cols = np.shape(ss[f"{prefix}_current"])
        try:
            values = np.asarray(make_preset(ss.get(f"{prefix}_preset"), int(rows), int(cols), ss[f"{prefix}_counter"]),
                                dtype=np.float64)
            set_matrix(prefix, values)
            _remember(prefix, limit, values, fresh=True)
            ss.pop(f"{prefix}_preset_error", None)
        except ValueError as exc:
            ss[f"{prefix}_preset_error"] = str(exc)

    matrix, notes, rebuild = apply_edits(ss[f"{prefix}_base"], ss[f"{prefix}_current"], _editor_state(prefix),
                                         label)
    if rebuild:
        set_matrix(prefix, matrix)  # a fresh editor, showing the kept values
    ss[f"{prefix}_current"] = matrix
    _remember(prefix, limit, matrix)
    size = _wanted_size(prefix, limit, label)  # Rows / Columns changed without their callback (set by a script)
    if size is not None:
        set_matrix(prefix, ss[f"{prefix}_memory"][: size[0], : size[1]])
        matrix = ss[f"{prefix}_current"]
    notes = ss.pop(f"_{prefix}_notes", []) + notes

    c1, c2 = st.columns(2)
    for column, name, key, size in ((c1, "Rows", "rows", matrix.shape[0]), (c2, "Columns", "cols", matrix.shape[1])):
        number_input(column, name, 1, limit, int(size), 1, key=f"{prefix}_{key}", name=f"{label} {name}",
                     on_change=_on_resize, args=(prefix, limit, label),
                     help=f"1 to {limit}. Shrinking hides rows or columns; growing brings them back.")
    p1, p2 = st.columns([3, 1], vertical_alignment="bottom")
    p1.selectbox(f"{label} preset", presets, key=f"{prefix}_preset", on_change=load_preset)
    p2.button("Reload", key=f"{prefix}_reload", on_click=load_preset, help="Load the chosen preset again "
              "(a new random draw or digit).")
    if ss.get(f"{prefix}_preset_error"):
        st.warning(ss[f"{prefix}_preset_error"])

    base = ss[f"{prefix}_base"]
    names = [str(j + 1) for j in range(base.shape[1])]
    frame = pd.DataFrame([[cell_text(v) for v in row] for row in base], columns=names)
    st.data_editor(frame, key=editor_key(prefix), num_rows="fixed", hide_index=True, width="stretch",
                   column_config={c: st.column_config.TextColumn(c, width="small") for c in names})
    st.caption(f"The page uses this {matrix.shape[0]}×{matrix.shape[1]} {label.lower()}. Type numbers such as "
               f"2, -0.5 or 1e-3: 0, or from {MIN_CELL:g} to {MAX_CELL:g} in size (either sign).")
    for note in notes:
        st.warning(note)
    return matrix


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
        result: the finished output the figure steps to, when the page shows it from here (else None).
    """

    figure: object
    positions: int
    size_bytes: int
    build_s: float
    result: np.ndarray | None = None


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
    from convviz.geometry import padding_2d
    from convviz.ops import conv2d_steps

    def build():
        steps = conv2d_steps(x, kernel, strides, padding, dilation_rate, bias, flip_kernel=flip_kernel)
        pads = padding_2d(x.shape, kernel.shape, strides, padding, dilation_rate)
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


def show_animation(animation: Animation, key: str, prefix: str, note: bool = True,
                   what: str = "window positions") -> None:
    """Place the step-through figure, then a line on what was sent and how often the server ran this page.

    Args:
        animation: from :func:`conv_animation` or :func:`stacked_animation`.
        key: the chart's widget key (browser tests find it as ``.st-key-<key>``).
        prefix: the page's prefix for :func:`count_server_run` (e.g. ``"conv"``).
        note: write the line (False: the figure alone, e.g. one of two side by side).
        what: what a step is, in the line (``"All 9 window positions are in your browser"``).
    """
    st.plotly_chart(animation.figure, key=key, width="stretch", config={"displayModeBar": False})
    if not note:
        return
    kb = animation.size_bytes / 1000
    runs = st.session_state.get(f"_{prefix}_server_runs", 0)
    text = (f"All {animation.positions} {what} are in your browser ({kb:,.0f} kB): the slider and Play "
            f"move between them without asking the server. Server runs of this page for you: {runs} "
            "(one each time you change the input, the kernel or a setting).")
    if animation.size_bytes > LARGE_FIGURE_BYTES:
        st.info(f"This input has many {what}, so the animation is large and may take a moment to arrive "
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
    from convviz.geometry import output_size

    before, after = pads
    value = output_size(n, kernel_size, strides, pads, dilation_rate)
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
            image = decode_upload(upload.getvalue(), "L" if color.startswith("Gray") else "RGB",
                                  max_side=UPLOAD_SIDE)
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


# --------------------------------------------------------------------------- transposed convolution
@st.cache_resource(show_spinner="Preparing every input cell's scatter…", max_entries=32)
def transposed_animation(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int,
                         output_padding: int, show_numbers: bool, steps_per_second: float) -> Animation:
    """Every input cell of a transposed convolution as one browser-side animation, cached per input and settings.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0 (cells cropped from each side).
        output_padding: int, 0 <= output_padding < strides.
        show_numbers: write the values in the input's and the output's cells.
        steps_per_second: Play's speed (input cells per second).

    Returns:
        :class:`Animation` of :func:`convviz.figures_transposed.transposed_steps_figure` (``positions``: input cells;
        ``result``: the output, ``(h_out, w_out)``).

    Raises:
        ValueError: as :func:`convviz.geometry.transposed_geometry`.
    """
    from convviz.backprop import conv2d_transpose_steps
    from convviz.figures_transposed import transposed_steps_figure

    records = []

    def build():
        records.append(conv2d_transpose_steps(x, kernel, strides, padding, dilation_rate, output_padding))
        return transposed_steps_figure(records[0], show_numbers, steps_per_second), len(records[0].steps)

    return replace(build_animation(build), result=records[0].output)


@st.cache_data(show_spinner="Checking against TensorFlow…", max_entries=64)
def tf_transposed_map(x: np.ndarray, kernel: np.ndarray, strides: int, crop: tuple, dilation_rate: int,
                      output_shape: tuple[int, int]) -> np.ndarray:
    """The same transposed convolution by ``tf.nn.conv2d_transpose`` (:func:`convviz.tf_reference.conv2d_transpose`).

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        crop: ``((top, bottom), (left, right))`` cells cropped.
        output_shape: ``(h_out, w_out)``.

    Returns:
        float64 ``output_shape``.
    """
    get_tensorflow()
    from convviz.tf_reference import conv2d_transpose

    return conv2d_transpose(x, kernel, (strides, strides), crop, (dilation_rate, dilation_rate), output_shape)


def transposed_size_formula(n: int, kernel_size: int, strides: int, crop: tuple[int, int], dilation_rate: int,
                            output_padding: int, n_name: str, out_name: str) -> str:
    """The transposed convolution's output-size formula with the numbers plugged in, as Markdown.

    ``out = (n − 1)·s − (p_before + p_after) + d·(k − 1) + 1 + output_padding`` (Dumoulin & Visin, 2016,
    relationship 14, with a dilated kernel's size ``d·(k − 1) + 1``).

    Args:
        n, kernel_size, strides, dilation_rate, output_padding: the sizes along one axis.
        crop: ``(before, after)`` cells cropped (the padding).
        n_name, out_name: symbols, e.g. ``"H"`` and ``"H′"``.

    Returns:
        e.g. ``"H′ = (5 − 1)·2 − (1 + 1) + 1·(3 − 1) + 1 + 1 = **10**"``.
    """
    from convviz.geometry import transposed_output_size

    before, after = crop
    value = transposed_output_size(n, kernel_size, strides, crop, dilation_rate, output_padding)
    return (f"{out_name} = ({n} − 1)·{strides} − ({before} + {after}) + {dilation_rate}·({kernel_size} − 1) + 1 + "
            f"{output_padding} = **{value}**")


def show_transposed(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int,
                    output_padding: int, steps_per_second: float) -> None:
    """The Convolution page's "Transposed" mode: the step-through, the finished output, its size and TensorFlow's check.

    Bad settings (an output padding not smaller than the stride, a padding that crops everything, an output over
    :data:`convviz.geometry.MAX_TRANSPOSED_SIDE`) give an ``st.error`` saying what to change; the learner's input and
    kernel are not touched.

    Args:
        x: ``(height, width)``; kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        output_padding: int >= 0.
        steps_per_second: Play's speed.
    """
    from convviz.geometry import transposed_geometry

    (h, w), (kh, kw) = x.shape, kernel.shape
    try:
        _, _, crop, extra, (h_out, w_out), _ = transposed_geometry(x.shape, kernel.shape, strides, padding,
                                                                   dilation_rate, output_padding)
    except ValueError as exc:
        st.error(f"These settings do not make a transposed convolution: {exc}. Your input and kernel are kept; "
                 "change the setting named (sidebar) or the sizes.")
        return
    animation = transposed_animation(x, kernel, strides, padding, dilation_rate, output_padding, max(h, w) <= 16,
                                     steps_per_second)
    st.markdown("Each **input cell** in turn multiplies the whole kernel by its value and adds the products into the "
                "output where the kernel lands; the next cell lands **stride** cells further on, so overlaps add up. "
                "The output is drawn before cropping: **padding** crops that many cells from each side (beige), "
                "**output padding** adds cells at the bottom and right. Move the **slider** or press **▶ Play**: "
                "every step is already in your browser.")
    show_animation(animation, "conv_fig_transposed", "conv", what="input cells' steps")
    output = animation.result
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown(f"**The finished output** ({h_out}×{w_out}, after cropping):")
        (st.table if max(h_out, w_out) <= 16 else st.dataframe)(matrix_table(output))
    with right:
        st.markdown(f"**Output size** ({h}×{w} input, {kh}×{kw} kernel, stride {strides}, dilation {dilation_rate}, "
                    f"cropped {crop[0][0]}+{crop[0][1]} rows, {crop[1][0]}+{crop[1][1]} columns, output padding "
                    f"{extra[0]} row(s), {extra[1]} column(s)):")
        st.markdown("- " + transposed_size_formula(h, kh, strides, crop[0], dilation_rate, extra[0], "H", "H′"))
        st.markdown("- " + transposed_size_formula(w, kw, strides, crop[1], dilation_rate, extra[1], "W", "W′"))
        st.caption("(n − 1)·stride − (padding before + padding after) + dilation·(k − 1) + 1 + output padding — "
                   "Dumoulin & Visin, *A guide to convolution arithmetic for deep learning* (2016), relationship 14 "
                   "(a dilated kernel counts d·(k − 1) + 1 cells). The transposed convolution is the gradient of the "
                   f"forward one with the same stride, padding and dilation on a {h_out}×{w_out} input. "
                   f"{h * w} input cells, one step each.")
        reference = tf_transposed_map(x, kernel, strides, crop, dilation_rate, (h_out, w_out))
        diff = float(np.abs(reference - output).max())
        verdict = "✅ equals" if diff < 1e-9 else "❌ differs from"
        how = (" (TensorFlow's CPU kernel takes no dilation: it gets the kernel with zeros between the taps)"
               if dilation_rate > 1 else "")
        st.success(f"The finished output {verdict} TensorFlow's `tf.nn.conv2d_transpose` on the same input"
                   f"{how} (max absolute difference {diff:.2g}).")
