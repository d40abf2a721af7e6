"""Look inside the network for one digit: its feature maps and a saliency map (TensorFlow, no Streamlit).

* **Feature maps**: the output of each convolution layer for the digit, one ``(height, width)``
  map per filter: where in the image that filter found its pattern.
* **Saliency**: the gradient of the top class's score (the logit, before the softmax) with
  respect to every input pixel, in absolute value: the pixels whose small change would move
  that score most (K. Simonyan, A. Vedaldi and A. Zisserman, "Deep Inside Convolutional
  Networks: Visualising Image Classification Models and Saliency Maps", 2013). The gradient
  flows back through the from-scratch layers one by one (as ``model(x, fused=False)`` runs them),
  including the hand-written backward passes of :func:`convviz.tensor_ops.conv2d` and
  :class:`convviz.layers.MaxPool2D`. Layer by layer, a pool window whose cells tie (every
  window of MNIST's blank background) shares its gradient among them; the fused
  training block would send it all to each window's top-left cell and draw a 2x2 grid.

Images are MNIST-style float arrays ``(28, 28)`` in ``[0, 1]`` (:mod:`convviz.preprocess` makes them). :func:`explain`
checks the image once and runs one forward and one backward pass for all three answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convviz.layers import Conv2D
from convviz.tensor_ops import softmax

__all__ = ["Explanation", "explain", "saliency"]


def _one_image(image) -> np.ndarray:
    """The image as float32 ``(28, 28)``, checked (the one check of this module's entry points)."""
    x = np.asarray(image, np.float32)
    if x.shape == (28, 28, 1):
        x = x[..., 0]
    if x.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {np.shape(image)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("image contains NaN or infinite values")
    return x


def _check_target(target) -> None:
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | np.integer)
                               or not 0 <= target <= 9):
        raise ValueError(f"target must be a class 0-9 or None, got target={target!r}")


def _look_inside(model, x: np.ndarray, target: int | None):
    """One forward pass through every layer on its own, and one backward pass from a class score.

    ``model(x, fused=False)`` would run the same layers; here each layer's output is kept on the way, so the
    convolution layers' feature maps come from the pass the gradient flows back through.

    Returns:
        ``(logits (10,), feature maps {conv name: (height, width, filters)}, |gradient| (28, 28), target)``.
    """
    x = tf.constant(x[None, :, :, None])
    maps = {}
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for name, layer in model.layers:  # inference: Dropout is the identity; MaxPool2D shares a tie's gradient
            h = layer(h)
            if isinstance(layer, Conv2D):
                maps[name] = h[0]
        if target is None:
            target = int(tf.argmax(h[0]).numpy())
        score = h[0, int(target)]
    grad = np.abs(tape.gradient(score, x).numpy()[0, :, :, 0]).astype(np.float32)
    return h[0], {name: value.numpy() for name, value in maps.items()}, grad, int(target)


def saliency(model, image, target: int | None = None) -> tuple[np.ndarray, int]:
    """Absolute gradient of a class score with respect to the input pixels.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in ``[0, 1]``.
        target: the class (0-9) whose score is differentiated; ``None`` takes the top class.

    Returns:
        ``(saliency, target)``: float32 ``(28, 28)``, ``|d score_target / d pixel|`` (score units per
        unit of intensity), and the class used.

    Raises:
        ValueError: a wrong image shape, non-finite values or a target outside 0-9, echoing it.
    """
    x = _one_image(image)
    _check_target(target)
    _, _, grad, target = _look_inside(model, x, target)
    return grad, target


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` found for one digit.

    Attributes:
        probabilities: float32 ``(10,)``, summing to 1.
        prediction: the top class, 0-9.
        feature_maps: ordered dict ``layer name -> float32 (height, width, filters)``, the output of every
            convolution layer (after its activation), e.g. ``conv1`` ``(26, 26, 32)`` and ``conv2``
            ``(24, 24, 64)`` for the ``"seed"`` architecture.
        saliency: float32 ``(28, 28)``, as :func:`saliency` for ``prediction``.
    """

    probabilities: np.ndarray
    prediction: int
    feature_maps: dict[str, np.ndarray]
    saliency: np.ndarray


def explain(model, image) -> Explanation:
    """Probabilities, per-convolution feature maps and the saliency map of the top class, for one digit:
    the image checked once, one forward and one backward pass.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in ``[0, 1]``.

    Returns:
        :class:`Explanation`.

    Raises:
        ValueError: a wrong image shape or non-finite values.
    """
    logits, maps, sal, prediction = _look_inside(model, _one_image(image), None)
    probabilities = softmax(logits).numpy().astype(np.float32)
    return Explanation(probabilities=probabilities, prediction=prediction, feature_maps=maps, saliency=sal)
