"""Plotly figure builders for the Train page (no Streamlit, no TensorFlow).

:func:`metric_figure` (the loss and accuracy curves, per batch and per epoch), :func:`kernel_grid_figure`
(the first layer's kernels) and :func:`confusion_figure`. Builders take plain arrays (a training snapshot
dict, kernels, counts) and return a ``plotly.graph_objects.Figure``; the page only places them. The numbers
drawn (smoothing, confusion counts, mistakes) are :mod:`convviz.metrics`'s.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from convviz.figures_grids import grid_figure
from convviz.metrics import ema

__all__ = ["MAX_CURVE_POINTS", "confusion_figure", "kernel_grid_figure", "metric_figure", "thinned"]

_RAW = "rgba(31, 119, 180, 0.3)"
_SMOOTH = "#1f77b4"
_TEST = "#d62728"


_METRICS = {
    "loss": ("batch_loss", "epoch_test_loss", "Loss (cross-entropy, nats)", None),
    "accuracy": ("batch_accuracy", "epoch_test_accuracy", "Accuracy", [0.0, 1.0]),
}


MAX_CURVE_POINTS = 600
"""Most batches a training curve draws: beyond it, evenly spaced batches (the first and the last always). The Train
page's live panel resends its curves every second; at 2,000 batches a curve was 104 kB of JSON and 50 ms to build."""


def thinned(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of the points of an ``n``-point curve to draw: all of them up to ``max_points``, else ``max_points``
    evenly spaced ones, the first and the last included.

    Raises:
        ValueError: ``max_points`` < 2, echoing it.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got max_points={max_points!r}")
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


_MARGIN = {"l": 50, "r": 10, "t": 40, "b": 100}
"""The curves' margins, pixels: the bottom one holds the tick labels, the "epoch" title and two legend rows."""
_TITLE_STANDOFF_PX = 6
"""Pixels between the x tick labels and the "epoch" title."""
_LEGEND_TOP_PX = 52
"""Pixels from the plot's bottom edge down to the legend's top: below the tick labels (~18) and the title (~20)."""


def metric_figure(snapshot: dict, metric: str, smoothing: float = 0.9, height: int = 360) -> go.Figure:
    """Training curve of one metric: per batch (raw and smoothed) and on the test set per epoch.

    The x axis is in epochs: batch ``i`` (1-based) of the run sits at ``i / batches_per_epoch``,
    and the test value after epoch ``e`` at ``e``, so both line up. The smoothed line is computed over every
    batch; both batch lines then draw at most :data:`MAX_CURVE_POINTS` of them (:func:`thinned`), values rounded
    to 5 decimals.

    Args:
        snapshot: a :meth:`convviz.train.TrainingJob.snapshot` dict (``batch_loss``,
            ``batch_accuracy``, ``epoch_test_loss``, ``epoch_test_accuracy``, ``batches_per_epoch``).
        metric: ``"loss"`` or ``"accuracy"``.
        smoothing: :func:`ema` weight of the smoothed line.
        height: pixels.

    Returns:
        The figure (``uirevision`` fixed, so a user's zoom survives live updates).

    Raises:
        ValueError: an unknown metric, echoing it.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'loss' or 'accuracy', got metric={metric!r}")
    batch_key, epoch_key, title, yrange = _METRICS[metric]
    per_batch = np.asarray(snapshot.get(batch_key, []), np.float64)
    per_epoch = np.asarray(snapshot.get(epoch_key, []), np.float64)
    bpe = max(1, int(snapshot.get("batches_per_epoch") or 1))
    smoothed = ema(per_batch, smoothing) if len(per_batch) else per_batch
    keep = thinned(len(per_batch))  # the live panel resends this figure every second: a bounded size
    x = np.round((keep + 1) / bpe, 4)
    per_batch, smoothed = np.round(per_batch[keep], 5), np.round(smoothed[keep], 5)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=per_batch, mode="lines", name="training batch", line={"color": _RAW, "width": 1},
                             hovertemplate="epoch %{x:.2f}<br>batch value %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=smoothed, mode="lines",
                             name="smoothed", line={"color": _SMOOTH, "width": 2.5},
                             hovertemplate="epoch %{x:.2f}<br>smoothed %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=np.arange(1, len(per_epoch) + 1), y=per_epoch, mode="lines+markers",
                             name="test set (per epoch)", line={"color": _TEST, "width": 2},
                             marker={"size": 10, "symbol": "diamond"},
                             hovertemplate="after epoch %{x}<br>test %{y:.4f}<extra></extra>"))
    epochs = max(1, int(snapshot.get("epochs") or 1))
    # The legend hangs from a line below the "epoch" title (anchored at its top, so a legend that wraps into a
    # second row on a narrow column grows downwards, into the bottom margin kept for it, never onto the title).
    plot_height = max(1, height - _MARGIN["t"] - _MARGIN["b"])
    fig.update_layout(title=title, height=height, margin=_MARGIN, uirevision=metric,
                      legend={"orientation": "h", "yanchor": "top", "y": -_LEGEND_TOP_PX / plot_height,
                              "x": 0, "xanchor": "left"})
    fig.update_xaxes(title_text="epoch", title_standoff=_TITLE_STANDOFF_PX, range=[0, epochs * 1.02])
    if yrange is not None:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    else:
        fig.update_yaxes(rangemode="tozero")
    return fig


def kernel_grid_figure(kernel, columns: int = 8, title: str = "First-layer kernels", width_px: int = 420) -> go.Figure:
    """The kernels of a convolution layer as a grid of small signed heatmaps (blue < 0 < red).

    Args:
        kernel: ``(kernel_height, kernel_width, in_channels, filters)``; with several input channels
            the kernels are averaged over them.
        columns: kernels per row.
        title: figure title.
        width_px: the width the grid is expected to get on the page (sets the height for square cells).

    Returns:
        The figure; one shared colour scale, symmetric about 0. Hover names the filter.

    Raises:
        ValueError: ``kernel`` not 4-D, or with a size of 0 (no filters), echoing its shape.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 4:
        raise ValueError(f"kernel must have shape (kh, kw, in_channels, filters), got {k.shape}")
    if 0 in k.shape:
        raise ValueError(f"kernel must have at least one filter, input channel, row and column, got {k.shape}")
    images = np.moveaxis(k.mean(axis=2), -1, 0)
    bound = float(np.abs(images).max()) or 1.0
    return grid_figure(images, columns, "RdBu_r", -bound, bound, 0.0, title, "filter", "weight", width_px)


def confusion_figure(cm, title: str = "Confusion matrix on the test set", height: int = 480) -> go.Figure:
    """A confusion matrix: correct answers (diagonal) in green, mistakes in red, counts in every cell.

    The diagonal is coloured by each class's accuracy; mistakes by their count relative to the
    largest mistake, so the most common confusions stand out even when they are rare. Each row
    label carries the class's accuracy, the title the overall accuracy.

    Args:
        cm: ``(classes, classes)`` counts, row = true class, column = predicted.
        title: figure title (the overall accuracy is appended).
        height: pixels.

    Returns:
        The figure.

    Raises:
        ValueError: ``cm`` not square, echoing its shape.
    """
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {cm.shape}")
    n = cm.shape[0]
    totals = cm.sum(axis=1)
    per_class = np.divide(np.diag(cm), totals, out=np.zeros(n), where=totals > 0)
    overall = np.trace(cm) / cm.sum() if cm.sum() else 0.0
    eye = np.eye(n, dtype=bool)
    diag = np.where(eye, per_class[:, None] * np.ones(n), np.nan)
    off = np.where(~eye & (cm > 0), cm, np.nan)
    labels = [f"{i} ({per_class[i]:.1%})" for i in range(n)]
    cols = [str(i) for i in range(n)]
    text = [[str(int(v)) if v else "" for v in row] for row in cm]
    frac = np.divide(cm, totals[:, None], out=np.zeros_like(cm), where=totals[:, None] > 0)
    custom = np.dstack([cm, frac])
    hover = "true %{y}, predicted %{x}<br>%{customdata[0]:.0f} digits (%{customdata[1]:.1%} of the row)<extra></extra>"
    off_max = max(1.0, float(np.nanmax(off, initial=1)))
    fig = go.Figure()
    for z, scale, zmin, zmax in ((diag, "Greens", 0.5, 1.0), (off, "Reds", 0.0, off_max)):
        fig.add_trace(go.Heatmap(z=z, x=cols, y=labels, colorscale=scale, zmin=zmin, zmax=zmax, showscale=False,
                                 customdata=custom, hovertemplate=hover, hoverongaps=False))
    for i in range(n):  # counts as annotations: white on the dark cells, black on the light ones
        for j in range(n):
            if cm[i, j]:
                dark = per_class[i] > 0.75 if i == j else cm[i, j] / off_max > 0.6
                fig.add_annotation(x=cols[j], y=labels[i], text=text[i][j], showarrow=False,
                                   font={"size": 12, "color": "white" if dark else "black"})
    fig.update_layout(title=f"{title}: {overall:.1%} correct", height=height,
                      margin={"l": 80, "r": 10, "t": 40, "b": 50}, plot_bgcolor="white")
    fig.update_xaxes(title_text="predicted class", side="bottom", type="category")
    fig.update_yaxes(title_text="true class (accuracy)", autorange="reversed", type="category")
    return fig
