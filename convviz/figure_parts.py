"""The parts every matrix and step-through figure is built from (Plotly, no Streamlit).

One owner for what :mod:`convviz.figures`, :mod:`convviz.figures_transposed` and :mod:`convviz.figures_backprop`
share: the colours and scales, numbers as cell text (:func:`format_number`), heatmap traces and square panels
(:func:`heatmap`, :func:`add_panel`, :func:`padded_traces`, :func:`map_trace`), outlines (:func:`panel_rect`,
:func:`taps_path`, :func:`squares_path`, :func:`pending_cover`) and the products as filled, labelled squares
(:func:`cell_squares`). :mod:`convviz.figure_animation` turns such panels into a step-through that plays in the
browser. Matrices are drawn as heatmaps with row 0 at the top, one square per cell.
"""

from __future__ import annotations

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go


__all__ = ["DROPPED_FILL", "FRAME_COLOR", "INPUT_SCALE", "PADDING_COLOR", "PENDING_COLOR", "SIGNED_SCALE", "TAP_COLOR",
           "add_panel", "cell_font_size", "cell_rect", "cell_squares", "cell_text", "factor_text", "format_number",
           "four_panels", "frame_trace", "heatmap", "map_trace", "on_panel", "padded_input", "padded_title",
           "padded_traces", "panel_axes", "panel_rect", "pending_cover", "scale_rgb", "square_layout", "squares_path",
           "taps_path", "text_color"]

TAP_COLOR = "#d62728"
"""Outline of the cells under the kernel taps and of the current output cell."""

PADDING_COLOR = "#e8e3d3"
"""Fill of the zero-padding cells (a beige, distinct from every colour scale used)."""

INPUT_SCALE = "Blues"
SIGNED_SCALE = "RdBu_r"


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


def cell_text(z: np.ndarray, decimals: int = 2) -> list[list[str]]:
    return [[format_number(v, decimals) for v in row] for row in np.asarray(z, dtype=float)]


def cell_font_size(cells: int) -> int:
    """Cell-number font size (px) for a matrix with ``cells`` along its longer side."""
    return 14 if cells <= 6 else 12 if cells <= 10 else 10 if cells <= 14 else 8


def square_layout(fig: go.Figure, rows: int, cols: int, title: str, height: int,
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


def cell_rect(r: float, c: float, color: str, width: float = 3, dash: str | None = None,
              r2: float | None = None, c2: float | None = None) -> dict:
    line = {"color": color, "width": width}
    if dash:
        line["dash"] = dash
    return {"type": "rect", "x0": c - 0.5, "x1": (c if c2 is None else c2) + 0.5,
            "y0": r - 0.5, "y1": (r if r2 is None else r2) + 0.5, "line": line, "layer": "above"}


def heatmap(z, colorscale: str, text, zmid: float | None = None, zmin=None, zmax=None,
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


PENDING_COLOR = "#eeeeee"
DROPPED_FILL = "rgba(232,227,211,0.8)"
"""Cover over cells whose values are dropped (PADDING_COLOR, see-through: the numbers show through)."""
FRAME_COLOR = "#31333f"
"""Outline of the part of a transposed convolution's canvas that is kept (the output)."""


def panel_axes(n: int) -> tuple[str, str, str, str]:
    """Layout keys and trace references of panel ``n`` (1-based): ``xaxis2``, ``yaxis2``, ``x2``, ``y2``."""
    suffix = "" if n == 1 else str(n)
    return f"xaxis{suffix}", f"yaxis{suffix}", f"x{suffix}", f"y{suffix}"


def add_panel(layout: dict, n: int, x_domain, y_domain, rows: int, cols: int, title: str) -> tuple[str, str]:
    """Add panel ``n``: square cells, row 0 at the top, its title above it; returns ``(xref, yref)``."""
    xkey, ykey, xref, yref = panel_axes(n)
    common = {"showgrid": False, "zeroline": False, "showticklabels": False, "ticks": "", "fixedrange": True,
              "constrain": "domain", "showline": False}
    layout[xkey] = {**common, "domain": list(x_domain), "range": [-0.5, cols - 0.5], "anchor": yref, "side": "top",
                    "title": {"text": title, "font": {"size": 13}, "standoff": 4}}
    layout[ykey] = {**common, "domain": list(y_domain), "range": [rows - 0.5, -0.5], "anchor": xref,
                    "scaleanchor": xref, "scaleratio": 1}
    return xref, yref


def on_panel(trace: go.Heatmap, refs: tuple[str, str]) -> go.Heatmap:
    trace.update(xaxis=refs[0], yaxis=refs[1])
    return trace


def panel_rect(refs: tuple[str, str], r0: float, c0: float, r1: float, c1: float, color: str = TAP_COLOR,
               width: float = 3, dash: str | None = None, fill: str | None = None, visible: bool = True) -> dict:
    """A rectangle around cells (r0, c0) to (r1, c1) of a panel (layer above the heatmap, its numbers too).

    ``visible=False`` gives the rectangle no area (``x1 = x0``, ``y1 = y0``, at the corner of (r0, c0)) and keeps it
    ``"visible": True``: a frame that hides a shape with ``visible: false`` (applied without a redraw, as the
    step-through controls apply frames) leaves plotly.js drawing it where it last was, seen in Chromium as a grey
    cover over output cells already computed.
    """
    line = {"color": color, "width": width if visible else 0, "dash": dash or "solid"}
    x1, y1 = (c1 + 0.5, r1 + 0.5) if visible else (c0 - 0.5, r0 - 0.5)
    return {"type": "rect", "xref": refs[0], "yref": refs[1], "x0": c0 - 0.5, "x1": x1, "y0": r0 - 0.5,
            "y1": y1, "line": line, "fillcolor": fill or "rgba(0,0,0,0)", "layer": "above", "visible": True}


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


def taps_path(refs: tuple[str, str], rows, cols, r_offset: int = 0, c_offset: int = 0, width: float = 3) -> dict:
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


def pending_cover(refs: tuple[str, str], i: int, j: int, h_out: int, w_out: int, block: int = 1) -> list[dict]:
    """Two grey rectangles over the output cells after (i, j) in row-major order (hidden when empty).

    With ``block`` > 1 each of the ``h_out`` x ``w_out`` positions covers a ``block`` x ``block`` square of
    the panel (a pooling window).
    """
    blank = {"fill": PENDING_COLOR, "color": PENDING_COLOR, "width": 0}
    n = block
    return [panel_rect(refs, i * n, (j + 1) * n, i * n + n - 1, w_out * n - 1, visible=j + 1 < w_out, **blank),
            panel_rect(refs, (i + 1) * n, 0, h_out * n - 1, w_out * n - 1, visible=i + 1 < h_out, **blank)]


def text_color(rgb: tuple[float, float, float]) -> str:
    """Dark text on a light fill, white on a dark one (tinycolor's brightness, the rule plotly.js applies to
    heatmap numbers)."""
    r, g, b = rgb
    return "#444" if (r * 299 + g * 587 + b * 114) / 1000 > 128 else "white"


def scale_rgb(colorscale: str, where: np.ndarray) -> np.ndarray:
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


def cell_squares(refs: tuple[str, str], values: np.ndarray, bound: float, font_size: int) -> list[dict]:
    """One filled square per cell of ``values``, labelled with its number, on the signed scale ``[-bound, bound]``."""
    values = np.asarray(values, dtype=float)
    where = (np.clip(values, -bound, bound) + bound) / (2 * bound)
    squares = []
    for (r, c), rgb in zip(np.ndindex(values.shape), scale_rgb(SIGNED_SCALE, where).tolist()):
        squares.append({"type": "rect", "xref": refs[0], "yref": refs[1], "x0": c - 0.5, "x1": c + 0.5,
                        "y0": r - 0.5, "y1": r + 0.5, "fillcolor": "#%02x%02x%02x" % tuple(round(v) for v in rgb),
                        "line": {"color": "white", "width": 1}, "layer": "below",
                        "label": {"text": format_number(values[r, c]), "textposition": "middle center",
                                  "font": {"size": font_size, "color": text_color(rgb)}}})
    return squares


def four_panels(grid: bool, narrow: bool = False) -> tuple[list[tuple[tuple[float, float], tuple[float, float]]], int]:
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


def padded_input(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]],
                 zeros: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with its zero padding, and the cells to shade as padding.

    Args:
        x: ``(height, width)``.
        pads: ``((top, bottom), (left, right))`` zero cells (:func:`convviz.ops.padding_amounts`).
        zeros: bool ``(height, width)`` of ``x``'s cells to shade too (zeros that are not input), or None.

    Returns:
        ``(padded, filler)``, each ``(height + top + bottom, width + left + right)``: the padded values and the
        bool mask of the padding (and ``zeros``) cells.
    """
    (top, bottom), (left, right) = pads
    h, w = x.shape
    padded = np.zeros((h + top + bottom, w + left + right))
    padded[top:top + h, left:left + w] = x
    filler = np.ones(padded.shape, dtype=bool)
    filler[top:top + h, left:left + w] = False if zeros is None else np.asarray(zeros, dtype=bool)
    return padded, filler


def padded_title(shape: tuple[int, int], padded_shape: tuple[int, int]) -> str:
    """An input panel's title: ``"Input 5×5"``, with ``", padded to 7×7"`` when padded."""
    h, w = shape
    ph, pw = padded_shape
    return f"Input {h}×{w}" + (f", padded to {ph}×{pw}" if (ph, pw) != (h, w) else "")


def padded_traces(values: np.ndarray, filler: np.ndarray, refs: tuple[str, str], show_numbers: bool,
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
    fs = cell_font_size(max(values.shape))
    text = cell_text(np.where(filler, 0.0, values)) if show_numbers else None
    real = values[~filler] if (~filler).any() else np.zeros(1)
    lo, hi = min(float(real.min()), 0.0), float(real.max())
    return [
        on_panel(heatmap(np.where(filler, 1.0, np.nan), [[0, PADDING_COLOR], [1, PADDING_COLOR]], text, font_size=fs,
                         hovertemplate=filler_hover), refs),
        on_panel(heatmap(inner, INPUT_SCALE, None if text is None else [
            [t if not f else "" for t, f in zip(tr, fr)] for tr, fr in zip(text, filler)],
                         zmin=lo, zmax=hi if hi > lo else lo + 1, font_size=fs), refs),
    ]


def map_trace(z: np.ndarray, refs: tuple[str, str], show_numbers: bool = True, signed: bool | None = None,
              hovertemplate: str = "row %{y}, col %{x}: %{z}<extra></extra>") -> go.Heatmap:
    """A finished map: green from 0 when it has no negative value, else red/blue centred on 0 (or as ``signed``)."""
    z = np.asarray(z, dtype=float)
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    text = cell_text(z) if show_numbers else None
    fs = cell_font_size(max(z.shape))
    if signed or (signed is None and lo < 0):
        bound = max(abs(lo), abs(hi)) or 1.0
        return on_panel(heatmap(z, SIGNED_SCALE, text, zmin=-bound, zmax=bound, font_size=fs,
                                hovertemplate=hovertemplate), refs)
    return on_panel(heatmap(z, "Greens", text, zmin=0.0, zmax=hi if hi > 0 else 1.0, font_size=fs,
                            hovertemplate=hovertemplate), refs)


def frame_trace(first: np.ndarray, bound: float, refs: tuple[str, str], hover: str) -> go.Heatmap:
    """A signed heatmap whose numbers are written from ``z`` (``texttemplate``): a frame then sends ``z`` alone."""
    trace = on_panel(heatmap(first, SIGNED_SCALE, None, zmin=-bound, zmax=bound,
                             font_size=cell_font_size(max(np.shape(first))), hovertemplate=hover), refs)
    trace.update(texttemplate="%{z:.2~f}")
    return trace


def factor_text(v: float) -> str:
    """A number as a factor in a written product: ``2``, or ``(-2)`` in brackets when negative."""
    text = format_number(v)
    return f"({text})" if float(v) < 0 else text
