"""convviz.examples: the notebook's example, the kernels, the generated inputs."""

import numpy as np
import pytest

from convviz import examples
from convviz.ops import conv2d_naive


def test_notebook_example_gives_the_notebooks_numbers():
    out = conv2d_naive(examples.NOTEBOOK_INPUT, examples.NOTEBOOK_KERNEL)
    np.testing.assert_array_equal(out, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_stacked_example_at_32_channels():
    x, k = examples.stacked_notebook_example(32)
    assert x.shape == (5, 5, 32) and k.shape == (3, 3, 32)
    np.testing.assert_array_equal(conv2d_naive(x, k), [[128, 96, 128], [64, 128, 96], [64, 96, 128]])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_stacked_example_rejects_bad_channels(bad):
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        examples.stacked_notebook_example(bad)


def test_every_kernel_preset_is_3x3_and_a_copy():
    assert len(examples.KERNEL_PRESETS) == 9
    for name in examples.KERNEL_PRESETS:
        k = examples.kernel_preset(name)
        assert k.shape == (3, 3) and np.isfinite(k).all()
        k[0, 0] = 99
        assert examples.kernel_preset(name)[0, 0] != 99
    np.testing.assert_allclose(examples.kernel_preset("Gaussian blur").sum(), 1.0)
    np.testing.assert_allclose(examples.kernel_preset("Box blur").sum(), 1.0)
    assert examples.kernel_preset("Laplacian").sum() == 0
    np.testing.assert_array_equal(examples.kernel_preset("Sobel y"), examples.kernel_preset("Sobel x").T)


def test_identity_kernel_reproduces_the_input():
    x = examples.random_integer_input(6, 7, seed=3)
    np.testing.assert_array_equal(conv2d_naive(x, examples.kernel_preset("Identity"), padding="same"), x)


def test_unknown_presets_are_named():
    with pytest.raises(ValueError, match="'Blurry'"):
        examples.kernel_preset("Blurry")
    with pytest.raises(ValueError, match="'Noise'"):
        examples.input_preset("Noise", 5, 5)


def test_generated_inputs():
    r = examples.random_integer_input(4, 6, seed=1)
    assert r.shape == (4, 6) and r.min() >= 0 and r.max() <= 9 and np.all(r == np.round(r))
    np.testing.assert_array_equal(r, examples.random_integer_input(4, 6, seed=1))
    e = examples.edge_input(3, 4)
    np.testing.assert_array_equal(e, [[0, 0, 1, 1]] * 3)
    with pytest.raises(ValueError, match="height must be an integer >= 1, got height=0"):
        examples.edge_input(0, 4)
    assert examples.input_preset("Notebook 5×5 matrix", 9, 9).shape == (5, 5)


def test_digit_input_resizes_by_area():
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[:, 14:] = 255
    full = examples.input_preset("MNIST digit", 28, 28, digit=digit)
    assert full.shape == (28, 28) and full.max() == 1.0
    small = examples.digit_input(digit, 14, 14)
    np.testing.assert_array_equal(small, np.tile([0.0] * 7 + [1.0] * 7, (14, 1)))
    np.testing.assert_allclose(examples.resize_area(np.arange(16.0).reshape(4, 4), 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="needs a digit image"):
        examples.input_preset("MNIST digit", 14, 14)


def test_random_filters_shape_and_seed():
    b = examples.random_filters(3, 2, 5, seed=7)
    assert b.shape == (3, 3, 2, 5)
    np.testing.assert_array_equal(b, examples.random_filters(3, 2, 5, seed=7))
    assert not np.array_equal(b, examples.random_filters(3, 2, 5, seed=8))
    with pytest.raises(ValueError, match="filters must be an integer >= 1, got filters=0"):
        examples.random_filters(3, 2, 0)


def test_target_and_grad_output_presets():
    assert examples.map_preset("All 3s", 2, 3).tolist() == [[3, 3, 3], [3, 3, 3]]
    assert examples.map_preset("One-hot (row 1, column 1)", 2, 2).tolist() == [[1, 0], [0, 0]]
    ints = examples.map_preset("Random integers -2 to 2", 6, 6, seed=3)
    assert ints.min() >= -2 and ints.max() <= 2 and np.array_equal(ints, examples.map_preset(
        "Random integers -2 to 2", 6, 6, seed=3))
    for name in examples.TARGET_PRESETS + examples.GRAD_OUTPUT_PRESETS:
        assert examples.map_preset(name, 4, 5).shape == (4, 5)
    with pytest.raises(ValueError, match="unknown preset 'Ones'"):
        examples.map_preset("Ones", 2, 2)
    with pytest.raises(ValueError, match="height must be an integer >= 1, got height=0"):
        examples.map_preset("Zeros", 0, 2)


def test_fit_targets_and_the_pool_example():
    assert examples.fit_target_kernel("Sobel x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    random = examples.fit_target_kernel("Random", seed=2)
    assert random.shape == (3, 3) and np.array_equal(random, np.round(random, 2))
    assert not np.array_equal(random, examples.fit_target_kernel("Random", seed=3))
    with pytest.raises(ValueError, match="unknown target kernel 'Sobel z'"):
        examples.fit_target_kernel("Sobel z")
    z, grad = examples.pool_example()
    assert z.tolist() == examples.POOL_EXAMPLE.tolist() and grad.tolist() == [[1, 2], [3, 4]]
    z, grad = examples.pool_example(5)
    assert z.shape == (4, 4) and grad.shape == (2, 2) and z.min() >= -3 and grad.min() >= 1
