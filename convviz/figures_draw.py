"""Plotly figure builders for the Draw page (no Streamlit, no TensorFlow).

:func:`probability_figure` (the ten class probabilities), :func:`stages_figure` (the digit's preparation,
:class:`convviz.preprocess.DigitStages`), :func:`feature_maps_figure` (a convolution layer's maps for the
digit) and :func:`saliency_figure` (:func:`convviz.explain.saliency` over the digit). Builders take plain
arrays and return a ``plotly.graph_objects.Figure``; images are heatmaps with row 0 at the top.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from convviz.figures_grids import grid_figure, image_axes

__all__ = ["feature_maps_figure", "probability_figure", "saliency_figure", "stages_figure"]

_TOP = "#d62728"
_OTHER = "#9ecae1"


def feature_maps_figure(maps, columns: int = 8, title: str = "", width_px: int = 420) -> go.Figure:
    """A convolution layer's feature maps for one image, as a grid (dark = 0, bright = strong).

    Args:
        maps: ``(height, width, filters)``.
        columns: maps per row.
        title: figure title.
        width_px: the width the grid is expected to get on the page (sets the height for square cells).

    Returns:
        The figure, one colour scale from 0 to the layer's largest value.

    Raises:
        ValueError: ``maps`` not 3-D, echoing its shape.
    """
    m = np.asarray(maps, np.float64)
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (height, width, filters), got {m.shape}")
    images = np.moveaxis(m, -1, 0)
    top = float(images.max()) if images.size and images.max() > 0 else 1.0
    low = min(0.0, float(images.min()))
    return grid_figure(images, columns, "Viridis", low, top, None, title, "filter", "activation", width_px)


def probability_figure(probabilities, height: int = 300) -> go.Figure:
    """The ten class probabilities as bars, the top class in red and labelled.

    Args:
        probabilities: ``(classes,)`` summing to 1.
        height: pixels.

    Returns:
        The figure.

    Raises:
        ValueError: not 1-D, echoing the shape.
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"probabilities must have shape (classes,), got {p.shape}")
    top = int(np.argmax(p))
    colors = [_TOP if i == top else _OTHER for i in range(p.size)]
    text = [f"{v:.1%}" if v >= 0.005 else "" for v in p]
    fig = go.Figure(go.Bar(x=[str(i) for i in range(p.size)], y=p, marker_color=colors, text=text,
                           textposition="outside", cliponaxis=False,
                           hovertemplate="class %{x}: %{y:.2%}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 40, "r": 10, "t": 30, "b": 40}, showlegend=False,
                      title="Probability of each class (softmax output)")
    fig.update_xaxes(title_text="class", type="category")
    fig.update_yaxes(range=[0, 1.12], tickformat=".0%")
    return fig


def _add_image(fig, z, row, col, colorscale="gray", zmin=0.0, zmax=1.0, name=""):
    fig.add_trace(go.Heatmap(z=z, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=False, name=name,
                             hovertemplate="row %{y}, col %{x}<br>ink %{z:.2f}<extra></extra>"), row=row, col=col)
    image_axes(fig, row, col)


def _square(fig, count):
    for i in range(1, count + 1):
        suffix = "" if i == 1 else str(i)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"


def stages_figure(stages, naive=None, height: int = 290) -> go.Figure:
    """The preparation of a digit, stage by stage (see :class:`convviz.preprocess.DigitStages`).

    Panels: the input with the ink's bounding box (red); the crop; the crop scaled to fit 20x20;
    the 28x28 result with its centre of mass (red dot) on the field's centre (cross); and, when
    ``naive`` is given, the whole input squeezed to 28x28 for comparison.

    Args:
        stages: a non-blank :class:`convviz.preprocess.DigitStages`.
        naive: optional float ``(28, 28)`` (from :func:`convviz.preprocess.naive_resize`).
        height: pixels.

    Returns:
        The figure.

    Raises:
        ValueError: blank stages.
    """
    if stages.blank:
        raise ValueError("stages are blank: there is no digit to show")
    h, w = stages.gray.shape
    top, left, bottom, right = stages.bbox
    ch, cw = stages.cropped.shape
    sh, sw = stages.scaled.shape
    titles = [f"1. input {w}x{h}", f"2. cropped to the ink {cw}x{ch}", f"3. scaled to fit 20x20: {sw}x{sh}",
              "4. centred in 28x28"]
    panels = [stages.gray, stages.cropped, stages.scaled, stages.image]
    if naive is not None:
        titles.append("naive: whole input -> 28x28")
        panels.append(np.asarray(naive))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.03)
    for i, z in enumerate(panels, start=1):
        _add_image(fig, z, 1, i)
    _square(fig, len(panels))
    fig.add_shape(type="rect", x0=left - 0.5, x1=right - 0.5, y0=top - 0.5, y1=bottom - 0.5,
                  line={"color": _TOP, "width": 2}, row=1, col=1)
    off_r, off_c = stages.offset
    fig.add_shape(type="rect", x0=off_c - 0.5, x1=off_c + sw - 0.5, y0=off_r - 0.5, y1=off_r + sh - 0.5,
                  line={"color": "#ffbf00", "width": 1, "dash": "dot"}, row=1, col=4)
    for x0, y0, x1, y1 in ((12.5, 14, 15.5, 14), (14, 12.5, 14, 15.5)):
        fig.add_shape(type="line", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": "#2ca02c", "width": 2}, row=1, col=4)
    cr, cc = stages.mass_center
    fig.add_trace(go.Scatter(x=[cc], y=[cr], mode="markers", marker={"color": _TOP, "size": 8},
                             hovertemplate=f"centre of mass ({cr:.2f}, {cc:.2f})<extra></extra>", showlegend=False),
                  row=1, col=4)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, showlegend=False)
    fig.update_annotations(font_size=12)
    return fig


def saliency_figure(image, saliency, height: int = 300) -> go.Figure:
    """The input digit beside its saliency map, and the saliency (red) laid over the digit.

    Args:
        image: float ``(28, 28)`` in ``[0, 1]``.
        saliency: non-negative float ``(28, 28)`` (see :func:`convviz.explain.saliency`).
        height: pixels.

    Returns:
        The figure (saliency scaled to its own maximum).

    Raises:
        ValueError: shapes differ, echoing them.
    """
    image, saliency = np.asarray(image, np.float64), np.asarray(saliency, np.float64)
    if image.shape != saliency.shape or image.ndim != 2:
        raise ValueError(f"image and saliency must be equal 2-D shapes, got {image.shape} and {saliency.shape}")
    s = saliency / (saliency.max() or 1.0)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.03,
                        subplot_titles=["the digit (28x28 input)", "saliency |d score / d pixel|",
                                        "saliency over the digit"])
    _add_image(fig, image, 1, 1)
    fig.add_trace(go.Heatmap(z=s, colorscale="Hot", zmin=0, zmax=1, showscale=False,
                             hovertemplate="row %{y}, col %{x}<br>saliency %{z:.2f} of max<extra></extra>"), row=1, col=2)
    image_axes(fig, 1, 2)
    _add_image(fig, image * 0.6, 1, 3)
    fig.add_trace(go.Heatmap(z=np.where(s > 0.05, s, np.nan), colorscale=[[0, "rgba(255,40,40,0.15)"],
                                                                      [1, "rgba(255,40,40,1)"]],
                             zmin=0, zmax=1, showscale=False, hoverongaps=False,
                             hovertemplate="row %{y}, col %{x}<br>saliency %{z:.2f} of max<extra></extra>"),
                  row=1, col=3)
    _square(fig, 3)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False)
    fig.update_annotations(font_size=12)
    return fig
