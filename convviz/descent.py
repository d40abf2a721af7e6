"""Learning from a convolution's gradients, in plain numpy: losses, one step of gradient descent, and a kernel
learned back from its outputs (:class:`KernelFit`, the Backpropagation page's "Learn a kernel" demo).

The gradients themselves are :mod:`convviz.backprop`'s (:func:`convviz.backprop.conv2d_backward_steps`); this
module turns them into updates. Like it, it imports numpy only, never TensorFlow or Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from convviz.backprop import conv2d_backward_steps
from convviz.ops import check_finite, conv2d_naive, conv2d_patches

__all__ = ["MAX_FIT_STEPS", "MAX_LEARNING_RATE", "DescentStep", "KernelFit", "check_learning_rate", "descent_step",
           "linear_loss", "mse_loss"]

MAX_LEARNING_RATE = 100.0
"""Largest learning rate accepted: enough to show a step that overshoots, short of overflowing the numbers."""

MAX_FIT_STEPS = 5000
"""Most gradient-descent steps :meth:`KernelFit.run` takes in one call."""


# --------------------------------------------------------------------------- loss and one step of gradient descent
def mse_loss(output, target) -> tuple[float, np.ndarray]:
    """Mean squared error and its gradient with respect to the output.

    ``L = mean((y - t)^2)`` over the ``N`` cells, so ``dL/dy = 2 (y - t) / N``.

    Args:
        output: ``y``, any shape.
        target: ``t``, the same shape.

    Returns:
        ``(loss, grad_output)``: a float and float64 of ``output``'s shape.

    Raises:
        ValueError: NaN, infinity or non-numbers, or ``target`` of another shape (both shapes named).

    Example:
        >>> loss, grad = mse_loss([[4, 3]], [[3, 3]])
        >>> loss, grad.tolist()
        (0.5, [[1.0, 0.0]])
    """
    y = check_finite(output, "output")
    t = check_finite(target, "target")
    if t.shape != y.shape:
        raise ValueError(f"target must have the output's shape {y.shape}, got target shape {t.shape}")
    diff = y - t
    return float(np.mean(diff ** 2)), 2.0 * diff / diff.size


def linear_loss(output, grad_output) -> tuple[float, np.ndarray]:
    """The loss ``L = sum(g * y)``, whose gradient with respect to ``y`` is exactly the given ``g``.

    Used when a learner types ``grad_output`` in directly: any upstream gradient is this loss's gradient.

    Args:
        output: ``y``, any shape.
        grad_output: ``g``, the same shape.

    Returns:
        ``(loss, grad_output)``: a float and ``g`` as float64.

    Raises:
        ValueError: NaN, infinity or non-numbers, or ``grad_output`` of another shape.
    """
    y = check_finite(output, "output")
    g = check_finite(grad_output, "grad_output")
    if g.shape != y.shape:
        raise ValueError(f"grad_output must have the output's shape {y.shape}, got grad_output shape {g.shape}")
    return float(np.sum(g * y)), g


def check_learning_rate(learning_rate, maximum: float = MAX_LEARNING_RATE) -> float:
    """Return the learning rate as a float, or raise if it is not a number in ``(0, maximum]``.

    Args:
        learning_rate: ``η``.
        maximum: the largest accepted.

    Returns:
        ``float(learning_rate)``.

    Raises:
        ValueError: missing, not a number, NaN, infinite, ``<= 0`` or above ``maximum``, e.g.
            ``"learning_rate must be > 0, got learning_rate=0.0"``.
    """
    if learning_rate is None or isinstance(learning_rate, bool) or not isinstance(learning_rate, Real):
        raise ValueError(f"learning_rate must be a number, got learning_rate={learning_rate!r}")
    lr = float(learning_rate)
    if not math.isfinite(lr):
        raise ValueError(f"learning_rate must be a finite number, got learning_rate={lr!r}")
    if lr <= 0:
        raise ValueError(f"learning_rate must be > 0, got learning_rate={lr!r}")
    if lr > maximum:
        raise ValueError(f"learning_rate must be <= {maximum:g}, got learning_rate={lr!r}")
    return lr


@dataclass(frozen=True)
class DescentStep:
    """One step of gradient descent on a convolution's kernel and bias.

    Attributes:
        learning_rate: ``η``.
        kernel_before, grad_kernel, update, kernel_after: ``K``, ``dK``, ``-η·dK`` and ``K - η·dK``.
        bias_before, grad_bias, bias_after: ``b``, ``db``, ``b - η·db``.
        loss_before, loss_after: the loss with the old and with the new kernel and bias.
    """

    learning_rate: float
    kernel_before: np.ndarray
    grad_kernel: np.ndarray
    update: np.ndarray
    kernel_after: np.ndarray
    bias_before: float
    grad_bias: float
    bias_after: float
    loss_before: float
    loss_after: float

    @property
    def went_down(self) -> bool:
        """Whether the step lowered the loss."""
        return self.loss_after < self.loss_before

    @property
    def unchanged(self) -> bool:
        """Whether the step left the loss the same at float64 precision (relative change at most 1e-12): an η such
        as 1e-20 moves the weights by less than their rounding, so neither "down" nor "up" is true."""
        return abs(self.loss_after - self.loss_before) <= 1e-12 * max(abs(self.loss_before), 1e-300)


def descent_step(x, kernel, bias, learning_rate, loss, strides=1, padding=0, dilation_rate=1) -> DescentStep:
    """One gradient-descent step, ``K <- K - η·dK`` and ``b <- b - η·db``, with the loss before and after.

    Args:
        x: input, ``(height, width[, channels])``.
        kernel: ``(kh, kw[, channels])``.
        bias: a number.
        learning_rate: ``η``, in ``(0, MAX_LEARNING_RATE]``.
        loss: ``output -> (loss, grad_output)``, e.g. ``lambda y: mse_loss(y, target)``.
        strides, padding, dilation_rate: as in :func:`convviz.ops.conv2d_steps`.

    Returns:
        :class:`DescentStep`.

    Raises:
        ValueError: a bad learning rate (:func:`check_learning_rate`), or as :func:`conv2d_backward_steps`
            and the loss.
    """
    lr = check_learning_rate(learning_rate)
    bias = float(check_finite(bias, "bias"))
    before = conv2d_naive(x, kernel, strides, padding, dilation_rate, bias)
    loss_before, grad = loss(before)
    back = conv2d_backward_steps(x, kernel, grad, strides, padding, dilation_rate)
    update = -lr * back.grad_kernel
    kernel_after = back.kernel + update
    bias_after = bias - lr * back.grad_bias
    loss_after, _ = loss(conv2d_naive(x, kernel_after, strides, padding, dilation_rate, bias_after))
    return DescentStep(lr, back.kernel, back.grad_kernel, update, kernel_after, bias, back.grad_bias, bias_after,
                       loss_before, loss_after)


# --------------------------------------------------------------------------- learning a kernel
class KernelFit:
    """Gradient descent with momentum that learns a kernel back from its outputs.

    The target outputs are ``conv(image, target_kernel)`` (valid cross-correlation, stride 1) for each
    image; the loss is their mean squared error against ``conv(image, kernel)``, the kernel starting from
    seeded random numbers. Each step: ``v <- momentum·v - η·dK``, ``K <- K + v`` (the heavy-ball method,
    B. T. Polyak, "Some methods of speeding up the convergence of iteration methods", 1964; Keras's
    ``SGD(momentum=...)`` update). ``momentum=0`` is plain gradient descent.

    Everything is numpy on the image patches (:func:`convviz.ops.conv2d_patches`): a step on one 28×28
    digit and a 3×3 kernel costs about 30 µs, so no worker is needed.

    Args:
        images: ``(height, width)`` or ``(count, height, width)``, e.g. digits scaled to [0, 1].
        target_kernel: ``(kh, kw)``, the kernel to learn back.
        learning_rate: ``η``, in ``(0, MAX_LEARNING_RATE]``.
        momentum: in ``[0, 1)``.
        seed: seed of the starting kernel.
        init_scale: standard deviation of the starting kernel's normal draws.
        tolerance: the ``max |K - K*|`` that counts as learned (recorded in :attr:`reached_at`).

    Attributes:
        kernel: the kernel now, ``(kh, kw)``.
        steps: steps taken so far.
        losses, errors: the loss and ``max |K - K*|`` after 0, 1, … ``steps`` steps.
        reached_at: the first step count with ``errors[step] <= tolerance``, or None.
        diverged: True once the loss stops being a finite number below 1e12 (a learning rate too large);
            :meth:`run` then takes no more steps.

    Raises:
        ValueError: NaN / infinite / non-numeric images or kernel, a kernel larger than the images, a bad
            learning rate, momentum outside ``[0, 1)``, a tolerance that is not > 0.

    Example:
        >>> fit = KernelFit(np.random.default_rng(0).random((8, 8)), [[1, 0], [0, -1]])
        >>> fit.run(200)
        >>> fit.reached_at, fit.steps, fit.error < 1e-3
        (102, 200, True)
    """

    def __init__(self, images, target_kernel, learning_rate: float = 0.5, momentum: float = 0.9, seed: int = 0,
                 init_scale: float = 0.5, tolerance: float = 1e-3):
        images = check_finite(images, "images")
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[0] < 1:
            raise ValueError(f"images must be (height, width) or (count, height, width), got shape {images.shape}")
        target = check_finite(target_kernel, "target_kernel")
        if target.ndim != 2:
            raise ValueError(f"target_kernel must be (kernel_height, kernel_width), got shape {target.shape}")
        self.learning_rate = check_learning_rate(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got momentum={momentum!r}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got tolerance={tolerance!r}")
        self.momentum = float(momentum)
        self.tolerance = float(tolerance)
        self.target_kernel = target
        self.images = images
        patches = np.stack([conv2d_patches(image, target.shape) for image in images])  # (n, h_out, w_out, kh, kw)
        self.output_shape = patches.shape[:3]
        self._patches = patches.reshape(-1, target.size)
        self.target_output = (self._patches @ target.ravel()).reshape(self.output_shape)
        self.kernel = np.random.default_rng(seed).normal(0.0, init_scale, target.shape)
        self._velocity = np.zeros_like(self.kernel)
        self.steps = 0
        self.diverged = False
        loss, _ = self.loss_and_gradient(self.kernel)
        self.losses = [loss]
        self.errors = [self.error]
        self.reached_at = 0 if self.error <= self.tolerance else None

    @property
    def error(self) -> float:
        """``max |K - K*|``, the largest distance of a learned weight from its target."""
        return float(np.abs(self.kernel - self.target_kernel).max())

    def loss_and_gradient(self, kernel) -> tuple[float, np.ndarray]:
        """The mean squared error of ``kernel``'s outputs against the targets, and ``dL/dK``.

        Args:
            kernel: ``(kh, kw)``.

        Returns:
            ``(loss, grad_kernel)``: ``dK = sum g · patch`` with ``g = 2 (y - t) / N``.
        """
        residual = self._patches @ np.ravel(kernel) - self.target_output.ravel()
        loss = float(np.mean(residual ** 2))
        grad = (2.0 / residual.size) * (residual @ self._patches)
        return loss, grad.reshape(self.kernel.shape)

    def output(self) -> np.ndarray:
        """The current kernel's output maps, ``(count, h_out, w_out)``."""
        return (self._patches @ self.kernel.ravel()).reshape(self.output_shape)

    def run(self, steps: int) -> None:
        """Take ``steps`` more steps (fewer if the loss diverges).

        Args:
            steps: an integer in ``[1, MAX_FIT_STEPS]``.

        Raises:
            ValueError: ``steps`` not an integer in that range, e.g. ``"steps must be between 1 and 5000,
                got steps=0"``.
        """
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 1 <= steps <= MAX_FIT_STEPS:
            raise ValueError(f"steps must be between 1 and {MAX_FIT_STEPS}, got steps={steps!r}")
        _, grad = self.loss_and_gradient(self.kernel)
        for _ in range(int(steps)):
            if self.diverged:
                return
            self._velocity = self.momentum * self._velocity - self.learning_rate * grad
            self.kernel = self.kernel + self._velocity
            self.steps += 1
            with np.errstate(over="ignore", invalid="ignore"):
                loss, grad = self.loss_and_gradient(self.kernel)
            self.losses.append(loss)
            self.errors.append(self.error)
            if self.reached_at is None and self.errors[-1] <= self.tolerance:
                self.reached_at = self.steps
            if not (math.isfinite(loss) and loss < 1e12):
                self.diverged = True
