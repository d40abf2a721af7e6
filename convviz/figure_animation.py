"""The browser-side step-through: one Plotly figure, one animation frame per step (no Streamlit).

The Convolution and Stacked Channels pages send every window position to the browser as the frames of one
Plotly figure: the slider and Play / Pause / Reset are plotly.js animations, so stepping never reruns the
page on the server. What does not change between positions (the input, the kernel, the finished output
map) is drawn once, as heatmaps. Everything that moves is a layout shape or annotation, so that a frame
is applied without redrawing the figure (``redraw: False``: plotly.js then redraws only the shapes and
annotations, about half the browser's work of a full redraw): the written sum (an annotation above the
panels), the window and output-cell outlines, the grey cover over the output cells not computed yet (two
rectangles: the rest of the current row and the rows below) and, on the Convolution page, the products
(one filled, labelled square per kernel tap). A relative Previous / Next needs a full redraw per step in
plotly.js (each frame must re-aim the buttons), so the standard slider is the stepping control.

:func:`animated_figure` assembles such a figure from panels built with :mod:`convviz.figure_parts`; the
written sum (:func:`written_sum`, :func:`wrap_terms`) is the annotation a frame rewrites.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.ops import WindowStep, describe_sum

__all__ = ["MAX_SUM_LINE", "MENU_GAP", "NARROW_SUM", "NARROW_TITLE_LINES", "STILL", "SUM_COLOR", "animated_figure",
           "animation_controls", "check_speed", "moved", "recoloured", "rounded", "wrap_terms", "written_sum"]

SUM_COLOR = "#31333f"
"""The written sum's colour: the page's own text colour (Streamlit's theme greys annotations)."""
MENU_GAP = 46
"""Pixels between the written sum and the panels, where the Play / Pause / Reset buttons sit."""
STILL = {"frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
"""Animation options that jump to one frame at once, redrawing only the shapes and annotations (slider, Reset)."""
MAX_SUM_LINE = 96
"""Characters per line of the written sum before it wraps (``<br>``)."""
NARROW_SUM = 52
"""The same in a figure half the page wide."""
NARROW_TITLE_LINES = 3
"""Title lines a figure half the page wide makes room for, so two side by side line up."""


def wrap_terms(terms: list[str], joiner: str = " + ", width: int = MAX_SUM_LINE, first: int = 0) -> str:
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


def written_sum(step: WindowStep, decimals: int = 2, cell_name: str = "Output cell",
                width: int = MAX_SUM_LINE) -> str:
    """``Output cell (row 1, column 1) = 1·1 + 1·0 + … = 4`` for a 2-D step (1-based), wrapped for the title."""
    i, j = step.out_index
    body, value = describe_sum(step, decimals=decimals).rsplit(" = ", 1)
    head = f"{cell_name} (row {i + 1}, column {j + 1}) = "
    return f"<b>{head}</b>" + wrap_terms(body.split(" + "), width=width, first=len(head)) + f" = <b>{value}</b>"


def animation_controls(names: list[str], steps_per_second: float, redraw: bool = False,
                       step_name: str = "Window position") -> tuple[list[dict], list[dict]]:
    """The slider over the positions and the Play / Pause / Reset buttons (all plotly.js: no server rerun).

    Args:
        redraw: whether moving to a frame redraws the figure (needed when frames change traces' data).
        step_name: what the slider calls a step (``"Window position 3 of 9"``).

    Returns:
        ``(sliders, updatemenus)``.
    """
    n = len(names)
    still = {**STILL, "frame": {"duration": 0, "redraw": redraw}}
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
               "y": 1.0, "yanchor": "bottom", "pad": {"b": MENU_GAP - 34, "r": 6}, "font": {"size": 13},
               "buttons": [
                   {"label": "▶ Play", "method": "animate", "args": [None, play]},
                   {"label": "Pause", "method": "animate", "args": [[None], pause]},
                   {"label": "Reset", "method": "animate", "args": [[names[0]], still]},
               ]}
    return [slider], [buttons]


def moved(shapes: list[dict], keep: tuple[str, ...] = ("x0", "x1", "y0", "y1", "path", "visible")) -> list[dict]:
    """What a frame sends of each shape: only the ``keep`` keys (plotly.js merges a frame's shapes into the layout's
    by index, so colours, line styles and fonts are sent once, in the layout)."""
    return [{k: v for k, v in shape.items() if k in keep} for shape in shapes]


def animated_figure(traces: list, layout: dict, names: list[str], titles: list[str], shapes: list[list[dict]],
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
    top_margin = MENU_GAP + 16 + 20 * lines
    sliders, menus = animation_controls(names, steps_per_second, redraw=frame_data is not None, step_name=step_name)
    cells = cells or [[] for _ in names]
    written = {"text": titles[0], "xref": "x domain", "yref": "paper", "x": 0.0, "y": 1.0, "xanchor": "left",
               "yanchor": "bottom", "yshift": MENU_GAP + 4, "align": "left", "showarrow": False,
               "font": {"size": 15, "color": SUM_COLOR}}
    layout.update(
        annotations=[written, *layout.get("annotations", [])],
        height=height + top_margin + 70, margin={"l": 6, "r": 6, "t": top_margin, "b": 70},
        plot_bgcolor="white", paper_bgcolor="white", showlegend=False,
        shapes=shapes[0] + cells[0] + (fixed or []), sliders=sliders, updatemenus=menus,
    )
    frames = [{"name": name, "layout": {"annotations": [{"text": titles[k]}],
                                        "shapes": moved(shapes[k]) + [recoloured(c) for c in cells[k]]}}
              for k, name in enumerate(names)]
    if frame_data is not None:
        for frame, data in zip(frames, frame_data):
            frame.update(traces=list(frame_traces), data=data)
    return go.Figure(data=traces, layout=layout, frames=frames)


def rounded(values, digits: int = 6) -> list:
    """``values`` as nested lists rounded to ``digits`` decimals (a frame's heatmap data, shorter to send)."""
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def recoloured(cell: dict) -> dict:
    """What a frame sends of a cell square: its fill and its label's text and colour."""
    return {"fillcolor": cell["fillcolor"],
            "label": {"text": cell["label"]["text"], "font": {"color": cell["label"]["font"]["color"]}}}


def check_speed(steps_per_second: float) -> None:
    """Play's speed, steps per second, must be > 0.

    Raises:
        ValueError: echoing ``steps_per_second``.
    """
    if not steps_per_second > 0:
        raise ValueError(f"steps_per_second must be > 0, got steps_per_second={steps_per_second!r}")
