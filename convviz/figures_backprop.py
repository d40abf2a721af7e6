"""Plotly figure builders for the Backpropagation page (no Streamlit).

The step-throughs use the Convolution page's machinery (:mod:`convviz.figure_animation`): one figure, one
animation frame per window position, plotly.js's slider and Play / Pause / Reset, so stepping never asks
the server. They draw the records of :mod:`convviz.backprop`; nothing is computed here but layout.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.backprop import ConvBackward, PoolBackward, ReluBackward
from convviz.figure_animation import NARROW_TITLE_LINES, animated_figure, check_speed, rounded, wrap_terms
from convviz.figure_parts import (DROPPED_FILL, add_panel, factor_text, format_number, four_panels, frame_trace,
                                  map_trace, padded_input, padded_title, padded_traces, panel_rect, pending_cover,
                                  squares_path, taps_path)
from convviz.figures import conv_steps_figure

__all__ = [
    "FOLLOW_COLOR",
    "fit_curves_figure",
    "gather_figure",
    "kernel_grad_figure",
    "pool_backward_figure",
    "relu_backward_figure",
    "scatter_figure",
]

FOLLOW_COLOR = "#ff7f0e"
"""Outline of the one weight whose gradient the dK figure writes out, and of the input cell it multiplies."""

_MAX_TERMS = 9
"""Terms of the followed weight's sum written out; earlier ones are counted (``… 7 earlier terms +``)."""


def _check(back: ConvBackward, steps_per_second: float) -> None:
    if back.x.ndim != 2:
        raise ValueError(f"the backprop figures draw a 2-D convolution; got an input of shape {back.x.shape}")
    check_speed(steps_per_second)


def _padded_input(back: ConvBackward) -> tuple[np.ndarray, np.ndarray]:
    """The padded input and its padding mask, ``(ph, pw)`` each."""
    return padded_input(back.x, back.pads)


def _input_title(back: ConvBackward) -> str:
    return padded_title(back.x.shape, _padded_input(back)[0].shape)


def kernel_grad_figure(back: ConvBackward, show_numbers: bool = True, steps_per_second: float = 2.0,
                       follow: tuple[int, int] = (0, 0)) -> go.Figure:
    """The kernel gradient, window by window: ``dK += grad_output[i, j] · patch(i, j)``, as one animated figure.

    Four panels: the (padded) input with the window's taps outlined, ``grad_output`` with the window's
    output cell outlined, this window's ``grad · patch`` and the running total ``dK``. One weight (``follow``)
    is ringed in orange in ``dK`` and, at each position, the input cell it multiplied; the title's second
    line writes its gradient out as a sum growing by one term per window
    (``Weight (row 1, column 1): dK = 0.22·1 + 0·1 = 0.22``). Frame ``k`` is window position ``k + 1``.

    Args:
        back: :func:`convviz.backprop.conv2d_backward_steps` of a 2-D input.
        show_numbers: write the values in the input's cells (the other panels always do).
        steps_per_second: Play's speed, window positions per second, > 0.
        follow: ``(a, b)``, 0-based, the weight whose sum is written out.

    Returns:
        The figure (position 1 in its layout; frames change traces 3 and 4: ``grad · patch`` and ``dK``).

    Raises:
        ValueError: a multi-channel input, a speed that is not > 0, or ``follow`` outside the kernel.
    """
    _check(back, steps_per_second)
    kh, kw = back.kernel.shape
    a, b = follow
    if not (0 <= a < kh and 0 <= b < kw):
        raise ValueError(f"follow must be a weight of the {kh}×{kw} kernel, got follow={follow!r}")
    padded, filler = _padded_input(back)
    ph, pw = padded.shape
    h_out, w_out = back.grad_output.shape
    steps = back.kernel_steps
    grid = max(ph, pw) > 9 or max(h_out, w_out) > 9
    if grid:
        panels, height = four_panels(True)
        panels = [panels[0], panels[3], panels[1], panels[2]]
    else:
        panels, height = [((0.0, 0.3), (0.0, 0.86)), ((0.35, 0.55), (0.0, 0.86)), ((0.61, 0.77), (0.0, 0.86)),
                          ((0.84, 1.0), (0.0, 0.86))], 340
    layout: dict = {}
    ref_in = add_panel(layout, 1, *panels[0], ph, pw, _input_title(back))
    ref_g = add_panel(layout, 2, *panels[1], h_out, w_out, f"grad_output = dL/dy {h_out}×{w_out}")
    ref_c = add_panel(layout, 3, *panels[2], kh, kw, "grad · patch")
    ref_k = add_panel(layout, 4, *panels[3], kh, kw, "dK so far")

    traces = padded_traces(padded, filler, ref_in, show_numbers)
    traces.append(map_trace(back.grad_output, ref_g, signed=True,
                            hovertemplate="grad_output %{z:.4g}<extra></extra>"))
    cbound = max(float(np.abs(s.contribution).max()) for s in steps) or 1.0
    kbound = max(float(np.abs(s.total).max()) for s in steps) or 1.0
    traces.append(frame_trace(steps[0].contribution, cbound, ref_c, "grad · input %{z:.4g}<extra></extra>"))
    traces.append(frame_trace(steps[0].total, kbound, ref_k, "dK so far %{z:.4g}<extra></extra>"))

    def moving(step) -> list[dict]:
        win = step.window
        i, j = win.out_index
        return [panel_rect(ref_in, win.rows[0], win.cols[0], win.rows[-1], win.cols[-1], width=1.5, dash="dash"),
                taps_path(ref_in, win.rows, win.cols),
                panel_rect(ref_in, win.rows[a], win.cols[b], win.rows[a], win.cols[b], color=FOLLOW_COLOR, width=3),
                panel_rect(ref_g, i, j, i, j, width=4),
                panel_rect(ref_k, a, b, a, b, color=FOLLOW_COLOR, width=3)]

    titles, terms = [], []
    for step in steps:
        i, j = step.window.out_index
        terms.append(f"{format_number(step.grad)}·{factor_text(step.window.patch[a, b])}")
        head = f"Weight (row {a + 1}, column {b + 1}): dK = "
        shown = terms if len(terms) <= _MAX_TERMS else [f"… {len(terms) - _MAX_TERMS} earlier terms"] + terms[
            -_MAX_TERMS:]
        titles.append(f"<b>Window (row {i + 1}, column {j + 1})</b>: dK += grad_output (row {i + 1}, column {j + 1})"
                      f" · patch = {format_number(step.grad)} · patch<br>{head}"
                      + wrap_terms(shown, first=len(head)) + f" = <b>{format_number(step.total[a, b])}</b>")
    data = [[{"type": "heatmap", "z": rounded(s.contribution)}, {"type": "heatmap", "z": rounded(s.total)}]
            for s in steps]
    return animated_figure(traces, layout, [str(k + 1) for k in range(len(steps))], titles, [moving(s) for s in steps],
                           height, steps_per_second, frame_traces=(3, 4), frame_data=data)


def scatter_figure(back: ConvBackward, show_numbers: bool = True, steps_per_second: float = 2.0) -> go.Figure:
    """The input gradient by *scatter*: each output cell sends ``grad · kernel`` back onto its window's cells.

    A 2×2 grid (made to sit half the page wide): ``grad_output`` with the sending cell outlined, ``dX`` so
    far on the padded input's grid with the window outlined (padding cells beige: what lands there is
    dropped), the kernel, and this cell's ``grad · kernel`` with the shares that land on padding covered.
    Frame ``k`` is output cell ``k + 1`` in row-major order.

    Args:
        back: :func:`convviz.backprop.conv2d_backward_steps` of a 2-D input.
        show_numbers: write the values in ``dX``'s cells (the other panels always do).
        steps_per_second: Play's speed, > 0.

    Returns:
        The figure (frames change traces 3 and 4: ``dX`` so far and ``grad · kernel``).

    Raises:
        ValueError: a multi-channel input or a speed that is not > 0.
    """
    _check(back, steps_per_second)
    kh, kw = back.kernel.shape
    _, filler = _padded_input(back)
    ph, pw = filler.shape
    (top, _), (left, _) = back.pads
    h, w = back.x.shape
    h_out, w_out = back.grad_output.shape
    steps = back.scatter_steps
    panels, height = four_panels(True, narrow=True)
    layout: dict = {}
    ref_g = add_panel(layout, 1, *panels[0], h_out, w_out, f"grad_output {h_out}×{w_out}")
    ref_k = add_panel(layout, 2, *panels[1], kh, kw, "Kernel")
    ref_c = add_panel(layout, 3, *panels[2], kh, kw, "grad · kernel")
    ref_x = add_panel(layout, 4, *panels[3], ph, pw,
                      f"dX so far, {h}×{w}" + (" (beige: padding)" if filler.any() else ""))

    def on_grid(total: np.ndarray) -> np.ndarray:
        z = np.full((ph, pw), np.nan)
        z[top:top + h, left:left + w] = total
        return z

    xbound = max(float(np.abs(s.total).max()) for s in steps) or 1.0
    cbound = max(float(np.abs(s.contribution).max()) for s in steps) or 1.0
    traces = [
        map_trace(back.grad_output, ref_g, signed=True, hovertemplate="grad_output %{z:.4g}<extra></extra>"),
        map_trace(back.kernel, ref_k, signed=True, hovertemplate="weight %{z:.4g}<extra></extra>"),
        padded_traces(np.zeros((ph, pw)), filler, ref_x, False,
                      "padding: a share landing here is dropped<extra></extra>")[0],
        frame_trace(on_grid(steps[0].total), xbound, ref_x, "dX so far %{z:.4g}<extra></extra>"),
        frame_trace(steps[0].contribution, cbound, ref_c, "grad · weight %{z:.4g}<extra></extra>"),
    ]
    if not show_numbers:
        traces[3].update(texttemplate="")

    def moving(step) -> list[dict]:
        win = step.window
        i, j = win.out_index
        dropped = squares_path(zip(*np.nonzero(win.on_padding)))
        cover = {"type": "path", "xref": ref_c[0], "yref": ref_c[1], "path": dropped or "M0,0", "layer": "above",
                 "line": {"width": 0}, "fillcolor": DROPPED_FILL, "visible": True}  # "M0,0": nothing (see panel_rect)
        return [panel_rect(ref_g, i, j, i, j, width=4),
                panel_rect(ref_x, win.rows[0], win.cols[0], win.rows[-1], win.cols[-1], width=1.5, dash="dash"),
                taps_path(ref_x, win.rows, win.cols), cover]

    titles = []
    for step in steps:
        i, j = step.window.out_index
        n_drop = int(step.window.on_padding.sum())
        where = (f"{n_drop} of {kh * kw} on padding, dropped" if n_drop else "every tap on the input")
        titles.append(f"<b>Output cell (row {i + 1}, column {j + 1})</b> sends {format_number(step.grad)} back:"
                      f"<br>dX += {format_number(step.grad)} · kernel on its window<br>({where})")
    data = [[{"type": "heatmap", "z": rounded(on_grid(s.total))}, {"type": "heatmap", "z": rounded(s.contribution)}]
            for s in steps]
    return animated_figure(traces, layout, [str(k + 1) for k in range(len(steps))], titles, [moving(s) for s in steps],
                           height, steps_per_second, frame_traces=(3, 4), frame_data=data,
                           title_lines=NARROW_TITLE_LINES)


def gather_figure(back: ConvBackward, show_numbers: bool = True, steps_per_second: float = 2.0) -> go.Figure:
    """The input gradient by *gather*: ``dX`` as the correlation of the spread, padded ``grad_output`` with the flipped kernel.

    :func:`convviz.figures.conv_steps_figure` on ``back.spread_grad`` (its inserted and padding zeros shaded
    beige) and ``back.gather_steps``: the flipped kernel drawn, the products, ``dX`` filling in cell by cell,
    each sum written out (``dX (row 1, column 1) = 0·0 + … = 0.22``). A 2×2 grid, to sit half the page wide.

    Args:
        back: :func:`convviz.backprop.conv2d_backward_steps` of a 2-D input.
        show_numbers: write the values in the spread ``grad_output`` and in ``dX``.
        steps_per_second: Play's speed, > 0.

    Returns:
        The figure (one frame per input cell, row-major).

    Raises:
        ValueError: a multi-channel input or a speed that is not > 0.
    """
    _check(back, steps_per_second)
    gh, gw = back.spread_grad.shape
    h, w = back.x.shape
    spread = " spread," if max(back.strides) > 1 else ""
    return conv_steps_figure(
        back.spread_grad, ((0, 0), (0, 0)), back.gather_steps[0], show_numbers, "Kernel, flipped", steps_per_second,
        input_title=f"grad_output{spread}<br>padded to {gh}×{gw}", output_title=f"dX {h}×{w}", cell_name="dX",
        zeros=back.spread_source[:, :, 0] < 0, narrow=True)


def pool_backward_figure(pool: PoolBackward, steps_per_second: float = 1.0) -> go.Figure:
    """2×2 max pooling's backward pass, window by window: the gradient goes to the window's maximum.

    Four panels in a row: the pooled input with the window outlined and its maximum ringed, the pooled map,
    its gradient (the current cell outlined in both), and the gradient routed back, filling in window by
    window. The title names the maximum, how many cells tie for it and who gets the gradient.

    Args:
        pool: :func:`convviz.backprop.max_pool_backward`.
        steps_per_second: Play's speed, windows per second, > 0.

    Returns:
        The figure (one frame per window; no trace changes between frames).

    Raises:
        ValueError: a speed that is not > 0.
    """
    check_speed(steps_per_second)
    h, w = pool.x.shape
    h_out, w_out = pool.output.shape
    p = len(pool.windows[0].rows)
    layout: dict = {}
    ref_x = add_panel(layout, 1, (0.0, 0.3), (0.0, 0.86), h, w, f"Pooling's input {h}×{w} (the ReLU output)")
    ref_y = add_panel(layout, 2, (0.36, 0.5), (0.0, 0.86), h_out, w_out, f"Max pooled {h_out}×{w_out}")
    ref_g = add_panel(layout, 3, (0.56, 0.7), (0.0, 0.86), h_out, w_out, "Its gradient")
    ref_dx = add_panel(layout, 4, (0.76, 1.0), (0.0, 0.86), h, w, "Gradient routed back")
    traces = [map_trace(pool.x, ref_x), map_trace(pool.output, ref_y),
              map_trace(pool.grad_output, ref_g, signed=True), map_trace(pool.grad_input, ref_dx, signed=True)]

    def moving(win) -> list[dict]:
        i, j = win.out_index
        r, c = win.rows[win.argmax[0]], win.cols[win.argmax[1]]
        return [panel_rect(ref_x, win.rows[0], win.cols[0], win.rows[-1], win.cols[-1], width=4),
                panel_rect(ref_x, r, c, r, c, color=FOLLOW_COLOR, width=3),
                panel_rect(ref_y, i, j, i, j, width=4), panel_rect(ref_g, i, j, i, j, width=4),
                panel_rect(ref_dx, win.rows[0], win.cols[0], win.rows[-1], win.cols[-1], width=4),
                *pending_cover(ref_dx, i, j, h_out, w_out, block=p)]

    titles = []
    for win in pool.windows:
        i, j = win.out_index
        r, c = win.rows[win.argmax[0]], win.cols[win.argmax[1]]
        tie = f", the first of {win.ties} tied (row-major)" if win.ties > 1 else ""
        titles.append(f"<b>Window (row {i + 1}, column {j + 1})</b>: max {format_number(win.value)} at (row {r + 1}, "
                      f"column {c + 1}){tie}<br>→ it gets the whole gradient {format_number(win.grad)}; "
                      f"the other {p * p - 1} cells get 0")
    return animated_figure(traces, layout, [str(k + 1) for k in range(len(pool.windows))], titles,
                           [moving(win) for win in pool.windows], 300, steps_per_second)


def relu_backward_figure(relu: ReluBackward) -> go.Figure:
    """ReLU's backward pass in one picture: ``z``, the mask ``z > 0``, the upstream gradient and ``dz``.

    Args:
        relu: :func:`convviz.backprop.relu_backward` of a 2-D ``z``.

    Returns:
        The figure (static).

    Raises:
        ValueError: ``z`` not 2-D.
    """
    if relu.x.ndim != 2:
        raise ValueError(f"relu_backward_figure draws a 2-D map, got shape {relu.x.shape}")
    h, w = relu.x.shape
    layout: dict = {}
    panels = [((0.0, 0.22), "z (before ReLU)"), ((0.26, 0.48), "Mask: z > 0"),
              ((0.52, 0.74), "Gradient from above"), ((0.78, 1.0), "dz = gradient · mask")]
    refs = [add_panel(layout, n + 1, dom, (0.0, 0.86), h, w, title) for n, (dom, title) in enumerate(panels)]
    mask = relu.mask.astype(float)
    traces = [map_trace(relu.x, refs[0], signed=True),
              map_trace(mask, refs[1], hovertemplate="mask %{z}<extra></extra>"),
              map_trace(relu.grad_output, refs[2], signed=True), map_trace(relu.grad_input, refs[3], signed=True)]
    blocked = squares_path(zip(*np.nonzero(~relu.mask)))
    shapes = [{"type": "path", "xref": ref[0], "yref": ref[1], "path": blocked, "layer": "above",
               "line": {"width": 0}, "fillcolor": DROPPED_FILL} for ref in refs[1:] if blocked]
    layout.update(
        title={"text": "<b>ReLU backward</b>: the gradient passes where z > 0 and stops where z ≤ 0 "
                       "(beige; at z = 0 too, as in TensorFlow)", "x": 0.0, "xanchor": "left", "font": {"size": 14}},
        height=300, margin={"l": 6, "r": 6, "t": 60, "b": 10}, plot_bgcolor="white", paper_bgcolor="white",
        showlegend=False, shapes=shapes)
    return go.Figure(data=traces, layout=layout)


def fit_curves_figure(losses: list[float], errors: list[float], tolerance: float,
                      reached_at: int | None) -> go.Figure:
    """The loss and ``max |K − K*|`` against the step, on one log scale, with the tolerance line.

    Args:
        losses, errors: one value per step, step 0 first.
        tolerance: the error that counts as learned (a dashed line).
        reached_at: the step that first reached it (a dotted vertical line), or None.

    Returns:
        The figure: trace 0 the loss, trace 1 the error (values that are not finite and > 0 left out).
    """
    steps = list(range(len(losses)))

    def finite(values):
        return [v if np.isfinite(v) and v > 0 else None for v in values]

    mode = "lines" if len(steps) > 1 else "markers"  # step 0 alone is a point
    fig = go.Figure([
        go.Scatter(x=steps, y=finite(losses), name="loss (MSE)", mode=mode, line={"color": "#1f77b4"}),
        go.Scatter(x=steps, y=finite(errors), name="max |K − K*|", mode=mode, line={"color": FOLLOW_COLOR}),
    ])
    fig.add_hline(y=tolerance, line={"dash": "dash", "color": FOLLOW_COLOR, "width": 1},
                  annotation_text=f"learned: max |K − K*| ≤ {tolerance:g}", annotation_position="bottom right",
                  annotation_font={"size": 11, "color": FOLLOW_COLOR})
    if reached_at is not None:
        fig.add_vline(x=reached_at, line={"dash": "dot", "color": "#2ca02c", "width": 1.5},
                      annotation_text=f"step {reached_at}", annotation_position="top right",
                      annotation_font={"size": 11, "color": "#2ca02c"})
    fig.update_layout(
        height=300, margin={"l": 6, "r": 6, "t": 36, "b": 6}, plot_bgcolor="white", paper_bgcolor="white",
        title={"text": "Loss and distance to the target kernel", "font": {"size": 14}, "x": 0.02},
        xaxis={"title": "gradient-descent step", "rangemode": "tozero", "gridcolor": "#eee"},
        yaxis={"title": "log scale", "type": "log", "gridcolor": "#eee", "exponentformat": "power"},
        legend={"x": 0.02, "xanchor": "left", "y": 0.02, "yanchor": "bottom", "font": {"size": 11},
                "bgcolor": "rgba(255,255,255,0.8)"},
    )
    return fig
