"""The grid of convolution geometries every op is checked over (imported by test modules; tests/ is on sys.path).

``GRID``: tuples ``(height, width, channels, filters, kh, kw, strides, padding, dilation)``: non-square
inputs and kernels, 1-4 channels, strides 1-3, paddings valid/same/0-2, dilation 1-3.
tf.nn.conv2d on CPU refuses strides > 1 together with dilation > 1, so the grid skips that pair.
"""

import itertools

from convviz.geometry import output_size

_SHAPES = [(7, 9, 1, 2, 3, 2), (8, 8, 2, 3, 3, 3), (10, 7, 3, 2, 2, 3), (9, 11, 4, 3, 3, 1), (12, 10, 2, 4, 1, 3)]
_SETTINGS = [(s, p, d) for s, p, d in itertools.product([1, 2, 3], ["valid", "same", 0, 1, 2], [1, 2, 3])
             if s == 1 or d == 1]
GRID = [_SHAPES[(i + shift) % len(_SHAPES)] + setting
        for shift in (0, 2, 4) for i, setting in enumerate(_SETTINGS)]


def fits(h, w, kh, kw, p, d) -> bool:
    """Whether a ``kh`` x ``kw`` kernel dilated by ``d`` fits an ``h`` x ``w`` input padded by ``p``."""
    try:
        output_size(h, kh, 1, p, d)
        output_size(w, kw, 1, p, d)
        return True
    except ValueError:
        return False
