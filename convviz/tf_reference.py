"""TensorFlow's own results, the references the pages and the tests check ConvViz's numpy records against.

``conv_gradients``: ``tf.GradientTape`` on ``tf.nn.convolution`` (the Backpropagation page); ``conv2d_transpose``:
``tf.nn.conv2d_transpose`` (the Convolution page's transposed mode). TensorFlow is imported here, never
Streamlit; nothing of ConvViz's own convolution code is used (sizes only, from :mod:`convviz.geometry`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from convviz.geometry import effective_size

__all__ = ["conv2d_transpose", "conv_gradients"]


def conv_gradients(x, kernel, grad_output, strides=(1, 1), pads=((0, 0), (0, 0)),
                   dilation_rate=(1, 1)) -> tuple[np.ndarray, np.ndarray, float]:
    """``dL/dx``, ``dL/dkernel`` and ``dL/dbias`` for ``L = sum(grad_output * (conv(x, kernel) + bias))``.

    The input is zero-padded explicitly (``tf.pad``, so TensorFlow sees the same, possibly asymmetric,
    padding) and convolved with ``tf.nn.convolution(..., padding="VALID")`` in float64. TensorFlow refuses
    strides > 1 together with dilation > 1; then the stride-1 output is subsampled (``y[::sh, ::sw]``),
    which is the same map, and the tape differentiates through the slice.

    Args:
        x: ``(height, width)`` or ``(height, width, channels)``.
        kernel: ``(kh, kw)`` or ``(kh, kw, channels)`` (one filter), or ``(kh, kw, channels, filters)``.
        grad_output: ``(h_out, w_out)``, or ``(h_out, w_out, filters)`` with a 4-D kernel.
        strides, dilation_rate: ``(rows, cols)``, ints >= 1.
        pads: ``((top, bottom), (left, right))`` zero cells.

    Returns:
        ``(grad_input, grad_kernel, grad_bias)``: float64 of ``x``'s and ``kernel``'s shapes, and a float
        (one bias per filter summed, i.e. ``sum(grad_output)``).

    Raises:
        tf.errors.InvalidArgumentError / ValueError: from TensorFlow, for shapes that do not fit.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    g = np.asarray(grad_output, dtype=np.float64)
    x4 = x.reshape(x.shape[:2] + (-1,))[None]
    k4 = kernel.reshape(kernel.shape[:2] + ((1, 1) if kernel.ndim == 2 else (kernel.shape[2], -1)))
    sh, sw = strides
    both = max(sh, sw) > 1 and max(dilation_rate) > 1
    tx, tk = tf.constant(x4), tf.constant(k4)
    bias = tf.constant(np.zeros(k4.shape[3]))
    with tf.GradientTape() as tape:
        tape.watch([tx, tk, bias])
        padded = tf.pad(tx, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
        y = tf.nn.convolution(padded, tk, strides=1 if both else (sh, sw), padding="VALID",
                              dilations=tuple(dilation_rate))
        if both:
            y = y[:, ::sh, ::sw, :]
        y = y + bias
        loss = tf.reduce_sum(y * tf.constant(g.reshape(g.shape[:2] + (-1,))[None]))
    dx, dk, db = tape.gradient(loss, [tx, tk, bias])
    return dx.numpy()[0].reshape(x.shape), dk.numpy().reshape(kernel.shape), float(np.sum(db.numpy()))


def conv2d_transpose(x, kernel, strides=(1, 1), crop=((0, 0), (0, 0)), dilation_rate=(1, 1),
                     output_shape=None) -> np.ndarray:
    """A 2-D transposed convolution by ``tf.nn.conv2d_transpose``, in float64.

    The crop goes to TensorFlow as explicit paddings ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` and the
    output padding through ``output_shape``. TensorFlow's CPU kernel refuses dilations > 1, so a dilated kernel
    is passed as what it is, the kernel with ``d - 1`` zeros between its taps (``d*(k - 1) + 1`` a side),
    with ``dilations=1``.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        strides, dilation_rate: ``(rows, cols)``, ints >= 1.
        crop: ``((top, bottom), (left, right))`` cells cropped (the padding).
        output_shape: ``(h_out, w_out)``, the result's size (this is how TensorFlow takes the output padding).

    Returns:
        float64 ``output_shape``.

    Raises:
        tf.errors.InvalidArgumentError / ValueError: from TensorFlow, for sizes that do not fit (e.g. an output
            padding not smaller than the stride).
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    (dh, dw), (kh, kw) = dilation_rate, kernel.shape
    dilated = np.zeros((effective_size(kh, dh), effective_size(kw, dw)))
    dilated[::dh, ::dw] = kernel
    y = tf.nn.conv2d_transpose(tf.constant(x[None, :, :, None]), tf.constant(dilated[:, :, None, None]),
                               output_shape=[1, *output_shape, 1], strides=list(strides),
                               padding=[[0, 0], list(crop[0]), list(crop[1]), [0, 0]])
    return y.numpy()[0, :, :, 0]
