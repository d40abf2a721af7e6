"""convviz.figures_backprop: the backprop figures draw what the records say, one frame per step."""

import re

import numpy as np
import pytest
from test_figures import squares

from convviz.backprop import conv2d_backward_steps, max_pool_backward, relu_backward
from convviz.figures_backprop import (fit_curves_figure, gather_figure, kernel_grad_figure, pool_backward_figure,
                                      relu_backward_figure, scatter_figure)
from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL, POOL_EXAMPLE


def plain(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text.replace("<br>", " "))


@pytest.fixture
def padded():
    """Padding 1, stride 2, grad_output 1..9: windows at the border reach the padding."""
    return conv2d_backward_steps(NOTEBOOK_INPUT, NOTEBOOK_KERNEL, np.arange(1.0, 10.0).reshape(3, 3), 2, 1)


def test_kernel_grad_frames_carry_the_contribution_and_the_running_total(padded):
    fig = kernel_grad_figure(padded, follow=(1, 1))
    assert len(fig.frames) == 9
    for frame, step in zip(fig.frames, padded.kernel_steps):
        contribution, total = frame.data
        assert frame.traces == (3, 4)
        np.testing.assert_allclose(np.array(contribution.z), step.contribution)
        np.testing.assert_allclose(np.array(total.z), step.total)
    # the followed weight (row 2, column 2) multiplies the centre tap: input (padded) row 1, column 1 at window 1
    ring = fig.frames[0].layout.shapes[2]
    assert (ring.x0, ring.y0, ring.x1, ring.y1) == (0.5, 0.5, 1.5, 1.5)
    assert plain(fig.frames[1].layout.annotations[0].text).endswith("Weight (row 2, column 2): dK = 1·1 + 2·1 = 3")
    with pytest.raises(ValueError, match=r"follow must be a weight of the 3×3 kernel, got follow=\(3, 0\)"):
        kernel_grad_figure(padded, follow=(3, 0))


def test_long_sums_of_the_followed_weight_count_their_earlier_terms():
    back = conv2d_backward_steps(np.ones((6, 6)), np.ones((2, 2)), np.ones((5, 5)))
    last = plain(kernel_grad_figure(back).frames[-1].layout.annotations[0].text)
    assert "dK = … 16 earlier terms + 1·1" in last and last.endswith("= 25")


def test_scatter_covers_the_shares_that_land_on_padding(padded):
    fig = scatter_figure(padded)
    for frame, step in zip(fig.frames, padded.scatter_steps):
        cover = frame.layout.shapes[3]
        dropped = sorted(map(tuple, np.argwhere(step.window.on_padding).tolist()))
        assert cover.visible and (cover.path != "M0,0") == bool(dropped)  # "M0,0" covers nothing
        if dropped:
            assert squares(cover.path) == dropped
        total, contribution = frame.data
        np.testing.assert_allclose(np.array(total.z, dtype=float)[1:6, 1:6], step.total)  # inside the padding
        assert np.isnan(np.array(total.z, dtype=float)[0]).all()
        np.testing.assert_allclose(np.array(contribution.z), step.contribution)
    assert plain(fig.frames[0].layout.annotations[0].text) == ("Output cell (row 1, column 1) sends 1 back: dX += 1 · kernel "
                                                      "on its window (5 of 9 on padding, dropped)")
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "Pause", "Reset"]


def test_gather_shades_the_inserted_zeros_and_draws_the_flipped_kernel(padded):
    fig = gather_figure(padded)
    assert len(fig.frames) == 25 and fig.layout.xaxis2.title.text == "Kernel, flipped"
    assert fig.layout.xaxis.title.text == "grad_output spread,<br>padded to 7×7"
    filler = ~np.isnan(np.array(fig.data[0].z, dtype=float))
    np.testing.assert_array_equal(filler, padded.spread_source[:, :, 0] < 0)
    assert plain(fig.frames[6].layout.annotations[0].text).startswith("dX (row 2, column 2) = ")


def test_pool_figure_rings_the_first_tied_maximum_and_fills_in_window_by_window():
    pool = max_pool_backward(np.maximum(POOL_EXAMPLE, 0), [[1, 2], [3, 4]])
    fig = pool_backward_figure(pool)
    assert len(fig.frames) == 4
    ring = fig.frames[0].layout.shapes[1]
    assert (ring.x0, ring.y0) == (0.5, -0.5)  # row 1, column 2: the first of the two 3s
    assert plain(fig.frames[2].layout.annotations[0].text) == ("Window (row 2, column 1): max 0 at (row 3, column 1), the first "
                                                      "of 4 tied (row-major) → it gets the whole gradient 3; the other "
                                                      "3 cells get 0")
    rest_of_row, rows_below = fig.frames[0].layout.shapes[5:7]
    assert (rest_of_row.x0, rest_of_row.x1, rest_of_row.y0, rest_of_row.y1) == (1.5, 3.5, -0.5, 1.5)
    last = fig.frames[-1].layout.shapes[6]
    assert rows_below.visible and rows_below.y0 != rows_below.y1 and last.visible and last.y0 == last.y1  # no area


def test_relu_figure_covers_where_the_gradient_stops():
    relu = relu_backward(POOL_EXAMPLE, np.ones((4, 4)))
    fig = relu_backward_figure(relu)
    assert squares(fig.layout.shapes[0].path) == sorted(map(tuple, np.argwhere(POOL_EXAMPLE <= 0).tolist()))
    np.testing.assert_array_equal(np.array(fig.data[3].z), (POOL_EXAMPLE > 0).astype(float))


def test_fit_curves_mark_the_tolerance_and_the_step_that_reached_it():
    fig = fit_curves_figure([1.0, 0.1, 0.0, float("nan")], [2.0, 0.01, 1e-4, 1e-5], 1e-3, 2)
    assert list(fig.data[0].y) == [1.0, 0.1, None, None]  # a log axis cannot show 0 or NaN
    assert [s.type for s in fig.layout.shapes] == ["line", "line"] and fig.layout.shapes[1].x0 == 2
    assert fig.layout.yaxis.type == "log"
