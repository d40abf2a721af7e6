"""Tests of convviz.figures_grids (images tiled into one heatmap)."""

import numpy as np
import pytest

from convviz import figures_grids


def test_tile():
    images = np.arange(5 * 2 * 3).reshape(5, 2, 3)
    canvas, index = figures_grids.tile(images, columns=3, gap=1)
    assert canvas.shape == (2 * 3 - 1, 3 * 4 - 1)
    np.testing.assert_array_equal(canvas[0:2, 4:7], images[1])
    np.testing.assert_array_equal(canvas[3:5, 4:7], images[4])
    assert np.isnan(canvas[2]).all() and np.isnan(canvas[3:5, 8:]).all()  # gap row, unused slot
    assert index[3, 4] == 4 and index[2, 0] == -1
    with pytest.raises(ValueError, match=r"got \(2, 3\)"):
        figures_grids.tile(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="columns=0"):
        figures_grids.tile(images, columns=0)
