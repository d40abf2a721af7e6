"""Example matrices for the convolution pages (numpy only): what their editors start from and offer by name.

(The pickers call each named example a "preset": ``KERNEL_PRESETS``, ``INPUT_PRESETS``, ...; the network's
architectures are :data:`convviz.model.ARCHITECTURES`.)

The seed notebook's worked example is the default: a 5x5 binary matrix and a
3x3 "X" kernel, whose valid cross-correlation is ``4 3 4 / 2 4 3 / 2 3 4``.
The classic image-processing kernels are the 3x3 ones from R. C. Gonzalez and
R. E. Woods, *Digital Image Processing* (box and Gaussian blur, sharpen,
Laplacian) and I. Sobel's 3x3 gradient operators.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FIT_TARGETS",
    "GRAD_OUTPUT_PRESETS",
    "INPUT_PRESETS",
    "KERNEL_PRESETS",
    "POOL_EXAMPLE",
    "TARGET_PRESETS",
    "NOTEBOOK_INPUT",
    "NOTEBOOK_KERNEL",
    "digit_input",
    "edge_input",
    "fit_target_kernel",
    "input_preset",
    "kernel_preset",
    "map_preset",
    "pool_example",
    "random_filters",
    "random_integer_input",
    "resize_area",
    "stacked_notebook_example",
]

NOTEBOOK_INPUT = np.array([
    [1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 1, 1, 0, 0],
], dtype=np.float64)
"""The seed notebook's 5x5 input, ``(height, width)``."""

NOTEBOOK_KERNEL = np.array([
    [1, 0, 1],
    [0, 1, 0],
    [1, 0, 1],
], dtype=np.float64)
"""The seed notebook's 3x3 "X" kernel, ``(kernel_height, kernel_width)``."""

_KERNELS = {
    "Notebook X kernel": NOTEBOOK_KERNEL,
    "Identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "Box blur": np.full((3, 3), 1 / 9),
    "Gaussian blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "Sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "Emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64),
}

KERNEL_PRESETS: tuple[str, ...] = tuple(_KERNELS)
"""Names accepted by :func:`kernel_preset`."""

INPUT_PRESETS: tuple[str, ...] = ("Notebook 5×5 matrix", "Random integers", "MNIST digit", "Edge / step")
"""Names accepted by :func:`input_preset`."""


def kernel_preset(name: str) -> np.ndarray:
    """A copy of a named 3x3 kernel.

    Args:
        name: one of :data:`KERNEL_PRESETS`.

    Returns:
        float64 ``(3, 3)``.

    Raises:
        ValueError: an unknown name, echoing it.
    """
    if name not in _KERNELS:
        raise ValueError(f"unknown kernel preset {name!r}; choose one of {list(KERNEL_PRESETS)}")
    return _KERNELS[name].copy()


def _check_size(height: int, width: int) -> None:
    for label, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {label}={v!r}")


def random_integer_input(height: int, width: int, seed: int = 0, low: int = 0, high: int = 9) -> np.ndarray:
    """Random integers in ``[low, high]``.

    Args:
        height, width: size in cells, >= 1.
        seed: seed of numpy's default generator.
        low, high: inclusive range of the values.

    Returns:
        float64 ``(height, width)`` holding integers.

    Raises:
        ValueError: a size below 1 or ``low > high``.
    """
    _check_size(height, width)
    if low > high:
        raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
    rng = np.random.default_rng(seed)
    return rng.integers(low, high + 1, size=(height, width)).astype(np.float64)


def edge_input(height: int, width: int) -> np.ndarray:
    """A vertical step edge: zeros on the left half, ones on the right.

    Args:
        height, width: size in cells, >= 1.

    Returns:
        float64 ``(height, width)``; columns ``>= width // 2`` are 1.
    """
    _check_size(height, width)
    x = np.zeros((height, width))
    x[:, width // 2:] = 1.0
    return x


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D image by averaging the source area under each target cell.

    Args:
        image: ``(h, w)`` numbers.
        height, width: target size in cells, >= 1.

    Returns:
        float64 ``(height, width)``.

    Raises:
        ValueError: an image that is not 2-D or empty, or a bad size.
    """
    _check_size(height, width)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be a non-empty (height, width) array, got shape {image.shape}")
    h, w = image.shape
    # Fractional overlap of source rows/cols with each target row/col.
    def weights(n_src: int, n_dst: int) -> np.ndarray:
        edges = np.linspace(0, n_src, n_dst + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        src = np.arange(n_src)[None, :]
        overlap = np.clip(np.minimum(hi, src + 1) - np.maximum(lo, src), 0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)

    return weights(h, height) @ image @ weights(w, width).T


def digit_input(digit: np.ndarray, height: int = 28, width: int = 28) -> np.ndarray:
    """A handwritten digit as convolution input, scaled to [0, 1] and 2 decimals.

    Args:
        digit: ``(28, 28)`` uint8 MNIST image (0 = black background).
        height, width: size in cells; the digit is area-resized when not 28x28.

    Returns:
        float64 ``(height, width)`` in [0, 1], rounded to 2 decimals so the
        numbers in the cells stay readable.
    """
    img = np.asarray(digit, dtype=np.float64) / 255.0
    if img.shape != (height, width):
        img = resize_area(img, height, width)
    return np.round(img, 2)


def input_preset(name: str, height: int, width: int, seed: int = 0, digit: np.ndarray | None = None) -> np.ndarray:
    """A named input of the requested size.

    Args:
        name: one of :data:`INPUT_PRESETS`.
        height, width: size in cells, >= 1 (the notebook matrix is always 5x5).
        seed: for "Random integers".
        digit: ``(28, 28)`` uint8 image, needed for "MNIST digit".

    Returns:
        float64 ``(height, width)``, or ``(5, 5)`` for the notebook matrix.

    Raises:
        ValueError: an unknown name, a bad size, or "MNIST digit" without a digit.
    """
    if name == INPUT_PRESETS[0]:
        return NOTEBOOK_INPUT.copy()
    if name == INPUT_PRESETS[1]:
        return random_integer_input(height, width, seed)
    if name == INPUT_PRESETS[2]:
        if digit is None:
            raise ValueError("the 'MNIST digit' preset needs a digit image, got digit=None")
        _check_size(height, width)
        return digit_input(digit, height, width)
    if name == INPUT_PRESETS[3]:
        return edge_input(height, width)
    raise ValueError(f"unknown input preset {name!r}; choose one of {list(INPUT_PRESETS)}")


def stacked_notebook_example(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's matrix and kernel stacked ``channels`` deep.

    Args:
        channels: depth C, >= 1.

    Returns:
        ``(x, kernel)``: float64 ``(5, 5, C)`` and ``(3, 3, C)``. Summed over
        channels their cross-correlation is C times ``4 3 4 / 2 4 3 / 2 3 4``
        (``128 96 128 / 64 128 96 / 64 96 128`` for C = 32).

    Raises:
        ValueError: ``channels`` below 1.
    """
    if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 1:
        raise ValueError(f"channels must be an integer >= 1, got channels={channels!r}")
    x = np.repeat(NOTEBOOK_INPUT[:, :, None], channels, axis=2)
    k = np.repeat(NOTEBOOK_KERNEL[:, :, None], channels, axis=2)
    return x, k


def random_filters(kernel_size: int, channels: int, filters: int, seed: int = 0) -> np.ndarray:
    """A bank of random kernels, Glorot-normal scaled.

    Args:
        kernel_size: side of each square kernel (taps), >= 1.
        channels: input channels C, >= 1.
        filters: number of filters F, >= 1.
        seed: seed of numpy's default generator.

    Returns:
        float64 ``(kernel_size, kernel_size, channels, filters)``.

    Raises:
        ValueError: a size below 1.
    """
    for label, v in (("kernel_size", kernel_size), ("channels", channels), ("filters", filters)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {label}={v!r}")
    rng = np.random.default_rng(seed)
    fan_in = kernel_size * kernel_size * channels
    fan_out = kernel_size * kernel_size * filters
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, size=(kernel_size, kernel_size, channels, filters))


# --------------------------------------------------------------------------- the Backpropagation page
_MAPS = {
    "All 3s": lambda h, w, seed: np.full((h, w), 3.0),
    "Zeros": lambda h, w, seed: np.zeros((h, w)),
    "Random integers 0 to 5": lambda h, w, seed: random_integer_input(h, w, seed, 0, 5),
    "All ones": lambda h, w, seed: np.ones((h, w)),
    "Random integers -2 to 2": lambda h, w, seed: random_integer_input(h, w, seed, -2, 2),
    "One-hot (row 1, column 1)": lambda h, w, seed: np.eye(1, h * w).reshape(h, w),
}

TARGET_PRESETS: tuple[str, ...] = ("All 3s", "Zeros", "Random integers 0 to 5")
"""Names of :func:`map_preset` offered for the loss's target map."""

GRAD_OUTPUT_PRESETS: tuple[str, ...] = ("All ones", "Random integers -2 to 2", "One-hot (row 1, column 1)")
"""Names of :func:`map_preset` offered for a ``grad_output`` typed in directly."""

FIT_TARGETS: tuple[str, ...] = ("Sobel x", "Gaussian blur", "Sharpen", "Random")
"""Names accepted by :func:`fit_target_kernel`: the kernels the "Learn a kernel" demo learns back."""

POOL_EXAMPLE = np.array([
    [1, 3, -2, 0],
    [3, -1, 2, 2],
    [0, -3, 4, 1],
    [-2, 0, 1, 4],
], dtype=np.float64)
"""A 4x4 map before ReLU whose 2x2 pooling windows all tie (two 3s, two 2s, four 0s, two 4s) and whose
third window's maximum is a 0 that ReLU blocks, ``(height, width)``."""


def map_preset(name: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A target map or a ``grad_output`` of the output's size.

    Args:
        name: one of :data:`TARGET_PRESETS` or :data:`GRAD_OUTPUT_PRESETS`.
        height, width: size in cells, >= 1.
        seed: for the random ones.

    Returns:
        float64 ``(height, width)``.

    Raises:
        ValueError: an unknown name or a bad size.

    Example:
        >>> map_preset("One-hot (row 1, column 1)", 2, 2).tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    _check_size(height, width)
    if name not in _MAPS:
        raise ValueError(f"unknown preset {name!r}; choose one of {list(_MAPS)}")
    return _MAPS[name](height, width, seed)


def fit_target_kernel(name: str, seed: int = 0) -> np.ndarray:
    """The 3x3 kernel the "Learn a kernel" demo learns back.

    Args:
        name: one of :data:`FIT_TARGETS`.
        seed: for "Random": standard normal draws rounded to 2 decimals.

    Returns:
        float64 ``(3, 3)``.

    Raises:
        ValueError: an unknown name.
    """
    if name == "Random":
        return np.round(np.random.default_rng(seed).normal(0.0, 1.0, (3, 3)), 2)
    if name not in FIT_TARGETS:
        raise ValueError(f"unknown target kernel {name!r}; choose one of {list(FIT_TARGETS)}")
    return kernel_preset(name)


def pool_example(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 map before ReLU and the gradient arriving at its 2x2-pooled map.

    Args:
        seed: 0 for :data:`POOL_EXAMPLE` with the gradient ``1 2 / 3 4``; any other value draws integers
            (the map from -3 to 4, so ties and zeros are likely; the gradient from 1 to 4).

    Returns:
        ``(z, grad_pooled)``: float64 ``(4, 4)`` and ``(2, 2)``.
    """
    if seed == 0:
        return POOL_EXAMPLE.copy(), np.array([[1.0, 2.0], [3.0, 4.0]])
    return random_integer_input(4, 4, seed, -3, 4), random_integer_input(2, 2, seed + 1, 1, 4)
