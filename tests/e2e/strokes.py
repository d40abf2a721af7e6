"""Hand-like stroke paths for the digits 0-9, for drawing on the Draw page's canvas.

Each digit is a list of strokes; a stroke is a list of ``(x, y)`` points in a unit box
(x to the right, y down, both in ``[0, 1]``), traced in the order a person draws it (pen down at
the first point, up at the last). :func:`canvas_paths` places a digit in a box on the canvas and
densifies each stroke into mouse positions a few pixels apart, ready for Playwright's
``page.mouse.move`` (:func:`draw_on_canvas` does the drawing); :func:`render` rasterises the same paths with Pillow (white round-capped
strokes on black), which is what the canvas produces, for tests that run without a browser.

Used by ``tests/test_preprocess.py`` and the browser tests; plain Python + Pillow, no pytest.

With the shipped model, each digit drawn in the browser by :func:`draw_on_canvas` at
:data:`DEFAULT_BOX` and at ``(160, 20, 60, 100)`` (small, top right) was read correctly, 10 of 10
both times (2026-11-30).
"""

from __future__ import annotations

import math

CANVAS_SIZE = 280
"""Side of the Draw page's canvas, pixels."""

DEFAULT_BOX = (80.0, 40.0, 120.0, 200.0)
"""Where a digit is drawn by default: ``(left, top, width, height)`` in canvas pixels."""


def _arc(cx, cy, rx, ry, start, stop, n=24):
    """Points on an ellipse from angle ``start`` to ``stop`` (radians; y down, so +90 degrees is below)."""
    return [(cx + rx * math.cos(start + (stop - start) * i / n), cy + ry * math.sin(start + (stop - start) * i / n))
            for i in range(n + 1)]


def _eight():
    # A vertical figure-eight (lemniscate of Gerono turned upright): top -> right of the upper loop
    # -> crossing -> left of the lower loop -> bottom -> right of the lower loop -> crossing -> back.
    pts = []
    for i in range(49):
        t = 2 * math.pi * i / 48
        pts.append((0.5 + 0.62 * math.sin(t) * math.cos(t), 0.5 - 0.46 * math.cos(t)))
    return [pts]


DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    # an oval, started at the top and drawn anticlockwise (down the left side), closed with a small overlap
    0: [_arc(0.5, 0.5, 0.34, 0.46, -math.pi / 2, -math.pi / 2 - 2 * math.pi - 0.3, n=40)],
    # one stroke, slightly slanted
    1: [[(0.56, 0.04), (0.52, 0.35), (0.48, 0.65), (0.45, 0.96)]],
    # a hook over the top, a diagonal down to the left, a flat base
    2: [_arc(0.5, 0.3, 0.3, 0.25, math.pi * 1.05, math.pi * 2.15, n=16)
        + [(0.62, 0.55), (0.4, 0.75), (0.18, 0.95), (0.5, 0.95), (0.86, 0.95)]],
    # two bumps to the right
    3: [_arc(0.45, 0.27, 0.33, 0.23, math.pi * 1.1, math.pi * 2.5, n=18)
        + _arc(0.45, 0.72, 0.37, 0.24, -math.pi / 2, math.pi * 0.85, n=18)],
    # the open-topped 4: down and across, then the long upright
    4: [[(0.28, 0.04), (0.24, 0.3), (0.2, 0.58), (0.5, 0.58), (0.86, 0.57)],
        [(0.7, 0.06), (0.7, 0.5), (0.7, 0.96)]],
    # flag, neck, then a bowl opening to the left
    5: [[(0.82, 0.05), (0.5, 0.05), (0.26, 0.05), (0.24, 0.25), (0.22, 0.45)]
        + _arc(0.47, 0.67, 0.33, 0.28, -math.pi * 0.78, math.pi * 0.85, n=20)],
    # a long curve down the left side into a loop at the bottom
    6: [[(0.72, 0.04), (0.55, 0.14), (0.4, 0.3), (0.3, 0.5), (0.27, 0.7)]
        + _arc(0.5, 0.72, 0.23, 0.23, math.pi, -math.pi, n=28)],
    # a bar and a long diagonal
    7: [[(0.14, 0.06), (0.5, 0.06), (0.86, 0.06), (0.7, 0.35), (0.56, 0.65), (0.44, 0.96)]],
    8: _eight(),
    # a loop at the top, then the stem straight down from its right side
    9: [_arc(0.48, 0.3, 0.26, 0.24, 0.0, -2 * math.pi, n=28)
        + [(0.74, 0.55), (0.72, 0.75), (0.7, 0.96)]],
}


def canvas_paths(digit: int, box=DEFAULT_BOX, step: float = 4.0) -> list[list[tuple[float, float]]]:
    """The strokes of ``digit`` placed in ``box`` on the canvas, as mouse positions.

    Args:
        digit: 0-9.
        box: ``(left, top, width, height)`` in canvas pixels.
        step: the largest distance between consecutive positions, pixels.

    Returns:
        one list of ``(x, y)`` canvas pixels per stroke.

    Raises:
        ValueError: ``digit`` outside 0-9 or a non-positive box size or step.
    """
    if digit not in DIGIT_STROKES:
        raise ValueError(f"digit must be one of 0-9, got digit={digit!r}")
    left, top, width, height = box
    if width <= 0 or height <= 0 or step <= 0:
        raise ValueError(f"box sizes and step must be > 0, got box={box!r}, step={step!r}")
    paths = []
    for stroke in DIGIT_STROKES[digit]:
        pts = [(left + x * width, top + y * height) for x, y in stroke]
        dense = [pts[0]]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step))
            dense.extend((x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1))
        paths.append(dense)
    return paths


def render(paths, size: int = CANVAS_SIZE, stroke_width: int = 20):
    """Rasterise stroke paths as the canvas does: white, round-capped, on opaque black.

    Args:
        paths: as returned by :func:`canvas_paths`.
        size: the canvas side, pixels.
        stroke_width: the pen width, pixels.

    Returns:
        uint8 ``numpy`` array ``(size, size, 4)`` (RGBA).
    """
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    draw = ImageDraw.Draw(img)
    r = stroke_width / 2
    for path in paths:
        draw.line(path, fill=(255, 255, 255, 255), width=stroke_width, joint="curve")
        for x, y in (path[0], path[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))
    return np.asarray(img)


CANVAS_SELECTOR = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
"""The drawing surface of streamlit-drawable-canvas 0.13."""


def draw_on_canvas(page, digit: int, box=DEFAULT_BOX, selector: str = CANVAS_SELECTOR, pause_s: float = 0.3) -> None:
    """Draw ``digit`` on the Draw page's canvas with Playwright's mouse, stroke by stroke.

    The pointer first rests over the canvas for 0.6 s: on the first hover the canvas's toolbar
    slides in over its top-right corner, and a press made while it appears is lost (a stroke
    starting there never lands). After "Clear" the canvas is a new component: wait about 2 s
    before drawing again.

    Args:
        page: a Playwright ``Page`` (sync API) showing the Draw page.
        digit: 0-9.
        box: ``(left, top, width, height)`` in canvas pixels (scaled if the canvas is displayed
            at another size).
        selector: CSS selector of the canvas to draw on.
        pause_s: seconds to wait after each stroke (the component sends on mouse-up).
    """
    import time

    bb = page.locator(selector).bounding_box()
    sx, sy = bb["width"] / CANVAS_SIZE, bb["height"] / CANVAS_SIZE
    page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    time.sleep(0.6)
    for path in canvas_paths(digit, box=box):
        x, y = path[0]
        page.mouse.move(bb["x"] + x * sx, bb["y"] + y * sy)
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(bb["x"] + x * sx, bb["y"] + y * sy, steps=2)
        page.mouse.up()
        time.sleep(pause_s)
