"""Look inside the network for one digit: its feature maps and a saliency map (TensorFlow, no Streamlit).

* **Feature maps**: the output of each convolution layer for the digit, one ``(height, width)``
  map per filter: where in the image that filter found its pattern.
* **Saliency**: the gradient of the top class's score (the logit, before the softmax) with
  respect to every input pixel, in absolute value: the pixels whose small change would move
  that score most (K. Simonyan, A. Vedaldi and A. Zisserman, "Deep Inside Convolutional
  Networks: Visualising Image Classification Models and Saliency Maps", 2013). The gradient
  flows back through the from-scratch layers one by one (``model(x, fused=False)``),
  including the hand-written backward passes of :func:`convviz.layers.conv2d` and
  :class:`convviz.layers.MaxPool2D`. Layer by layer, a pool window whose cells tie (every
  window of MNIST's blank background) shares its gradient among them; the fused
  training block would send it all to each window's top-left cell and draw a 2x2 grid.

Images are MNIST-style float arrays ``(28, 28)`` in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from convviz.layers import Conv2D

__all__ = ["Explanation", "conv_feature_maps", "explain", "saliency"]


def _one_image(image) -> np.ndarray:
    x = np.asarray(image, np.float32)
    if x.shape == (28, 28, 1):
        x = x[..., 0]
    if x.shape != (28, 28):
        raise ValueError(f"image must have shape (28, 28), got {np.shape(image)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("image contains NaN or infinite values")
    return x


def conv_feature_maps(model, image) -> dict[str, np.ndarray]:
    """The output of every convolution layer of ``model`` for one image.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in ``[0, 1]``.

    Returns:
        Ordered dict ``layer name -> float32 (height, width, filters)``, e.g. ``conv1`` ``(26, 26, 32)``
        and ``conv2`` ``(24, 24, 64)`` for the ``"seed"`` preset (after the layer's activation).

    Raises:
        ValueError: a wrong image shape or non-finite values.
    """
    x = _one_image(image)
    outputs = model.activations(x[None])
    return {name: outputs[name][0] for name, module in model.layers if isinstance(module, Conv2D)}


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
    x = tf.constant(_one_image(image)[None, :, :, None])
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | np.integer)
                               or not 0 <= target <= 9):
        raise ValueError(f"target must be a class 0-9 or None, got target={target!r}")
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False, fused=False)  # ties shared, not sent to one cell
        if target is None:
            target = int(tf.argmax(logits[0]).numpy())
        score = logits[0, int(target)]
    grad = tape.gradient(score, x)
    return np.abs(grad.numpy()[0, :, :, 0]).astype(np.float32), int(target)


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` found for one digit.

    Attributes:
        probabilities: float32 ``(10,)``, summing to 1.
        prediction: the top class, 0-9.
        feature_maps: as :func:`conv_feature_maps`.
        saliency: float32 ``(28, 28)``, as :func:`saliency` for ``prediction``.
    """

    probabilities: np.ndarray
    prediction: int
    feature_maps: dict[str, np.ndarray]
    saliency: np.ndarray


def explain(model, image) -> Explanation:
    """Probabilities, per-convolution feature maps and the saliency map of the top class, for one digit.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        image: float ``(28, 28)`` in ``[0, 1]``.

    Returns:
        :class:`Explanation`.

    Raises:
        ValueError: a wrong image shape or non-finite values.
    """
    x = _one_image(image)
    outputs = model.activations(x[None])
    probabilities = outputs["softmax"][0].astype(np.float32)
    prediction = int(np.argmax(probabilities))
    maps = {name: outputs[name][0] for name, module in model.layers if isinstance(module, Conv2D)}
    sal, _ = saliency(model, x, prediction)
    return Explanation(probabilities=probabilities, prediction=prediction, feature_maps=maps, saliency=sal)
