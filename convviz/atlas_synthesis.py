"""Synthesised inputs: what each filter or class looks for, by gradient ascent on the pixels (TensorFlow, numpy).

The Filter atlas's second view (:mod:`convviz.atlas`): an input image built by gradient ascent on its pixels to make
a filter's mean activation (:func:`synthesise_filters`) or a class's score (:func:`synthesise_classes`) as large as
possible, regularised as in J. Yosinski, J. Clune, A. Nguyen, T. Fuchs and H. Lipson, "Understanding Neural Networks
Through Deep Visualization" (ICML Deep Learning Workshop, 2015) so that it stays image-like (see
:class:`AscentSettings`). Every target of a layer ascends at once, one image each, in one batch. No Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convviz.atlas_patches import INPUT_SHAPE, conv_layer_names, forward_convs
from convviz.layers import Conv2D
from convviz.tensor_ops import softmax

__all__ = ["AscentSettings", "ClassImages", "Synthesis", "synthesise_classes", "synthesise_filters"]


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
    x = tf.constant(rng.uniform(0.0, settings.init_scale, (count, *INPUT_SHAPE, 1)).astype(np.float32))
    blur = tf.constant(_blur_matrix(INPUT_SHAPE[0], settings.blur_sigma))
    rate, keep = tf.constant(settings.learning_rate, tf.float32), tf.constant(1.0 - settings.l2_decay, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([count, *INPUT_SHAPE, 1], tf.float32), tf.TensorSpec([], tf.bool)])
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
        z, a = forward_convs(model, x, [layer], pre_activation=True)[layer]
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
