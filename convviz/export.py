"""Take the model home: a ConvViz model as its weights file, a Keras script, and a ``.keras`` file.

Three files for one :class:`convviz.model.ScratchCNN`:

* :func:`weights_npz` — the model's own ``.npz`` (written by :meth:`ScratchCNN.save`: the spec as JSON,
  ``format_version`` and one float32 array per variable, ``conv1/kernel``, ``dense/w``, ...);
* :func:`keras_script` — a runnable, readable Python file that builds the same network from ``tf.keras``
  layers (``Conv2D``, ``ZeroPadding2D``, ``MaxPooling2D``, ``Flatten``, ``Dropout``, ``Dense``, ``Softmax``),
  loads those arrays into it, and predicts on a picture or a ``.npy`` of digits;
* :func:`keras_file` — the same Keras model, weights set, saved in Keras's own format
  (``keras.Model.save``, a ``.keras`` zip), as bytes.

Both Keras models come from one plan, :func:`keras_plan`: one :class:`KerasLayer` record (class name,
keyword arguments, the ``.npz`` arrays it takes) per Keras layer, so the script and the ``.keras`` file
cannot drift apart. The mapping is exact, layer by layer:

* ``conv2d`` -> ``Conv2D(filters, kernel_size, strides, padding, dilation_rate, activation)``. Keras's
  kernel is ``(kernel_height, kernel_width, in_channels, filters)`` and its bias ``(filters,)``, the
  layout of ours (https://keras.io/api/layers/convolution_layers/convolution2d/). ``"valid"`` and
  ``"same"`` mean the same in both (TensorFlow's SAME: the odd extra zero goes after). Our integer
  padding ``p`` becomes ``ZeroPadding2D(((p, p), (p, p)))`` before a ``"valid"`` convolution
  (https://keras.io/api/layers/reshaping_layers/zero_padding2d/).
* ``maxpool2d`` -> ``MaxPooling2D(pool_size, strides, padding="valid")``
  (https://keras.io/api/layers/pooling_layers/max_pooling2d/); ``strides`` ``None`` is the pool size in both.
* ``flatten`` -> ``Flatten`` (row-major over ``(height, width, channels)``, as ours;
  https://keras.io/api/layers/reshaping_layers/flatten/). Every spatial layer is given
  ``data_format="channels_last"``, so a ``keras.json`` set to ``channels_first`` changes nothing.
* ``dropout`` -> ``Dropout(rate)``: the identity at inference in both (https://keras.io/api/layers/regularization_layers/dropout/).
* ``dense`` -> ``Dense(units, activation)``: kernel ``(in, units)``, bias ``(units,)``, as our ``w``, ``b``
  (https://keras.io/api/layers/core_layers/dense/).
* Activations by name: ``linear``, ``relu``, ``sigmoid``, ``softmax`` (last axis) and ``leaky_relu``
  (Keras 3's default ``negative_slope=0.2`` is our slope; https://keras.io/api/layers/activations/).
* Our last dense layer gives logits and :meth:`ScratchCNN.predict` applies the softmax; the Keras model
  ends in a ``Softmax`` layer named ``softmax`` (https://keras.io/api/layers/activation_layers/softmax/),
  so ``keras_model.predict`` gives the same probabilities.

What Keras cannot express as one of these layers raises :class:`ValueError` naming the layer and the
values, never a different model: a convolution with both a stride and a dilation rate above 1 (Keras's
``Conv2D`` refuses ``strides > 1`` with ``dilation_rate > 1``). Everything else a spec may hold
(:func:`convviz.model.validate_spec`) maps.

No Streamlit here. Keras is imported only by :func:`build_keras_model` / :func:`keras_file`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convviz.geometry import pair
from convviz.model import INPUT_SHAPE, NUM_CLASSES, validate_spec

__all__ = ["KerasLayer", "PROBE_TOLERANCE", "build_keras_model", "describe_layer", "keras_file", "keras_plan",
           "keras_script", "weights_npz"]

PROBE_TOLERANCE = 1e-5
"""Largest difference of probabilities allowed between the Keras model and ours on the probe digits."""


@dataclass(frozen=True)
class KerasLayer:
    """One Keras layer of the exported model.

    Attributes:
        keras_class: the class name in ``keras.layers`` (``"Conv2D"``, ``"ZeroPadding2D"``, ...).
        kwargs: its keyword arguments, in the order the script writes them (plain ints, floats, str, tuples).
        weights: the ``.npz`` keys of its variables in Keras's order (kernel, bias), ``()`` for none.
        source: the spec layer it comes from (``"conv1"``), or ``""`` for the final softmax.
        shape: its output shape without the batch axis, e.g. ``(26, 26, 32)``.
    """

    keras_class: str
    kwargs: dict = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    source: str = ""
    shape: tuple[int, ...] = ()


def _fresh(name: str, taken: set) -> str:
    """``name``, or ``name_2``, ``name_3``, ... : the first not in ``taken`` (which it joins)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def keras_plan(spec) -> list[KerasLayer]:
    """The Keras layers that compute exactly what a ConvViz spec computes (see the module's mapping).

    Args:
        spec: a ConvViz spec (list of layer configs), e.g. ``model.spec`` or :func:`convviz.model.make_spec`'s.

    Returns:
        One :class:`KerasLayer` per Keras layer, input excluded: a spec layer each (an integer-padded
        convolution gives two, ``ZeroPadding2D`` then ``Conv2D``), then ``Softmax`` named ``softmax``.

    Raises:
        ValueError: an invalid spec (as :func:`convviz.model.validate_spec`), or a layer Keras cannot
            express exactly, naming it, e.g. ``layer 'conv1': Keras's Conv2D cannot combine strides > 1
            with dilation_rate > 1, got strides=(2, 2), dilation_rate=(2, 2)``.

    Example:
        >>> from convviz.model import make_spec
        >>> [(layer.keras_class, layer.kwargs["name"]) for layer in keras_plan(make_spec("seed"))]
        [('Conv2D', 'conv1'), ('Conv2D', 'conv2'), ('Flatten', 'flatten'), ('Dense', 'dense'), ('Softmax', 'softmax')]
    """
    shapes = validate_spec(spec)
    taken = {layer["name"] for layer in spec} | {"softmax"}
    plan: list[KerasLayer] = []
    in_shape = INPUT_SHAPE
    for cfg, shape in zip(spec, shapes):
        kind, name = cfg["type"], cfg["name"]
        if kind == "conv2d":
            strides, dilation = pair(cfg.get("strides", 1), "strides"), pair(cfg.get("dilation_rate", 1), "dilation_rate")
            if max(strides) > 1 and max(dilation) > 1:
                raise ValueError(f"layer {name!r}: Keras's Conv2D cannot combine strides > 1 with dilation_rate > 1, "
                                 f"got strides={strides}, dilation_rate={dilation}; this model cannot be exported to "
                                 "Keras exactly (its weights .npz still can)")
            padding = cfg.get("padding", "valid")
            if isinstance(padding, int):
                if padding > 0:
                    padded = (in_shape[0] + 2 * padding, in_shape[1] + 2 * padding, in_shape[2])
                    plan.append(KerasLayer("ZeroPadding2D", {
                        "padding": ((padding, padding), (padding, padding)), "data_format": "channels_last",
                        "name": _fresh(f"{name}_pad", taken)}, source=name, shape=padded))
                padding = "valid"
            plan.append(KerasLayer("Conv2D", {
                "filters": int(cfg["filters"]), "kernel_size": pair(cfg["kernel_size"], "kernel_size"),
                "strides": strides, "padding": padding, "dilation_rate": dilation,
                "activation": cfg.get("activation", "linear"), "data_format": "channels_last", "name": name},
                weights=(f"{name}/kernel", f"{name}/bias"), source=name, shape=shape))
        elif kind == "maxpool2d":
            pool = pair(cfg.get("pool_size", 2), "pool_size")
            strides = pool if cfg.get("strides") is None else pair(cfg["strides"], "strides")
            plan.append(KerasLayer("MaxPooling2D", {
                "pool_size": pool, "strides": strides, "padding": "valid", "data_format": "channels_last",
                "name": name}, source=name, shape=shape))
        elif kind == "flatten":
            plan.append(KerasLayer("Flatten", {"data_format": "channels_last", "name": name}, source=name, shape=shape))
        elif kind == "dropout":
            plan.append(KerasLayer("Dropout", {"rate": float(cfg["rate"]), "name": name}, source=name, shape=shape))
        else:
            plan.append(KerasLayer("Dense", {"units": int(cfg["units"]), "activation": cfg.get("activation", "linear"),
                                             "name": name}, weights=(f"{name}/w", f"{name}/b"), source=name, shape=shape))
        in_shape = shape
    plan.append(KerasLayer("Softmax", {"axis": -1, "name": "softmax"}, shape=(NUM_CLASSES,)))
    return plan


def describe_layer(layer: KerasLayer) -> str:
    """One line for the script's docstring, e.g. ``conv1 (Conv2D): 32 filters 3x3, strides 1x1, valid, relu -> (26, 26, 32)``."""
    kw = layer.kwargs

    def by(value):
        return f"{value[0]}x{value[1]}"

    if layer.keras_class == "Conv2D":
        text = (f"{kw['filters']} filters {by(kw['kernel_size'])}, strides {by(kw['strides'])}, "
                f"dilation {by(kw['dilation_rate'])}, padding {kw['padding']}, {kw['activation']}")
    elif layer.keras_class == "ZeroPadding2D":
        p = kw["padding"][0][0]
        text = f"{p} zero{'s' if p != 1 else ''} on every side (our padding={p})"
    elif layer.keras_class == "MaxPooling2D":
        text = f"max of {by(kw['pool_size'])} windows, strides {by(kw['strides'])}"
    elif layer.keras_class == "Dropout":
        text = f"rate {kw['rate']:g} (training only)"
    elif layer.keras_class == "Dense":
        text = f"{kw['units']} units, {kw['activation']}"
    elif layer.keras_class == "Softmax":
        text = "logits -> probabilities"
    else:
        text = "(height, width, channels) -> one vector"
    return f"{kw['name']} ({layer.keras_class}): {text} -> {layer.shape}"


def _literal(value) -> str:
    """Python source for a plan value: ints, floats, str (double quotes), tuples."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple | list):
        items = ", ".join(_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {value!r}")


def _script_name(stem: str) -> str:
    """A Keras model name from a file stem: letters, digits and ``_`` only."""
    cleaned = "".join(c if c.isalnum() and c.isascii() else "_" for c in stem)[:60].strip("_")
    return cleaned if cleaned and cleaned[0].isalpha() else f"convviz_{cleaned}".rstrip("_")


_SCRIPT = '''"""{title}, rebuilt in Keras (tf.keras) with the weights trained in ConvViz.

Generated by ConvViz from {source}. The network (input: one 28x28 grey digit, NHWC,
floats in [0, 1], white digit on black as in MNIST; {params:,} weights):

{layers}

The weights are read from {weights_name}, the file ConvViz saved (one float32 array per
variable: convolution kernels (height, width, in_channels, filters), dense kernels
(inputs, units), the layouts Keras uses, so they are copied as they are).

Needs TensorFlow 2.16 or newer (Keras 3) and numpy; Pillow for --image.

Usage:
    python {script_name}                        # build, load the weights, print a summary
    python {script_name} --image digit.png      # predict one picture of a digit
    python {script_name} --images digits.npy --save-probabilities p.npy
    python {script_name} --save-keras model.keras

In your own code:
    from {module} import build_model, load_weights, load_image
    model = load_weights(build_model(), "{weights_name}")
    probabilities = model.predict(load_image("digit.png")[None, :, :, None])  # (1, 10)
    print(probabilities.argmax())  # the digit it sees
"""

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

keras = tf.keras

WEIGHTS = Path(__file__).with_name("{weights_name}")
"""The weights file ConvViz saved, expected next to this script (or give --weights)."""

# Keras layer -> the arrays of the weights file it takes, in Keras's order (kernel, bias).
WEIGHTS_OF = {{
{weights_of}}}


def build_model():
    """The network as a Keras model: (batch, 28, 28, 1) floats in [0, 1] -> (batch, 10) probabilities."""
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1), name={input_name}),
{keras_layers}    ], name={model_name})


def load_weights(model, path=WEIGHTS):
    """Copy the trained arrays of ConvViz's .npz file into ``model`` (built by build_model); returns it."""
    with np.load(path, allow_pickle=False) as arrays:
        for layer_name, keys in WEIGHTS_OF.items():
            missing = [key for key in keys if key not in arrays.files]
            if missing:
                raise ValueError(f"{{path}} has no array {{missing[0]!r}}: is it this model's weights file?")
            values = [arrays[key] for key in keys]
            layer = model.get_layer(layer_name)
            expected = [tuple(weight.shape) for weight in layer.weights]
            if [value.shape for value in values] != expected:
                raise ValueError(f"{{path}}: {{keys}} have shapes {{[v.shape for v in values]}}, "
                                 f"layer {{layer_name}} needs {{expected}}")
            layer.set_weights(values)
    return model


def load_image(path):
    """A picture of one digit as (28, 28) floats in [0, 1], white on black like MNIST.

    Only greyscale and resize: for best results give a digit centred in a square picture
    (ConvViz's Draw page also centres it by its mass and scales it to a 20x20 box).
    """
    from PIL import Image

    image = np.asarray(Image.open(path).convert("L").resize((28, 28)), dtype=np.float32) / 255.0
    if image.mean() > 0.5:  # dark ink on a light background: flip it to MNIST's white on black
        image = 1.0 - image
    return image


def load_digits(path):
    """A .npy of digits (N, 28, 28): uint8 0-255 or floats in [0, 1]; returns float32 (N, 28, 28, 1)."""
    digits = np.load(path, allow_pickle=False)
    if digits.ndim == 2:
        digits = digits[None]
    if digits.ndim == 4 and digits.shape[-1] == 1:
        digits = digits[..., 0]
    if digits.ndim != 3 or digits.shape[1:] != (28, 28):
        raise ValueError(f"{{path}}: expected digits of shape (N, 28, 28), got {{digits.shape}}")
    if digits.dtype == np.uint8:
        digits = digits.astype(np.float32) / 255.0
    return digits.astype(np.float32)[..., None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(WEIGHTS), help="ConvViz's .npz weights file")
    parser.add_argument("--image", help="a picture of one digit (PNG, JPEG, ...)")
    parser.add_argument("--images", help="a .npy of digits (N, 28, 28), uint8 0-255 or floats in [0, 1]")
    parser.add_argument("--save-probabilities", help="write the (N, 10) probabilities to this .npy")
    parser.add_argument("--save-keras", help="also save the model in Keras's format (a .keras file)")
    args = parser.parse_args(argv)
    model = load_weights(build_model(), args.weights)
    if args.save_keras:
        model.save(args.save_keras)
        print(f"saved {{args.save_keras}}")
    if args.image is None and args.images is None:
        model.summary()
        return
    digits = load_image(args.image)[None, :, :, None] if args.image else load_digits(args.images)
    probabilities = model.predict(digits, batch_size=1000, verbose=0)
    if args.save_probabilities:
        np.save(args.save_probabilities, probabilities)
    for index, row in enumerate(probabilities[:10]):
        print(f"image {{index + 1}}: predicted {{row.argmax()}} ({{row.max():.1%}})")
    if len(probabilities) > 10:
        print(f"... {{len(probabilities)}} digits in all")


if __name__ == "__main__":
    main()
'''


def keras_script(spec, stem: str = "convviz_model", title: str = "A ConvViz model",
                 source: str = "a ConvViz model") -> str:
    """A runnable Python script that builds the spec's network in ``tf.keras`` and loads its weights file.

    Args:
        spec: the model's spec (``model.spec``).
        stem: the downloads' common file name without suffix: the script is ``{stem}_keras.py`` and
            reads ``{stem}.npz`` next to it by default (letters, digits, ``_``, ``-``, ``.``; 1-100 characters).
        title: the docstring's first words, e.g. ``"Run 3"`` or ``"The shipped model"``. A run's name is the
            learner's text: it is made one printable line of at most 200 characters with no backslash or
            double quote (so it cannot end the docstring); an empty result becomes ``"A ConvViz model"``.
        source: where it came from, for the docstring, e.g. the run id (made safe the same way).

    Returns:
        The script's text (UTF-8, ``\\n`` line ends). It defines ``build_model()``, ``load_weights(model,
        path)``, ``load_image(path)``, ``load_digits(path)`` and a command line (``--image``, ``--images``,
        ``--save-probabilities``, ``--save-keras``, ``--weights``).

    Raises:
        ValueError: as :func:`keras_plan`; a ``stem`` out of bounds, echoing it.
    """
    if not isinstance(stem, str) or not 1 <= len(stem) <= 100 or stem.startswith(".") \
            or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in stem):
        raise ValueError(f"stem must be 1-100 letters, digits, '_', '-' or '.', got stem={str(stem)[:120]!r}")
    title, source = _one_line(title, "A ConvViz model"), _one_line(source, "a ConvViz model")
    plan = keras_plan(spec)
    params = sum(int(np.prod(s)) for s in _weight_shapes(spec).values())
    names = {layer.kwargs["name"] for layer in plan}
    rows = []
    for layer in plan:
        arguments = [_literal(layer.kwargs[key]) if key in _POSITIONAL.get(layer.keras_class, ())
                     else f"{key}={_literal(layer.kwargs[key])}" for key in layer.kwargs]
        rows.append(_call(f"        keras.layers.{layer.keras_class}(", arguments, "),"))
    weights_of = "".join(f"    {json.dumps(layer.kwargs['name'])}: {_literal(layer.weights)},\n"
                         for layer in plan if layer.weights)
    script_name = f"{stem}_keras.py"
    return _SCRIPT.format(
        title=title, source=source, params=params, weights_name=f"{stem}.npz", script_name=script_name,
        module=script_name[:-3].replace("-", "_").replace(".", "_"),
        layers="\n".join(f"    {describe_layer(layer)}" for layer in plan),
        weights_of=weights_of, keras_layers="".join(rows),
        input_name=json.dumps(_fresh("image", set(names))), model_name=json.dumps(_script_name(stem)))


def _call(opening: str, arguments: list[str], closing: str, width: int = 110) -> str:
    """``opening`` + the arguments joined by ``, `` + ``closing``, wrapped under ``width`` characters a line."""
    lines, line = [], opening
    for index, argument in enumerate(arguments):
        piece = argument + (", " if index + 1 < len(arguments) else closing)
        if len(line) + len(piece.rstrip()) > width and line.strip() != opening.strip():
            lines.append(line.rstrip())
            line = " " * len(opening) + piece
        else:
            line += piece
    lines.append(line.rstrip() if arguments else opening + closing)
    return "\n".join(lines) + "\n"


def _one_line(text, default: str) -> str:
    """``text`` as one printable line of at most 200 characters without ``\\`` or ``"``, or ``default``."""
    if not isinstance(text, str):
        return default
    cleaned = "".join(c if c.isprintable() and c not in '\\"' else " " for c in text)
    return " ".join(cleaned.split())[:200] or default


_POSITIONAL = {"Conv2D": ("filters", "kernel_size"), "Dense": ("units",), "Dropout": ("rate",)}
"""Arguments the script writes without their keyword, as Keras's own examples do."""


def _weight_shapes(spec) -> dict[str, tuple[int, ...]]:
    """``"conv1/kernel" -> (3, 3, 1, 32)``, ... for every variable of the spec's model."""
    shapes, in_shape = {}, INPUT_SHAPE
    for cfg, shape in zip(spec, validate_spec(spec)):
        name = cfg["name"]
        if cfg["type"] == "conv2d":
            kh, kw = pair(cfg["kernel_size"], "kernel_size")
            shapes[f"{name}/kernel"], shapes[f"{name}/bias"] = (kh, kw, in_shape[-1], shape[-1]), (shape[-1],)
        elif cfg["type"] == "dense":
            shapes[f"{name}/w"], shapes[f"{name}/b"] = (in_shape[0], shape[0]), (shape[0],)
        in_shape = shape
    return shapes


def weights_npz(model) -> bytes:
    """The model's weights file as bytes: exactly what :meth:`convviz.model.ScratchCNN.save` writes (no metadata).

    Args:
        model: a :class:`convviz.model.ScratchCNN`.

    Returns:
        The ``.npz`` bytes; :func:`convviz.model.load_model` and the script of :func:`keras_script` read them.

    Raises:
        OSError: the temporary folder cannot be written.
    """
    with tempfile.TemporaryDirectory(prefix="convviz-export-") as folder:
        return model.save(Path(folder) / "model.npz").read_bytes()


def build_keras_model(model):
    """The Keras model of :func:`keras_plan`, with the ConvViz model's weights copied in.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.

    Returns:
        A ``keras.Sequential``: ``(batch, 28, 28, 1)`` float32 -> ``(batch, 10)`` probabilities.

    Raises:
        ValueError: as :func:`keras_plan`.
    """
    import tensorflow as tf

    keras = tf.keras
    plan = keras_plan(model.spec)
    names = {layer.kwargs["name"] for layer in plan}
    layers = [keras.Input(shape=INPUT_SHAPE, name=_fresh("image", set(names)))]
    layers += [getattr(keras.layers, layer.keras_class)(**layer.kwargs) for layer in plan]
    keras_model = keras.Sequential(layers, name="convviz_model")
    weights = model.weights()
    for layer in plan:
        if layer.weights:
            keras_model.get_layer(layer.kwargs["name"]).set_weights([weights[key] for key in layer.weights])
    return keras_model


def _probe_digits(count: int = 8) -> np.ndarray:
    """Repeatable test inputs ``(count, 28, 28)`` in [0, 1]: random strokes on black, not all zero."""
    rng = np.random.default_rng(0)
    x = rng.random((count, 28, 28), dtype=np.float32)
    return np.where(x > 0.7, x, 0.0).astype(np.float32)


def keras_file(model) -> bytes:
    """The model in Keras's own format (``keras.Model.save`` to a ``.keras`` file), as bytes.

    The file is written in a temporary folder that is removed afterwards. Before it is returned, the
    Keras model's probabilities on 8 repeatable probe images are compared with ``model.predict``.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.

    Returns:
        The ``.keras`` bytes; ``keras.models.load_model`` opens them (no custom objects needed).

    Raises:
        ValueError: as :func:`keras_plan`, or Keras's probabilities differing from ours by more than
            :data:`PROBE_TOLERANCE` on the probe images (naming the difference).
        OSError: the temporary folder cannot be written.
    """
    keras_model = build_keras_model(model)
    probe = _probe_digits()
    difference = float(np.max(np.abs(keras_model(probe[..., None], training=False).numpy() - model.predict(probe))))
    if not difference <= PROBE_TOLERANCE:
        raise ValueError(f"the Keras model's probabilities differ from ConvViz's by {difference:.3g} on the probe "
                         f"images (more than {PROBE_TOLERANCE:g}); not exported")
    with tempfile.TemporaryDirectory(prefix="convviz-export-") as folder:
        path = Path(folder) / "model.keras"
        keras_model.save(path)
        return path.read_bytes()
