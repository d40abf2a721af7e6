"""Plotly figure builders for the convolution pages (no Streamlit).

Each builder takes arrays (and :class:`convviz.ops.WindowStep` records, the
geometry computed once in :mod:`convviz.ops`) and returns a
``plotly.graph_objects.Figure``; the pages only place them. Matrices are
drawn as heatmaps with row 0 at the top, one square per cell.
"""

from __future__ import annotations

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

from convviz.ops import WindowStep, describe_sum

__all__ = [
    "PADDING_COLOR",
    "TAP_COLOR",
    "channel_window_figure",
    "format_number",
    "kernel_figure",
    "map_grid_figure",
    "matrix_figure",
    "output_figure",
    "padded_input_figure",
    "products_figure",
]

TAP_COLOR = "#d62728"
"""Outline of the cells under the kernel taps and of the current output cell."""

PADDING_COLOR = "#e8e3d3"
"""Fill of the zero-padding cells (a beige, distinct from every colour scale used)."""

_INPUT_SCALE = "Blues"
_SIGNED_SCALE = "RdBu_r"
_TEXT_FONT = {"size": 13}


def format_number(value: float, decimals: int = 2) -> str:
    """A number as short text: ``4``, ``-0.25``, ``0.11``; blank for NaN.

    Args:
        value: the number.
        decimals: at most this many decimals.

    Returns:
        The text.
    """
    v = float(value)
    if not np.isfinite(v):
        return ""
    v = round(v, decimals)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{decimals}f}".rstrip("0").rstrip(".")


def _text(z: np.ndarray, decimals: int = 2) -> list[list[str]]:
    return [[format_number(v, decimals) for v in row] for row in np.asarray(z, dtype=float)]


def _font_size(cells: int) -> int:
    """Cell-number font size (px) for a matrix with ``cells`` along its longer side."""
    return 14 if cells <= 6 else 12 if cells <= 10 else 10 if cells <= 14 else 8


def _square_layout(fig: go.Figure, rows: int, cols: int, title: str, height: int,
                   shapes: list[dict] | None = None, annotations: list[dict] | None = None) -> go.Figure:
    extra = {}
    if shapes:
        extra["shapes"] = list(fig.layout.shapes) + shapes
    if annotations:
        extra["annotations"] = annotations
    fig.update_layout(
        **extra,
        title={"text": title, "x": 0.02, "xanchor": "left", "font": {"size": 14}},
        height=height,
        margin={"l": 4, "r": 4, "t": 30, "b": 4},
        plot_bgcolor="white",
        paper_bgcolor="white",
        showlegend=False,
        xaxis={"range": [-0.5, cols - 0.5], "showgrid": False, "zeroline": False, "showticklabels": False,
               "ticks": "", "constrain": "domain", "fixedrange": True},
        yaxis={"range": [rows - 0.5, -0.5], "showgrid": False, "zeroline": False, "showticklabels": False,
               "ticks": "", "scaleanchor": "x", "scaleratio": 1, "constrain": "domain", "fixedrange": True},
    )
    return fig


def _cell_rect(r: float, c: float, color: str, width: float = 3, dash: str | None = None,
               r2: float | None = None, c2: float | None = None) -> dict:
    line = {"color": color, "width": width}
    if dash:
        line["dash"] = dash
    return {"type": "rect", "x0": c - 0.5, "x1": (c if c2 is None else c2) + 0.5,
            "y0": r - 0.5, "y1": (r if r2 is None else r2) + 0.5, "line": line, "layer": "above"}


def _heatmap(z, colorscale: str, text, zmid: float | None = None, zmin=None, zmax=None,
             hovertemplate: str = "row %{y}, col %{x}: %{z}<extra></extra>", font_size: int = 13,
             customdata=None) -> go.Heatmap:
    kwargs = {}
    if zmid is not None:
        kwargs["zmid"] = zmid
    if zmin is not None:
        kwargs["zmin"], kwargs["zmax"] = zmin, zmax
    return go.Heatmap(
        z=z, text=text, texttemplate="%{text}", textfont={"size": font_size}, colorscale=colorscale,
        showscale=False, xgap=1, ygap=1, hovertemplate=hovertemplate, customdata=customdata, **kwargs,
    )


def matrix_figure(z, title: str = "", signed: bool = False, show_numbers: bool = True,
                  height: int = 300, highlight: tuple[int, int] | None = None) -> go.Figure:
    """A matrix as a heatmap with its numbers in the cells.

    Args:
        z: ``(rows, cols)`` numbers; NaN cells are left blank.
        title: figure title.
        signed: diverging red/blue scale centred on 0 (for kernels and products)
            instead of a white-to-blue scale.
        show_numbers: write each value in its cell.
        height: figure height (pixels).
        highlight: ``(row, col)`` of a cell to outline, or None.

    Returns:
        The figure.
    """
    z = np.asarray(z, dtype=float)
    rows, cols = z.shape
    text = _text(z) if show_numbers else None
    finite = z[np.isfinite(z)]
    if signed:
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        trace = _heatmap(z, _SIGNED_SCALE, text, zmin=-bound or -1, zmax=bound or 1,
                         font_size=_font_size(max(rows, cols)))
    else:
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        trace = _heatmap(z, _INPUT_SCALE, text, zmin=min(lo, 0.0), zmax=hi if hi > min(lo, 0.0) else lo + 1,
                         font_size=_font_size(max(rows, cols)))
    fig = go.Figure(trace)
    shapes = [_cell_rect(highlight[0], highlight[1], TAP_COLOR, width=4)] if highlight is not None else None
    return _square_layout(fig, rows, cols, title, height, shapes=shapes)


# --------------------------------------------------------------------------- step-through animations
# The Convolution and Stacked Channels pages send every window position to the browser as the frames of one
# Plotly figure: the slider and Play / Pause / Reset are plotly.js animations, so stepping never reruns the
# page on the server. What does not change between positions (the input, the kernel, the finished output
# map) is drawn once, as heatmaps. Everything that moves is a layout shape or annotation, so that a frame
# is applied without redrawing the figure (``redraw: False``: plotly.js then redraws only the shapes and
# annotations, about half the browser's work of a full redraw): the written sum (an annotation above the
# panels), the window and output-cell outlines, the grey cover over the output cells not computed yet (two
# rectangles: the rest of the current row and the rows below) and, on the Convolution page, the products
# (one filled, labelled square per kernel tap). A relative Previous / Next needs a full redraw per step in
# plotly.js (each frame must re-aim the buttons), so the standard slider is the stepping control.

_PENDING_COLOR = "#eeeeee"
_DROPPED_FILL = "rgba(232,227,211,0.8)"
"""Cover over cells whose values are dropped (PADDING_COLOR, see-through: the numbers show through)."""
_FRAME_COLOR = "#31333f"
"""Outline of the part of a transposed convolution's canvas that is kept (the output)."""
_SUM_COLOR = "#31333f"
"""The written sum's colour: the page's own text colour (Streamlit's theme greys annotations)."""
_MENU_GAP = 46
"""Pixels between the written sum and the panels, where the Play / Pause / Reset buttons sit."""
_STILL = {"frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
"""Animation options that jump to one frame at once, redrawing only the shapes and annotations (slider, Reset)."""
_MAX_SUM_LINE = 96
"""Characters per line of the written sum before it wraps (``<br>``)."""
NARROW_SUM = 52
"""The same in a figure half the page wide."""
NARROW_TITLE_LINES = 3
"""Title lines a figure half the page wide makes room for, so two side by side line up."""


def _axes(n: int) -> tuple[str, str, str, str]:
    """Layout keys and trace references of panel ``n`` (1-based): ``xaxis2``, ``yaxis2``, ``x2``, ``y2``."""
    suffix = "" if n == 1 else str(n)
    return f"xaxis{suffix}", f"yaxis{suffix}", f"x{suffix}", f"y{suffix}"


def _panel(layout: dict, n: int, x_domain, y_domain, rows: int, cols: int, title: str) -> tuple[str, str]:
    """Add panel ``n``: square cells, row 0 at the top, its title above it; returns ``(xref, yref)``."""
    xkey, ykey, xref, yref = _axes(n)
    common = {"showgrid": False, "zeroline": False, "showticklabels": False, "ticks": "", "fixedrange": True,
              "constrain": "domain", "showline": False}
    layout[xkey] = {**common, "domain": list(x_domain), "range": [-0.5, cols - 0.5], "anchor": yref, "side": "top",
                    "title": {"text": title, "font": {"size": 13}, "standoff": 4}}
    layout[ykey] = {**common, "domain": list(y_domain), "range": [rows - 0.5, -0.5], "anchor": xref,
                    "scaleanchor": xref, "scaleratio": 1}
    return xref, yref


def _on(trace: go.Heatmap, refs: tuple[str, str]) -> go.Heatmap:
    trace.update(xaxis=refs[0], yaxis=refs[1])
    return trace


def _rect(refs: tuple[str, str], r0: float, c0: float, r1: float, c1: float, color: str = TAP_COLOR,
          width: float = 3, dash: str | None = None, fill: str | None = None, visible: bool = True) -> dict:
    """A rectangle around cells (r0, c0) to (r1, c1) of a panel (layer above the heatmap, its numbers too)."""
    line = {"color": color, "width": width, "dash": dash or "solid"}
    return {"type": "rect", "xref": refs[0], "yref": refs[1], "x0": c0 - 0.5, "x1": c1 + 0.5, "y0": r0 - 0.5,
            "y1": r1 + 0.5, "line": line, "fillcolor": fill or "rgba(0,0,0,0)", "layer": "above",
            "visible": visible}


def squares_path(cells) -> str:
    """An SVG path of one unit square around each ``(row, col)`` cell, in the axes' data coordinates.

    Absolute commands only: plotly.js maps every number of a shape's path from data to pixels, so a relative
    ``h1v1`` would come out as ``NaN`` in the browser (no outline at all).

    Args:
        cells: ``(row, col)`` pairs.

    Returns:
        e.g. ``squares_path([(0, 1)])`` is ``"M0.5,-0.5H1.5V0.5H0.5Z"``; empty for no cells.
    """
    return "".join(f"M{c - 0.5:g},{r - 0.5:g}H{c + 0.5:g}V{r + 0.5:g}H{c - 0.5:g}Z" for r, c in cells)


def _taps_path(refs: tuple[str, str], rows, cols, r_offset: int = 0, c_offset: int = 0, width: float = 3) -> dict:
    """One path shape outlining each kernel tap's cell (dilation shows as gaps between the outlined cells).

    Contiguous taps (dilation 1) are drawn as a grid of lines, which is shorter to send than one square each.
    """
    rows = [r + r_offset for r in rows]
    cols = [c + c_offset for c in cols]
    contiguous = all(b - a == 1 for a, b in zip(rows, rows[1:])) and all(b - a == 1 for a, b in zip(cols, cols[1:]))
    if contiguous:
        top, bottom, left, right = rows[0] - 0.5, rows[-1] + 0.5, cols[0] - 0.5, cols[-1] + 0.5
        path = "".join(f"M{left:g},{r - 0.5:g}H{right:g}" for r in rows + [rows[-1] + 1])
        path += "".join(f"M{c - 0.5:g},{top:g}V{bottom:g}" for c in cols + [cols[-1] + 1])
    else:
        path = squares_path([(r, c) for r in rows for c in cols])
    return {"type": "path", "xref": refs[0], "yref": refs[1], "path": path, "layer": "above",
            "line": {"color": TAP_COLOR, "width": width}, "fillcolor": "rgba(0,0,0,0)"}


def _pending_cover(refs: tuple[str, str], i: int, j: int, h_out: int, w_out: int, block: int = 1) -> list[dict]:
    """Two grey rectangles over the output cells after (i, j) in row-major order (hidden when empty).

    With ``block`` > 1 each of the ``h_out`` x ``w_out`` positions covers a ``block`` x ``block`` square of
    the panel (a pooling window).
    """
    blank = {"fill": _PENDING_COLOR, "color": _PENDING_COLOR, "width": 0}
    n = block
    return [_rect(refs, i * n, (j + 1) * n, i * n + n - 1, w_out * n - 1, visible=j + 1 < w_out, **blank),
            _rect(refs, (i + 1) * n, 0, h_out * n - 1, w_out * n - 1, visible=i + 1 < h_out, **blank)]


def wrap_terms(terms: list[str], joiner: str = " + ", width: int = _MAX_SUM_LINE, first: int = 0) -> str:
    """Join ``terms`` with ``joiner``, breaking the line (``<br>``) before a term that would pass ``width`` characters.

    Args:
        terms: the pieces, e.g. ``["1·1", "1·0", ...]``.
        joiner: what stands between two terms.
        width: characters per line, >= 1.
        first: characters already on the first line (a heading before the terms).

    Returns:
        Text for a Plotly title or annotation, e.g. ``wrap_terms(["1·1", "1·0"], width=5)`` is
        ``"1·1 +<br>1·0"``.
    """
    lines, line, used = [], "", first
    for t in terms:
        piece = t if not line else joiner + t
        if line and used + len(line) + len(piece) > width:
            lines.append(line + joiner.rstrip())
            line, used = t, 0
        else:
            line += piece
    lines.append(line)
    return "<br>".join(lines)


def _written_sum(step: WindowStep, decimals: int = 2, cell_name: str = "Output cell",
                 width: int = _MAX_SUM_LINE) -> str:
    """``Output cell (row 1, column 1) = 1·1 + 1·0 + … = 4`` for a 2-D step (1-based), wrapped for the title."""
    i, j = step.out_index
    body, value = describe_sum(step, decimals=decimals).rsplit(" = ", 1)
    head = f"{cell_name} (row {i + 1}, column {j + 1}) = "
    return f"<b>{head}</b>" + wrap_terms(body.split(" + "), width=width, first=len(head)) + f" = <b>{value}</b>"


def _controls(names: list[str], steps_per_second: float, redraw: bool = False,
              step_name: str = "Window position") -> tuple[list[dict], list[dict]]:
    """The slider over the positions and the Play / Pause / Reset buttons (all plotly.js: no server rerun).

    Args:
        redraw: whether moving to a frame redraws the figure (needed when frames change traces' data).
        step_name: what the slider calls a step (``"Window position 3 of 9"``).

    Returns:
        ``(sliders, updatemenus)``.
    """
    n = len(names)
    still = {**_STILL, "frame": {"duration": 0, "redraw": redraw}}
    play = {"frame": {"duration": round(1000 / steps_per_second), "redraw": redraw}, "transition": {"duration": 0},
            "fromcurrent": True, "mode": "immediate"}
    pause = {"frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
    many = n > 30
    slider = {
        "active": 0, "x": 0.0, "len": 1.0, "y": 0.0, "yanchor": "top", "xanchor": "left",
        "pad": {"t": 8, "b": 0, "l": 8, "r": 8},
        "currentvalue": {"prefix": f"{step_name} ", "suffix": f" of {n}", "font": {"size": 13},
                         "xanchor": "left", "offset": 6},
        "font": {"size": 10, "color": "rgba(0,0,0,0)" if many else "#444"},
        "ticklen": 0 if many else 4, "minorticklen": 0,
        # the handle jumps: plotly.js's default 150 ms glide repaints the page ~10 times per step
        "transition": {"duration": 0},
        "steps": [{"label": str(k + 1), "method": "animate", "args": [[name], still]} for k, name in enumerate(names)],
    }
    # the buttons sit above the panels, under the written sum: reading the sum and pressing Play need no scrolling
    buttons = {"type": "buttons", "direction": "left", "showactive": False, "x": 0.0, "xanchor": "left",
               "y": 1.0, "yanchor": "bottom", "pad": {"b": _MENU_GAP - 34, "r": 6}, "font": {"size": 13},
               "buttons": [
                   {"label": "▶ Play", "method": "animate", "args": [None, play]},
                   {"label": "Pause", "method": "animate", "args": [[None], pause]},
                   {"label": "Reset", "method": "animate", "args": [[names[0]], still]},
               ]}
    return [slider], [buttons]


def _moved(shapes: list[dict], keep: tuple[str, ...] = ("x0", "x1", "y0", "y1", "path", "visible")) -> list[dict]:
    """What a frame sends of each shape: only the ``keep`` keys (plotly.js merges a frame's shapes into the layout's
    by index, so colours, line styles and fonts are sent once, in the layout)."""
    return [{k: v for k, v in shape.items() if k in keep} for shape in shapes]


def _animated(traces: list, layout: dict, names: list[str], titles: list[str], shapes: list[list[dict]],
              height: int, steps_per_second: float, cells: list[list[dict]] | None = None,
              frame_traces: tuple[int, ...] = (), frame_data: list[list[dict]] | None = None,
              title_lines: int = 1, fixed: list[dict] | None = None,
              step_name: str = "Window position") -> go.Figure:
    """Assemble a step-through figure: position 1 in the layout, one frame per position, the controls.

    Args:
        traces, layout: the panels (``layout`` is completed here: the written sum, size, shapes, controls;
            its own ``annotations``, if any, keep their places after the written sum's).
        names: frame names, one per position.
        titles: the written sum of each position (an annotation above the panels, anchored to panel 1's x axis so
            that plotly.js redraws it with the shapes).
        shapes: the moving shapes of each position (the same count and kinds at every position).
        height: pixels of the panels, without the written sum's lines.
        steps_per_second: Play's speed.
        cells: shapes that stay in place but change colour and label at each position (the products), if any:
            full shapes, the same count at every position; a frame sends their ``fillcolor`` and ``label``.
        frame_traces, frame_data: traces whose data a frame changes and, at each position, that data (one dict per
            trace, e.g. ``{"type": "heatmap", "z": ...}``), if any. Then every move redraws the figure (plotly.js
            redraws a heatmap's data only so), about twice the browser's work of a layout-only frame.
        title_lines: room for at least this many lines of the written sum (two figures side by side then line up).
        fixed: shapes that never change (e.g. a crop border), drawn after the others; frames never send them.
        step_name: what the slider calls a step.
    """
    lines = max(max(t.count("<br>") for t in titles) + 1, title_lines)
    top_margin = _MENU_GAP + 16 + 20 * lines
    sliders, menus = _controls(names, steps_per_second, redraw=frame_data is not None, step_name=step_name)
    cells = cells or [[] for _ in names]
    written = {"text": titles[0], "xref": "x domain", "yref": "paper", "x": 0.0, "y": 1.0, "xanchor": "left",
               "yanchor": "bottom", "yshift": _MENU_GAP + 4, "align": "left", "showarrow": False,
               "font": {"size": 15, "color": _SUM_COLOR}}
    layout.update(
        annotations=[written, *layout.get("annotations", [])],
        height=height + top_margin + 70, margin={"l": 6, "r": 6, "t": top_margin, "b": 70},
        plot_bgcolor="white", paper_bgcolor="white", showlegend=False,
        shapes=shapes[0] + cells[0] + (fixed or []), sliders=sliders, updatemenus=menus,
    )
    frames = [{"name": name, "layout": {"annotations": [{"text": titles[k]}],
                                        "shapes": _moved(shapes[k]) + [_recoloured(c) for c in cells[k]]}}
              for k, name in enumerate(names)]
    if frame_data is not None:
        for frame, data in zip(frames, frame_data):
            frame.update(traces=list(frame_traces), data=data)
    return go.Figure(data=traces, layout=layout, frames=frames)


def _round(values, digits: int = 6) -> list:
    """``values`` as nested lists rounded to ``digits`` decimals (a frame's heatmap data, shorter to send)."""
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def _recoloured(cell: dict) -> dict:
    """What a frame sends of a cell square: its fill and its label's text and colour."""
    return {"fillcolor": cell["fillcolor"],
            "label": {"text": cell["label"]["text"], "font": {"color": cell["label"]["font"]["color"]}}}


def _text_color(rgb: tuple[float, float, float]) -> str:
    """Dark text on a light fill, white on a dark one (tinycolor's brightness, the rule plotly.js applies to
    heatmap numbers)."""
    r, g, b = rgb
    return "#444" if (r * 299 + g * 587 + b * 114) / 1000 > 128 else "white"


def _scale_rgb(colorscale: str, where: np.ndarray) -> np.ndarray:
    """Colours of a named Plotly colour scale at positions ``where`` in [0, 1], linearly interpolated between its
    stops in RGB as ``plotly.colors.sample_colorscale`` does (vectorised: one call per figure, not per cell).

    Returns:
        ``(n, 3)`` floats 0-255.
    """
    stops = pc.get_colorscale(colorscale)
    positions = np.array([p for p, _ in stops], dtype=float)
    rgbs = np.array([pc.unlabel_rgb(pc.convert_colors_to_same_type(c, "rgb")[0][0]) for _, c in stops], dtype=float)
    where = np.asarray(where, dtype=float).ravel()
    return np.stack([np.interp(where, positions, rgbs[:, i]) for i in range(3)], axis=1)


def _cell_squares(refs: tuple[str, str], values: np.ndarray, bound: float, font_size: int) -> list[dict]:
    """One filled square per cell of ``values``, labelled with its number, on the signed scale ``[-bound, bound]``."""
    values = np.asarray(values, dtype=float)
    where = (np.clip(values, -bound, bound) + bound) / (2 * bound)
    squares = []
    for (r, c), rgb in zip(np.ndindex(values.shape), _scale_rgb(_SIGNED_SCALE, where).tolist()):
        squares.append({"type": "rect", "xref": refs[0], "yref": refs[1], "x0": c - 0.5, "x1": c + 0.5,
                        "y0": r - 0.5, "y1": r + 0.5, "fillcolor": "#%02x%02x%02x" % tuple(round(v) for v in rgb),
                        "line": {"color": "white", "width": 1}, "layer": "below",
                        "label": {"text": format_number(values[r, c]), "textposition": "middle center",
                                  "font": {"size": font_size, "color": _text_color(rgb)}}})
    return squares


def _four_panels(grid: bool, narrow: bool = False) -> tuple[list[tuple[tuple[float, float], tuple[float, float]]], int]:
    """Domains of a step-through figure's four panels and the panels' height (pixels).

    In a row (``grid`` False): panel 1 (the input), 2 and 3 (kernel-sized) and 4 (the output). As a grid:
    panels 1 and 4 big on top, 2 and 3 below them (for large matrices); ``narrow``: the grid for a figure
    half the page wide (about 450 pixels), shorter so the square panels leave no empty band.
    """
    if grid or narrow:
        return [((0.0, 0.48), (0.36, 0.94)), ((0.06, 0.3), (0.0, 0.26)), ((0.36, 0.6), (0.0, 0.26)),
                ((0.52, 1.0), (0.36, 0.94))], 370 if narrow else 620
    return [((0.0, 0.3), (0.0, 0.86)), ((0.35, 0.5), (0.0, 0.86)), ((0.55, 0.7), (0.0, 0.86)),
            ((0.75, 1.0), (0.0, 0.86))], 340


def _padded_traces(values: np.ndarray, filler: np.ndarray, refs: tuple[str, str], show_numbers: bool,
                   filler_hover: str = "padding zero at row %{y}, col %{x}<extra></extra>") -> list[go.Heatmap]:
    """A padded matrix as two heatmaps: the ``filler`` cells (padding zeros) beige, the others on a blue scale.

    Args:
        values: ``(rows, cols)``, the padded matrix (its filler cells hold 0).
        filler: bool ``(rows, cols)``, the cells drawn as zeros that are not part of the input.
        refs: the panel's axes.
        show_numbers: write the values in the cells.
        filler_hover: hover text of a filler cell.
    """
    values = np.asarray(values, dtype=float)
    inner = np.where(filler, np.nan, values)
    fs = _font_size(max(values.shape))
    text = _text(np.where(filler, 0.0, values)) if show_numbers else None
    real = values[~filler] if (~filler).any() else np.zeros(1)
    lo, hi = min(float(real.min()), 0.0), float(real.max())
    return [
        _on(_heatmap(np.where(filler, 1.0, np.nan), [[0, PADDING_COLOR], [1, PADDING_COLOR]], text, font_size=fs,
                     hovertemplate=filler_hover), refs),
        _on(_heatmap(inner, _INPUT_SCALE, None if text is None else [
            [t if not f else "" for t, f in zip(tr, fr)] for tr, fr in zip(text, filler)],
            zmin=lo, zmax=hi if hi > lo else lo + 1, font_size=fs), refs),
    ]


def _map_trace(z: np.ndarray, refs: tuple[str, str], show_numbers: bool = True, signed: bool | None = None,
               hovertemplate: str = "row %{y}, col %{x}: %{z}<extra></extra>") -> go.Heatmap:
    """A finished map: green from 0 when it has no negative value, else red/blue centred on 0 (or as ``signed``)."""
    z = np.asarray(z, dtype=float)
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    text = _text(z) if show_numbers else None
    fs = _font_size(max(z.shape))
    if signed or (signed is None and lo < 0):
        bound = max(abs(lo), abs(hi)) or 1.0
        return _on(_heatmap(z, _SIGNED_SCALE, text, zmin=-bound, zmax=bound, font_size=fs,
                            hovertemplate=hovertemplate), refs)
    return _on(_heatmap(z, "Greens", text, zmin=0.0, zmax=hi if hi > 0 else 1.0, font_size=fs,
                        hovertemplate=hovertemplate), refs)


def _frame_trace(first: np.ndarray, bound: float, refs: tuple[str, str], hover: str) -> go.Heatmap:
    """A signed heatmap whose numbers are written from ``z`` (``texttemplate``): a frame then sends ``z`` alone."""
    trace = _on(_heatmap(first, _SIGNED_SCALE, None, zmin=-bound, zmax=bound,
                         font_size=_font_size(max(np.shape(first))), hovertemplate=hover), refs)
    trace.update(texttemplate="%{z:.2~f}")
    return trace


def conv_steps_figure(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], steps: list[WindowStep],
                      show_numbers: bool = True, kernel_title: str = "Kernel",
                      steps_per_second: float = 2.0, *, input_title: str | None = None,
                      output_title: str | None = None, cell_name: str = "Output cell",
                      zeros: np.ndarray | None = None, grid: bool | None = None,
                      narrow: bool = False) -> go.Figure:
    """Every window position of a 2-D convolution as one animated figure that steps in the browser.

    Four panels: the (padded) input with the padding cells shaded and each kernel tap outlined (dilation
    shows as gaps; a dashed box marks the window's span), the kernel, the element-wise products, and the
    output feature map filling in with the current cell outlined. Above the panels, ``layout.annotations[0]``
    writes the current sum out with its numbers and the bias (``Output cell (row 1, column 1) = 1·1 + 1·0 + … =
    4``). A slider over the positions and Play / Pause / Reset are plotly.js animation controls: moving between
    positions never asks the server. Frame ``k`` (named ``str(k + 1)``) is window position ``k + 1``; it changes
    only layout shapes and that annotation, so plotly.js applies it without redrawing the figure.

    The Backpropagation page draws the input gradient's *gather* view with it too: ``x`` is then the
    stride-spread, padded ``grad_output``, ``zeros`` marks its inserted and padding zeros, and the kernel is
    the flipped one.

    Args:
        x: the unpadded input ``(height, width)``.
        pads: ``((top, bottom), (left, right))`` zero cells (:func:`convviz.ops.padding_amounts`).
        steps: :func:`convviz.ops.conv2d_steps` of ``x`` (2-D), row-major, at least one.
        show_numbers: write the values in the input and output cells (the kernel and the products always
            show theirs).
        kernel_title: the kernel panel's title (e.g. ``"Kernel (flipped)"``).
        steps_per_second: Play's speed, window positions per second, > 0.
        input_title, output_title: the input and output panels' titles (default ``"Input 5×5"``, with
            ``", padded to 7×7"`` when padded, and ``"Output feature map 3×3"``).
        cell_name: what the title calls an output cell (``"Output cell (row 1, column 1) = …"``).
        zeros: bool ``(height, width)`` of ``x``'s cells to shade like padding (zeros that are not input), or None.
        grid: the panels as a 2×2 grid (True), in a row (False), or a grid only for matrices over 9 cells (None).
        narrow: drawn half the page wide: a short 2×2 grid, the sum wrapped sooner, Play further right.

    Returns:
        The figure; its layout shows position 1. The products are ``layout.shapes`` after the moving ones: one
        filled square per kernel tap, in row-major order, labelled with its number (``shape.label.text``).

    Raises:
        ValueError: no steps, a multi-channel step, or a speed that is not > 0.
    """
    if not steps:
        raise ValueError("steps must hold at least one window position, got none")
    if steps[0].channel_sums is not None:
        raise ValueError("conv_steps_figure draws a 2-D convolution; got multi-channel steps")
    if not steps_per_second > 0:
        raise ValueError(f"steps_per_second must be > 0, got steps_per_second={steps_per_second!r}")
    x = np.asarray(x, dtype=float)
    (top, bottom), (left, right) = pads
    h, w = x.shape
    ph, pw = h + top + bottom, w + left + right
    kh, kw = steps[0].kernel.shape
    h_out, w_out = steps[-1].out_index[0] + 1, steps[-1].out_index[1] + 1
    feature_map = np.array([s.value for s in steps]).reshape(h_out, w_out)
    names = [str(k + 1) for k in range(len(steps))]

    if grid is None:
        grid = max(ph, pw) > 9 or max(h_out, w_out) > 9
    panels, height = _four_panels(grid, narrow)
    layout: dict = {}
    if input_title is None:
        input_title = f"Input {h}×{w}" + (f", padded to {ph}×{pw}" if (ph, pw) != (h, w) else "")
    ref_in = _panel(layout, 1, *panels[0], ph, pw, input_title)
    ref_k = _panel(layout, 2, *panels[1], kh, kw, kernel_title)
    ref_p = _panel(layout, 3, *panels[2], kh, kw, "Element-wise products")
    ref_out = _panel(layout, 4, *panels[3], h_out, w_out, output_title or f"Output feature map {h_out}×{w_out}")

    # the (padded) input: padding cells beige with their zeros, input cells on a blue scale
    padded = np.zeros((ph, pw))
    padded[top:top + h, left:left + w] = x
    filler = np.ones((ph, pw), dtype=bool)
    filler[top:top + h, left:left + w] = False if zeros is None else np.asarray(zeros, dtype=bool)
    traces = _padded_traces(padded, filler, ref_in, show_numbers)
    kernel = np.asarray(steps[0].kernel, dtype=float)
    traces.append(_map_trace(kernel, ref_k, signed=True, hovertemplate="weight %{z:.4g}<extra></extra>"))
    pbound = max(float(np.abs(s.products).max()) for s in steps) or 1.0
    # the products are filled, labelled squares (layout shapes, which a frame updates without a redraw); this empty
    # trace only holds the panel's axes
    traces.append(_on(go.Heatmap(z=np.full((kh, kw), np.nan), showscale=False, hoverinfo="skip"), ref_p))
    # the finished map, drawn once; the frames cover what is not computed yet
    traces.append(_map_trace(feature_map, ref_out, show_numbers))

    def moving(step: WindowStep) -> list[dict]:
        i, j = step.out_index
        return [_rect(ref_in, step.rows[0], step.cols[0], step.rows[-1], step.cols[-1], width=1.5, dash="dash"),
                _taps_path(ref_in, step.rows, step.cols),
                _rect(ref_out, i, j, i, j, width=4),
                *_pending_cover(ref_out, i, j, h_out, w_out)]

    titles = [_written_sum(s, cell_name=cell_name, width=NARROW_SUM if narrow else _MAX_SUM_LINE) for s in steps]
    return _animated(traces, layout, names, titles, [moving(s) for s in steps], height, steps_per_second,
                     cells=[_cell_squares(ref_p, s.products, pbound, _font_size(max(kh, kw))) for s in steps],
                     title_lines=NARROW_TITLE_LINES if narrow else 1)


def _mosaic(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """``(h, w, n)`` maps side by side in one ``(h, n*(w + gap) - gap)`` array, NaN in the gaps."""
    h, w, n = maps.shape
    out = np.full((h, n * (w + gap) - gap), np.nan)
    for c in range(n):
        out[:, c * (w + gap):c * (w + gap) + w] = maps[:, :, c]
    return out


def _channel_sums_text(step: WindowStep, depthwise: bool, decimals: int = 2) -> str:
    """The stacked page's written sum: the per-channel sums adding up (or kept apart, for depthwise)."""
    i, j = step.out_index
    head = f"Window (row {i + 1}, column {j + 1}): "
    sums = [format_number(v, decimals) for v in step.channel_sums]
    if depthwise:
        shown = [f"channel {c + 1}: {v}" for c, v in enumerate(sums[:8])]
        more = f", … ({len(sums)} maps, one per channel)" if len(sums) > 8 else f" ({len(sums)} maps)"
        return f"<b>{head}</b>each channel keeps its own sum: " + wrap_terms(shown, ", ", first=len(head) + 30) + more
    terms = [f"({v})" if v.startswith("-") else v for v in sums]
    return (f"<b>{head}</b>" + wrap_terms(terms, first=len(head)) + f" = <b>{format_number(step.value, decimals)}</b>"
            f" (the sum of {len(sums)} channel sums)")


def stacked_steps_figure(x: np.ndarray, kernel: np.ndarray, steps: list[WindowStep], out_map: np.ndarray,
                         channels: list[int], depthwise: bool = False, steps_per_second: float = 2.0) -> go.Figure:
    """A multi-channel convolution's window positions as one animated figure that steps in the browser.

    Three panels: a few channels of the input side by side with the same window outlined in each, the same
    channels of the kernel (one ``(kh, kw)`` slice per channel), and the output map filling in with the
    current cell outlined. Above the panels, ``layout.annotations[0]`` writes the per-channel sums adding up to
    the output cell (``4 + 4 + … = 128 (the sum of 32 channel sums)``) or, for depthwise convolution, kept apart. Controls
    as :func:`conv_steps_figure` (plotly.js animation: no server rerun between positions).

    Args:
        x: the input ``(height, width, channels)`` (unpadded; the steps must use no padding).
        kernel: ``(kh, kw, channels)``.
        steps: :func:`convviz.ops.conv2d_steps` of ``x`` and ``kernel``, at least one.
        out_map: the map drawn filling in, ``(h_out, w_out)``: the sum over channels, or (depthwise) one
            channel's map.
        channels: indices of the channels drawn (a few: 1 to 8).
        depthwise: write the sums as kept apart (depthwise convolution) instead of added up.
        steps_per_second: Play's speed, window positions per second, > 0.

    Returns:
        The figure (position 1 in its layout; no trace changes between frames).

    Raises:
        ValueError: no steps, 2-D steps, no channel or more than 8 to draw, a channel index out of range,
            or a speed that is not > 0.
    """
    if not steps or steps[0].channel_sums is None:
        raise ValueError("stacked_steps_figure needs the multi-channel steps of a (height, width, channels) input")
    x = np.asarray(x, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    if not 1 <= len(channels) <= 8 or not all(0 <= c < x.shape[2] for c in channels):
        raise ValueError(f"channels must list 1 to 8 channel indices below {x.shape[2]}, got channels={channels!r}")
    if not steps_per_second > 0:
        raise ValueError(f"steps_per_second must be > 0, got steps_per_second={steps_per_second!r}")
    h, w, _ = x.shape
    kh, kw = kernel.shape[:2]
    out_map = np.asarray(out_map, dtype=float)
    h_out, w_out = out_map.shape
    n = len(channels)
    names = [str(k + 1) for k in range(len(steps))]
    layout: dict = {}
    span = 0.62
    ref_x = _panel(layout, 1, (0.0, span), (0.45, 0.9), h, n * (w + 1) - 1,
                   f"Input channels {channels[0] + 1}–{channels[-1] + 1} of {x.shape[2]}, the same window in each")
    ref_k = _panel(layout, 2, (0.0, span * (n * (kw + 1) - 1) / (n * (w + 1) - 1)), (0.0, 0.3), kh, n * (kw + 1) - 1,
                   f"Kernel {kh}×{kw}×{x.shape[2]}: the slices for those channels")
    ref_out = _panel(layout, 3, (0.7, 1.0), (0.45, 0.9), h_out, w_out,
                     "Channel 1's map" if depthwise else "Output (the sum)")
    xs = _mosaic(x[:, :, channels])
    ks = _mosaic(kernel[:, :, channels])
    lo, hi = float(np.nanmin(xs)), float(np.nanmax(xs))
    kbound = float(np.nanmax(np.abs(ks))) or 1.0
    out_lo, out_hi = float(out_map.min()), float(out_map.max())
    traces = [
        _on(_heatmap(xs, _INPUT_SCALE, _text(xs), zmin=min(lo, 0.0), zmax=hi if hi > min(lo, 0.0) else lo + 1,
                     font_size=_font_size(max(h, w))), ref_x),
        _on(_heatmap(ks, _SIGNED_SCALE, _text(ks), zmin=-kbound, zmax=kbound, font_size=_font_size(max(kh, kw)),
                     hovertemplate="weight %{z:.4g}<extra></extra>"), ref_k),
        _on(_heatmap(out_map, _SIGNED_SCALE if out_lo < 0 else "Greens", _text(out_map),
                     zmin=-max(abs(out_lo), abs(out_hi)) if out_lo < 0 else 0.0,
                     zmax=max(abs(out_lo), abs(out_hi)) or 1.0, font_size=_font_size(max(h_out, w_out))), ref_out),
    ]
    labels = [{"xref": ref_x[0], "yref": ref_x[1], "x": c * (w + 1) + (w - 1) / 2, "y": h - 0.5, "yanchor": "top",
               "text": f"channel {channels[c] + 1}", "showarrow": False, "font": {"size": 11}} for c in range(n)]

    def moving(step: WindowStep) -> list[dict]:
        i, j = step.out_index
        taps = {"path": "".join(_taps_path(ref_x, step.rows, step.cols, 0, c * (w + 1))["path"] for c in range(n))}
        return [{**_taps_path(ref_x, step.rows, step.cols, width=2.5), **taps},
                _rect(ref_out, i, j, i, j, width=4),
                *_pending_cover(ref_out, i, j, h_out, w_out)]

    layout["annotations"] = labels
    return _animated(traces, layout, names, [_channel_sums_text(s, depthwise) for s in steps],
                     [moving(s) for s in steps], 380, steps_per_second)

def map_grid_figure(maps: np.ndarray, titles: list[str] | None = None, columns: int = 8,
                    show_numbers: bool = False, height: int | None = None, title: str = "",
                    shared_scale: bool = False, window: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
                    cell_height: int = 110) -> go.Figure:
    """A stack of feature maps as a grid of small heatmaps (one trace, a mosaic with gaps).

    Args:
        maps: ``(height, width, count)``.
        titles: one label per map (default ``#1``, ``#2``, ...).
        columns: maps per row.
        show_numbers: write the values in the cells (for small maps).
        height: figure height (pixels); default ``cell_height`` per row of maps plus a title band.
        title: figure title.
        shared_scale: one colour scale for all maps; otherwise each map is
            scaled to its own min–max (hover shows the real value).
        window: ``(rows, cols)`` of kernel taps to outline in every map, or None.
        cell_height: pixels per row of maps when ``height`` is None.

    Returns:
        The figure.

    Raises:
        ValueError: ``maps`` not 3-D or empty, or ``columns`` below 1.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3 or maps.size == 0:
        raise ValueError(f"maps must be a non-empty (height, width, count) array, got shape {maps.shape}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got columns={columns!r}")
    h, w, n = maps.shape
    columns = min(columns, n)
    grid_rows = -(-n // columns)
    gap = max(1, round(max(h, w) * 0.15))
    label_band = max(1, round(h * 0.35))
    total_h = grid_rows * (h + gap + label_band)
    total_w = columns * (w + gap) - gap
    mosaic = np.full((total_h, total_w), np.nan)
    raw = np.full((total_h, total_w), np.nan)
    index = np.full((total_h, total_w), -1)
    titles = titles or [f"#{i + 1}" for i in range(n)]
    if shared_scale:
        lo, hi = float(maps.min()), float(maps.max())
    annotations, shapes = [], []
    for k in range(n):
        gr, gc = divmod(k, columns)
        r0 = gr * (h + gap + label_band) + label_band
        c0 = gc * (w + gap)
        m = maps[:, :, k]
        if shared_scale:
            scaled = m
        else:
            span = m.max() - m.min()
            scaled = (m - m.min()) / span if span > 0 else np.zeros_like(m) + 0.5
        mosaic[r0:r0 + h, c0:c0 + w] = scaled
        raw[r0:r0 + h, c0:c0 + w] = m
        index[r0:r0 + h, c0:c0 + w] = k
        annotations.append({"x": c0 + (w - 1) / 2, "y": r0 - 0.5, "text": titles[k], "showarrow": False,
                            "yanchor": "bottom", "font": {"size": 11}})
        if window is not None:
            for r in window[0]:
                for c in window[1]:
                    shapes.append(_cell_rect(r0 + r, c0 + c, TAP_COLOR, width=2))
    text = None
    if show_numbers:
        text = [["" if not np.isfinite(v) else format_number(v) for v in row] for row in raw]
    custom = np.stack([index + 1, raw], axis=-1)
    zkw = {"zmin": lo, "zmax": hi if hi > lo else lo + 1} if shared_scale else {"zmin": 0.0, "zmax": 1.0}
    fig = go.Figure(_heatmap(
        mosaic, "Viridis", text, font_size=_font_size(max(h, w) * 2) if show_numbers else 10, customdata=custom,
        hovertemplate="map %{customdata[0]}: %{customdata[1]:.4g}<extra></extra>", **zkw))
    fig.update_traces(xgap=0, ygap=0)
    if height is None:
        # About 820 px of plot width at 1280 px with the sidebar open: keep the mosaic's aspect, cap per row.
        height = 40 + round(min(grid_rows * cell_height, 820 * total_h / total_w))
    return _square_layout(fig, total_h, total_w, title, height, shapes=shapes, annotations=annotations)


# --------------------------------------------------------------------------- transposed convolution
def _factor_text(v: float) -> str:
    """A number as a factor in a written product: ``2``, or ``(-2)`` in brackets when negative."""
    text = format_number(v)
    return f"({text})" if float(v) < 0 else text


def _span(values) -> str:
    """``"3–5"`` for cells 3 to 5 (1-based), ``"3"`` for one cell."""
    first, last = values[0] + 1, values[-1] + 1
    return str(first) if first == last else f"{first}–{last}"


def _scatter_text(step, kernel_cells: int, max_terms: int = 9) -> str:
    """The written line of one transposed-convolution step: the input cell, where ``value · kernel`` lands, the
    products (at most ``max_terms``) and how many land on the cropped border."""
    i, j = step.window.out_index
    v = step.grad
    value = format_number(v)
    head = f"<b>Input cell (row {i + 1}, column {j + 1}) = {value}</b>: {value} · kernel lands on "
    head += (f"rows {_span(step.window.rows)}, columns {_span(step.window.cols)} of the output before cropping")
    kernel = step.window.kernel.ravel()
    terms = [f"{_factor_text(v)}·{_factor_text(k)} = {format_number(p)}"
             for k, p in zip(kernel[:max_terms], step.contribution.ravel()[:max_terms])]
    if kernel.size > max_terms:
        terms.append(f"… ({kernel.size} products)")
    dropped = int(step.window.on_padding.sum())
    tail = f" ({dropped} of {kernel_cells} land on the cropped border)" if dropped else ""
    return head + "<br>" + wrap_terms(terms, ", ") + tail


def transposed_steps_figure(tc, show_numbers: bool = True, steps_per_second: float = 2.0) -> go.Figure:
    """A transposed convolution as one animated figure, one frame per input cell, that steps in the browser.

    Four panels: the input with the current cell outlined; the kernel; ``value · kernel``, the products this cell
    sends (those landing on the cropped border covered in beige); and the output *before cropping* (the
    canvas), accumulating: the kernel's taps outlined where the products land (dilation shows as gaps, stride as
    the jump between steps), the cropped border (the padding) covered in see-through beige, and the kept output
    inside a dark frame. Above the panels, ``layout.annotations[0]`` writes the step out (``Input cell (row 1,
    column 1) = 1: 1 · kernel lands on rows 1–3, columns 1–3 …``). Controls as :func:`conv_steps_figure`.

    What a frame changes: the layout's moving shapes, the products' fills and labels, the written line, and the
    data of trace ``band`` (the last trace): the canvas rows the current input row reaches, ``z`` and ``y0``.
    The canvas rows above them are final (the finished canvas, trace ``band - 1``, shows there) and the rows
    below are not reached yet (a grey cover), so a frame sends a band ``d*(k - 1) + 1`` rows high, not the canvas.

    Args:
        tc: :func:`convviz.backprop.conv2d_transpose_steps`.
        show_numbers: write the values in the input's and the canvas's cells (the kernel and the products
            always show theirs).
        steps_per_second: Play's speed, input cells per second, > 0.

    Returns:
        The figure; its layout shows step 1. Panels: 1 input ``(h, w)``, 2 kernel, 3 products, 4 canvas
        (``tc.canvas_shape``); the kept output is the last layout shape (a rectangle spanning ``tc.output_shape``
        cells).

    Raises:
        ValueError: a speed that is not > 0.
    """
    if not steps_per_second > 0:
        raise ValueError(f"steps_per_second must be > 0, got steps_per_second={steps_per_second!r}")
    x = np.asarray(tc.x, dtype=float)
    kernel = np.asarray(tc.kernel, dtype=float)
    h, w = x.shape
    kh, kw = kernel.shape
    ch, cw = tc.canvas_shape
    h_out, w_out = tc.output_shape
    (top, bottom), (left, right) = tc.crop
    sh, _ = tc.strides
    dh, dw = tc.dilation_rate
    band_rows = dh * (kh - 1) + 1
    steps = tc.steps
    names = [str(k + 1) for k in range(len(steps))]

    if max(ch, cw) > 9 or max(h, w) > 9:  # the canvas big on the right, the input above the kernel on the left
        panels, height = [((0.0, 0.34), (0.42, 1.0)), ((0.0, 0.15), (0.0, 0.3)), ((0.19, 0.34), (0.0, 0.3)),
                          ((0.4, 1.0), (0.0, 1.0))], 560
    else:
        panels, height = [((0.0, 0.22), (0.0, 0.86)), ((0.27, 0.4), (0.0, 0.86)), ((0.45, 0.58), (0.0, 0.86)),
                          ((0.63, 1.0), (0.0, 0.86))], 360
    layout: dict = {}
    ref_in = _panel(layout, 1, *panels[0], h, w, f"Input {h}×{w}")
    ref_k = _panel(layout, 2, *panels[1], kh, kw,
                   f"Kernel {kh}×{kw}" + (f", dilation {dh}" if dh == dw and dh > 1 else
                                          f", dilation {dh}×{dw}" if (dh, dw) != (1, 1) else ""))
    ref_p = _panel(layout, 3, *panels[2], kh, kw, "value · kernel")
    notes = []
    if top + bottom + left + right:
        notes.append(f"kept: {h_out}×{w_out} in the dark frame")
    if any(tc.output_padding):
        notes.append(f"output padding {tc.output_padding[0]}+{tc.output_padding[1]}")
    canvas_title = f"Output before cropping {ch}×{cw}" + (f"<br>({', '.join(notes)})" if notes else "")
    ref_c = _panel(layout, 4, *panels[3], ch, cw, canvas_title)

    traces = _padded_traces(x, np.zeros((h, w), dtype=bool), ref_in, show_numbers)[1:]
    traces.append(_map_trace(kernel, ref_k, signed=True, hovertemplate="weight %{z:.4g}<extra></extra>"))
    traces.append(_on(go.Heatmap(z=np.full((kh, kw), np.nan), showscale=False, hoverinfo="skip"), ref_p))
    totals = tc.canvas_totals
    lo, hi = float(totals.min()), float(totals.max())
    if lo < 0:
        bound = max(-lo, hi) or 1.0
        scale = {"colorscale": _SIGNED_SCALE, "zmin": -bound, "zmax": bound}
    else:
        scale = {"colorscale": "Greens", "zmin": 0.0, "zmax": hi if hi > 0 else 1.0}
    fs = _font_size(max(ch, cw))
    hover = "row %{y}, col %{x}: %{z:.4g}<extra></extra>"
    final = _on(_heatmap(totals[-1], scale["colorscale"], _text(totals[-1]) if show_numbers else None,
                         zmin=scale["zmin"], zmax=scale["zmax"], font_size=fs, hovertemplate=hover), ref_c)
    band = _on(_heatmap(totals[0][:band_rows], scale["colorscale"], None, zmin=scale["zmin"], zmax=scale["zmax"],
                        font_size=fs, hovertemplate=hover), ref_c)
    band.update(y0=0, texttemplate="%{z:.2~f}" if show_numbers else "")
    traces += [final, band]
    pbound = max(float(np.abs(s.contribution).max()) for s in steps) or 1.0

    def moving(step) -> list[dict]:
        i, j = step.window.out_index
        rows, cols = step.window.rows, step.window.cols
        below = i * sh + band_rows
        dropped = squares_path(zip(*np.nonzero(step.window.on_padding)))
        return [_rect(ref_in, i, j, i, j, width=4),
                _rect(ref_c, rows[0], cols[0], rows[-1], cols[-1], width=1.5, dash="dash"),
                _taps_path(ref_c, rows, cols),
                _rect(ref_c, min(below, ch - 1), 0, ch - 1, cw - 1, visible=below < ch,
                      **{"fill": _PENDING_COLOR, "color": _PENDING_COLOR, "width": 0}),
                {"type": "path", "xref": ref_p[0], "yref": ref_p[1], "path": dropped or "M0,0", "layer": "above",
                 "line": {"width": 0}, "fillcolor": _DROPPED_FILL, "visible": bool(dropped)}]

    crop_fill = {"fill": _DROPPED_FILL, "color": _DROPPED_FILL, "width": 0}
    fixed = [_rect(ref_c, 0, 0, top - 1, cw - 1, visible=top > 0, **crop_fill),
             _rect(ref_c, ch - bottom, 0, ch - 1, cw - 1, visible=bottom > 0, **crop_fill),
             _rect(ref_c, top, 0, ch - bottom - 1, left - 1, visible=left > 0, **crop_fill),
             _rect(ref_c, top, cw - right, ch - bottom - 1, cw - 1, visible=right > 0, **crop_fill),
             _rect(ref_c, top, left, top + h_out - 1, left + w_out - 1, color=_FRAME_COLOR, width=2.5)]
    data = []
    for k, step in enumerate(steps):
        r0 = step.window.out_index[0] * sh
        rows = np.round(totals[k][r0:r0 + band_rows], 4)
        z = [[int(v) if v.is_integer() else v for v in row] for row in rows.tolist()]  # "3", not "3.0": shorter
        data.append([{"type": "heatmap", "z": z, "y0": r0}])
    products = [_cell_squares(ref_p, s.contribution, pbound, _font_size(max(kh, kw))) for s in steps]
    return _animated(traces, layout, names, [_scatter_text(s, kh * kw) for s in steps], [moving(s) for s in steps],
                     height, steps_per_second, cells=products,
                     frame_traces=(len(traces) - 1,), frame_data=data, fixed=fixed, step_name="Input cell")
