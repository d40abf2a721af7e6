"""The from-scratch CNN for MNIST: built from a plain spec, saved to one ``.npz``.

Size: about 600 lines, on purpose: the spec's checks and limits, the model built from a checked spec and the model
file read back through those same checks are one contract, which every reader of a model file, hostile or not,
relies on; split, the limits a file is checked against would live apart from the code they protect.

A *spec* is a list of layer configs (plain dicts, JSON-friendly), for example::

    [{"type": "conv2d", "name": "conv1", "filters": 32, "kernel_size": 3, "activation": "relu"},
     {"type": "maxpool2d", "name": "pool1", "pool_size": 2},
     {"type": "flatten", "name": "flatten"},
     {"type": "dropout", "name": "dropout", "rate": 0.5},
     {"type": "dense", "name": "dense", "units": 10}]

:class:`ScratchCNN` turns it into the core layers of :mod:`convviz.layers`
(our own convolution, pooling, dense and dropout on TensorFlow primitives),
working out each layer's input size from the 28x28x1 input. The final dense
layer gives *logits*; the softmax that turns them into probabilities is
applied by :meth:`ScratchCNN.predict` and shown as the last entry
(``"softmax"``) of :meth:`ScratchCNN.activations`, and the training loss
applies it inside the cross-entropy (numerically safer than taking the log of
a softmax output).

Layout is NHWC: images ``(batch, 28, 28, 1)`` float32 in [0, 1].

A model file is one ``.npz``: the spec as JSON text (key ``spec``), a format
version (key ``format_version``) and one array per variable (keys like
``conv1/kernel``, ``dense/w``: a :class:`~convviz.layers.Dense` layer's ``kernel`` / ``bias`` keep the file
names ``w`` / ``b`` of format version 1). It is written atomically and read with
``allow_pickle=False``; the spec is checked against the known layer types and
argument names, so nothing in a model file is ever executed. Before anything is built, the file is
read within :data:`convviz.npzfile.MODEL_LIMITS` and the spec is checked against the size limits
below (:data:`MAX_LAYERS`, :data:`MAX_FILTERS`, :data:`MAX_WINDOW`, :data:`MAX_UNITS`,
:data:`MAX_ACTIVATION`, :data:`MAX_PARAMS`, :data:`MAX_MULTIPLY_ADDS`), so a small file can never ask for
gigabytes or minutes per digit; passes over many images are cut to :data:`MAX_PASS_NUMBERS`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from convviz.geometry import output_size, pair, positive_int
from convviz.layers import Conv2D, ConvPool, Dense, Dropout, Flatten, MaxPool2D, can_fuse_conv_pool
from convviz.npzfile import MAX_METADATA_CHARS, MAX_SPEC_CHARS, MODEL_LIMITS, parse_json, read_npz, write_npz
from convviz.tensor_ops import get_activation, softmax

__all__ = ["DEFAULT_MODEL_PATH", "FORMAT_VERSION", "INPUT_SHAPE", "LAYER_ARGS", "MAX_ACTIVATION", "MAX_FILTERS",
           "MAX_LAYERS", "MAX_MULTIPLY_ADDS", "MAX_PARAMS", "MAX_PASS_NUMBERS", "MAX_SPEC_CHARS", "MAX_STEP_NUMBERS",
           "MAX_UNITS", "MAX_WINDOW", "NUM_CLASSES", "ARCHITECTURES", "ForwardCost", "ScratchCNN",
           "check_training_batch", "forward_cost", "images_per_pass", "load_checkpoint", "load_model", "make_spec",
           "validate_spec"]

INPUT_SHAPE = (28, 28, 1)
"""Input of every model: ``(height, width, channels)`` of one MNIST digit."""

NUM_CLASSES = 10
FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.npz"
"""The shipped trained model (see ``convviz/models/README.md``)."""

ARCHITECTURES = {
    "seed": "the seed notebook's design: conv 3x3x32 relu -> conv 3x3x64 relu -> flatten -> dense 10 "
            "(softmax), no pooling",
    "fast": "conv 3x3x32 relu -> maxpool 2 -> conv 3x3x64 relu -> maxpool 2 -> flatten -> dropout -> dense 10 "
            "(softmax)",
}
"""The architectures by name (the ``preset`` argument of :func:`make_spec` and a run's settings) and what each builds
(with the default ``filters=(32, 64)``, ``kernel_size=3``)."""

LAYER_ARGS = {
    "conv2d": {"required": {"filters", "kernel_size"},
               "optional": {"strides", "padding", "dilation_rate", "activation"}},
    "maxpool2d": {"required": set(), "optional": {"pool_size", "strides"}},
    "flatten": {"required": set(), "optional": set()},
    "dropout": {"required": {"rate"}, "optional": set()},
    "dense": {"required": {"units"}, "optional": {"activation"}},
}
"""Known layer types and the argument names each accepts (besides ``type`` and ``name``)."""

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

MAX_LAYERS = 24
"""Most layers in a spec."""
MAX_FILTERS = 1024
"""Most filters of one convolution (the Train page offers up to 128)."""
MAX_WINDOW = 28
"""Largest kernel size, stride, dilation rate, pool size and integer padding (pixels): the input's side."""
MAX_UNITS = 4096
"""Most units of one dense layer."""
MAX_ACTIVATION = 1_048_576
"""Most numbers in one layer's output for one image (28 x 28 x 1024 = 802,816 fits)."""
MAX_PATCH_NUMBERS = 16_777_216
"""Most numbers in one convolution's patch matrix for one image, ``h_out * w_out * kernel_height * kernel_width *
in_channels`` (the im2col matrix its forward pass gathers: 64 MiB of float32). A 20 KB file within every other limit
(1x1 conv to 1024 channels, then a 28x28 'same' conv) needed 629 M numbers, 2.34 GiB, to predict one digit. The
shipped model needs 34,848; the largest preset a run's settings allow (``seed``, 256 filters, kernel 7) 3.2 M. A max
pooling whose strides differ from its pool size stacks its windows, ``h_out * w_out * pool_height * pool_width *
channels`` numbers, held to the same limit (a 1x1 conv to 1024 channels, then a 14x14 pool at stride 1: 45 M)."""
MAX_PARAMS = 5_000_000
"""Most weights and biases in a model (20 MB of float32; the largest Train page model has about 0.9 M)."""
MAX_MULTIPLY_ADDS = 1_000_000_000
"""Most multiply-adds of one image's forward pass. The largest architecture a run's settings make (``seed``,
256/256 filters, kernel 7) needs 829 M, the Train page's largest (``seed``, 128/128, kernel 7) 209 M; a 20 MB file
within every other limit (1x1 conv to 1024 channels, then a 2x2 'same' conv to 1024) needed 3.9 G: 9.7 s to
classify one drawn digit."""
MAX_PASS_NUMBERS = 2**26
"""Most numbers (:attr:`ForwardCost.numbers` times images) one inference pass holds: 256 MiB of float32.
:meth:`ScratchCNN.logits`, :func:`convviz.train.evaluate` and the atlas cut their batches to fit
(:func:`images_per_pass`); before, a legal model held about 21 GB for one pass of 1,000 digits."""
MAX_STEP_NUMBERS = 2**28
"""Most numbers one training batch's forward pass holds (1 GiB of float32; the step holds about 3-4 times that
with its gradients, so a worker stays under about 4 GiB). ``seed`` 32/64 kernel 3 fits a batch of 1,024; the
page's largest architecture a batch of 154 (:func:`check_training_batch`)."""
_MAX_SPEC_DEPTH = 4  # list of layers -> layer dict -> a (rows, cols) pair


def make_spec(preset: str, filters=(32, 64), kernel_size=3, dropout: float = 0.5) -> list[dict]:
    """Build the spec of a preset.

    Args:
        preset: the architecture, ``"seed"`` or ``"fast"`` (see :data:`ARCHITECTURES`).
        filters: ``(first, second)`` number of kernels of the two convolutions, each >= 1.
        kernel_size: side of the square kernels (pixels), >= 1; with ``"fast"``
            it must leave at least one cell after the second pooling (<= 9).
        dropout: dropout rate before the dense layer of ``"fast"``, in ``[0, 1)``
            (``"seed"`` has no dropout and ignores it).

    Returns:
        The spec, a list of layer configs (dicts).

    Raises:
        ValueError: an unknown preset or an option out of range, echoing it.

    Example:
        >>> [layer["name"] for layer in make_spec("fast")]
        ['conv1', 'pool1', 'conv2', 'pool2', 'flatten', 'dropout', 'dense']
    """
    if preset not in ARCHITECTURES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(ARCHITECTURES)}")
    if not isinstance(filters, tuple | list) or len(filters) != 2:
        raise ValueError(f"filters must be a pair (first, second), got filters={filters!r}")
    f1, f2 = (positive_int(f, "filters") for f in filters)
    k = positive_int(kernel_size, "kernel_size")
    if preset == "seed":
        spec = [
            {"type": "conv2d", "name": "conv1", "filters": f1, "kernel_size": k, "activation": "relu"},
            {"type": "conv2d", "name": "conv2", "filters": f2, "kernel_size": k, "activation": "relu"},
            {"type": "flatten", "name": "flatten"},
            {"type": "dense", "name": "dense", "units": NUM_CLASSES},
        ]
    else:
        if not (isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        spec = [
            {"type": "conv2d", "name": "conv1", "filters": f1, "kernel_size": k, "activation": "relu"},
            {"type": "maxpool2d", "name": "pool1", "pool_size": 2},
            {"type": "conv2d", "name": "conv2", "filters": f2, "kernel_size": k, "activation": "relu"},
            {"type": "maxpool2d", "name": "pool2", "pool_size": 2},
            {"type": "flatten", "name": "flatten"},
            {"type": "dropout", "name": "dropout", "rate": float(dropout)},
            {"type": "dense", "name": "dense", "units": NUM_CLASSES},
        ]
    validate_spec(spec)
    return spec


class ForwardCost(NamedTuple):
    """What one forward pass of one image costs a checked spec (see :func:`forward_cost`)."""

    multiply_adds: int
    """Multiply-adds of the convolutions and dense layers (one image)."""
    numbers: int
    """float32 numbers a forward pass holds per image: the input, every layer's output and the largest
    convolution patch matrix (``h_out * w_out * kernel_height * kernel_width * in_channels``) or stack of
    overlapping pooling windows."""


def forward_cost(spec) -> ForwardCost:
    """Multiply-adds and working numbers of one forward pass of one image through ``spec``.

    ``numbers * 4`` bytes tracks the memory measured per image in inference: 6.3 MB computed against 6.5 MB
    measured for ``seed`` 128/128 kernel 9, and 21.7 MB against about 21 MB for a 1x1 to 1024 channels then 2x2
    'same' model (``ru_maxrss`` over batches of 25-300 digits). A training step holds about 3-4 times that
    (measured 2.1-4.0x, ``benchmarks/train_step_memory.py``): activations kept for the gradient, and the gradients.

    Raises:
        ValueError: as :func:`validate_spec`.
    """
    return _checked(spec)[1]


def images_per_pass(cost: ForwardCost, requested: int) -> int:
    """How many images one inference pass may hold: ``requested``, cut so ``numbers`` fits :data:`MAX_PASS_NUMBERS`.

    Args:
        cost: the model's :func:`forward_cost`.
        requested: the caller's batch size, >= 1.

    Returns:
        ``min(requested, max(1, MAX_PASS_NUMBERS // cost.numbers))``.

    Raises:
        ValueError: ``requested`` below 1 or not an integer.
    """
    return min(positive_int(requested, "batch_size"), max(1, MAX_PASS_NUMBERS // max(1, cost.numbers)))


def check_training_batch(spec, batch_size: int) -> None:
    """Refuse a training batch whose forward pass would hold more than :data:`MAX_STEP_NUMBERS` numbers.

    Args:
        spec: a layer spec (checked with :func:`validate_spec`).
        batch_size: digits per gradient step, >= 1.

    Raises:
        ValueError: a bad spec or batch size, or a batch over the limit, naming the largest batch that fits,
            e.g. ``"a training batch of 512 digits through this architecture holds 887,763,968 numbers per step
            (about 3.3 GiB before the gradients), over MAX_STEP_NUMBERS=268,435,456: use a batch of at most 154"``.
    """
    numbers = forward_cost(spec).numbers
    batch_size = positive_int(batch_size, "batch_size")
    if numbers * batch_size > MAX_STEP_NUMBERS:
        raise ValueError(f"a training batch of {batch_size} digits through this architecture holds "
                         f"{numbers * batch_size:,} numbers per step (about {numbers * batch_size * 4 / 2**30:.1f} GiB "
                         f"before the gradients), over MAX_STEP_NUMBERS={MAX_STEP_NUMBERS:,}: use a batch of at most "
                         f"{max(1, MAX_STEP_NUMBERS // numbers)}")


def validate_spec(spec) -> list[tuple[int, ...]]:
    """Check a spec and work out every layer's output shape (without the batch axis).

    Only the layer types and argument names of :data:`LAYER_ARGS` are
    accepted; values are range-checked; shapes are propagated from
    :data:`INPUT_SHAPE`, and the last layer must give ``(10,)``.

    Args:
        spec: a list of layer configs.

    Returns:
        One shape per layer, e.g. ``(26, 26, 32)`` after a 3x3x32 convolution.

    Limits: :data:`MAX_LAYERS`, :data:`MAX_FILTERS`, :data:`MAX_WINDOW`, :data:`MAX_UNITS`, :data:`MAX_ACTIVATION`
    (one layer's output), :data:`MAX_PATCH_NUMBERS` (one convolution's patch matrix, per image),
    :data:`MAX_PARAMS` and :data:`MAX_MULTIPLY_ADDS` (one image's forward pass).

    Raises:
        ValueError: anything wrong, naming the layer and the bad value.
    """
    return _checked(spec)[0]


def _checked(spec) -> tuple[list[tuple[int, ...]], ForwardCost]:
    """:func:`validate_spec`'s checks; the shapes and the :class:`ForwardCost`."""
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"spec must be a non-empty list of layer configs, got {type(spec).__name__}")
    if len(spec) > MAX_LAYERS:
        raise ValueError(f"spec has {len(spec)} layers, over the limit of MAX_LAYERS={MAX_LAYERS}")
    shape: tuple[int, ...] = INPUT_SHAPE
    shapes, names, params, multiply_adds, numbers, largest_patches = [], set(), 0, 0, int(np.prod(INPUT_SHAPE)), 0
    for index, layer in enumerate(spec):
        if not isinstance(layer, dict):
            raise ValueError(f"spec[{index}] must be a dict, got {str(layer)[:80]}")
        kind = layer.get("type")
        if not isinstance(kind, str) or kind not in LAYER_ARGS:
            raise ValueError(f"spec[{index}] has unknown type={str(kind)[:80]!r}; choose one of {sorted(LAYER_ARGS)}")
        name = layer.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name == "softmax":
            raise ValueError(f"spec[{index}] needs a name of letters, digits and _ (not 'softmax'), "
                             f"got name={str(name)[:80]!r}")
        if name in names:
            raise ValueError(f"spec[{index}] repeats name={name!r}")
        names.add(name)
        allowed = LAYER_ARGS[kind]
        keys = set(layer) - {"type", "name"}
        unknown = keys - allowed["required"] - allowed["optional"]
        if unknown:
            raise ValueError(f"layer {name!r} ({kind}) has unknown arguments {sorted(unknown)}; "
                             f"allowed: {sorted(allowed['required'] | allowed['optional'])}")
        missing = allowed["required"] - keys
        if missing:
            raise ValueError(f"layer {name!r} ({kind}) is missing {sorted(missing)}")
        in_shape, shape = shape, _output_shape(kind, layer, shape, name)
        cells = int(np.prod(shape, dtype=object))
        if cells > MAX_ACTIVATION:
            raise ValueError(f"layer {name!r} ({kind}) outputs {shape} = {cells:,} numbers per image, over the limit "
                             f"of MAX_ACTIVATION={MAX_ACTIVATION:,}")
        if kind == "conv2d":
            kh, kw = pair(layer["kernel_size"], "kernel_size")
            params += kh * kw * in_shape[-1] * shape[-1] + shape[-1]
            patches = shape[0] * shape[1] * kh * kw * in_shape[-1]
            if patches > MAX_PATCH_NUMBERS:
                raise ValueError(f"layer {name!r} (conv2d) gathers {shape[0]}x{shape[1]} windows of {kh}x{kw}x"
                                 f"{in_shape[-1]} = {patches:,} numbers per image, over the limit of "
                                 f"MAX_PATCH_NUMBERS={MAX_PATCH_NUMBERS:,}")
            multiply_adds += patches * shape[-1]
            largest_patches = max(largest_patches, patches)
        elif kind == "maxpool2d":
            ph, pw = pair(layer.get("pool_size", 2), "pool_size")
            strides = layer.get("strides")
            if strides is not None and pair(strides, "strides") != (ph, pw):  # overlapping or gapped windows are
                windows = shape[0] * shape[1] * ph * pw * in_shape[-1]  # stacked (tensor_ops.max_pool2d)
                if windows > MAX_PATCH_NUMBERS:
                    raise ValueError(f"layer {name!r} (maxpool2d) stacks {shape[0]}x{shape[1]} windows of {ph}x{pw}x"
                                     f"{in_shape[-1]} = {windows:,} numbers per image, over the limit of "
                                     f"MAX_PATCH_NUMBERS={MAX_PATCH_NUMBERS:,}")
                largest_patches = max(largest_patches, windows)
        elif kind == "dense":
            params += in_shape[0] * shape[0] + shape[0]
            multiply_adds += in_shape[0] * shape[0]
        if params > MAX_PARAMS:
            raise ValueError(f"the model up to layer {name!r} has {params:,} weights, over the limit of "
                             f"MAX_PARAMS={MAX_PARAMS:,}")
        if multiply_adds > MAX_MULTIPLY_ADDS:
            raise ValueError(f"the model up to layer {name!r} needs {multiply_adds:,} multiply-adds per image, over "
                             f"the limit of MAX_MULTIPLY_ADDS={MAX_MULTIPLY_ADDS:,}")
        numbers += cells
        shapes.append(shape)
    if shapes[-1] != (NUM_CLASSES,):
        raise ValueError(f"the last layer must output {NUM_CLASSES} class scores, got shape {shapes[-1]}")
    return shapes, ForwardCost(multiply_adds, numbers + largest_patches)


def _output_shape(kind: str, cfg: dict, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """Output shape of one layer given its input shape (no batch axis); validates the config and its limits."""
    try:
        if kind in ("conv2d", "maxpool2d") and len(shape) != 3:
            raise ValueError(f"needs an image input (height, width, channels), got shape {shape}")
        if kind == "dense" and len(shape) != 1:
            raise ValueError(f"needs a flat input (features,), got shape {shape}; add a flatten layer before it")
        if kind == "conv2d":
            filters = _at_most(positive_int(cfg["filters"], "filters"), "filters", MAX_FILTERS, "MAX_FILTERS")
            kh, kw = _window(cfg["kernel_size"], "kernel_size")
            sh, sw = _window(cfg.get("strides", 1), "strides")
            dh, dw = _window(cfg.get("dilation_rate", 1), "dilation_rate")
            padding = cfg.get("padding", "valid")
            if not (padding in ("valid", "same") or (isinstance(padding, int) and not isinstance(padding, bool)
                                                     and 0 <= padding <= MAX_WINDOW)):
                raise ValueError(f"padding must be 'valid', 'same' or an int from 0 to the limit MAX_WINDOW={MAX_WINDOW}, "
                                 f"got padding={str(padding)[:80]}")
            _activation(cfg.get("activation", "linear"))
            return (output_size(shape[0], kh, sh, padding, dh), output_size(shape[1], kw, sw, padding, dw), filters)
        if kind == "maxpool2d":
            ph, pw = _window(cfg.get("pool_size", 2), "pool_size")
            strides = cfg.get("strides")
            sh, sw = (ph, pw) if strides is None else _window(strides, "strides")
            if shape[0] < ph or shape[1] < pw:
                raise ValueError(f"pool_size={(ph, pw)} is larger than the input {shape[0]}x{shape[1]}")
            return (output_size(shape[0], ph, sh), output_size(shape[1], pw, sw), shape[2])
        if kind == "flatten":
            return (int(np.prod(shape)),)
        if kind == "dropout":
            rate = cfg["rate"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
                raise ValueError(f"rate must be in [0, 1), got rate={str(rate)[:80]}")
            return shape
        units = _at_most(positive_int(cfg["units"], "units"), "units", MAX_UNITS, "MAX_UNITS")
        _activation(cfg.get("activation", "linear"))
        return (units,)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"layer {name!r} ({kind}): {str(exc)[:300]}") from None


def _at_most(value: int, name: str, limit: int, limit_name: str) -> int:
    if value > limit:
        raise ValueError(f"{name} must be at most the limit {limit_name}={limit}, got {name}={str(value)[:40]}")
    return value


def _window(value, name: str) -> tuple[int, int]:
    """:func:`convviz.geometry.pair`, each side at most :data:`MAX_WINDOW`."""
    if isinstance(value, tuple | list) and len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {name}={str(value)[:80]}")
    rows, cols = pair(value, name)
    return (_at_most(rows, name, MAX_WINDOW, "MAX_WINDOW"), _at_most(cols, name, MAX_WINDOW, "MAX_WINDOW"))


def _activation(name) -> None:
    if not isinstance(name, str):
        raise ValueError(f"activation must be a name, got {str(name)[:80]}")
    get_activation(name)


def _layer_seed(seed: int | None, index: int) -> int | None:
    """A distinct, repeatable initialisation seed for layer ``index`` of a model seeded ``seed``."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class ScratchCNN(tf.Module):
    """A CNN made of the from-scratch layers of :mod:`convviz.layers`.

    Args:
        spec: a list of layer configs (see :func:`make_spec`, :func:`validate_spec`).
        seed: initialisation seed (int >= 0); the same seed gives the same weights.

    Attributes:
        spec: the (validated) spec, a list of dicts (a copy).
        layers: list of ``(name, tf.Module)`` in order, one per spec entry (:meth:`get_layer` finds one by name).
        blocks: list of ``(name, tf.Module)``, what the model runs: the layers, except that each convolution
            followed by a 2x2 max pooling that :func:`convviz.layers.can_fuse_conv_pool` accepts is one
            :class:`convviz.layers.ConvPool` block (named ``"conv1+pool1"``) that owns the two layers.
        output_shapes: dict ``name -> shape`` without the batch axis.
        cost: the spec's :class:`ForwardCost` per image (multiply-adds, working numbers).
        seed: the initialisation seed.

    Call:
        ``model(x, training=False, seed=None, fused=True)`` with ``x`` float32
        ``(batch, 28, 28, 1)`` -> logits ``(batch, 10)``: the :attr:`blocks` in order. ``seed``
        (shape-(2,) int tensor) makes dropout masks repeatable in training. ``fused=False`` runs the
        :attr:`layers` instead, each on its own, as :meth:`activations` does: the same values, but a tied
        pool window shares its gradient among the tied cells, where a fused block sends it to one cell
        (the saliency map uses ``fused=False``).

    Raises:
        ValueError: an invalid spec or seed, naming the bad value.
    """

    def __init__(self, spec, seed: int | None = 0):
        super().__init__(name="scratch_cnn")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got seed={seed!r}")
        shapes, self.cost = _checked(spec)
        # Kept as JSON text: tf.Module would wrap a plain list/dict attribute in its tracking wrappers.
        self._spec_json = json.dumps(spec)
        self.seed = seed
        plain = self.spec
        self._shapes_json = json.dumps([[cfg["name"], list(shape)] for cfg, shape in zip(plain, shapes)])
        in_shape: tuple[int, ...] = INPUT_SHAPE
        layers = []
        for index, (cfg, shape) in enumerate(zip(plain, shapes)):
            kind, name = cfg["type"], cfg["name"]
            args = {k: v for k, v in cfg.items() if k not in ("type", "name")}
            if kind == "conv2d":
                module = Conv2D(in_shape[-1], seed=_layer_seed(seed, index), name=name, **args)
            elif kind == "maxpool2d":
                module = MaxPool2D(name=name, **args)
            elif kind == "flatten":
                module = Flatten(name=name)
            elif kind == "dropout":
                module = Dropout(name=name, **args)
            else:
                module = Dense(in_shape[0], seed=_layer_seed(seed, index), name=name, **args)
            layers.append((name, module))
            in_shape = shape
        self.layers = layers
        self.blocks = _blocks(layers)

    @property
    def spec(self) -> list[dict]:
        """The validated spec (a fresh copy of plain dicts)."""
        return json.loads(self._spec_json)

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``layer name -> output shape`` without the batch axis, e.g. ``{"conv1": (26, 26, 32), ...}``."""
        return {name: tuple(shape) for name, shape in json.loads(self._shapes_json)}

    @classmethod
    def from_preset(cls, name: str, seed: int | None = 0, **options) -> ScratchCNN:
        """Build a preset model: ``ScratchCNN(make_spec(name, **options), seed)``.

        Args:
            name: ``"seed"`` or ``"fast"``.
            seed: initialisation seed.
            **options: ``filters``, ``kernel_size``, ``dropout`` of :func:`make_spec`.

        Returns:
            A freshly initialised :class:`ScratchCNN`.

        Raises:
            ValueError: an unknown preset or option value.
        """
        return cls(make_spec(name, **options), seed=seed)

    def _run(self, x, steps, training: bool = False, seed=None):
        """Run ``steps`` (:attr:`blocks` or :attr:`layers`) in order: the output and every step's, by name.

        A dropout layer's mask seed is ``seed`` folded with the layer's place in the spec, so the fused
        and the layer-by-layer runs drop the same values.
        """
        outputs = {}
        for name, module in steps:
            if isinstance(module, Dropout):
                index = self._dropout_index[name]
                layer_seed = None if seed is None else tf.random.experimental.stateless_fold_in(seed, index)
                x = module(x, training=training, seed=layer_seed)
            else:
                x = module(x)
            outputs[name] = x
        return x, outputs

    @property
    def _dropout_index(self) -> dict[str, int]:
        return {name: index for index, (name, module) in enumerate(self.layers) if isinstance(module, Dropout)}

    def __call__(self, x, training: bool = False, seed=None, fused: bool = True):
        return self._run(x, self.blocks if fused else self.layers, training, seed)[0]

    def get_layer(self, name: str) -> tf.Module:
        """The layer called ``name`` (as Keras's ``Model.get_layer``), e.g. ``model.get_layer("conv1").kernel``.

        Raises:
            ValueError: no layer of that name, listing the model's.
        """
        for layer_name, module in self.layers:
            if layer_name == name:
                return module
        raise ValueError(f"the model has no layer {name!r}; its layers are {[n for n, _ in self.layers]}")

    def activations(self, x) -> dict[str, np.ndarray]:
        """Every layer's output for a batch of images (inference mode: dropout is the identity).

        Args:
            x: ``(batch, 28, 28)`` or ``(batch, 28, 28, 1)`` floats in [0, 1].

        Returns:
            Ordered dict ``layer name -> np.ndarray``: e.g. ``conv1`` ``(batch, 26, 26, 32)``,
            ..., ``dense`` (logits) ``(batch, 10)``, and last ``softmax``: probabilities ``(batch, 10)``.

        Raises:
            ValueError: a wrong input shape or non-finite values.
        """
        x = _as_input(x)
        logits, outputs = self._run(tf.constant(x), self.layers)
        result = {name: value.numpy() for name, value in outputs.items()}
        result["softmax"] = softmax(logits).numpy()
        return result

    def logits(self, images, batch_size: int = 1000) -> np.ndarray:
        """Class scores before the softmax, in inference mode (compiled forward pass).

        Args:
            images: ``(batch, 28, 28)`` (or ``(batch, 28, 28, 1)``) floats in [0, 1].
            batch_size: images per forward pass (memory), >= 1; cut to fit :data:`MAX_PASS_NUMBERS`
                (:func:`images_per_pass`).

        Returns:
            float32 ``(batch, 10)``.

        Raises:
            ValueError: a wrong shape or non-finite values.
        """
        x = _as_input(images)
        batch_size = images_per_pass(self.cost, batch_size)
        parts = [self._logits(tf.constant(x[i: i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)

    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities for images: the softmax of :meth:`logits`.

        Args:
            images: ``(batch, 28, 28)`` (or ``(batch, 28, 28, 1)``) floats in [0, 1].
            batch_size: images per forward pass (memory), >= 1.

        Returns:
            float32 ``(batch, 10)``; each row sums to 1.

        Raises:
            ValueError: a wrong shape or non-finite values.
        """
        return softmax(self.logits(images, batch_size)).numpy()

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.float32)], reduce_retracing=True)
    def _logits(self, x):
        return self(x, training=False)

    def _variables(self) -> dict[str, tf.Variable]:
        """Every variable by its model-file key, ``"layer/variable"`` (the layer's ``saved_names``)."""
        return {f"{name}/{saved}": getattr(module, attr) for name, module in self.layers
                for attr, saved in getattr(module, "saved_names", {}).items()}

    def weights(self) -> dict[str, np.ndarray]:
        """Every variable as ``{"layer/variable": np.ndarray}`` (e.g. ``conv1/kernel``, ``dense/w``), copies."""
        return {key: variable.numpy() for key, variable in self._variables().items()}

    def set_weights(self, weights: dict) -> None:
        """Assign every variable from ``{"layer/variable": array}``, as :meth:`weights` gives (another model of
        the same spec, or a model file's arrays). Everything is checked before anything is assigned.

        Args:
            weights: one float32 array per key of :meth:`weights`, of the same shape, all finite.

        Raises:
            ValueError: other keys, a shape or dtype that differs, or NaN / infinity, naming the key.
        """
        variables = self._variables()
        if set(weights) != set(variables):
            raise ValueError(f"arrays {sorted(weights)} do not match the spec's variables {sorted(variables)}")
        for key, value in weights.items():
            expected = tuple(variables[key].shape)
            if np.shape(value) != expected or getattr(value, "dtype", None) != np.float32:
                raise ValueError(f"{key} has shape {np.shape(value)} dtype {getattr(value, 'dtype', None)}, "
                                 f"expected {expected} float32")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{key} contains NaN or infinite values")
        for key, value in weights.items():
            variables[key].assign(value)

    def count_params(self) -> int:
        """Number of trainable numbers (weights and biases)."""
        return int(sum(v.size for v in self.weights().values()))

    def save(self, path, metadata: dict | None = None, history: dict | None = None) -> Path:
        """Write the spec and weights (and optional metadata) to one ``.npz``, atomically.

        The file is written under a temporary name in the same directory and
        then moved into place with ``os.replace``, so a crash never leaves a
        half-written model at ``path``.

        Args:
            path: destination file (``.npz`` is not appended).
            metadata: optional JSON-serialisable dict stored as JSON text under
                the key ``metadata`` (a training run's settings and history);
                read back by :func:`load_checkpoint`.
            history: optional ``{"history_<name>": 1-D float64 array}`` members (a run's per-batch history,
                :class:`convviz.runs.RunStore`); model loaders skip every ``history_*`` member.

        Returns:
            The path written.

        Raises:
            OSError: the directory cannot be written.
        """
        arrays = {"format_version": np.array(FORMAT_VERSION), "spec": np.array(json.dumps(self.spec))}
        if metadata is not None:
            arrays["metadata"] = np.array(json.dumps(metadata, allow_nan=False))
        arrays.update({k: v for k, v in (history or {}).items() if k.startswith("history_")})
        arrays.update(self.weights())
        return write_npz(path, arrays)


def _blocks(layers: list) -> list:
    """``layers`` as the model runs them: each fusable convolution -> pooling pair one :class:`ConvPool` block."""
    blocks, index = [], 0
    while index < len(layers):
        name, module = layers[index]
        if index + 1 < len(layers) and can_fuse_conv_pool(module, layers[index + 1][1]):
            pool_name, pool = layers[index + 1]
            blocks.append((f"{name}+{pool_name}", ConvPool(module, pool)))
            index += 2
        else:
            blocks.append((name, module))
            index += 1
    return blocks


def _as_input(images) -> np.ndarray:
    """Images as float32 ``(batch, 28, 28, 1)``, checked."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"images must have shape (batch, 28, 28) or (batch, 28, 28, 1), got {np.shape(images)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinite values")
    return x


def load_model(path) -> ScratchCNN:
    """Read a model written by :meth:`ScratchCNN.save`.

    Args:
        path: the ``.npz`` file.

    Returns:
        The :class:`ScratchCNN` with the saved weights.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a truncated, corrupt or mismatched file (unreadable zip,
            missing or extra arrays, wrong shapes, unknown layer types or
            arguments, non-finite weights), or a folder or named pipe at ``path``, naming the path.
    """
    return _read_model_file(path)[0]


def load_checkpoint(path) -> tuple[ScratchCNN, dict]:
    """Read a model file written with ``save(path, metadata=...)``: the model and its metadata.

    Args:
        path: the ``.npz`` file.

    Returns:
        ``(model, metadata)``; ``metadata`` is ``{}`` when the file has none.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: as :func:`load_model`, or metadata that is not a JSON object, naming the file.
    """
    model, text = _read_model_file(path)
    if text is None:
        return model, {}
    metadata = parse_json(text, f"model file {str(path)!r}: metadata", max_chars=MAX_METADATA_CHARS)
    if not isinstance(metadata, dict):
        raise ValueError(f"model file {str(path)!r} has metadata that is not a JSON object")
    return model, metadata


def _read_model_file(path) -> tuple[ScratchCNN, object]:
    """The checked model and its raw metadata text (or None); see :func:`load_model`."""
    arrays = read_npz(path, "model", limits=MODEL_LIMITS)
    try:
        metadata_text = arrays.pop("metadata", None)
        for key in [k for k in arrays if k.startswith("history_")]:  # a run's history (convviz.runs), not weights
            arrays.pop(key)
        if metadata_text is not None and (metadata_text.shape != () or metadata_text.dtype.kind != "U"):
            raise ValueError("'metadata' must be JSON text")
        version = arrays.pop("format_version", None)
        if version is None or version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise ValueError(f"format_version must be {FORMAT_VERSION}, got {version!r}")
        spec_text = arrays.pop("spec", None)
        if spec_text is None:
            raise ValueError("missing the 'spec' text")
        spec = parse_json(spec_text, "the spec", max_chars=MAX_SPEC_CHARS, max_depth=_MAX_SPEC_DEPTH)
        model = ScratchCNN(spec, seed=None)
        model.set_weights(arrays)
    except ValueError as exc:
        raise ValueError(f"model file {str(path)!r} is invalid: {exc}") from None
    except Exception as exc:  # TypeError, MemoryError, a TensorFlow error...: never past the loader
        raise ValueError(f"model file {str(path)!r} is invalid ({type(exc).__name__}: {str(exc)[:300]})") from None
    return model, metadata_text
