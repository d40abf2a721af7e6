"""The transposed convolution's step-through (Plotly, no Streamlit): one frame per input cell.

Built from :mod:`convviz.figure_parts` like the Convolution page's forward step-through
(:func:`convviz.figures.conv_steps_figure`); it draws the records of :func:`convviz.backprop.conv2d_transpose_steps`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.figure_animation import animated_figure, check_speed, wrap_terms
from convviz.figure_parts import (DROPPED_FILL, FRAME_COLOR, PENDING_COLOR, SIGNED_SCALE, add_panel, cell_font_size,
                                  cell_squares, cell_text, factor_text, format_number, heatmap, map_trace, on_panel,
                                  padded_traces, panel_rect, squares_path, taps_path)

__all__ = ["transposed_steps_figure"]


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
    terms = [f"{factor_text(v)}·{factor_text(k)} = {format_number(p)}"
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
    check_speed(steps_per_second)
    x = np.asarray(tc.x, dtype=float)
    kernel = np.asarray(tc.kernel, dtype=float)
    h, w = x.shape
    kh, kw = kernel.shape
    sh, _ = tc.strides
    band_rows = tc.dilation_rate[0] * (kh - 1) + 1
    steps = tc.steps
    names = [str(k + 1) for k in range(len(steps))]
    layout: dict = {}
    (ref_in, ref_k, ref_p, ref_c), height = _panels(tc, layout)

    traces = padded_traces(x, np.zeros((h, w), dtype=bool), ref_in, show_numbers)[1:]
    traces.append(map_trace(kernel, ref_k, signed=True, hovertemplate="weight %{z:.4g}<extra></extra>"))
    traces.append(on_panel(go.Heatmap(z=np.full((kh, kw), np.nan), showscale=False, hoverinfo="skip"), ref_p))
    traces += _canvas_traces(tc.canvas_totals, band_rows, show_numbers, ref_c)
    pbound = max(float(np.abs(s.contribution).max()) for s in steps) or 1.0
    moving = [_step_shapes(s, (ref_in, ref_p, ref_c), sh * s.window.out_index[0] + band_rows, tc.canvas_shape)
              for s in steps]
    products = [cell_squares(ref_p, s.contribution, pbound, cell_font_size(max(kh, kw))) for s in steps]
    return animated_figure(traces, layout, names, [_scatter_text(s, kh * kw) for s in steps], moving,
                           height, steps_per_second, cells=products, frame_traces=(len(traces) - 1,),
                           frame_data=_band_frames(tc, band_rows), fixed=_crop_shapes(tc, ref_c),
                           step_name="Input cell")


def _panels(tc, layout: dict) -> tuple[tuple[tuple[str, str], ...], int]:
    """Add the four panels (input, kernel, products, canvas) to ``layout``; returns their refs and their height (px).

    A canvas or input over 9 cells a side: the canvas big on the right, the input above the kernel on the left.
    """
    h, w = np.shape(tc.x)
    kh, kw = np.shape(tc.kernel)
    ch, cw = tc.canvas_shape
    h_out, w_out = tc.output_shape
    dh, dw = tc.dilation_rate
    if max(ch, cw) > 9 or max(h, w) > 9:
        panels, height = [((0.0, 0.34), (0.42, 1.0)), ((0.0, 0.15), (0.0, 0.3)), ((0.19, 0.34), (0.0, 0.3)),
                          ((0.4, 1.0), (0.0, 1.0))], 560
    else:
        panels, height = [((0.0, 0.22), (0.0, 0.86)), ((0.27, 0.4), (0.0, 0.86)), ((0.45, 0.58), (0.0, 0.86)),
                          ((0.63, 1.0), (0.0, 0.86))], 360
    ref_in = add_panel(layout, 1, *panels[0], h, w, f"Input {h}×{w}")
    ref_k = add_panel(layout, 2, *panels[1], kh, kw,
                      f"Kernel {kh}×{kw}" + (f", dilation {dh}" if dh == dw and dh > 1 else
                                             f", dilation {dh}×{dw}" if (dh, dw) != (1, 1) else ""))
    ref_p = add_panel(layout, 3, *panels[2], kh, kw, "value · kernel")
    notes = []
    if sum(sum(pair) for pair in tc.crop):
        notes.append(f"kept: {h_out}×{w_out} in the dark frame")
    if any(tc.output_padding):
        notes.append(f"output padding {tc.output_padding[0]}+{tc.output_padding[1]}")
    canvas_title = f"Output before cropping {ch}×{cw}" + (f"<br>({', '.join(notes)})" if notes else "")
    ref_c = add_panel(layout, 4, *panels[3], ch, cw, canvas_title)
    return (ref_in, ref_k, ref_p, ref_c), height


def _canvas_traces(totals: np.ndarray, band_rows: int, show_numbers: bool, ref_c: tuple[str, str]) -> list[go.Heatmap]:
    """The finished canvas (drawn once) and the band of rows a frame sends (first step's), on one colour scale."""
    ch, cw = totals.shape[1:]
    lo, hi = float(totals.min()), float(totals.max())
    if lo < 0:
        bound = max(-lo, hi) or 1.0
        scale = {"colorscale": SIGNED_SCALE, "zmin": -bound, "zmax": bound}
    else:
        scale = {"colorscale": "Greens", "zmin": 0.0, "zmax": hi if hi > 0 else 1.0}
    fs = cell_font_size(max(ch, cw))
    hover = "row %{y}, col %{x}: %{z:.4g}<extra></extra>"
    final = on_panel(heatmap(totals[-1], scale["colorscale"], cell_text(totals[-1]) if show_numbers else None,
                             zmin=scale["zmin"], zmax=scale["zmax"], font_size=fs, hovertemplate=hover), ref_c)
    band = on_panel(heatmap(totals[0][:band_rows], scale["colorscale"], None, zmin=scale["zmin"], zmax=scale["zmax"],
                            font_size=fs, hovertemplate=hover), ref_c)
    band.update(y0=0, texttemplate="%{z:.2~f}" if show_numbers else "")
    return [final, band]


def _step_shapes(step, refs: tuple[tuple[str, str], ...], below: int, canvas_shape: tuple[int, int]) -> list[dict]:
    """What moves at one input cell: the cell, where its products land (span and taps), the grey cover over the
    canvas rows from ``below`` down (not reached yet) and the beige cover over the products dropped by the crop."""
    ref_in, ref_p, ref_c = refs
    ch, cw = canvas_shape
    i, j = step.window.out_index
    rows, cols = step.window.rows, step.window.cols
    dropped = squares_path(zip(*np.nonzero(step.window.on_padding)))
    return [panel_rect(ref_in, i, j, i, j, width=4),
            panel_rect(ref_c, rows[0], cols[0], rows[-1], cols[-1], width=1.5, dash="dash"),
            taps_path(ref_c, rows, cols),
            panel_rect(ref_c, min(below, ch - 1), 0, ch - 1, cw - 1, visible=below < ch,
                       **{"fill": PENDING_COLOR, "color": PENDING_COLOR, "width": 0}),
            {"type": "path", "xref": ref_p[0], "yref": ref_p[1], "path": dropped or "M0,0", "layer": "above",
             "line": {"width": 0}, "fillcolor": DROPPED_FILL, "visible": True}]  # "M0,0": nothing (see panel_rect)


def _crop_shapes(tc, ref_c: tuple[str, str]) -> list[dict]:
    """The cropped border covered in see-through beige, then the kept output's dark frame (the last shape)."""
    ch, cw = tc.canvas_shape
    h_out, w_out = tc.output_shape
    (top, bottom), (left, right) = tc.crop
    crop_fill = {"fill": DROPPED_FILL, "color": DROPPED_FILL, "width": 0}
    return [panel_rect(ref_c, 0, 0, top - 1, cw - 1, visible=top > 0, **crop_fill),
            panel_rect(ref_c, ch - bottom, 0, ch - 1, cw - 1, visible=bottom > 0, **crop_fill),
            panel_rect(ref_c, top, 0, ch - bottom - 1, left - 1, visible=left > 0, **crop_fill),
            panel_rect(ref_c, top, cw - right, ch - bottom - 1, cw - 1, visible=right > 0, **crop_fill),
            panel_rect(ref_c, top, left, top + h_out - 1, left + w_out - 1, color=FRAME_COLOR, width=2.5)]


def _band_frames(tc, band_rows: int) -> list[list[dict]]:
    """Each frame's data: the band of canvas rows its input row reaches, ``z`` (rounded; integers as such), ``y0``."""
    sh, _ = tc.strides
    data = []
    for k, step in enumerate(tc.steps):
        r0 = step.window.out_index[0] * sh
        rows = np.round(tc.canvas_totals[k][r0:r0 + band_rows], 4)
        z = [[int(v) if v.is_integer() else v for v in row] for row in rows.tolist()]  # "3", not "3.0": shorter
        data.append([{"type": "heatmap", "z": z, "y0": r0}])
    return data
