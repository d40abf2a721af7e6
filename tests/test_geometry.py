"""convviz.geometry: one meaning of padding, used alike by the numpy steps, the TensorFlow ops and TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf

from convviz.geometry import (axis_padding, conv_geometry, output_size, padding_2d, padding_amounts, pair,
                              positive_int, split_padding, transposed_geometry)
from convviz.ops import conv2d_naive
from convviz.tensor_ops import conv2d, conv2d_maxpool

# Every form of the one padding argument, and the ((top, bottom), (left, right)) zeros it means on a 7x9 input
# under a 3x2 kernel, strides 1, dilation 1.
FORMS = [
    ("valid", ((0, 0), (0, 0))),
    ("SAME", ((1, 1), (0, 1))),
    (2, ((2, 2), (2, 2))),
    ((1, 0), ((1, 1), (0, 0))),                # (rows, cols), as Keras's ZeroPadding2D
    (((0, 1), (2, 0)), ((0, 1), (2, 0))),      # ((top, bottom), (left, right)), as Keras's ZeroPadding2D
    (("same", (3, 1)), ((1, 1), (3, 1))),      # one entry per axis, of any form
]


@pytest.mark.parametrize("padding,pads", FORMS)
def test_one_meaning_of_padding_everywhere(padding, pads):
    assert padding_2d((7, 9), (3, 2), 1, padding, 1) == pads
    _, _, got, out = conv_geometry((7, 9), (3, 2), 1, padding, 1)
    assert got == pads
    assert out == (7 + sum(pads[0]) - 2, 9 + sum(pads[1]) - 1)
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((7, 9)), rng.standard_normal((3, 2))
    reference = tf.nn.conv2d(tf.pad(x[None, :, :, None], [[0, 0], pads[0], pads[1], [0, 0]]),
                             k[:, :, None, None], 1, "VALID").numpy()[0, :, :, 0]
    np.testing.assert_allclose(conv2d_naive(x, k, padding=padding), reference, atol=1e-12)
    ours = conv2d(tf.constant(x[None, :, :, None], tf.float32), tf.constant(k[:, :, None, None], tf.float32),
                  padding=padding)
    np.testing.assert_allclose(ours.numpy()[0, :, :, 0], reference, atol=1e-5)


def test_the_fused_block_reads_padding_the_same_way():
    x = tf.random.stateless_normal((1, 7, 9, 1), seed=[1, 2])
    k = tf.random.stateless_normal((3, 2, 1, 2), seed=[3, 4])
    b = tf.zeros([2])
    for padding, pads in FORMS:
        z = tf.nn.conv2d(tf.pad(x, [[0, 0], pads[0], pads[1], [0, 0]]), k, 1, "VALID")
        want = tf.nn.max_pool2d(tf.nn.relu(z), 2, 2, "VALID")
        np.testing.assert_allclose(conv2d_maxpool(x, k, b, padding), want, atol=1e-5)


def test_one_axis_functions_take_before_after():
    assert padding_amounts(6, 3, 1, (0, 2)) == (0, 2)
    assert output_size(6, 3, 1, (0, 2)) == 6
    assert axis_padding("Same") == "same" and axis_padding(3) == (3, 3) and axis_padding([1, 0]) == (1, 0)
    assert split_padding(((0, 1), "valid")) == ((0, 1), "valid")


@pytest.mark.parametrize("padding,message", [
    (-1, "padding must be >= 0, got padding=-1"),
    (1.5, "padding must be an integer >= 0, got padding=1.5"),
    ("full", "got padding='full'"),
    ((1, 2, 3), r"got padding=\(1, 2, 3\)"),
    (((0, 1, 2), 0), r"got padding=\(0, 1, 2\)"),
    (((0, -1), 0), "padding must be >= 0, got padding=-1"),
    (True, "padding must be an integer >= 0, got padding=True"),
])
def test_bad_padding_is_refused_in_one_place_with_the_same_words(padding, message):
    for check in (split_padding, lambda p: conv_geometry((5, 5), (3, 3), 1, p, 1),
                  lambda p: conv2d(tf.zeros((1, 5, 5, 1)), tf.zeros((3, 3, 1, 1)), padding=p),
                  lambda p: transposed_geometry((3, 3), (2, 2), 1, p, 1, 0)):
        with pytest.raises(ValueError, match=message):
            check(padding)


def test_pairs_and_positive_ints_name_the_value():
    assert pair(3, "strides") == (3, 3) and pair((1, 2), "strides") == (1, 2)
    assert positive_int(np.int64(4), "filters") == 4
    with pytest.raises(ValueError, match="strides must be an int or a pair of ints, got strides=.1, 2, 3."):
        pair((1, 2, 3), "strides")
    with pytest.raises(ValueError, match="filters must be >= 1, got filters=0"):
        positive_int(0, "filters")


def test_transposed_crop_may_be_given_per_side():
    # Cropping (0, 1) rows and (1, 0) columns of the 8x8 canvas of a 3x3 input, 3x3 kernel, stride 2 + 1.
    _, _, crop, _, out, canvas = transposed_geometry((3, 3), (3, 3), 2, ((0, 1), (1, 0)), 1, 1)
    assert crop == ((0, 1), (1, 0)) and canvas == (8, 8) and out == (7, 7)
