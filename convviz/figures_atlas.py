"""Plotly figure builders for the Filter atlas page (no Streamlit, no TensorFlow).

Builders take the arrays of a :class:`convviz.atlas.Atlas` and return a ``plotly.graph_objects.Figure``.
Every grid of small images is one heatmap (tiled with NaN gaps by
:func:`convviz.figures_grids.tile`, far faster to draw than a subplot per image); what a hover
should say about each image comes from an invisible marker at the image's centre, one per image,
so the figure carries one label per image rather than one per pixel. Row 0 is at the top, pixels are
square, ink is white on black as in MNIST.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.figures_grids import tile

__all__ = ["class_figure", "filter_figure", "patches_figure", "square_columns", "synthesis_figure"]

_OUTLINE = "#ff3b30"
_GRAY = [[0.0, "black"], [1.0, "white"]]


def _where(box, size: int = 28) -> str:
    """``rows 4–11, columns 10–17`` for a ``(top, left, bottom, right)`` box, noting the part past the digit."""
    top, left, bottom, right = (int(v) for v in box)
    text = f"rows {top}–{bottom - 1}, columns {left}–{right - 1}"
    return text + (" (partly past the digit's edge: zeros)" if min(top, left) < 0 or max(bottom, right) > size else "")


def _grid(canvas: np.ndarray, hover_x, hover_y, hover_text, height: int, title: str,
          tick_rows=None, tick_text=None) -> go.Figure:
    """A tiled canvas (values in [0, 1], NaN gaps) as a grey heatmap, with hover labels at the given points.

    The canvas and the points go to the browser as float32 (half the bytes of float64; plenty for a grey level).
    """
    fig = go.Figure(go.Heatmap(z=canvas.astype(np.float32), colorscale=_GRAY, zmin=0.0, zmax=1.0, showscale=False,
                               hoverinfo="skip", hoverongaps=False))
    fig.add_trace(go.Scatter(x=np.asarray(hover_x, np.float32), y=np.asarray(hover_y, np.float32), mode="markers",
                             text=hover_text, hovertemplate="%{text}<extra></extra>", showlegend=False,
                             marker={"size": 14, "opacity": 0, "symbol": "square"}))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False, constrain="domain",
                     range=[-0.5, canvas.shape[1] - 0.5])
    fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed", scaleanchor="x", constrain="domain",
                     showticklabels=tick_rows is not None, tickvals=tick_rows, ticktext=tick_text, ticks="",
                     tickfont={"size": 10})
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=height, hovermode="closest", hoverdistance=30,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, plot_bgcolor="rgba(0,0,0,0)",
                      paper_bgcolor="rgba(0,0,0,0)")
    return fig


def _height(canvas: np.ndarray, width_px: int) -> int:
    """Pixels tall for square cells when the figure gets ``width_px`` across (less the row labels, plus the title)."""
    return int(min(1100, max(160, canvas.shape[0] * (width_px - 50) / canvas.shape[1] + 50)))


def _strip_height(canvas: np.ndarray, width_px: int) -> int:
    """Pixels tall for one row of 28x28 images (and a line of labels under them) across ``width_px``."""
    return int(min(400, max(140, 34 * width_px / canvas.shape[1] + 55)))


def _row_ticks(count: int, columns: int, block: int, gap: int) -> tuple[list[float], list[str]]:
    """Y ticks at the middle of each row of blocks: ``"0–7"``, ``"8–15"``, … (the filters in that row)."""
    rows = -(-count // min(columns, count))
    values = [r * (block + gap) + (block - 1) / 2 for r in range(rows)]
    text = [f"{r * columns}–{min(count, (r + 1) * columns) - 1}" for r in range(rows)]
    return values, text


def square_columns(count: int) -> int:
    """Blocks per row for a roughly square grid of ``count`` blocks: ``ceil(sqrt(count))``, at most 16."""
    return max(1, min(16, int(np.ceil(np.sqrt(count)))))


def patches_figure(patches, columns: int | None = None, width_px: int = 400) -> go.Figure:
    """Every filter of a layer as a 3x3 block of its top patches (strongest at the top left, row by row).

    Args:
        patches: a :class:`convviz.atlas.TopPatches` (``crops`` ``(F, k, rows, cols)``).
        columns: filters per row, >= 1; None for a square grid (:func:`square_columns`).
        width_px: the width the figure is expected to get (sets its height, for square pixels).

    Returns:
        The figure. Hovering a patch names the filter, its rank, the activation, the test digit (and
        its label) and the rows and columns of the digit the patch covers. The y axis labels each row
        of blocks with the filters in it.

    Raises:
        ValueError: ``columns`` below 1.
    """
    crops = np.asarray(patches.crops, np.float64) / 255.0
    f, k, rh, rw = crops.shape
    columns = square_columns(f) if columns is None else columns
    if isinstance(columns, bool) or not isinstance(columns, int | np.integer) or columns < 1:
        raise ValueError(f"columns must be an integer >= 1, got columns={columns!r}")
    per_row = min(3, k)
    blocks = np.stack([tile(crops[i], per_row, 1)[0] for i in range(f)])  # (F, block_h, block_w), NaN gaps
    gap = max(2, rh // 2)
    canvas, _ = tile(blocks, columns, gap)
    bh, bw = blocks.shape[1:]
    cols = min(columns, f)
    filters, ranks = np.divmod(np.arange(f * k), k)
    block_r, block_c = np.divmod(filters, cols)
    in_r, in_c = np.divmod(ranks, per_row)
    ys = block_r * (bh + gap) + in_r * (rh + 1) + (rh - 1) / 2
    xs = block_c * (bw + gap) + in_c * (rw + 1) + (rw - 1) / 2
    boxes = patches.boxes().reshape(-1, 4)
    values, digits, labels = (np.asarray(a).ravel() for a in (patches.values, patches.digits, patches.labels))
    text = [f"<b>{patches.layer} filter {fi}</b>, patch {ri + 1} of {k}<br>activation {v:.3f}<br>"
            f"test digit #{d}{f' (a {lab})' if lab >= 0 else ''}<br>{_where(b)}"
            for fi, ri, v, d, lab, b in zip(filters, ranks, values, digits, labels, boxes)]
    ticks = _row_ticks(f, columns, bh, gap)
    title = f"{patches.layer}: the {k} strongest patches of each filter ({rh}×{rw} pixels)"
    return _grid(canvas, xs, ys, text, _height(canvas, width_px), title, *ticks)


def _stretched(images) -> np.ndarray:
    """Each image divided by its own maximum (an all-zero image stays 0)."""
    images = np.asarray(images, np.float64)
    top = images.reshape(len(images), -1).max(axis=1)
    return images / np.where(top > 0, top, 1.0)[:, None, None]


def synthesis_figure(synthesis, layer: str, columns: int | None = None, width_px: int = 400) -> go.Figure:
    """The input synthesised for each filter of a layer, in the same order as :func:`patches_figure`.

    Args:
        synthesis: a :class:`convviz.atlas.Synthesis` (``images`` ``(F, 28, 28)``).
        layer: the layer's name, for the labels.
        columns: images per row, >= 1; None for a square grid (:func:`square_columns`).
        width_px: the width the figure is expected to get.

    Returns:
        The figure; each image stretched to its own brightest pixel. Hovering one names the filter
        and its mean activation before (on the starting noise) and after the ascent.
    """
    images = _stretched(synthesis.images)
    f = len(images)
    columns = square_columns(f) if columns is None else columns
    gap = 2
    canvas, _ = tile(images, columns, gap)
    cols = min(columns, f)
    r, c = np.divmod(np.arange(f), cols)
    ys, xs = r * (28 + gap) + 13.5, c * (28 + gap) + 13.5
    text = [f"<b>{layer} filter {i}</b><br>mean activation {s:.3f} on the starting noise,<br>{e:.3f} on this image"
            for i, (s, e) in enumerate(zip(synthesis.start, synthesis.end))]
    ticks = _row_ticks(f, columns, 28, gap)
    return _grid(canvas, xs, ys, text, _height(canvas, width_px), f"{layer}: the input each filter likes best",
                 *ticks)


def filter_figure(patches, filter_index: int, synthesis=None, width_px: int = 1100) -> go.Figure:
    """One filter's top digits whole, each with its patch outlined, and (optionally) its synthesised input.

    Args:
        patches: a :class:`convviz.atlas.TopPatches`.
        filter_index: which filter, 0 to ``F - 1``.
        synthesis: optional :class:`convviz.atlas.Synthesis` of the same layer: its image is drawn last,
            after a wider gap.
        width_px: the width the figure is expected to get.

    Returns:
        The figure: one red outline per digit (the receptive field, clipped to the digit) and the
        activation written under each.

    Raises:
        ValueError: ``filter_index`` out of range, echoing it.
    """
    f = len(patches.values)
    if isinstance(filter_index, bool) or not isinstance(filter_index, int | np.integer) or not 0 <= filter_index < f:
        raise ValueError(f"filter_index must be from 0 to {f - 1}, got filter_index={filter_index!r}")
    images = np.asarray(patches.images[filter_index], np.float64) / 255.0
    k = len(images)
    gap = 3
    canvas, _ = tile(images, k, gap)
    xs = list(np.arange(k) * (28 + gap) + 13.5)
    if synthesis is not None:  # after a wider gap: another kind of image
        canvas = np.concatenate([canvas, np.full((28, 3 * gap), np.nan),
                                 _stretched(synthesis.images[filter_index:filter_index + 1])[0]], axis=1)
        xs.append(canvas.shape[1] - 14.5)
    xs = np.array(xs)
    boxes = patches.boxes()[filter_index]
    values, digits, labels = patches.values[filter_index], patches.digits[filter_index], patches.labels[filter_index]
    text = [f"<b>patch {i + 1}</b>: activation {v:.3f}<br>test digit #{d}{f' (a {lab})' if lab >= 0 else ''}"
            f"<br>{_where(b)}" for i, (v, d, lab, b) in enumerate(zip(values, digits, labels, boxes))]
    if synthesis is not None:
        text.append(f"<b>synthesised</b>: mean activation {synthesis.end[filter_index]:.3f}")
    fig = _grid(canvas, xs, np.full(len(xs), 13.5), text, _strip_height(canvas, width_px),
                f"{patches.layer} filter {filter_index}: where its {k} strongest patches sit in their digits")
    shapes = [{"type": "rect", "x0": i * (28 + gap) + max(left, 0) - 0.5, "x1": i * (28 + gap) + min(right, 28) - 0.5,
               "y0": max(top, 0) - 0.5, "y1": min(bottom, 28) - 0.5, "line": {"color": _OUTLINE, "width": 2}}
              for i, (top, left, bottom, right) in enumerate(boxes.tolist())]
    labels = [f"{v:.2f}" for v in values] + (["synthesised"] if synthesis is not None else [])
    fig.update_layout(shapes=shapes, annotations=_labels_under(xs, labels, 11))  # one update: add_* one by one is slow
    fig.update_yaxes(range=[33, -0.5], autorange=False)
    return fig


def _labels_under(xs, texts, size: int) -> list[dict]:
    """Annotations centred under a row of 28x28 images at ``xs``."""
    return [{"x": float(x), "y": 28.5, "text": text, "showarrow": False, "yanchor": "top", "font": {"size": size}}
            for x, text in zip(xs, texts)]


def class_figure(classes, width_px: int = 1100) -> go.Figure:
    """The input synthesised for each class 0-9, labelled with its class.

    Args:
        classes: a :class:`convviz.atlas.ClassImages`.
        width_px: the width the figure is expected to get.

    Returns:
        The figure; each image stretched to its own brightest pixel. Hovering one gives the class's
        score (logit) on the starting noise and on the image, and the probability the model gives it.
    """
    s = classes.synthesis
    images = _stretched(s.images)
    gap = 3
    canvas, _ = tile(images, len(images), gap)
    xs = np.arange(len(images)) * (28 + gap) + 13.5
    text = [f"<b>class {c}</b><br>score (logit) {a:.2f} on the starting noise, {b:.2f} on this image<br>"
            f"probability of {c}: {p:.1%}" for c, (a, b, p) in enumerate(zip(s.start, s.end, classes.probabilities))]
    fig = _grid(canvas, xs, np.full(len(xs), 13.5), text, _strip_height(canvas, width_px),
                "The input each class likes best")
    fig.update_layout(annotations=_labels_under(xs, [str(c) for c in range(len(xs))], 13))
    fig.update_yaxes(range=[33, -0.5], autorange=False)
    return fig
