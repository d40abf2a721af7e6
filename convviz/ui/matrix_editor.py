"""Matrices on the convolution pages: the editable matrix and the read-only table.

* :func:`matrix_editor` — a cell-by-cell editable matrix with size controls
  and presets that keeps the user's edits across reruns and resizes, and refuses bad edits
  (the previous value stays, with a message).
* :func:`apply_edits` / :func:`parse_cell` — the editor's state (never trusted) -> numbers, refused
  cells keep their previous values, edits outside the matrix are ignored.
* :func:`set_matrix` / :func:`resize_matrix` / :func:`editor_key` — replace, resize or find the editor's matrix.
* :func:`matrix_table` — a matrix as a small text table (numbers findable as text).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from convviz.figures import format_number
from convviz.ui.numbers import number_input, settle

MAX_CELL = 1e9
"""Largest magnitude accepted in a matrix cell: a 7x7 window of products stays far from float overflow."""

MIN_CELL = 1e-300
"""Smallest magnitude accepted in a matrix cell other than 0. Closer to 0, a number is stored inexactly or not at
all (``1e-400`` would silently become 0), so such a cell is refused with a message instead."""

CELL_WIDTH_PX = 52
"""Width of one column of a matrix editor, pixels."""
_MAX_CELL_TEXT = 64  # characters: longer text in a cell is refused (a run of digits as too large, else too long)
_DIGITS = re.compile(r"[-+]?[0-9]+")


def _shown(raw, value: float | None = None) -> str:
    """A cell's value as a message shows it: a huge integer by its size in digits (``str`` of an integer over 4,300
    digits raises), else ``value`` when given (``1e+20``), else its first 40 characters, quoted."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 130:
        size = abs(raw)
        digits = int((size.bit_length() - 1) * math.log10(2)) + 1  # exact but for the next power of 10
        return f"an integer of {digits + (size >= 10**digits):,} digits"
    digits = raw.strip().replace("−", "-").lstrip("+-").lstrip("0") if isinstance(raw, str) else ""
    if len(digits) > 40 and _DIGITS.fullmatch(digits):
        return f"a number of {len(digits):,} digits"
    return f"{value:g}" if value is not None else repr(str(raw)[:40])


def parse_cell(raw, where: str) -> float:
    """One matrix cell as the editor sends it (the text typed, or a number), checked.

    Args:
        raw: text such as ``"-2.5"`` or ``"1e-3"``, an int or a float; anything else is refused.
        where: the cell in messages, e.g. ``"Input cell (row 2, column 3)"``.

    Returns:
        The number, finite and within ±:data:`MAX_CELL`; 0 or at least :data:`MIN_CELL` away from 0.

    Raises:
        ValueError: blank, longer than 64 characters, not a number, NaN, infinite, past :data:`MAX_CELL` (a huge
            integer too, typed or sent as a number: ``"... is too large (an integer of 401 digits): use numbers
            between -1e+09 and 1e+09 ..."``), or closer to 0 than :data:`MIN_CELL` (it would not be stored as typed:
            ``1e-400`` would become 0), e.g. ``"Input cell (row 2, column 3) is not a number ('abc')"``.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(f"{where} is blank")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | np.integer | np.floating):
        raise ValueError(f"{where} is not a number ({_shown(raw)})")
    too_large = (f"{where} is too large ({{}}): use numbers between {-MAX_CELL:g} and {MAX_CELL:g} (larger ones "
                 "overflow the sums)")
    text = raw.strip().replace("−", "-") if isinstance(raw, str) else None
    if text is not None and len(text) > _MAX_CELL_TEXT:
        if _DIGITS.fullmatch(text) and len(text.lstrip("+-").lstrip("0")) > 10:  # 10**400 pasted: past 1e9
            raise ValueError(f"{where} is too long ({len(text):,} characters, at most {_MAX_CELL_TEXT}; write it "
                             f"shorter) and too large ({_shown(raw)}): use numbers between {-MAX_CELL:g} and "
                             f"{MAX_CELL:g}")
        raise ValueError(f"{where} is too long ({len(text):,} characters, at most {_MAX_CELL_TEXT}; write it "
                         "shorter, e.g. 1.5e-7)")
    try:
        value = float(text if text is not None else raw)
    except OverflowError:  # an integer past a float's range: 10**400 sent as a JSON number
        raise ValueError(too_large.format(_shown(raw))) from None
    except ValueError:
        raise ValueError(f"{where} is not a number ({_shown(raw)})") from None
    if np.isnan(value):
        raise ValueError(f"{where} is blank or not a number (NaN)")
    if np.isinf(value):
        if isinstance(raw, str) and "inf" not in raw.lower():  # "1e400", a finite number past a float's range
            raise ValueError(f"{where} is infinite as a float, so too large ({_shown(raw)}): use numbers between "
                             f"{-MAX_CELL:g} and {MAX_CELL:g}")
        raise ValueError(f"{where} is infinite ({_shown(raw)}): type a finite number")
    if abs(value) > MAX_CELL:
        raise ValueError(too_large.format(_shown(raw, value)))
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
    # The button under the picker, not beside it: beside it, a 5x5 kernel's column (about 150 px at 1280x800)
    # cut its label to "Rel…", and the picker's too.
    st.selectbox(f"{label} preset", presets, key=f"{prefix}_preset", on_change=load_preset)
    st.button("Reload", key=f"{prefix}_reload", on_click=load_preset, icon=":material/refresh:",
              help="Load the chosen preset again (a new random draw or digit).")
    if ss.get(f"{prefix}_preset_error"):
        st.warning(ss[f"{prefix}_preset_error"])

    base = ss[f"{prefix}_base"]
    names = [str(j + 1) for j in range(base.shape[1])]
    frame = pd.DataFrame([[cell_text(v) for v in row] for row in base], columns=names)
    # 52 px a column (Streamlit's "small" is 75): the Backpropagation page's 3x3 kernel fits its column at 1280x800
    # (with "small" its third column was hidden), and a cell still shows numbers such as -0.25 or 1e-3 whole.
    st.data_editor(frame, key=editor_key(prefix), num_rows="fixed", hide_index=True, width="stretch",
                   column_config={c: st.column_config.TextColumn(c, width=CELL_WIDTH_PX) for c in names})
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
