"""Images as Plotly heatmaps, and grids of small images tiled into one heatmap (no Streamlit, no TensorFlow).

Row 0 is at the top and pixels are square. A grid of small images (kernels, feature maps, patches) is one
heatmap with one-cell NaN gaps (:func:`tile`), which draws far faster than one subplot per image. Used by
the Train page's kernels (:mod:`convviz.figures_training`), the Draw page's feature maps
(:mod:`convviz.figures_draw`) and the Filter atlas (:mod:`convviz.figures_atlas`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

__all__ = ["grid_figure", "image_axes", "tile"]


def tile(images, columns: int = 8, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Lay out equal-sized images in a grid, separated by NaN gaps.

    Args:
        images: ``(count, height, width)``.
        columns: images per row, >= 1.
        gap: cells between images, >= 0.

    Returns:
        ``(canvas, index)``: float64 ``(rows * (height + gap) - gap, columns * (width + gap) - gap)``
        with NaN in the gaps and unused slots, and an int array of the same shape giving the image
        index of each cell (-1 in the gaps).

    Raises:
        ValueError: ``images`` not 3-D, or ``columns < 1`` / ``gap < 0``, echoing the value.
    """
    images = np.asarray(images, np.float64)
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"images must have shape (count >= 1, height, width), got {images.shape}")
    if columns < 1 or gap < 0:
        raise ValueError(f"columns must be >= 1 and gap >= 0, got columns={columns!r}, gap={gap!r}")
    n, h, w = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    canvas = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan)
    index = np.full(canvas.shape, -1, int)
    for k in range(n):
        r, c = divmod(k, columns)
        canvas[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = images[k]
        index[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = k
    return canvas, index


def image_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    """Hide the ticks and grid of an image's axes, row 0 at the top, square pixels (the whole figure, or one
    subplot by ``row`` / ``col``)."""
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", **kw)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x" if row is None else None, constrain="domain", **kw)


def grid_figure(images, columns, colorscale, zmin, zmax, zmid, title, what, colorbar_title, width_px) -> go.Figure:
    """Equal-sized ``images`` ``(count, height, width)`` as one heatmap (:func:`tile`, ``columns`` a row), square
    cells for a grid ``width_px`` pixels wide; the hover names each image ``what`` with its index."""
    canvas, index = tile(images, columns)
    fig = go.Figure(go.Heatmap(
        z=canvas, customdata=index, colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar={"title": {"text": colorbar_title}, "thickness": 12},
        hovertemplate=f"{what} %{{customdata}}<br>value %{{z:.3f}}<extra></extra>"))
    image_axes(fig)
    # square cells: the height follows from the width the grid is expected to get
    height = int(min(900, max(200, canvas.shape[0] * width_px / canvas.shape[1] + 60)))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      plot_bgcolor="white")
    return fig
