"""convviz.backprop: every gradient record against tf.GradientTape, worked examples by hand, bad arguments."""

import numpy as np
import pytest
import tensorflow as tf
from conv_grid import GRID, fits

from convviz.backprop import conv2d_backward_steps, max_pool_backward, relu_backward
from convviz.descent import KernelFit, check_learning_rate, descent_step, linear_loss, mse_loss
from convviz.geometry import conv_geometry
from convviz.ops import conv2d_naive, conv2d_patches, conv2d_steps, describe_sum
from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL
from convviz.tf_reference import conv_gradients

TOLERANCE = 1e-5


def _case(h, w, c, kh, kw, seed):
    """A random input and kernel: 2-D for one channel (the page's case), (h, w, c) and (kh, kw, c) otherwise."""
    rng = np.random.default_rng(seed)
    if c == 1:
        return rng.standard_normal((h, w)), rng.standard_normal((kh, kw)), rng
    return rng.standard_normal((h, w, c)), rng.standard_normal((kh, kw, c)), rng


def _check_against_tensorflow(x, k, rng, s, p, d):
    _, _, pads, out_shape = conv_geometry(x.shape, k.shape, s, p, d)
    g = rng.standard_normal(out_shape)
    back = conv2d_backward_steps(x, k, g, s, p, d)
    dx_tf, dk_tf, db_tf = conv_gradients(x, k, g, (s, s), pads, (d, d))
    np.testing.assert_allclose(back.grad_kernel, dk_tf, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(back.grad_input, dx_tf, rtol=0, atol=TOLERANCE)  # gather
    np.testing.assert_allclose(back.scatter_steps[-1].total, dx_tf, rtol=0, atol=TOLERANCE)  # scatter
    np.testing.assert_allclose(back.kernel_steps[-1].total, dk_tf, rtol=0, atol=TOLERANCE)
    assert back.grad_bias == pytest.approx(db_tf, abs=TOLERANCE)
    return back


@pytest.mark.parametrize("h,w,c,f,kh,kw,s,p,d", GRID)
def test_every_gradient_matches_tf_gradient_tape(h, w, c, f, kh, kw, s, p, d):
    """The grid of the forward tests (tests/conv_grid.py); one filter per case (``f`` seeds the draw)."""
    if not fits(h, w, kh, kw, p, d):
        pytest.skip("dilated kernel larger than the padded input")
    x, k, rng = _case(h, w, c, kh, kw, seed=h * 1000 + w * 100 + c * 10 + f)
    back = _check_against_tensorflow(x, k, rng, s, p, d)
    assert len(back.kernel_steps) == len(back.scatter_steps) == back.grad_output.size
    assert len(back.gather_steps) == c and all(len(steps) == h * w for steps in back.gather_steps)


@pytest.mark.parametrize("s,d,p", [(2, 2, "same"), (3, 2, 1), (2, 3, 2)])
def test_strides_with_dilation_too(s, d, p):
    """Not in the forward grid (tf.nn.conv2d's CPU kernel refuses the pair); the reference subsamples."""
    x, k, rng = _case(11, 12, 2, 2, 3, seed=s * 10 + d)
    _check_against_tensorflow(x, k, rng, s, p, d)


def test_seed_example_all_ones_dk_is_the_sum_of_the_nine_patches():
    back = conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, np.ones((3, 3)))
    # The nine 3x3 patches of the seed's 5x5 input, row-major, written out by hand.
    patches = [
        [[1, 1, 1], [0, 1, 1], [0, 0, 1]], [[1, 1, 0], [1, 1, 1], [0, 1, 1]], [[1, 0, 0], [1, 1, 0], [1, 1, 1]],
        [[0, 1, 1], [0, 0, 1], [0, 0, 1]], [[1, 1, 1], [0, 1, 1], [0, 1, 1]], [[1, 1, 0], [1, 1, 1], [1, 1, 0]],
        [[0, 0, 1], [0, 0, 1], [0, 1, 1]], [[0, 1, 1], [0, 1, 1], [1, 1, 0]], [[1, 1, 1], [1, 1, 0], [1, 0, 0]],
    ]
    # Their sum, cell by cell: e.g. the top-left weight sees 1+1+1+0+1+1+0+0+1 = 6.
    assert np.sum(patches, axis=0).tolist() == [[6, 7, 6], [4, 7, 7], [4, 6, 6]]
    assert back.grad_kernel.tolist() == [[6, 7, 6], [4, 7, 7], [4, 6, 6]]
    for k, step in enumerate(back.kernel_steps):
        assert step.window.patch.tolist() == patches[k] and step.grad == 1
        assert step.total.tolist() == np.sum(patches[:k + 1], axis=0).tolist()  # the running total
    assert back.grad_bias == 9


def test_scatter_drops_what_lands_on_padding():
    g = np.arange(1.0, 26.0).reshape(5, 5)
    back = conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, g, padding=1)
    first = back.scatter_steps[0]
    assert first.window.on_padding.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert first.contribution.tolist() == (1 * NOTEBOOK_KERNEL).tolist()  # the whole g·K is recorded...
    expected = np.zeros((5, 5))
    expected[:2, :2] = NOTEBOOK_KERNEL[1:, 1:]  # ...but only the four taps on the input land
    assert first.total.tolist() == expected.tolist()
    second = back.scatter_steps[1]
    expected[:2, :3] += 2 * NOTEBOOK_KERNEL[1:, :]
    assert second.total.tolist() == expected.tolist()


def test_gather_spreads_and_pads_grad_output_and_flips_the_kernel():
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    kernel = np.arange(9.0).reshape(3, 3)
    back = conv2d_backward_steps(NOTEBOOK_INPUT, kernel, g, strides=2)
    # 5x5 input, stride 2, valid: one zero between g's cells, d·(k-1) - p = 2 zeros before them, 7x7 in all.
    spread = np.zeros((7, 7))
    spread[2, 2], spread[2, 4], spread[4, 2], spread[4, 4] = 1, 2, 3, 4
    assert back.spread_grad.tolist() == spread.tolist()
    assert back.spread_source[4, 2].tolist() == [1, 0] and back.spread_source[3, 3].tolist() == [-1, -1]
    assert back.flipped_kernel.tolist() == kernel[::-1, ::-1].tolist()
    # dX at input (row 3, column 3) (0-based (2, 2)) is covered by all four windows, each at a different tap:
    # g00·k[2,2] + g01·k[2,0] + g10·k[0,2] + g11·k[0,0] = 1·8 + 2·6 + 3·2 + 4·0 = 26
    step = back.gather_steps[0][2 * 5 + 2]
    assert step.value == 26 and back.grad_input[2, 2] == 26
    # written out: the window of G (rows and columns 3-5) times the flipped kernel 8 7 6 / 5 4 3 / 2 1 0
    assert describe_sum(step) == "1·8 + 0·7 + 2·6 + 0·5 + 0·4 + 0·3 + 3·2 + 0·1 + 4·0 = 26"


def test_gather_crops_what_reaches_only_padding():
    """Padding 2 around a 1-tall kernel: d·(k-1) - p = -2, so g's first and last rows reach only padding."""
    x, k, rng = _case(4, 5, 1, 1, 3, seed=3)
    back = _check_against_tensorflow(x, k, rng, 1, 2, 1)
    assert back.grad_output.shape == (8, 7) and back.spread_grad.shape == (4, 7)
    assert back.spread_grad.tolist() == back.grad_output[2:6].tolist()


@pytest.mark.parametrize("grad,message", [
    (np.ones((2, 3)), r"grad_output must have the output's shape \(3, 3\), got grad_output shape \(2, 3\)"),
    ([[1, 1, 1], [1, np.nan, 1], [1, 1, 1]], r"grad_output\[1, 1\]=nan"),
    ([[1, 1, 1], [1, 1, 1], [1, 1, np.inf]], r"grad_output\[2, 2\]=inf"),
])
def test_bad_grad_output_names_the_value(grad, message):
    with pytest.raises(ValueError, match=message):
        conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, grad)


def test_bad_geometry_is_refused_as_in_the_forward_pass():
    with pytest.raises(ValueError, match="strides=0"):
        conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, np.ones((3, 3)), strides=0)


def test_patches_are_the_steps_patches():
    x = np.random.default_rng(0).standard_normal((7, 6, 2))
    patches = conv2d_patches(x, (3, 2), strides=2, padding="same", dilation_rate=1)
    steps = conv2d_steps(x, np.ones((3, 2, 2)), strides=2, padding="same")
    assert patches.shape == (4, 3, 3, 2, 2)
    for step in steps:
        np.testing.assert_array_equal(patches[step.out_index], step.patch)


# --------------------------------------------------------------------------- loss and one descent step
def test_losses_and_their_gradients():
    y = conv2d_naive(NOTEBOOK_INPUT, NOTEBOOK_KERNEL)  # 4 3 4 / 2 4 3 / 2 3 4
    loss, grad = mse_loss(y, np.full((3, 3), 3.0))
    assert loss == pytest.approx(6 / 9)  # (1 + 0 + 1 + 1 + 1 + 0 + 1 + 0 + 1) / 9
    np.testing.assert_allclose(grad, 2 / 9 * np.array([[1, 0, 1], [-1, 1, 0], [-1, 0, 1]]))
    loss, grad = linear_loss(y, np.ones((3, 3)))
    assert loss == 29 and grad.tolist() == np.ones((3, 3)).tolist()
    with pytest.raises(ValueError, match=r"target must have the output's shape \(3, 3\), got target shape \(2, 2\)"):
        mse_loss(y, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"target\[0, 1\]=nan"):
        mse_loss(y, [[3, np.nan, 3], [3, 3, 3], [3, 3, 3]])


def test_a_small_step_lowers_the_loss_and_a_large_one_raises_it():
    target = np.full((3, 3), 3.0)

    def loss(y):
        return mse_loss(y, target)

    small = descent_step(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, 0.0, 0.01, loss)
    assert small.went_down and small.loss_before == pytest.approx(6 / 9)
    np.testing.assert_allclose(small.update, -0.01 * small.grad_kernel)
    np.testing.assert_allclose(small.kernel_after, NOTEBOOK_KERNEL + small.update)
    assert small.bias_after == pytest.approx(-0.01 * small.grad_bias)
    large = descent_step(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, 0.0, 0.5, loss)
    assert not large.went_down and large.loss_after > 2 * large.loss_before  # 0.67 -> 1.76


@pytest.mark.parametrize("value,message", [
    (0, "learning_rate must be > 0, got learning_rate=0.0"),
    (-0.1, "learning_rate must be > 0, got learning_rate=-0.1"),
    (1e6, "learning_rate must be <= 100, got learning_rate=1000000.0"),
    (float("nan"), "learning_rate must be a finite number, got learning_rate=nan"),
    (float("inf"), "learning_rate must be a finite number, got learning_rate=inf"),
    (None, "learning_rate must be a number, got learning_rate=None"),
    ("0.1", "learning_rate must be a number, got learning_rate='0.1'"),
])
def test_bad_learning_rates_name_the_value(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_learning_rate(value)
    assert check_learning_rate(0.05) == 0.05


# --------------------------------------------------------------------------- pooling and ReLU
def _tf_gradient(fn, x, upstream):
    tx = tf.constant(np.asarray(x, np.float64)[None, :, :, None])
    with tf.GradientTape() as tape:
        tape.watch(tx)
        y = fn(tx)
        loss = tf.reduce_sum(y * tf.constant(np.asarray(upstream, np.float64)[None, :, :, None]))
    return y.numpy()[0, :, :, 0], tape.gradient(loss, tx).numpy()[0, :, :, 0]


@pytest.mark.parametrize("x", [
    [[3, 3, 1, 0], [3, 2, 5, 5], [0, 0, 2, -1], [0, 0, -1, 2]],  # ties: three 3s, two 5s, all zeros, two 2s
    np.random.default_rng(1).integers(-2, 3, (5, 7)),  # odd sizes: the last row and column get no window
    np.random.default_rng(2).standard_normal((6, 4)),
])
def test_max_pool_backward_matches_tensorflow_ties_included(x):
    x = np.asarray(x, dtype=float)
    upstream = np.arange(1.0, 1 + (x.shape[0] // 2) * (x.shape[1] // 2)).reshape(x.shape[0] // 2, x.shape[1] // 2)
    back = max_pool_backward(x, upstream)
    y_tf, dx_tf = _tf_gradient(lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID"), x, upstream)
    np.testing.assert_allclose(back.output, y_tf, atol=TOLERANCE)
    np.testing.assert_allclose(back.grad_input, dx_tf, atol=TOLERANCE)


def test_max_pool_records_the_first_tied_maximum():
    back = max_pool_backward([[3, 3, 1, 0], [3, 2, 5, 5], [0, 0, 2, -1], [0, 0, -1, 2]], [[1, 2], [3, 4]])
    first, second, third, fourth = back.windows
    assert (first.argmax, first.ties, first.value, first.routed.tolist()) == ((0, 0), 3, 3.0, [[1, 0], [0, 0]])
    assert (second.argmax, second.ties, second.rows, second.cols) == ((1, 0), 2, (0, 1), (2, 3))
    assert (third.argmax, third.ties) == ((0, 0), 4) and (fourth.argmax, fourth.ties) == ((0, 0), 2)
    assert back.grad_input.tolist() == [[1, 0, 0, 0], [0, 0, 2, 0], [3, 0, 4, 0], [0, 0, 0, 0]]


def test_relu_backward_matches_tensorflow_and_blocks_at_zero():
    x = np.array([[-1.5, 0.0, 2.0], [3.0, -0.1, 0.0]])
    upstream = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    back = relu_backward(x, upstream)
    y_tf, dx_tf = _tf_gradient(tf.nn.relu, x, upstream)
    np.testing.assert_allclose(back.output, y_tf)
    np.testing.assert_allclose(back.grad_input, dx_tf)
    assert back.grad_input.tolist() == [[0, 0, 3], [4, 0, 0]] and back.mask.tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize("call,message", [
    (lambda: max_pool_backward(np.ones((4, 4)), np.ones((3, 2))),
     r"grad_output must have the pooled shape \(2, 2\), got grad_output shape \(3, 2\)"),
    (lambda: max_pool_backward(np.ones((1, 4)), np.ones((0, 2))), r"at least 2×2, got shape \(1, 4\)"),
    (lambda: max_pool_backward(np.ones((4, 4)), np.ones((2, 2)), pool_size=0), "pool_size=0"),
    (lambda: relu_backward([1.0, np.inf], [1.0, 1.0]), r"x\[1\]=inf"),
    (lambda: relu_backward([1.0, 2.0], [1.0]), r"grad_output must have the input's shape \(2,\)"),
])
def test_pool_and_relu_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- learning a kernel
def _digit():
    from convviz.data import load_sample

    return load_sample()[1][0][0] / 255.0  # test digit #0, the demo's default input


def test_kernel_fit_gradient_is_tensorflows():
    sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    images = np.stack([_digit(), _digit().T])
    fit = KernelFit(images, sobel, seed=4)
    loss, grad = fit.loss_and_gradient(fit.kernel)
    tx = tf.constant(images[:, :, :, None])
    tk = tf.Variable(fit.kernel[:, :, None, None])
    with tf.GradientTape() as tape:
        y = tf.nn.convolution(tx, tk, padding="VALID")
        target = tf.nn.convolution(tx, tf.constant(sobel[:, :, None, None]), padding="VALID")
        loss_tf = tf.reduce_mean((y - target) ** 2)
    assert loss == pytest.approx(float(loss_tf), rel=1e-9)
    np.testing.assert_allclose(grad, tape.gradient(loss_tf, tk).numpy()[:, :, 0, 0], rtol=0, atol=TOLERANCE)
    # and the records agree: dK of the first image's MSE, window by window
    one = KernelFit(images[0], sobel, seed=4)
    g = mse_loss(conv2d_naive(images[0], one.kernel), one.target_output[0])[1]
    np.testing.assert_allclose(one.loss_and_gradient(one.kernel)[1],
                               conv2d_backward_steps(images[0], one.kernel, g).grad_kernel, atol=1e-12)


def test_kernel_fit_learns_sobel_x_from_the_defaults_in_under_500_steps():
    sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    fit = KernelFit(_digit(), sobel)  # learning rate 0.5, momentum 0.9, seed 0
    assert fit.errors[0] > 0.5 and fit.reached_at is None
    fit.run(500)
    assert fit.reached_at is not None and fit.reached_at < 500
    assert fit.errors[fit.reached_at] <= 1e-3 < fit.errors[fit.reached_at - 1]
    assert fit.error < 1e-6 and fit.losses[-1] < 1e-9 and len(fit.losses) == 501
    plain = KernelFit(_digit(), sobel, momentum=0.0)  # plain gradient descent is much slower here
    plain.run(500)
    assert plain.reached_at is None and plain.error > 0.1  # what the page's caption says


def test_fifty_steps_take_well_under_a_second():
    """The issue's budget: well under a second per 50 steps on the server (about 2 ms for one digit here)."""
    import time

    fit = KernelFit(np.stack([_digit()] * 8), np.eye(3))  # the most digits the page allows
    start = time.perf_counter()
    fit.run(50)
    assert time.perf_counter() - start < 0.5


def test_kernel_fit_diverges_with_a_learning_rate_too_large_and_stops():
    fit = KernelFit(_digit(), np.eye(3), learning_rate=50.0, momentum=0.0)
    fit.run(200)
    assert fit.diverged and fit.steps < 200 and fit.reached_at is None


@pytest.mark.parametrize("call,message", [
    (lambda fit: fit.run(0), "steps must be between 1 and 5000, got steps=0"),
    (lambda fit: fit.run(5001), "steps must be between 1 and 5000, got steps=5001"),
    (lambda fit: fit.run(2.5), "steps must be between 1 and 5000, got steps=2.5"),
    (lambda fit: KernelFit(np.ones((5, 5)), np.eye(3), momentum=1.0), r"momentum must be in \[0, 1\), got momentum=1.0"),
    (lambda fit: KernelFit(np.ones((5, 5)), np.eye(3), learning_rate=-1), "learning_rate must be > 0"),
    (lambda fit: KernelFit(np.ones((2, 5)), np.eye(3)), "kernel_size=3 .* more than the padded input"),
    (lambda fit: KernelFit(np.ones((5, 5)), [[1, np.nan]]), r"target_kernel\[0, 1\]=nan"),
])
def test_kernel_fit_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(KernelFit(np.ones((5, 5)), np.eye(3)))
