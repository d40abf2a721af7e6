"""convviz.ops: the notebook's numbers, the size formula, and bad arguments."""

import doctest
import importlib
import subprocess
import sys

import numpy as np
import pytest

from convviz.geometry import output_size, padding_amounts
from convviz.ops import conv2d_naive, conv2d_steps, depthwise_conv2d_naive, describe_sum

NOTEBOOK_X = np.array([[1, 1, 1, 0, 0],
                       [0, 1, 1, 1, 0],
                       [0, 0, 1, 1, 1],
                       [0, 0, 1, 1, 0],
                       [0, 1, 1, 0, 0]])
NOTEBOOK_K = np.array([[1, 0, 1],
                       [0, 1, 0],
                       [1, 0, 1]])


def test_notebook_2d():
    assert conv2d_naive(NOTEBOOK_X, NOTEBOOK_K).tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]


def test_notebook_stacked_32_deep():
    x = np.repeat(NOTEBOOK_X[:, :, None], 32, axis=2)
    k = np.repeat(NOTEBOOK_K[:, :, None], 32, axis=2)
    assert conv2d_naive(x, k).tolist() == [[128, 96, 128], [64, 128, 96], [64, 96, 128]]
    steps = conv2d_steps(x, k)
    assert steps[0].channel_sums.shape == (32,)
    assert steps[0].channel_sums.tolist() == [4.0] * 32
    assert steps[0].value == 128


def test_notebook_64_filters():
    x = np.repeat(NOTEBOOK_X[:, :, None], 32, axis=2)
    k = np.repeat(np.repeat(NOTEBOOK_K[:, :, None, None], 32, axis=2), 64, axis=3)
    out = conv2d_naive(x, k)
    assert out.shape == (3, 3, 64)
    stack = np.moveaxis(out, -1, 0)  # the notebook's (64, 3, 3) layout
    assert stack.shape == (64, 3, 3)
    assert (stack == [[128, 96, 128], [64, 128, 96], [64, 96, 128]]).all()


def test_d2l_example():
    x = np.arange(9).reshape(3, 3)
    assert conv2d_naive(x, [[0, 1], [2, 3]]).tolist() == [[19, 25], [37, 43]]


def test_steps_record_geometry():
    steps = conv2d_steps(NOTEBOOK_X, NOTEBOOK_K, strides=2, padding=1, dilation_rate=1, bias=0.5)
    assert [s.out_index for s in steps] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    first = steps[0]
    assert first.rows == (0, 1, 2) and first.cols == (0, 1, 2)
    # Row 0 and column 0 of the padded input are padding.
    assert first.on_padding.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert first.patch.tolist() == [[0, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert first.products.tolist() == (first.patch * NOTEBOOK_K).tolist()
    assert first.value == first.products.sum() + 0.5
    assert steps[4].rows == (2, 3, 4)


def test_steps_dilation_gaps_and_non_square():
    x = np.arange(6 * 9).reshape(6, 9)
    k = np.ones((2, 3))
    steps = conv2d_steps(x, k, dilation_rate=(2, 3))
    assert steps[0].rows == (0, 2) and steps[0].cols == (0, 3, 6)
    assert (steps[-1].out_index) == (3, 2)


def test_true_convolution_flips_kernel():
    x = np.arange(16).reshape(4, 4)
    k = np.array([[1, 2], [3, 4]])
    flipped = conv2d_naive(x, k, flip_kernel=True)
    assert np.array_equal(flipped, conv2d_naive(x, k[::-1, ::-1]))
    assert not np.array_equal(flipped, conv2d_naive(x, k))


def test_depthwise_keeps_channels_apart():
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (5, 6, 3))
    k = rng.integers(-2, 3, (3, 3, 3))
    out = depthwise_conv2d_naive(x, k)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], conv2d_naive(x[..., c], k[..., c]))
    assert np.array_equal(out.sum(axis=-1), conv2d_naive(x, k))  # summing them is the standard convolution


def test_describe_sum_writes_numbers():
    steps = conv2d_steps(NOTEBOOK_X, NOTEBOOK_K, bias=-1)
    assert describe_sum(steps[0]) == "1·1 + 1·0 + 1·1 + 0·0 + 1·1 + 1·0 + 0·1 + 0·0 + 1·1 + (-1) = 3"
    assert describe_sum(steps[1]) != describe_sum(steps[0])


@pytest.mark.parametrize("n,k,s,p,d,expected", [
    (5, 3, 1, 0, 1, 3), (5, 3, 1, "same", 1, 5), (5, 3, 2, 1, 1, 3), (28, 3, 1, "valid", 1, 26),
    (28, 3, 2, "same", 1, 14), (7, 3, 1, 0, 2, 3), (4, 4, 1, 0, 1, 1), (6, 2, 3, "same", 1, 2),
])
def test_output_size_formula(n, k, s, p, d, expected):
    assert output_size(n, k, s, p, d) == expected


def test_same_padding_extra_zero_goes_after():
    assert padding_amounts(4, 2, 1, "same") == (0, 1)
    assert padding_amounts(5, 4, 1, "same") == (1, 2)


@pytest.mark.parametrize("kwargs,message", [
    (dict(strides=0), "strides=0"),
    (dict(dilation_rate=0), "dilation_rate=0"),
    (dict(padding=-1), "padding=-1"),
    (dict(padding="full"), "padding='full'"),
    (dict(strides=1.5), "strides=1.5"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        conv2d_naive(NOTEBOOK_X, NOTEBOOK_K, **kwargs)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        output_size(5, 3, **kwargs)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel_size=4 .* padded input \(n=3 \+ padding 0\+0 = 3 cells\)"):
        conv2d_steps(np.ones((3, 3)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="dilation_rate=3 spans 7 cells"):
        output_size(5, 3, dilation_rate=3, padding=0)
    assert output_size(5, 3, dilation_rate=3, padding=1) == 1


def test_channel_mismatch():
    with pytest.raises(ValueError, match="kernel has 2, x has channels=3"):
        conv2d_naive(np.ones((5, 5, 3)), np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="kernel shape"):
        conv2d_naive(np.ones((5, 5)), np.ones((3, 3, 1)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "kernel"])
def test_nan_and_infinity_rejected(bad, where):
    x = NOTEBOOK_X.astype(float)
    k = NOTEBOOK_K.astype(float)
    (x if where == "x" else k)[1, 2] = bad
    for fn in (conv2d_steps, conv2d_naive):
        with pytest.raises(ValueError, match=rf"{where}\[1, 2\]={bad!r}".replace("(", r"\(")):
            fn(x, k)


def test_non_numeric_rejected():
    with pytest.raises(ValueError, match="x must contain only numbers"):
        conv2d_naive([["a", 1], [1, 1]], [[1]])


NUMPY_ONLY = ["convviz.geometry", "convviz.ops", "convviz.backprop", "convviz.descent"]
"""The modules a page may use without waiting for TensorFlow: numpy only, examples in their docstrings."""


@pytest.mark.parametrize("name", NUMPY_ONLY)
def test_doctests(name):
    failures, tried = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


@pytest.mark.parametrize("name", NUMPY_ONLY)
def test_numpy_modules_do_not_import_tensorflow_or_streamlit(name):
    code = f"import sys, {name}; print('tensorflow' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
