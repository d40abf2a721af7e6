"""Plotly figure builders for the convolution pages (no Streamlit).

Each builder takes arrays (and :class:`convviz.ops.WindowStep` records, the
geometry computed once in :mod:`convviz.ops`) and returns a
``plotly.graph_objects.Figure``; the pages only place them. Matrices are
drawn as heatmaps with row 0 at the top, one square per cell. They are built from
:mod:`convviz.figure_parts` (panels, heatmaps, outlines) and :mod:`convviz.figure_animation` (the
step-through that plays in the browser); the transposed convolution's step-through is
:mod:`convviz.figures_transposed`'.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.figure_animation import (MAX_SUM_LINE, NARROW_SUM, NARROW_TITLE_LINES, animated_figure, check_speed,
                                      wrap_terms, written_sum)
from convviz.figure_parts import (INPUT_SCALE, PADDING_COLOR, SIGNED_SCALE, TAP_COLOR, add_panel, cell_font_size,
                                  cell_rect, cell_squares, cell_text, format_number, four_panels, heatmap, map_trace,
                                  on_panel, padded_input, padded_title, padded_traces, panel_rect, pending_cover,
                                  square_layout, taps_path)
from convviz.ops import WindowStep

__all__ = ["PADDING_COLOR", "TAP_COLOR", "conv_steps_figure", "format_number", "map_grid_figure", "matrix_figure",
           "stacked_steps_figure"]


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
    text = cell_text(z) if show_numbers else None
    finite = z[np.isfinite(z)]
    if signed:
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        trace = heatmap(z, SIGNED_SCALE, text, zmin=-bound or -1, zmax=bound or 1,
                        font_size=cell_font_size(max(rows, cols)))
    else:
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        trace = heatmap(z, INPUT_SCALE, text, zmin=min(lo, 0.0), zmax=hi if hi > min(lo, 0.0) else lo + 1,
                        font_size=cell_font_size(max(rows, cols)))
    fig = go.Figure(trace)
    shapes = [cell_rect(highlight[0], highlight[1], TAP_COLOR, width=4)] if highlight is not None else None
    return square_layout(fig, rows, cols, title, height, shapes=shapes)



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
    _check_conv_steps(steps, steps_per_second)
    x = np.asarray(x, dtype=float)
    h, w = x.shape
    # the (padded) input: padding cells beige with their zeros, input cells on a blue scale
    padded, filler = padded_input(x, pads, zeros)
    ph, pw = padded.shape
    kh, kw = steps[0].kernel.shape
    h_out, w_out = steps[-1].out_index[0] + 1, steps[-1].out_index[1] + 1
    feature_map = np.array([s.value for s in steps]).reshape(h_out, w_out)
    names = [str(k + 1) for k in range(len(steps))]

    if grid is None:
        grid = max(ph, pw) > 9 or max(h_out, w_out) > 9
    panels, height = four_panels(grid, narrow)
    layout: dict = {}
    if input_title is None:
        input_title = padded_title((h, w), (ph, pw))
    ref_in = add_panel(layout, 1, *panels[0], ph, pw, input_title)
    ref_k = add_panel(layout, 2, *panels[1], kh, kw, kernel_title)
    ref_p = add_panel(layout, 3, *panels[2], kh, kw, "Element-wise products")
    ref_out = add_panel(layout, 4, *panels[3], h_out, w_out, output_title or f"Output feature map {h_out}×{w_out}")

    traces = _conv_traces(padded, filler, steps[0].kernel, feature_map, (ref_in, ref_k, ref_p, ref_out), show_numbers)
    pbound = max(float(np.abs(s.products).max()) for s in steps) or 1.0
    titles = [written_sum(s, cell_name=cell_name, width=NARROW_SUM if narrow else MAX_SUM_LINE) for s in steps]
    moving = [_window_shapes(s, ref_in, ref_out, (h_out, w_out)) for s in steps]
    return animated_figure(traces, layout, names, titles, moving, height, steps_per_second,
                           cells=[cell_squares(ref_p, s.products, pbound, cell_font_size(max(kh, kw))) for s in steps],
                           title_lines=NARROW_TITLE_LINES if narrow else 1)


def _conv_traces(padded: np.ndarray, filler: np.ndarray, kernel: np.ndarray, feature_map: np.ndarray,
                 refs: tuple[tuple[str, str], ...], show_numbers: bool) -> list[go.Heatmap]:
    """The traces drawn once: the (padded) input, the kernel, the products panel's axes and the finished map."""
    ref_in, ref_k, ref_p, ref_out = refs
    kh, kw = np.shape(kernel)
    traces = padded_traces(padded, filler, ref_in, show_numbers)
    kernel = np.asarray(kernel, dtype=float)
    traces.append(map_trace(kernel, ref_k, signed=True, hovertemplate="weight %{z:.4g}<extra></extra>"))
    # the products are filled, labelled squares (layout shapes, which a frame updates without a redraw); this empty
    # trace only holds the panel's axes
    traces.append(on_panel(go.Heatmap(z=np.full((kh, kw), np.nan), showscale=False, hoverinfo="skip"), ref_p))
    # the finished map, drawn once; the frames cover what is not computed yet
    traces.append(map_trace(feature_map, ref_out, show_numbers))
    return traces


def _check_conv_steps(steps: list[WindowStep], steps_per_second: float) -> None:
    """:func:`conv_steps_figure`'s arguments: at least one 2-D step, a speed > 0 (``ValueError`` otherwise)."""
    if not steps:
        raise ValueError("steps must hold at least one window position, got none")
    if steps[0].channel_sums is not None:
        raise ValueError("conv_steps_figure draws a 2-D convolution; got multi-channel steps")
    check_speed(steps_per_second)


def _window_shapes(step: WindowStep, ref_in: tuple[str, str], ref_out: tuple[str, str],
                   out_shape: tuple[int, int]) -> list[dict]:
    """What moves at one window position: the window's span (dashed), its taps, the output cell and the grey cover
    over the output cells not computed yet."""
    i, j = step.out_index
    return [panel_rect(ref_in, step.rows[0], step.cols[0], step.rows[-1], step.cols[-1], width=1.5, dash="dash"),
            taps_path(ref_in, step.rows, step.cols),
            panel_rect(ref_out, i, j, i, j, width=4),
            *pending_cover(ref_out, i, j, *out_shape)]


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
    check_speed(steps_per_second)
    h, w, _ = x.shape
    kh, kw = kernel.shape[:2]
    out_map = np.asarray(out_map, dtype=float)
    h_out, w_out = out_map.shape
    n = len(channels)
    names = [str(k + 1) for k in range(len(steps))]
    layout: dict = {}
    span = 0.62
    ref_x = add_panel(layout, 1, (0.0, span), (0.45, 0.9), h, n * (w + 1) - 1,
                      f"Input channels {channels[0] + 1}–{channels[-1] + 1} of {x.shape[2]}, the same window in each")
    ref_k = add_panel(layout, 2, (0.0, span * (n * (kw + 1) - 1) / (n * (w + 1) - 1)), (0.0, 0.3), kh, n * (kw + 1) - 1,
                      f"Kernel {kh}×{kw}×{x.shape[2]}: the slices for those channels")
    ref_out = add_panel(layout, 3, (0.7, 1.0), (0.45, 0.9), h_out, w_out,
                        "Channel 1's map" if depthwise else "Output (the sum)")
    xs = _mosaic(x[:, :, channels])
    ks = _mosaic(kernel[:, :, channels])
    lo, hi = float(np.nanmin(xs)), float(np.nanmax(xs))
    kbound = float(np.nanmax(np.abs(ks))) or 1.0
    out_lo, out_hi = float(out_map.min()), float(out_map.max())
    traces = [
        on_panel(heatmap(xs, INPUT_SCALE, cell_text(xs), zmin=min(lo, 0.0), zmax=hi if hi > min(lo, 0.0) else lo + 1,
                         font_size=cell_font_size(max(h, w))), ref_x),
        on_panel(heatmap(ks, SIGNED_SCALE, cell_text(ks), zmin=-kbound, zmax=kbound,
                         font_size=cell_font_size(max(kh, kw)), hovertemplate="weight %{z:.4g}<extra></extra>"), ref_k),
        on_panel(heatmap(out_map, SIGNED_SCALE if out_lo < 0 else "Greens", cell_text(out_map),
                         zmin=-max(abs(out_lo), abs(out_hi)) if out_lo < 0 else 0.0,
                         zmax=max(abs(out_lo), abs(out_hi)) or 1.0,
                         font_size=cell_font_size(max(h_out, w_out))), ref_out),
    ]
    labels = [{"xref": ref_x[0], "yref": ref_x[1], "x": c * (w + 1) + (w - 1) / 2, "y": h - 0.5, "yanchor": "top",
               "text": f"channel {channels[c] + 1}", "showarrow": False, "font": {"size": 11}} for c in range(n)]

    def moving(step: WindowStep) -> list[dict]:
        i, j = step.out_index
        taps = {"path": "".join(taps_path(ref_x, step.rows, step.cols, 0, c * (w + 1))["path"] for c in range(n))}
        return [{**taps_path(ref_x, step.rows, step.cols, width=2.5), **taps},
                panel_rect(ref_out, i, j, i, j, width=4),
                *pending_cover(ref_out, i, j, h_out, w_out)]

    layout["annotations"] = labels
    return animated_figure(traces, layout, names, [_channel_sums_text(s, depthwise) for s in steps],
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
                    shapes.append(cell_rect(r0 + r, c0 + c, TAP_COLOR, width=2))
    text = None
    if show_numbers:
        text = [["" if not np.isfinite(v) else format_number(v) for v in row] for row in raw]
    custom = np.stack([index + 1, raw], axis=-1)
    zkw = {"zmin": lo, "zmax": hi if hi > lo else lo + 1} if shared_scale else {"zmin": 0.0, "zmax": 1.0}
    fig = go.Figure(heatmap(
        mosaic, "Viridis", text, font_size=cell_font_size(max(h, w) * 2) if show_numbers else 10, customdata=custom,
        hovertemplate="map %{customdata[0]}: %{customdata[1]:.4g}<extra></extra>", **zkw))
    fig.update_traces(xgap=0, ygap=0)
    if height is None:
        # About 820 px of plot width at 1280 px with the sidebar open: keep the mosaic's aspect, cap per row.
        height = 40 + round(min(grid_rows * cell_height, 820 * total_h / total_w))
    return square_layout(fig, total_h, total_w, title, height, shapes=shapes, annotations=annotations)
