"""Plotly figure builders for the convolution pages (no Streamlit).

Each builder takes arrays (and :class:`convviz.ops.WindowStep` records, the
geometry computed once in :mod:`convviz.ops`) and returns a
``plotly.graph_objects.Figure``; the pages only place them. Matrices are
drawn as heatmaps with row 0 at the top, one square per cell.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.ops import WindowStep

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


def padded_input_figure(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], step: WindowStep,
                        show_numbers: bool = True, height: int = 340, title: str | None = None) -> go.Figure:
    """The padded input with the padding cells shaded and the kernel taps outlined.

    Args:
        x: the unpadded input ``(height, width)``.
        pads: ``((top, bottom), (left, right))`` zero cells, from :func:`convviz.ops.padding_amounts`.
        step: the current window; its ``rows`` and ``cols`` index the padded input.
            Each tap is outlined on its own, so dilation shows as gaps; a dashed
            box marks the span of the window.
        show_numbers: write the values in the cells.
        height: figure height (pixels).
        title: figure title; defaults to the padded size.

    Returns:
        The figure.
    """
    x = np.asarray(x, dtype=float)
    (top, bottom), (left, right) = pads
    h, w = x.shape
    ph, pw = h + top + bottom, w + left + right
    inner = np.full((ph, pw), np.nan)
    inner[top:top + h, left:left + w] = x
    is_pad = np.isnan(inner)
    lo, hi = min(float(x.min()), 0.0), float(x.max())
    fs = _font_size(max(ph, pw))
    text = _text(np.where(is_pad, 0.0, inner)) if show_numbers else None
    fig = go.Figure()
    if is_pad.any():
        fig.add_trace(_heatmap(np.where(is_pad, 1.0, np.nan), [[0, PADDING_COLOR], [1, PADDING_COLOR]],
                               text, hovertemplate="padding zero at row %{y}, col %{x}<extra></extra>",
                               font_size=fs))
    fig.add_trace(_heatmap(inner, _INPUT_SCALE, None if text is None else [
        [t if not p else "" for t, p in zip(tr, pr)] for tr, pr in zip(text, is_pad)],
        zmin=lo, zmax=hi if hi > lo else lo + 1, font_size=fs))
    shapes = [_cell_rect(step.rows[0], step.cols[0], TAP_COLOR, width=1.5, dash="dash",
                         r2=step.rows[-1], c2=step.cols[-1])]
    shapes += [_cell_rect(r, c, TAP_COLOR, width=3) for r in step.rows for c in step.cols]
    if title is None:
        title = f"Input {h}×{w}" + (f", padded to {ph}×{pw}" if (ph, pw) != (h, w) else "")
    return _square_layout(fig, ph, pw, title, height, shapes=shapes)


def kernel_figure(kernel: np.ndarray, title: str = "Kernel", height: int = 300) -> go.Figure:
    """The kernel as applied (flipped already, for true convolution).

    Args:
        kernel: ``(kernel_height, kernel_width)``.
        title: figure title.
        height: figure height (pixels).

    Returns:
        The figure.
    """
    return matrix_figure(kernel, title=title, signed=True, height=height)


def products_figure(step: WindowStep, title: str = "Element-wise products", height: int = 300) -> go.Figure:
    """The window's element-wise products, input value × kernel weight.

    Args:
        step: a 2-D :class:`convviz.ops.WindowStep`.
        title: figure title.
        height: figure height (pixels).

    Returns:
        The figure; hovering a cell shows the factors.
    """
    products = np.asarray(step.products, dtype=float)
    fig = matrix_figure(products, title=title, signed=True, height=height)
    custom = np.stack([step.patch, step.kernel], axis=-1)
    fig.update_traces(customdata=custom,
                      hovertemplate="%{customdata[0]:.3g} × %{customdata[1]:.3g} = %{z:.3g}<extra></extra>")
    return fig


def output_figure(values: np.ndarray, filled: int, current: tuple[int, int], show_numbers: bool = True,
                  height: int = 340, title: str = "Output feature map") -> go.Figure:
    """The output feature map filling in, window by window.

    Args:
        values: the complete map ``(h_out, w_out)``.
        filled: how many cells, in row-major order, are computed so far (the
            current one included); the rest are drawn blank.
        current: ``(i, j)`` of the current cell, outlined.
        show_numbers: write the values in the cells.
        height: figure height (pixels).
        title: figure title.

    Returns:
        The figure. The colour scale is that of the complete map, so it does
        not shift while the map fills in.
    """
    values = np.asarray(values, dtype=float)
    h, w = values.shape
    shown = np.full(h * w, np.nan)
    shown[:filled] = values.ravel()[:filled]
    shown = shown.reshape(h, w)
    lo, hi = float(values.min()), float(values.max())
    text = _text(shown) if show_numbers else None
    if lo < 0:
        bound = max(abs(lo), abs(hi)) or 1.0
        trace = _heatmap(shown, _SIGNED_SCALE, text, zmin=-bound, zmax=bound, font_size=_font_size(max(h, w)))
    else:
        trace = _heatmap(shown, "Greens", text, zmin=0.0, zmax=hi if hi > 0 else 1.0,
                         font_size=_font_size(max(h, w)))
    pending = np.where(np.isnan(shown), 1.0, np.nan)
    fig = go.Figure([
        _heatmap(pending, [[0, "#eeeeee"], [1, "#eeeeee"]], None,
                 hovertemplate="not computed yet<extra></extra>"),
        trace,
    ])
    return _square_layout(fig, h, w, title, height, shapes=[_cell_rect(current[0], current[1], TAP_COLOR, width=4)])


def channel_window_figure(x: np.ndarray, step: WindowStep, channels: list[int], show_numbers: bool = True,
                          height: int = 260, title: str = "") -> go.Figure:
    """A few channels of a multi-channel input side by side, the same window outlined in each.

    Args:
        x: the padded input ``(height, width, channels)``.
        step: the current window (shared by every channel).
        channels: indices of the channels to draw.
        show_numbers: write the values in the cells.
        height: figure height (pixels).
        title: figure title.

    Returns:
        The figure: one panel per channel in a row, titled ``channel c``.
    """
    x = np.asarray(x, dtype=float)
    maps = np.stack([x[:, :, c] for c in channels], axis=-1)
    return map_grid_figure(maps, titles=[f"channel {c + 1}" for c in channels], columns=len(channels),
                           show_numbers=show_numbers, height=height, title=title, shared_scale=True,
                           window=(step.rows, step.cols))


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
