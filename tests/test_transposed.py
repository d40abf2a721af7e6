"""Transposed convolution: convviz.geometry.transposed_geometry, convviz.backprop.conv2d_transpose_steps and
convviz.figures_transposed.transposed_steps_figure against tf.nn.conv2d_transpose, worked examples and bad arguments."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from convviz.backprop import conv2d_transpose_steps
from convviz.figures_transposed import transposed_steps_figure
from convviz.geometry import MAX_TRANSPOSED_SIDE, conv_geometry, transposed_geometry
from convviz.tf_reference import conv2d_transpose

TOLERANCE = 1e-9
"""float64 throughout, ours and TensorFlow's: the sums agree to rounding."""


def _expected_length(n, k, s, p, d, op):
    """The formula written out independently of convviz (Dumoulin & Visin 2016, relationship 14, dilated k)."""
    return (n - 1) * s - 2 * p + d * (k - 1) + 1 + op


def _grid():
    """Odd and even input sizes, 1x1 to 3x3 and non-square kernels, strides 1-3, padding 0-2, every valid output
    padding (0 <= op < s); cases whose padding crops everything are left out."""
    cases = []
    shapes = [((1, 1), (1, 1)), ((3, 3), (3, 3)), ((4, 5), (2, 3)), ((5, 4), (3, 2)), ((7, 7), (3, 3)),
              ((5, 5), (2, 2)), ((2, 3), (3, 1))]
    for (xs, ks), s, p in itertools.product(shapes, (1, 2, 3), (0, 1, 2)):
        for op in range(s):
            if all(_expected_length(n, k, s, p, 1, op) >= 1 for n, k in zip(xs, ks)):
                cases.append((xs, ks, s, p, op))
    return cases


GRID = _grid()


@pytest.mark.parametrize("x_shape,k_shape,s,p,op", GRID)
def test_equals_tf_nn_conv2d_transpose(x_shape, k_shape, s, p, op):
    rng = np.random.default_rng(sum(x_shape) * 100 + s * 10 + p + op)
    x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    out_shape = tuple(_expected_length(n, kk, s, p, 1, op) for n, kk in zip(x_shape, k_shape))
    # TensorFlow itself, called here (not through convviz.tf_reference): explicit paddings, output_shape
    want = tf.nn.conv2d_transpose(tf.constant(x[None, :, :, None]), tf.constant(k[:, :, None, None]),
                                  output_shape=[1, *out_shape, 1], strides=s,
                                  padding=[[0, 0], [p, p], [p, p], [0, 0]]).numpy()[0, :, :, 0]
    tc = conv2d_transpose_steps(x, k, s, p, 1, op)
    assert tc.output_shape == out_shape == tc.output.shape
    np.testing.assert_allclose(tc.output, want, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(tc.gathered, want, rtol=0, atol=TOLERANCE)  # the gather view agrees
    (top, _), (left, _) = tc.crop
    np.testing.assert_allclose(tc.canvas_totals[-1][top:top + out_shape[0], left:left + out_shape[1]], want,
                               rtol=0, atol=TOLERANCE)


def test_the_grid_covers_what_the_issue_asks():
    odd = [c for c in GRID if c[0][0] % 2 == 1]
    assert len(GRID) > 100 and odd
    assert {c[2] for c in GRID} == {1, 2, 3}
    assert {c[4] for c in GRID} == {0, 1, 2}  # output padding up to stride - 1
    assert any(c[3] > 0 and c[4] > 0 for c in GRID)


@pytest.mark.parametrize("n,k,s", [(3, 3, 1), (3, 3, 2), (5, 2, 2), (4, 3, 3), (5, 1, 2), (3, 2, 4)])
def test_same_padding_equals_tensorflow_same(n, k, s):
    """'same' is TensorFlow's: output n*s, compared with padding="SAME" (TensorFlow works out the crop)."""
    rng = np.random.default_rng(n + 10 * k + 100 * s)
    x, kernel = rng.standard_normal((n, n)), rng.standard_normal((k, k))
    want = tf.nn.conv2d_transpose(tf.constant(x[None, :, :, None]), tf.constant(kernel[:, :, None, None]),
                                  output_shape=[1, n * s, n * s, 1], strides=s, padding="SAME").numpy()[0, :, :, 0]
    tc = conv2d_transpose_steps(x, kernel, s, "same")
    np.testing.assert_allclose(tc.output, want, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("s,d,p,op", [(1, 2, 0, 0), (2, 2, 1, 1), (3, 2, 2, 2), (1, 3, 1, 0), (2, 3, 0, 1)])
def test_dilation_equals_tensorflow(s, d, p, op):
    """TensorFlow's CPU kernel refuses dilations > 1 in conv2d_transpose; the reference passes the dilated kernel
    (zeros between the taps), and the gradient of tf.nn.convolution with dilations agrees too."""
    rng = np.random.default_rng(s * 7 + d)
    x, k = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    tc = conv2d_transpose_steps(x, k, s, p, d, op)
    assert tc.output_shape == (_expected_length(4, 3, s, p, d, op), _expected_length(3, 2, s, p, d, op))
    want = conv2d_transpose(x, k, (s, s), tc.crop, (d, d), tc.output_shape)
    np.testing.assert_allclose(tc.output, want, rtol=0, atol=TOLERANCE)
    with tf.GradientTape() as tape:
        z = tf.constant(np.zeros((1, *tc.output_shape, 1)))
        tape.watch(z)
        y = tf.nn.convolution(tf.pad(z, [[0, 0], [p, p], [p, p], [0, 0]]), tf.constant(k[:, :, None, None]),
                              padding="VALID", dilations=d)[:, ::s, ::s, :]
        loss = tf.reduce_sum(y * tf.constant(x[None, :, :, None]))
    np.testing.assert_allclose(tc.output, tape.gradient(loss, z).numpy()[0, :, :, 0], rtol=0, atol=TOLERANCE)


def test_worked_example_stride_2_with_gaps_and_overlaps():
    """Dumoulin & Visin's figure 4.5 setting by hand: 2x2 input, 3x3 kernel of ones, stride 2: 5x5, the middle
    row and column hold two landings each, the centre four."""
    tc = conv2d_transpose_steps([[1, 2], [3, 4]], np.ones((3, 3)), strides=2)
    assert tc.output.tolist() == [[1, 1, 3, 2, 2], [1, 1, 3, 2, 2], [4, 4, 10, 6, 6], [3, 3, 7, 4, 4],
                                  [3, 3, 7, 4, 4]]
    # where the second input cell (row 0, column 1) lands: columns 2..4 (stride 2 apart from the first's 0..2)
    step = tc.steps[1]
    assert step.window.out_index == (0, 1) and step.window.cols == (2, 3, 4) and step.window.rows == (0, 1, 2)
    assert step.contribution.tolist() == (2 * np.ones((3, 3))).tolist()
    assert tc.canvas_totals[1][0].tolist() == [1, 1, 3, 2, 2]


def test_output_padding_adds_cells_the_scatter_never_reaches():
    tc = conv2d_transpose_steps(np.ones((2, 2)), np.ones((2, 2)), strides=3, output_padding=2)
    assert tc.canvas_shape == tc.output_shape == (7, 7)
    assert not tc.output[-2:].any() and not tc.output[:, -2:].any()
    assert tc.output[:5, :5].sum() == 16


def test_padding_crops_and_the_crop_is_marked_on_the_taps():
    tc = conv2d_transpose_steps(np.ones((3, 3)), np.ones((3, 3)), strides=1, padding=1)
    assert tc.canvas_shape == (5, 5) and tc.output_shape == (3, 3) and tc.crop == ((1, 1), (1, 1))
    first = tc.steps[0].window
    assert first.on_padding.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert tc.output.tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


def test_transposed_is_the_forward_convolutions_adjoint():
    """<conv(z), x> == <z, conv_transpose(x)> for the forward convolution of the transposed output's size."""
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    tc = conv2d_transpose_steps(x, k, 2, 1, 1, 1)
    _, _, _, back_shape = conv_geometry(tc.output_shape, k.shape, 2, 1, 1)
    assert back_shape == x.shape
    from convviz.ops import conv2d_naive

    z = rng.standard_normal(tc.output_shape)
    assert float(np.sum(conv2d_naive(z, k, 2, 1, 1) * x)) == pytest.approx(float(np.sum(z * tc.output)), abs=1e-9)


# ------------------------------------------------------------------------------------------------- bad arguments
def test_output_padding_must_be_smaller_than_the_stride_as_tensorflow_requires():
    with pytest.raises(ValueError, match=r"output_padding must be smaller than strides .*output_padding=2 with "
                                         r"strides=2"):
        conv2d_transpose_steps(np.ones((3, 3)), np.ones((3, 3)), strides=2, output_padding=2)
    with pytest.raises(tf.errors.InvalidArgumentError):  # TensorFlow refuses the same size
        tf.nn.conv2d_transpose(tf.ones((1, 3, 3, 1), tf.float64), tf.ones((3, 3, 1, 1), tf.float64),
                               output_shape=[1, 9, 9, 1], strides=2, padding="VALID")
    with pytest.raises(ValueError, match="output_padding=1 with strides=1"):
        transposed_geometry((3, 3), (3, 3), 1, 0, 3, 1)  # dilation does not lift TensorFlow's rule
    with pytest.raises(ValueError, match=r"output_padding must be 0 with padding='same'"):
        transposed_geometry((3, 3), (3, 3), 2, "same", 1, 1)
    with pytest.raises(ValueError, match="output_padding must be >= 0, got output_padding=-1"):
        transposed_geometry((3, 3), (3, 3), 2, 0, 1, -1)


def test_padding_that_crops_everything_is_refused():
    with pytest.raises(ValueError, match=r"along the height: padding=2 crops 4 cells from a 3-cell result"):
        transposed_geometry((1, 3), (3, 3), 1, 2)


def test_an_output_over_the_limit_is_refused_before_allocating():
    with pytest.raises(ValueError, match=rf"uncropped output would be 115 cells .* MAX_TRANSPOSED_SIDE="
                                         rf"{MAX_TRANSPOSED_SIDE}"):
        conv2d_transpose_steps(np.ones((28, 28)), np.ones((7, 7)), strides=4, dilation_rate=1)
    assert transposed_geometry((28, 28), (7, 7), 2)[5] == (61, 61)  # within the limit


@pytest.mark.parametrize("bad,match", [(dict(strides=0), "strides must be >= 1, got strides=0"),
                                       (dict(dilation_rate=0), "dilation_rate must be >= 1"),
                                       (dict(padding=-1), "padding must be >= 0, got padding=-1"),
                                       (dict(padding="full"), "padding must be 'valid', 'same'")])
def test_bad_settings_name_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        conv2d_transpose_steps(np.ones((3, 3)), np.ones((3, 3)), **bad)


def test_bad_numbers_and_shapes():
    with pytest.raises(ValueError, match=r"x must contain only finite numbers, got x\[0, 1\]=nan"):
        conv2d_transpose_steps([[1, np.nan]], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"non-empty \(height, width\) input"):
        conv2d_transpose_steps(np.ones((3, 3, 2)), np.ones((2, 2)))


# ------------------------------------------------------------------------------------------------- the figure
def _axis(fig, n):
    suffix = "" if n == 1 else str(n)
    return fig.layout[f"xaxis{suffix}"], fig.layout[f"yaxis{suffix}"]


def _cells(axis_x, axis_y):
    """(rows, cols) an axis pair draws: its ranges span one unit per cell."""
    return round(axis_y.range[0] - axis_y.range[1]), round(axis_x.range[1] - axis_x.range[0])


FIGURE_CASES = [((5, 5), (3, 3), 1, 0, 1, 0), ((5, 5), (3, 3), 2, 1, 1, 1), ((3, 4), (2, 3), 3, 0, 2, 2),
                ((4, 4), (3, 3), 2, "same", 1, 0), ((7, 5), (3, 3), 2, 2, 1, 1)]


@pytest.mark.parametrize("x_shape,k_shape,s,p,d,op", FIGURE_CASES)
def test_every_label_equals_the_shape_drawn(x_shape, k_shape, s, p, d, op):
    rng = np.random.default_rng(0)
    tc = conv2d_transpose_steps(rng.integers(-3, 4, x_shape), rng.integers(-2, 3, k_shape), s, p, d, op)
    fig = transposed_steps_figure(tc)
    (h, w), (kh, kw), (ch, cw) = x_shape, k_shape, tc.canvas_shape
    titles = [_axis(fig, n)[0].title.text for n in (1, 2, 3, 4)]
    assert _cells(*_axis(fig, 1)) == (h, w) and titles[0] == f"Input {h}×{w}"
    assert _cells(*_axis(fig, 2)) == (kh, kw) and titles[1].startswith(f"Kernel {kh}×{kw}")
    assert _cells(*_axis(fig, 3)) == (kh, kw)
    assert _cells(*_axis(fig, 4)) == (ch, cw) and titles[3].startswith(f"Output before cropping {ch}×{cw}")
    # the kept output: the last shape, a dark frame spanning exactly output_shape cells, labelled so
    kept = fig.layout.shapes[-1]
    assert (round(kept.y1 - kept.y0), round(kept.x1 - kept.x0)) == tc.output_shape
    (top, bottom), (left, right) = tc.crop
    assert (kept.y0 + 0.5, kept.x0 + 0.5) == (top, left)
    if top + bottom + left + right:
        assert f"kept: {tc.output_shape[0]}×{tc.output_shape[1]} in the dark frame" in titles[3]
    # the heatmaps hold the cells the axes show
    assert np.shape(fig.data[0].z) == (h, w) and np.shape(fig.data[1].z) == (kh, kw)
    assert np.shape(fig.data[-2].z) == (ch, cw)
    assert len(fig.frames) == h * w


@pytest.mark.parametrize("x_shape,k_shape,s,p,d,op", FIGURE_CASES)
def test_each_frame_shows_the_running_total(x_shape, k_shape, s, p, d, op):
    """What a frame draws on the canvas: the finished canvas above the band, the band's data, the grey cover below;
    that picture is the running total after the step, and the products are value · kernel."""
    rng = np.random.default_rng(1)
    tc = conv2d_transpose_steps(rng.integers(-3, 4, x_shape), rng.integers(-2, 3, k_shape), s, p, d, op)
    fig = transposed_steps_figure(tc)
    final = np.asarray(fig.data[-2].z, dtype=float)
    ch, _ = tc.canvas_shape
    for k, frame in enumerate(fig.frames):
        (band,) = frame.data
        r0 = int(band.y0)
        z = np.asarray(band.z, dtype=float)
        cover = fig.layout.shapes[3].to_plotly_json() | frame.layout.shapes[3].to_plotly_json()
        shown = final.copy()
        shown[r0:r0 + z.shape[0]] = z
        covered_from = ch if cover["y0"] == cover["y1"] else round(cover["y0"] + 0.5)  # no area: nothing covered
        assert covered_from == min(r0 + z.shape[0], ch)
        np.testing.assert_allclose(shown[:covered_from], tc.canvas_totals[k][:covered_from], atol=1e-4)
        assert not tc.canvas_totals[k][covered_from:].any()
        i, j = tc.steps[k].window.out_index
        assert frame.layout.shapes[0].x0 == j - 0.5 and frame.layout.shapes[0].y0 == i - 0.5  # the input cell
        labels = [float(sh.label.text) for sh in frame.layout.shapes[5:5 + tc.kernel.size]]
        assert labels == pytest.approx((tc.x[i, j] * tc.kernel).ravel().tolist(), abs=0.01)


def test_the_written_line_names_the_cell_and_where_it_lands():
    tc = conv2d_transpose_steps([[1, 2], [3, 4]], [[1, 0], [0, -1]], strides=2, padding=1)
    fig = transposed_steps_figure(tc)
    text = fig.frames[1].layout.annotations[0].text
    assert text.startswith("<b>Input cell (row 1, column 2) = 2</b>: 2 · kernel lands on rows 1–2, columns 3–4")
    assert "2·1 = 2, 2·0 = 0, 2·0 = 0, 2·(-1) = -2" in text
    assert "(3 of 4 land on the cropped border)" in text


def test_frames_send_a_band_not_the_canvas():
    tc = conv2d_transpose_steps(np.ones((16, 16)), np.ones((3, 3)), strides=2)
    fig = transposed_steps_figure(tc, show_numbers=False)
    assert all(np.shape(f.data[0].z) == (3, tc.canvas_shape[1]) for f in fig.frames)
    assert list(fig.layout.sliders[0].steps[4].args[0]) == ["5"]
    assert fig.layout.sliders[0].steps[4].method == "animate"


def test_bad_speed():
    tc = conv2d_transpose_steps(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="steps_per_second must be > 0, got steps_per_second=0"):
        transposed_steps_figure(tc, steps_per_second=0)


def test_the_slider_counts_input_cells():
    tc = conv2d_transpose_steps(np.ones((2, 3)), np.ones((2, 2)))
    slider = transposed_steps_figure(tc).layout.sliders[0]
    assert slider.currentvalue.prefix == "Input cell " and slider.currentvalue.suffix == " of 6"
