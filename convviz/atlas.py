"""What each filter looks for: top image patches and synthesised inputs (TensorFlow and numpy, no Streamlit).

Two views of every filter of a model's convolution layers, as in J. Yosinski, J. Clune, A. Nguyen,
T. Fuchs and H. Lipson, "Understanding Neural Networks Through Deep Visualization" (ICML Deep
Learning Workshop, 2015) and its Deep Visualization Toolbox:

* **Top patches** (:func:`top_patches`): the test digits on which the filter fires most. Each digit
  counts once, at the output cell where the filter's activation is largest; the patch shown is that
  cell's **receptive field** — the input pixels it depends on — cut from the digit. Receptive fields
  are worked out from the layers' geometry (:func:`receptive_fields`), never hard-coded.
* **Synthesised inputs** (:func:`synthesise_filters`, :func:`synthesise_classes`): an input image
  built by gradient ascent on its pixels to make a filter's mean activation (or a class's score) as
  large as possible, regularised as in Yosinski et al. so that it stays image-like (see
  :class:`AscentSettings`).

:func:`compute_atlas` does both for every convolution layer and the 10 classes;
:func:`save_atlas` / :func:`load_atlas` keep the result in one ``.npz`` (written atomically, read back
through :func:`convviz.npzfile.read_npz` and checked against the model, so a damaged file is a
``ValueError``, never a half-read atlas).

Images are MNIST-style: float ``(28, 28)`` in ``[0, 1]`` (0 = background), or uint8 ``(n, 28, 28)``
as :mod:`convviz.data` loads them. Layout is NHWC.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from convviz.geometry import padding_amounts
from convviz.geometry import pair as _pair
from convviz.layers import Conv2D
from convviz.npzfile import NpzLimits, parse_json, read_npz, write_npz
from convviz.tensor_ops import conv2d, get_activation, softmax

__all__ = ["ATLAS_LIMITS", "ATLAS_VERSION", "AscentSettings", "Atlas", "ClassImages", "LayerAtlas",
           "ReceptiveField", "Synthesis", "TopPatches", "compute_atlas", "conv_layer_names", "crop_patches",
           "load_atlas", "model_digest", "receptive_fields", "save_atlas", "synthesise_classes",
           "synthesise_filters", "top_patches"]

ATLAS_VERSION = 1
"""Bumped whenever what :func:`compute_atlas` computes changes: an atlas of another version is recomputed."""

TOP_K = 9
"""Patches shown per filter (a 3x3 block, as in the Deep Visualization Toolbox)."""

_INPUT = (28, 28)
_MiB = 1024 * 1024
ATLAS_LIMITS = NpzLimits(max_file_bytes=64 * _MiB, max_members=512, max_member_bytes=32 * _MiB,
                         max_total_bytes=96 * _MiB, max_text_chars=100_000)
"""What an atlas file may declare before :func:`load_atlas` refuses it (a 1,024-filter layer's nine digits per
filter are 7 MB)."""


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

    Padding is worked out as :func:`convviz.ops.padding_amounts` does (``"same"`` depends on the
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
    height, width = _INPUT
    fields = {}
    for cfg, shape in zip(spec, shapes):
        kind = cfg["type"]
        if kind == "conv2d":
            kernel = _pair(cfg["kernel_size"], "kernel_size")
            strides = _pair(cfg.get("strides", 1), "strides")
            dilation = _pair(cfg.get("dilation_rate", 1), "dilation_rate")
            padding = cfg.get("padding", "valid")
        elif kind == "maxpool2d":
            kernel = _pair(cfg.get("pool_size", 2), "pool_size")
            strides = kernel if cfg.get("strides") is None else _pair(cfg["strides"], "strides")
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
    if x.ndim != 3 or x.shape[1:] != _INPUT or x.shape[0] < 1:
        raise ValueError(f"images must have shape (n >= 1, 28, 28), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise ValueError("float images must be finite and in [0, 1]")
    return np.round(x * 255).astype(np.uint8)


def _forward_convs(model, x, names, pre_activation: bool = False) -> dict:
    """Run ``model``'s layers one by one (unfused) up to the last layer in ``names``; their outputs.

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

    @tf.function(input_signature=[tf.TensorSpec([None, *_INPUT, 1], tf.float32)], reduce_retracing=True)
    def run(x):
        result = {}
        for name, a in _forward_convs(model, x, names).items():
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
        batch_size: digits per forward pass, >= 1.
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


# --------------------------------------------------------------------------------------------- gradient ascent
@dataclass(frozen=True)
class AscentSettings:
    """Regularised gradient ascent on the input, after Yosinski et al. (2015), Section 3.

    From faint noise ``x ~ U[0, init_scale)`` (seeded), each step ``t`` does

    1. ``x <- x + learning_rate * g / std(g)``, with ``g`` the objective's gradient with respect to the
       pixels, scaled per image to unit standard deviation (so one step size suits every filter);
    2. ``x <- (1 - l2_decay) * x``: Yosinski et al.'s L2 decay, which keeps only the pixels the
       objective keeps asking for;
    3. every ``blur_every`` steps, a Gaussian blur of standard deviation ``blur_sigma`` pixels
       (Yosinski et al.'s blur), which removes the high-frequency patterns a network answers to
       but no digit has;
    4. ``x`` clipped to ``[0, 1]``, the range of an MNIST pixel.

    Attributes:
        steps: ascent steps, 1 to 10,000.
        learning_rate: step along the normalised gradient (pixel intensity), in (0, 1].
        l2_decay: share taken off every pixel per step, in [0, 1).
        blur_sigma: the blur's standard deviation, pixels, in [0, 5] (0: no blur).
        blur_every: steps between blurs, >= 1.
        init_scale: the starting noise's upper bound, in [0, 1].
        seed: the starting noise's seed, >= 0.

    Raises:
        ValueError: a value out of range, echoing it.
    """

    steps: int = 128
    learning_rate: float = 0.05
    l2_decay: float = 0.01
    blur_sigma: float = 0.7
    blur_every: int = 4
    init_scale: float = 0.2
    seed: int = 0

    def __post_init__(self):
        for name, low, high in (("steps", 1, 10_000), ("blur_every", 1, 10_000), ("seed", 0, 2**63 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {name}={value!r}")
        for name, low, high, open_low, open_high in (("learning_rate", 0.0, 1.0, True, False),
                                                     ("l2_decay", 0.0, 1.0, False, True),
                                                     ("blur_sigma", 0.0, 5.0, False, False),
                                                     ("init_scale", 0.0, 1.0, False, False)):
            value = getattr(self, name)
            ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
                  and (low < value if open_low else low <= value) and (value < high if open_high else value <= high))
            if not ok:
                raise ValueError(f"{name} must be a number in {'(' if open_low else '['}{low:g}, {high:g}"
                                 f"{')' if open_high else ']'}, got {name}={value!r}")


@dataclass(frozen=True)
class Synthesis:
    """Inputs synthesised by :func:`synthesise_filters` or :func:`synthesise_classes`, one per target.

    Attributes:
        images: float32 ``(targets, 28, 28)`` in ``[0, 1]``.
        start: float32 ``(targets,)``, the objective measured on the starting noise.
        end: float32 ``(targets,)``, the objective measured on ``images``.
    """

    images: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _blur_matrix(size: int, sigma: float) -> np.ndarray:
    """``(size, size)`` rows of Gaussian weights (each row summing to 1), so ``B @ x @ B.T`` blurs ``x``."""
    if sigma <= 0:
        return np.eye(size, dtype=np.float32)
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _ascend(objective, count: int, settings: AscentSettings, progress=None) -> Synthesis:
    """Run :class:`AscentSettings`' ascent on ``count`` images at once.

    ``objective(x)`` maps a batch ``(count, 28, 28, 1)`` to ``(ascended, reported)``, both ``(count,)``:
    what the gradient climbs, and what is measured (see :func:`synthesise_filters`). Image ``b``'s
    objective depends on image ``b`` only, so one gradient of the sum gives every image its own.
    """
    rng = np.random.default_rng(settings.seed)
    x = tf.constant(rng.uniform(0.0, settings.init_scale, (count, *_INPUT, 1)).astype(np.float32))
    blur = tf.constant(_blur_matrix(_INPUT[0], settings.blur_sigma))
    rate, keep = tf.constant(settings.learning_rate, tf.float32), tf.constant(1.0 - settings.l2_decay, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([count, *_INPUT, 1], tf.float32), tf.TensorSpec([], tf.bool)])
    def step(x, blur_now):
        with tf.GradientTape() as tape:
            tape.watch(x)
            ascended, reported = objective(x)
            total = tf.reduce_sum(ascended)
        grad = tape.gradient(total, x)
        grad = grad / (tf.math.reduce_std(grad, axis=[1, 2, 3], keepdims=True) + 1e-8)
        x = (x + rate * grad) * keep
        x = tf.where(blur_now, tf.einsum("ij,njkc,lk->nilc", blur, x, blur), x)
        return tf.clip_by_value(x, 0.0, 1.0), reported

    def measure(x):  # eagerly: once at each end, not worth a trace
        return objective(x)[1].numpy()

    start = measure(x)
    every = max(1, settings.steps // 16)
    for t in range(1, settings.steps + 1):
        x, _ = step(x, tf.constant(t % settings.blur_every == 0))
        if progress is not None and (t % every == 0 or t == settings.steps):
            progress(t / settings.steps)
    return Synthesis(images=x.numpy()[..., 0], start=start.astype(np.float32),
                     end=measure(x).astype(np.float32))


def synthesise_filters(model, layer: str, settings: AscentSettings | None = None, progress=None) -> Synthesis:
    """For every filter of a convolution layer, the input that maximises its mean activation.

    All the layer's filters ascend together, one image each, in one batch. The reported objective is
    the filter's activation (after the layer's activation function) averaged over the layer's output
    cells. The gradient climbs that mean, except while the filter is off at every cell (ReLU's
    gradient is 0 there, so the ascent could not start): then it climbs the mean pre-activation
    ``conv(x) + bias``, which ReLU passes on unchanged once positive, until the filter switches on.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        layer: the name of one of its convolution layers (see :func:`conv_layer_names`).
        settings: :class:`AscentSettings` (the defaults when None).
        progress: optional ``callable(fraction)``.

    Returns:
        :class:`Synthesis` with ``filters`` images; ``start`` / ``end`` the mean activation on the
        noise and on the result.

    Raises:
        ValueError: ``layer`` is not a convolution of ``model``, naming the ones it has.
    """
    settings = settings or AscentSettings()
    modules = {name: model.get_layer(name) for name in conv_layer_names(model)}
    if not isinstance(modules.get(layer), Conv2D):
        raise ValueError(f"layer must be one of the model's convolutions {conv_layer_names(model)}, "
                         f"got layer={layer!r}")
    filters = modules[layer].filters
    which = tf.range(filters)

    def objective(x):
        z, a = _forward_convs(model, x, [layer], pre_activation=True)[layer]
        own_z = tf.gather(tf.transpose(z, [0, 3, 1, 2]), which, axis=1, batch_dims=1)  # (filters, h, w)
        own_a = tf.gather(tf.transpose(a, [0, 3, 1, 2]), which, axis=1, batch_dims=1)
        mean_a = tf.reduce_mean(own_a, axis=[1, 2])
        on = tf.stop_gradient(tf.reduce_max(own_a, axis=[1, 2]) > 0)
        return tf.where(on, mean_a, tf.reduce_mean(own_z, axis=[1, 2])), mean_a

    return _ascend(objective, filters, settings, progress)


@dataclass(frozen=True)
class ClassImages:
    """The input synthesised for each class.

    Attributes:
        synthesis: :class:`Synthesis` of 10 images; ``start`` / ``end`` the class's score (logit).
        probabilities: float32 ``(10,)``, the model's probability of each class for its own image.
    """

    synthesis: Synthesis
    probabilities: np.ndarray


def synthesise_classes(model, settings: AscentSettings | None = None, progress=None) -> ClassImages:
    """For each class 0-9, the input that maximises the class's score.

    The score is the logit, before the softmax, as in K. Simonyan, A. Vedaldi and A. Zisserman,
    "Deep Inside Convolutional Networks" (2013): raising a probability can also be done by lowering
    the other classes' scores, which says less about the class. The model runs layer by layer
    (``fused=False``) in inference mode (no dropout); the ten classes ascend together.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        settings: :class:`AscentSettings` (the defaults when None).
        progress: optional ``callable(fraction)``.

    Returns:
        :class:`ClassImages`.
    """
    settings = settings or AscentSettings()
    classes = tf.range(10)

    def objective(x):
        own = tf.gather(model(x, training=False, fused=False), classes, axis=1, batch_dims=1)
        return own, own

    synthesis = _ascend(objective, 10, settings, progress)
    logits = model(tf.constant(synthesis.images[..., None]), training=False, fused=False).numpy()
    probabilities = softmax(logits).numpy()[np.arange(10), np.arange(10)]
    return ClassImages(synthesis=synthesis, probabilities=probabilities.astype(np.float32))


# --------------------------------------------------------------------------------------------- the atlas
@dataclass(frozen=True)
class LayerAtlas:
    """One convolution layer's atlas: its top patches and synthesised inputs, filter by filter."""

    patches: TopPatches
    synthesis: Synthesis

    @property
    def name(self) -> str:
        return self.patches.layer

    @property
    def filters(self) -> int:
        return len(self.patches.values)


@dataclass(frozen=True)
class Atlas:
    """Everything the Filter atlas page shows for one model.

    Attributes:
        digest: :func:`model_digest` of the model it was computed for.
        source: which digits were searched, in words (e.g. ``"the full MNIST test set"``).
        digit_count: how many digits were searched.
        settings: the :class:`AscentSettings` used.
        layers: ordered ``name -> LayerAtlas``, one per convolution layer.
        classes: :class:`ClassImages`.
        seconds: how long :func:`compute_atlas` took, wall-clock seconds.
        version: :data:`ATLAS_VERSION` when computed.
    """

    digest: str
    source: str
    digit_count: int
    settings: AscentSettings
    layers: dict
    classes: ClassImages
    seconds: float
    version: int = ATLAS_VERSION


def model_digest(model) -> str:
    """SHA-256 (hex) of a model's spec and weights: equal digests, equal models.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.

    Returns:
        64 hex characters.
    """
    digest = hashlib.sha256(json.dumps(model.spec, sort_keys=True).encode("utf-8"))
    for name, value in sorted(model.weights().items()):
        digest.update(name.encode("utf-8"))
        digest.update(np.ascontiguousarray(value, np.float32).tobytes())
    return digest.hexdigest()


_STAGE_WEIGHTS = {"patches": 0.15, "layers": 0.7, "classes": 0.15}
"""Shares of :func:`compute_atlas`'s progress bar: roughly their shares of its time on 2 cores."""


def compute_atlas(model, images, labels, source: str, settings: AscentSettings | None = None,
                  progress=None, batch_size: int = 1000) -> Atlas:
    """Top patches and synthesised inputs for every convolution layer of ``model``, and the 10 class images.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        images: uint8 ``(n, 28, 28)`` test digits (or floats in ``[0, 1]``).
        labels: ``(n,)`` their labels.
        source: where the digits come from, in words, kept with the atlas.
        settings: :class:`AscentSettings` (the defaults when None).
        progress: optional ``callable(fraction, message)``, fraction from 0 to 1.
        batch_size: digits per forward pass for the top patches.

    Returns:
        :class:`Atlas`.

    Raises:
        ValueError: as :func:`top_patches`.
    """
    settings = settings or AscentSettings()
    began = time.perf_counter()
    names = conv_layer_names(model)

    def report(base: float, share: float, message: str):
        if progress is None:
            return None
        return lambda fraction: progress(min(1.0, base + share * fraction), message)

    done = 0.0
    patches = top_patches(model, images, labels, batch_size=batch_size,
                          progress=report(done, _STAGE_WEIGHTS["patches"], f"Searching {len(images):,} test digits"))
    done += _STAGE_WEIGHTS["patches"]
    layers = {}
    for name in names:
        share = _STAGE_WEIGHTS["layers"] * _layer_cost(model, name, names)
        synthesis = synthesise_filters(model, name, settings, report(done, share, f"Synthesising {name}'s filters"))
        done += share
        layers[name] = LayerAtlas(patches=patches[name], synthesis=synthesis)
    if not names:
        done += _STAGE_WEIGHTS["layers"]
    classes = synthesise_classes(model, settings, report(done, 1.0 - done, "Synthesising the 10 classes"))
    if progress is not None:
        progress(1.0, "Done")
    return Atlas(digest=model_digest(model), source=str(source), digit_count=len(images), settings=settings,
                 layers=layers, classes=classes, seconds=time.perf_counter() - began)


def _layer_cost(model, name: str, names: list[str]) -> float:
    """This layer's share of the layers' synthesis time: filters times depth (layers run), normalised."""
    order = [n for n, _ in model.layers]
    modules = {n: model.get_layer(n) for n in names}
    cost = {n: modules[n].filters * (order.index(n) + 1) for n in names}
    return cost[name] / sum(cost.values())


# --------------------------------------------------------------------------------------------- the atlas file
def save_atlas(atlas: Atlas, path) -> Path:
    """Write ``atlas`` to one ``.npz``, atomically (:func:`convviz.npzfile.write_npz`: a temporary file, then a rename).

    Args:
        atlas: from :func:`compute_atlas`.
        path: the destination.

    Returns:
        The path written.

    Raises:
        OSError: the folder cannot be written (nothing is left behind).
    """
    meta = {"digest": atlas.digest, "source": atlas.source, "digit_count": atlas.digit_count,
            "settings": asdict(atlas.settings), "layers": list(atlas.layers), "seconds": atlas.seconds}
    arrays = {"atlas_version": np.array(atlas.version), "meta": np.array(json.dumps(meta))}
    for name, layer in atlas.layers.items():
        p, s = layer.patches, layer.synthesis
        arrays.update({f"{name}/field": p.field.as_array(), f"{name}/values": p.values, f"{name}/digits": p.digits,
                       f"{name}/labels": p.labels, f"{name}/positions": p.positions, f"{name}/crops": p.crops,
                       f"{name}/images": p.images, f"{name}/synth": s.images, f"{name}/synth_start": s.start,
                       f"{name}/synth_end": s.end})
    c = atlas.classes
    arrays.update({"classes/synth": c.synthesis.images, "classes/start": c.synthesis.start,
                   "classes/end": c.synthesis.end, "classes/probabilities": c.probabilities})
    return write_npz(path, arrays)


def _array(arrays: dict, key: str, shape: tuple, kinds: str, low=None, high=None) -> np.ndarray:
    """``arrays[key]``, checked: present, of ``shape``, of a dtype kind in ``kinds``, finite, within [low, high]."""
    if key not in arrays:
        raise ValueError(f"missing the array {key!r}")
    value = arrays[key]
    if value.shape != shape or value.dtype.kind not in kinds:
        raise ValueError(f"{key} has shape {value.shape} dtype {value.dtype}, expected {shape} of kind {kinds!r}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ValueError(f"{key} contains NaN or infinite values")
    if value.size and ((low is not None and value.min() < low) or (high is not None and value.max() > high)):
        raise ValueError(f"{key} has values outside [{low}, {high}]")
    return value


def load_atlas(path, model) -> Atlas:
    """Read an atlas written by :func:`save_atlas` for ``model``, every array checked against the model.

    Read through :func:`convviz.npzfile.read_npz` within :data:`ATLAS_LIMITS`. The atlas must be of
    :data:`ATLAS_VERSION`, for this model (:func:`model_digest`), with one entry per convolution
    layer whose receptive field equals :func:`receptive_fields`' and whose arrays have the shapes,
    types and ranges :func:`compute_atlas` gives (patches equal to the crops of their digits). The
    file is never changed.

    Args:
        path: the file.
        model: the :class:`convviz.model.ScratchCNN` it should describe.

    Returns:
        :class:`Atlas`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: anything else wrong, naming the file and the problem (an atlas of another model,
            of another version, or damaged).
    """
    arrays = read_npz(path, "atlas", limits=ATLAS_LIMITS)
    try:
        version = arrays.get("atlas_version")
        if version is None or version.shape != () or version.dtype.kind not in "iu" or int(version) != ATLAS_VERSION:
            raise ValueError(f"atlas_version must be {ATLAS_VERSION}, got {version!r}")
        meta_text = arrays.get("meta")
        if meta_text is None or meta_text.shape != () or meta_text.dtype.kind != "U":
            raise ValueError("missing the 'meta' text")
        meta = parse_json(meta_text, "its meta", max_chars=ATLAS_LIMITS.max_text_chars)
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
        if meta.get("digest") != model_digest(model):
            raise ValueError("it was computed for another model (the weights or the spec differ)")
        names = conv_layer_names(model)
        if meta.get("layers") != names:
            raise ValueError(f"its layers {str(meta.get('layers'))[:200]} are not the model's convolutions {names}")
        count = meta.get("digit_count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"digit_count must be an integer >= 1, got {str(count)[:40]}")
        source, seconds = meta.get("source"), meta.get("seconds")
        if not isinstance(source, str) or len(source) > 500:
            raise ValueError("source must be text of at most 500 characters")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < 1e7:
            raise ValueError(f"seconds must be a number from 0, got {str(seconds)[:40]}")
        settings = meta.get("settings")
        if not isinstance(settings, dict) or set(settings) != set(AscentSettings.__dataclass_fields__):
            raise ValueError("settings are not AscentSettings")
        settings = AscentSettings(**settings)
        fields = receptive_fields(model.spec)
        modules = {name: model.get_layer(name) for name in names}
        k = min(TOP_K, count)
        layers = {}
        for name in names:
            f, rf = modules[name].filters, fields[name]
            stored = _array(arrays, f"{name}/field", (9,), "iu")
            if not np.array_equal(stored, rf.as_array()):
                raise ValueError(f"{name}'s receptive field {stored.tolist()} is not the model's "
                                 f"{rf.as_array().tolist()}")
            h_out, w_out = rf.output_shape[:2]
            digits = _array(arrays, f"{name}/digits", (f, k), "iu", 0, count - 1)
            positions = _array(arrays, f"{name}/positions", (f, k, 2), "iu", 0)
            if positions.size and (positions[..., 0].max() >= h_out or positions[..., 1].max() >= w_out):
                raise ValueError(f"{name}/positions lie outside the layer's {h_out}x{w_out} output")
            images = _array(arrays, f"{name}/images", (f, k, *_INPUT), "u")
            crops = _array(arrays, f"{name}/crops", (f, k, *rf.size), "u")
            if images.dtype != np.uint8 or crops.dtype != np.uint8:
                raise ValueError(f"{name}'s digits and crops must be uint8")
            if not np.array_equal(crops, _crops_of(images, rf, positions)):
                raise ValueError(f"{name}/crops are not the receptive fields of its digits")
            patches = TopPatches(
                layer=name, field=rf, values=_array(arrays, f"{name}/values", (f, k), "f").astype(np.float32),
                digits=digits.astype(np.int64), labels=_array(arrays, f"{name}/labels", (f, k), "iu", -1, 9)
                .astype(np.int64), positions=positions.astype(np.int64), crops=crops, images=images)
            synthesis = Synthesis(images=_array(arrays, f"{name}/synth", (f, *_INPUT), "f", 0.0, 1.0),
                                  start=_array(arrays, f"{name}/synth_start", (f,), "f"),
                                  end=_array(arrays, f"{name}/synth_end", (f,), "f"))
            layers[name] = LayerAtlas(patches=patches, synthesis=synthesis)
        classes = ClassImages(
            synthesis=Synthesis(images=_array(arrays, "classes/synth", (10, *_INPUT), "f", 0.0, 1.0),
                                start=_array(arrays, "classes/start", (10,), "f"),
                                end=_array(arrays, "classes/end", (10,), "f")),
            probabilities=_array(arrays, "classes/probabilities", (10,), "f", 0.0, 1.0))
    except ValueError as exc:
        raise ValueError(f"atlas file {str(path)!r} is invalid: {exc}") from None
    except Exception as exc:  # TypeError, MemoryError...: never past the loader
        raise ValueError(f"atlas file {str(path)!r} is invalid ({type(exc).__name__}: {str(exc)[:300]})") from None
    return Atlas(digest=meta["digest"], source=source, digit_count=count, settings=settings, layers=layers,
                 classes=classes, seconds=float(seconds))


def _crops_of(images: np.ndarray, field_: ReceptiveField, positions: np.ndarray) -> np.ndarray:
    """The receptive fields at ``positions`` of ``(F, k, 28, 28)`` digits (one digit per patch)."""
    f, k = positions.shape[:2]
    flat = images.reshape(f * k, *_INPUT)
    return crop_patches(flat, field_, np.arange(f * k).reshape(f, k), positions)
