"""Which digits drive each filter hardest, and the input pixels behind it (TensorFlow and numpy, no Streamlit).

The Filter atlas's first view (:mod:`convviz.atlas`), as in J. Yosinski et al., "Understanding Neural Networks
Through Deep Visualization" (2015): for every filter of a model's convolution layers, the test digits on which it
fires most (:func:`top_patches`). Each digit counts once, at the output cell where the filter's activation is
largest; the patch shown is that cell's **receptive field** — the input pixels it depends on — cut from the digit
(:func:`crop_patches`). Receptive fields are worked out from the layers' geometry (:func:`receptive_fields`), never
hard-coded. :func:`forward_convs` runs the layers one by one (unfused), for the synthesis too.

Images are MNIST-style: float ``(28, 28)`` in ``[0, 1]`` (0 = background), or uint8 ``(n, 28, 28)``
as :mod:`convviz.data` loads them. Layout is NHWC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convviz.geometry import padding_amounts, pair
from convviz.layers import Conv2D
from convviz.model import images_per_pass
from convviz.tensor_ops import conv2d, get_activation

__all__ = ["INPUT_SHAPE", "TOP_K", "ReceptiveField", "TopPatches", "conv_layer_names", "crop_patches", "forward_convs",
           "receptive_fields", "top_patches"]

TOP_K = 9
"""Patches shown per filter (a 3x3 block, as in the Deep Visualization Toolbox)."""

INPUT_SHAPE = (28, 28)
"""An input digit's ``(height, width)``, pixels."""

# --------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels one output cell of a layer depends on.

    Output cell ``(i, j)`` of the layer sees the input rows ``start[0] + i * jump[0]`` to
    ``start[0] + i * jump[0] + size[0] - 1`` (columns likewise). ``start`` is negative where the
    field reaches into zero padding; fields near the border may also run past the input's far side.

    Attributes:
        layer: the layer's name.
        size: ``(rows, cols)`` of the field, input pixels.
        jump: ``(rows, cols)`` input pixels between the fields of neighbouring output cells.
        start: ``(row, col)`` of the top-left input pixel of output cell ``(0, 0)``'s field.
        output_shape: the layer's output ``(height, width, channels)``.
    """

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    output_shape: tuple[int, int, int]

    def window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` input pixels of output cell ``(row, col)``'s field (bottom, right exclusive).

        Example:
            >>> receptive_fields(make_spec("fast"))["conv2"].window(10, 0)  # doctest: +SKIP
            (20, 0, 28, 8)
        """
        top, left = self.start[0] + row * self.jump[0], self.start[1] + col * self.jump[1]
        return top, left, top + self.size[0], left + self.size[1]

    def as_array(self) -> np.ndarray:
        """int64 ``(9,)``: size, jump, start, output shape (how an atlas file stores it)."""
        return np.array([*self.size, *self.jump, *self.start, *self.output_shape], np.int64)


def receptive_fields(spec) -> dict[str, ReceptiveField]:
    """The receptive field of every convolution and pooling layer of a spec, from the layers' geometry.

    The recurrence of A. Araujo, W. Norris and J. Sim, "Computing Receptive Fields of Convolutional
    Neural Networks" (Distill, 2019), layer by layer from the 28x28 input (size 1, jump 1, start 0):
    a layer with an effective window ``k' = d * (k - 1) + 1`` (kernel size ``k``, dilation ``d``;
    a pool's window has ``d = 1``), stride ``s`` and ``p`` zeros of padding before the input gives

    * ``size = size_in + (k' - 1) * jump_in``
    * ``jump = jump_in * s``
    * ``start = start_in - p * jump_in``

    Padding is worked out as :func:`convviz.geometry.padding_amounts` does (``"same"`` depends on the
    layer's input size). The layers after the first ``flatten`` or ``dense`` see the whole input and are
    not listed.

    Args:
        spec: a model spec (a list of layer configs, see :func:`convviz.model.make_spec`), valid.

    Returns:
        Ordered dict ``layer name -> ReceptiveField`` for each ``conv2d`` and ``maxpool2d`` layer.

    Raises:
        ValueError: a spec that :func:`convviz.model.validate_spec` refuses, naming the problem.

    Example:
        >>> fields = receptive_fields(make_spec("fast"))  # doctest: +SKIP
        >>> fields["conv1"].size, fields["conv2"].size  # doctest: +SKIP
        ((3, 3), (8, 8))
    """
    from convviz.model import validate_spec

    shapes = validate_spec(spec)
    size, jump, start = [1, 1], [1, 1], [0, 0]
    height, width = INPUT_SHAPE
    fields = {}
    for cfg, shape in zip(spec, shapes):
        kind = cfg["type"]
        if kind == "conv2d":
            kernel = pair(cfg["kernel_size"], "kernel_size")
            strides = pair(cfg.get("strides", 1), "strides")
            dilation = pair(cfg.get("dilation_rate", 1), "dilation_rate")
            padding = cfg.get("padding", "valid")
        elif kind == "maxpool2d":
            kernel = pair(cfg.get("pool_size", 2), "pool_size")
            strides = kernel if cfg.get("strides") is None else pair(cfg["strides"], "strides")
            dilation, padding = (1, 1), "valid"
        elif kind == "dropout":
            continue
        else:  # flatten, dense: every input pixel from here on
            break
        for axis, n in enumerate((height, width)):
            before, _ = padding_amounts(n, kernel[axis], strides[axis], padding, dilation[axis])
            effective = dilation[axis] * (kernel[axis] - 1) + 1
            size[axis] += (effective - 1) * jump[axis]
            start[axis] -= before * jump[axis]
            jump[axis] *= strides[axis]
        height, width = shape[0], shape[1]
        fields[cfg["name"]] = ReceptiveField(cfg["name"], tuple(size), tuple(jump), tuple(start), tuple(shape))
    return fields


def conv_layer_names(model) -> list[str]:
    """The names of the model's convolution layers, in order (e.g. ``["conv1", "conv2"]``)."""
    return [name for name, module in model.layers if isinstance(module, Conv2D)]


def crop_patches(images, field_: ReceptiveField, digits, positions) -> np.ndarray:
    """Cut receptive fields out of digits, all at once (zeros where a field runs past the digit).

    Args:
        images: uint8 or float ``(n, 28, 28)``.
        field_: the layer's :class:`ReceptiveField`.
        digits: int array of digit indices into ``images``, any shape ``S``.
        positions: int ``S + (2,)``: the output cell ``(row, col)`` of each patch.

    Returns:
        ``S + field_.size``, the dtype of ``images``.
    """
    images = np.asarray(images)
    digits, positions = np.asarray(digits, np.int64), np.asarray(positions, np.int64)
    (rh, rw), (jh, jw), (sr, sc) = field_.size, field_.jump, field_.start
    h_out, w_out = field_.output_shape[:2]
    pad_top, pad_left = max(0, -sr), max(0, -sc)
    pad_bottom = max(0, sr + (h_out - 1) * jh + rh - images.shape[1])
    pad_right = max(0, sc + (w_out - 1) * jw + rw - images.shape[2])
    padded = np.pad(images, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right)))
    tops = sr + positions[..., 0] * jh + pad_top
    lefts = sc + positions[..., 1] * jw + pad_left
    rows = tops[..., None, None] + np.arange(rh)[:, None]
    cols = lefts[..., None, None] + np.arange(rw)[None, :]
    return padded[digits[..., None, None], rows, cols]


# --------------------------------------------------------------------------------------------- top patches
@dataclass(frozen=True)
class TopPatches:
    """The test digits that drive each filter of one layer hardest, and where.

    ``F`` filters, ``k`` patches each (:data:`TOP_K`, fewer when there are fewer digits), strongest first.
    Each digit appears at most once per filter, at its strongest output cell (the first in row-major
    order on a tie); digits of equal strength are ordered by their index.

    Attributes:
        layer: the layer's name.
        field: the layer's :class:`ReceptiveField` (the patches' size and where they sit).
        values: float32 ``(F, k)``, the filter's activation at that cell (after the layer's activation).
        digits: int64 ``(F, k)``, indices into the test set searched.
        labels: int64 ``(F, k)``, those digits' labels.
        positions: int64 ``(F, k, 2)``, the output cell ``(row, col)``.
        crops: uint8 ``(F, k, rows, cols)``, the receptive field cut from the digit (0 past its edge).
        images: uint8 ``(F, k, 28, 28)``, the whole digits.
    """

    layer: str
    field: ReceptiveField
    values: np.ndarray
    digits: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    crops: np.ndarray
    images: np.ndarray

    def boxes(self) -> np.ndarray:
        """int64 ``(F, k, 4)``: each patch's ``(top, left, bottom, right)`` in its digit (:meth:`ReceptiveField.window`)."""
        top = self.field.start[0] + self.positions[..., 0] * self.field.jump[0]
        left = self.field.start[1] + self.positions[..., 1] * self.field.jump[1]
        return np.stack([top, left, top + self.field.size[0], left + self.field.size[1]], axis=-1)


def _as_images(images) -> np.ndarray:
    """uint8 ``(n, 28, 28)`` as given, or floats in [0, 1] scaled to uint8; checked."""
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != INPUT_SHAPE or x.shape[0] < 1:
        raise ValueError(f"images must have shape (n >= 1, 28, 28), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise ValueError("float images must be finite and in [0, 1]")
    return np.round(x * 255).astype(np.uint8)


def forward_convs(model, x, names, pre_activation: bool = False) -> dict:
    """Run ``model``'s layers one by one (unfused) up to the last layer in ``names``; their outputs.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        x: float32 ``(batch, 28, 28, 1)``.
        names: convolution layer names (:func:`conv_layer_names`).
        pre_activation: see below.

    Returns:
        ``{name: post}``, the layers' outputs ``(batch, height, width, filters)``.

    With ``pre_activation`` the convolutions in ``names`` give ``conv(x) + bias`` (before their
    activation) as well: ``{name: (pre, post)}``; otherwise ``{name: post}``.
    """
    wanted, out = set(names), {}
    for name, module in model.layers:
        if not wanted:
            break
        if isinstance(module, Conv2D) and name in wanted:
            z = conv2d(x, module.kernel, module.strides, module.padding, module.dilation_rate) + module.bias
            x = get_activation(module.activation)(z)
            out[name] = (z, x) if pre_activation else x
            wanted.discard(name)
        else:
            x = module(x)
    return out


def _strongest_cells(model, names):
    """A compiled function: a batch of digits -> per layer, each digit's strongest cell per filter.

    Returns ``{name: (value (batch, filters), flat cell index (batch, filters))}``; on a tie the first
    cell in row-major order (``tf.argmax`` does not promise which).
    """

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE, 1], tf.float32)], reduce_retracing=True)
    def run(x):
        result = {}
        for name, a in forward_convs(model, x, names).items():
            shape = tf.shape(a)
            flat = tf.reshape(a, [shape[0], shape[1] * shape[2], shape[3]])  # (batch, cells, filters)
            best = tf.reduce_max(flat, axis=1)
            cells = tf.range(shape[1] * shape[2])[None, :, None]
            first = tf.reduce_min(tf.where(flat == best[:, None, :], cells, shape[1] * shape[2]), axis=1)
            result[name] = (best, first)
        return result

    return run


def top_patches(model, images, labels=None, k: int = TOP_K, batch_size: int = 1000,
                progress=None) -> dict[str, TopPatches]:
    """The ``k`` digits that activate each filter of every convolution layer most, and their patches.

    One pass over ``images`` in batches through the model's layers (up to its last convolution);
    per batch, each digit's strongest cell for every filter at once (a max and an argmax over the
    cells); then, per filter, the ``k`` strongest digits (a sort over the digits). No Python loop runs
    per digit, filter or patch.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        images: uint8 ``(n, 28, 28)`` (or floats in ``[0, 1]``), e.g. MNIST's test digits.
        labels: ``(n,)`` their labels, or None (then -1).
        k: patches per filter, >= 1 (fewer when ``n < k``).
        batch_size: digits per forward pass, >= 1; cut to fit :data:`convviz.model.MAX_PASS_NUMBERS`.
        progress: optional ``callable(fraction)`` called after each batch with the share done (0 to 1].

    Returns:
        Ordered dict ``layer name -> TopPatches`` (empty for a model without convolutions).

    Raises:
        ValueError: images of the wrong shape or values, labels of the wrong length, ``k`` or
            ``batch_size`` below 1.
    """
    pixels = _as_images(images)
    n = len(pixels)
    labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    for value, name in ((k, "k"), (batch_size, "batch_size")):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
    names = conv_layer_names(model)
    if not names:
        return {}
    batch_size = images_per_pass(model.cost, batch_size)
    fields = receptive_fields(model.spec)
    run = _strongest_cells(model, names)
    best = {name: [] for name in names}
    cells = {name: [] for name in names}
    for at in range(0, n, batch_size):
        x = tf.constant(pixels[at: at + batch_size, :, :, None].astype(np.float32) / 255.0)
        for name, (value, cell) in run(x).items():
            best[name].append(value.numpy())
            cells[name].append(cell.numpy())
        if progress is not None:
            progress(min(1.0, (at + batch_size) / n))
    k = min(int(k), n)
    result = {}
    for name in names:
        value, cell = np.concatenate(best[name]), np.concatenate(cells[name])  # (n, filters)
        order = np.argsort(-value, axis=0, kind="stable")[:k].T  # (filters, k): strongest first, ties by index
        filters = np.arange(value.shape[1])[:, None]
        field_ = fields[name]
        width = field_.output_shape[1]
        flat = cell[order, filters]
        positions = np.stack([flat // width, flat % width], axis=-1).astype(np.int64)
        result[name] = TopPatches(
            layer=name, field=field_, values=value[order, filters].astype(np.float32), digits=order.astype(np.int64),
            labels=labels[order], positions=positions, crops=crop_patches(pixels, field_, order, positions),
            images=pixels[order])
    return result
