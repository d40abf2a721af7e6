"""Plotly figure builders for the Train and Draw pages (no Streamlit, no TensorFlow).

Builders take plain arrays (a training snapshot dict, kernels, feature maps, labels) and return a
``plotly.graph_objects.Figure``; the pages only place them. Images are drawn as heatmaps with
row 0 at the top and square pixels. Grids of small images (kernels, feature maps) are tiled into
one heatmap with one-cell gaps, which draws far faster than one subplot per image.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["confusion_figure", "confusion_matrix", "ema", "feature_maps_figure", "kernel_grid_figure",
           "metric_figure", "misclassified", "probability_figure", "saliency_figure", "stages_figure", "tile"]

_RAW = "rgba(31, 119, 180, 0.3)"
_SMOOTH = "#1f77b4"
_TEST = "#d62728"
_TOP = "#d62728"
_OTHER = "#9ecae1"


def ema(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing).

    ``s_t = weight * s_{t-1} + (1 - weight) * v_t`` from ``s_0 = 0``, divided by
    ``1 - weight**t`` so the first values are not pulled towards zero.

    Args:
        values: 1-D sequence of numbers.
        weight: smoothing in ``[0, 1)``; 0 returns the values unchanged.

    Returns:
        float64 ``(len(values),)``.

    Raises:
        ValueError: ``weight`` outside ``[0, 1)``, echoing it.

    Example:
        >>> ema([1.0, 1.0, 1.0], 0.9).round(6).tolist()
        [1.0, 1.0, 1.0]
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got weight={weight!r}")
    v = np.asarray(values, np.float64)
    out = np.empty_like(v)
    s = 0.0
    for t, x in enumerate(v, start=1):
        s = weight * s + (1.0 - weight) * x
        out[t - 1] = s / (1.0 - weight ** t)
    return out


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


def metric_figure(snapshot: dict, metric: str, smoothing: float = 0.9, height: int = 320) -> go.Figure:
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
                             name="training (smoothed)", line={"color": _SMOOTH, "width": 2.5},
                             hovertemplate="epoch %{x:.2f}<br>smoothed %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=np.arange(1, len(per_epoch) + 1), y=per_epoch, mode="lines+markers",
                             name="test set (per epoch)", line={"color": _TEST, "width": 2},
                             marker={"size": 10, "symbol": "diamond"},
                             hovertemplate="after epoch %{x}<br>test %{y:.4f}<extra></extra>"))
    epochs = max(1, int(snapshot.get("epochs") or 1))
    fig.update_layout(title=title, height=height, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.25}, uirevision=metric)
    fig.update_xaxes(title_text="epoch", range=[0, epochs * 1.02])
    if yrange is not None:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    else:
        fig.update_yaxes(rangemode="tozero")
    return fig


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


def _image_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", **kw)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x" if row is None else None, constrain="domain", **kw)


def _grid_figure(images, columns, colorscale, zmin, zmax, zmid, title, what, colorbar_title, width_px) -> go.Figure:
    canvas, index = tile(images, columns)
    fig = go.Figure(go.Heatmap(
        z=canvas, customdata=index, colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar={"title": {"text": colorbar_title}, "thickness": 12},
        hovertemplate=f"{what} %{{customdata}}<br>value %{{z:.3f}}<extra></extra>"))
    _image_axes(fig)
    # square cells: the height follows from the width the grid is expected to get
    height = int(min(900, max(200, canvas.shape[0] * width_px / canvas.shape[1] + 60)))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      plot_bgcolor="white")
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
    return _grid_figure(images, columns, "RdBu_r", -bound, bound, 0.0, title, "filter", "weight", width_px)


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
    return _grid_figure(images, columns, "Viridis", low, top, None, title, "filter", "activation", width_px)


def confusion_matrix(y_true, y_pred, classes: int = 10) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: ``(n,)`` integer labels in ``[0, classes)``.
        y_pred: ``(n,)`` integer predictions in ``[0, classes)``.
        classes: number of classes.

    Returns:
        int64 ``(classes, classes)``; row = true class, column = predicted class.

    Raises:
        ValueError: mismatched lengths or labels out of range, echoing them.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], classes=2).tolist()
        [[1, 0], [1, 1]]
    """
    t, p = np.asarray(y_true).astype(np.int64).ravel(), np.asarray(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}")
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.size and (v.min() < 0 or v.max() >= classes):
            raise ValueError(f"{name} must be in [0, {classes}), got min={v.min()} max={v.max()}")
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


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


def misclassified(y_true, y_pred, probabilities, limit: int = 24) -> list[dict]:
    """The test digits the model got wrong, most confident mistakes first.

    Args:
        y_true: ``(n,)`` labels.
        y_pred: ``(n,)`` predictions.
        probabilities: ``(n, classes)``.
        limit: at most this many records.

    Returns:
        Records ``{"index", "true", "predicted", "confidence"}`` (confidence = probability of the
        predicted class, in [0, 1]).

    Raises:
        ValueError: mismatched lengths, echoing them.
    """
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    probs = np.asarray(probabilities)
    if not (t.shape == p.shape and probs.ndim == 2 and probs.shape[0] == t.shape[0]):
        raise ValueError(f"lengths differ: y_true {t.shape}, y_pred {p.shape}, probabilities {probs.shape}")
    wrong = np.flatnonzero(t != p)
    conf = probs[wrong, p[wrong]] if wrong.size else np.zeros(0)
    order = wrong[np.argsort(-conf, kind="stable")][:limit]
    return [{"index": int(i), "true": int(t[i]), "predicted": int(p[i]), "confidence": float(probs[i, p[i]])}
            for i in order]


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
    _image_axes(fig, row, col)


def _square(fig, count):
    for i in range(1, count + 1):
        suffix = "" if i == 1 else str(i)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"


def stages_figure(stages, naive=None, height: int = 290) -> go.Figure:
    """The preparation of a digit, stage by stage (see :func:`convviz.preprocess.digit_stages`).

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
    _image_axes(fig, 1, 2)
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
