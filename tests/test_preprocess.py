"""Tests of convviz.preprocess: canvas / photo -> MNIST-style 28x28."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convviz.preprocess import (BlankImageError, canvas_to_gray, center_of_mass, digit_stages, naive_resize,
                                photo_to_gray, prepare_canvas)

_spec = importlib.util.spec_from_file_location("strokes", Path(__file__).parent / "e2e" / "strokes.py")
strokes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strokes)

# (left, top, width, height) on the 280x280 canvas
PLACEMENTS = {
    "small_top_left": (8, 8, 36, 60),
    "small_bottom_right": (225, 200, 42, 70),
    "large": (30, 5, 220, 270),
    "off_centre": (150, 30, 100, 150),
}


def _ink_box(image, threshold=0.0):
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("digit", [1, 3, 7, 8])
@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_digit_is_fitted_and_centred(digit, placement):
    rgba = strokes.render(strokes.canvas_paths(digit, box=PLACEMENTS[placement]))
    out = prepare_canvas(rgba).digit()
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    h, w = _ink_box(out)
    assert max(h, w) == 20 and min(h, w) >= 1, (h, w)  # the longer side fills the 20x20 box exactly
    r, c = center_of_mass(out)
    assert abs(r - 14.0) <= 1.0 and abs(c - 14.0) <= 1.0, (r, c)


@pytest.mark.parametrize("digit", [2, 5, 9])
def test_same_digit_anywhere_gives_nearly_the_same_image(digit):
    boxes = [strokes.DEFAULT_BOX, PLACEMENTS["off_centre"], (10, 150, 60, 100)]
    rgbas = [strokes.render(strokes.canvas_paths(digit, box=b)) for b in boxes]
    prepared = [prepare_canvas(a).digit() for a in rgbas]
    naive = [naive_resize(canvas_to_gray(a)) for a in rgbas]
    for i in (1, 2):
        # a smaller drawing has relatively fatter strokes, so the match is close, not exact
        assert np.abs(prepared[i] - prepared[0]).mean() < 0.08
        assert np.abs(naive[i] - naive[0]).mean() > 0.12  # without the preparation they differ a lot


def test_naive_resize_keeps_the_position_and_size():
    rgba = strokes.render(strokes.canvas_paths(7, box=PLACEMENTS["small_top_left"]))
    naive = naive_resize(canvas_to_gray(rgba))
    assert naive.shape == (28, 28)
    r, c = center_of_mass(naive)
    assert r < 8 and c < 6, (r, c)  # still a small blob in the top-left corner
    h, w = _ink_box(naive, 0.1)
    assert max(h, w) <= 8


def test_stages_are_consistent():
    paths = strokes.canvas_paths(4, box=PLACEMENTS["off_centre"])
    s = digit_stages(canvas_to_gray(strokes.render(paths)))
    assert not s.blank
    top, left, bottom, right = s.bbox
    assert s.cropped.shape == (bottom - top, right - left)
    # the box hugs the strokes: the 20 px pen overhangs the path's extent by 10 px each side
    xs, ys = [x for p in paths for x, _ in p], [y for p in paths for _, y in p]
    assert abs(left - (min(xs) - 10)) <= 1.5 and abs(right - (max(xs) + 10)) <= 1.5
    assert abs(top - (min(ys) - 10)) <= 1.5 and abs(bottom - (max(ys) + 10)) <= 1.5
    assert max(s.scaled.shape) == 20
    aspect_in, aspect_out = s.cropped.shape[1] / s.cropped.shape[0], s.scaled.shape[1] / s.scaled.shape[0]
    assert aspect_out == pytest.approx(aspect_in, abs=0.06)
    off_r, off_c = s.offset
    np.testing.assert_array_equal(s.image[off_r:off_r + s.scaled.shape[0], off_c:off_c + s.scaled.shape[1]],
                                  s.scaled)
    assert s.image.sum() == pytest.approx(s.scaled.sum())  # nothing was cut off


def test_blank_canvas_is_reported():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = 255
    assert digit_stages(canvas_to_gray(rgba)).blank
    with pytest.raises(BlankImageError, match="blank"):
        prepare_canvas(rgba).digit()
    # a transparent canvas and one with only faint noise are blank too
    assert digit_stages(canvas_to_gray(np.zeros((280, 280, 4), np.uint8))).blank
    rgba[..., :3] = 10
    assert digit_stages(canvas_to_gray(rgba)).blank


def test_transparent_background_reads_as_black():
    rgba = strokes.render(strokes.canvas_paths(0))
    transparent = rgba.copy()
    transparent[..., 3] = np.where(rgba[..., 0] > 0, 255, 0)
    transparent[..., :3] = np.where(rgba[..., :1] > 0, 255, 0)
    np.testing.assert_allclose(prepare_canvas(transparent).digit(), prepare_canvas(rgba).digit(), atol=1e-6)


def test_lopsided_ink_is_clamped_inside_the_field():
    gray = np.zeros((100, 100), np.float32)
    gray[:20, :] = 1.0  # a heavy bar on top...
    gray[20:, 50] = 1.0  # ...over a thin stem: the centre of mass sits near the top of the box
    s = digit_stages(gray)
    assert s.mass_center_scaled[0] < 5
    assert s.offset[0] == 8  # centring would need a shift of more than 8 rows; clamped to keep the stem
    assert s.image.sum() == pytest.approx(s.scaled.sum())  # no ink lost


@pytest.mark.parametrize("shape", [(280, 280), (280, 280, 2), (0, 5, 4)])
def test_bad_canvas_shape_is_named(shape):
    with pytest.raises(ValueError, match=r"shape \(" + str(shape[0])):
        prepare_canvas(np.zeros(shape, np.uint8)).digit()


def test_bad_gray_is_named():
    with pytest.raises(ValueError, match=r"got shape \(3, 3, 3\)"):
        digit_stages(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        digit_stages(np.full((4, 4), np.nan))


def test_photo_dark_ink_on_paper_is_inverted():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(210, 8, (300, 240)), 0, 255).astype(np.uint8)  # grey paper with texture
    ink = strokes.render(strokes.canvas_paths(7, box=(60, 50, 120, 200)), size=300)[:, :240, 0] > 0
    photo = np.where(ink, 40, paper).astype(np.uint8)
    gray, inverted = photo_to_gray(Image.fromarray(photo).convert("RGB"))
    assert inverted
    assert gray[ink].mean() > 0.9 and (gray[~ink] > 0).mean() < 1e-3  # ink bright, paper texture gone
    kept, inverted = photo_to_gray(photo, invert=False)
    assert not inverted and kept[ink].mean() == 0.0  # told not to invert: the ink is the dark part
    light_on_dark, inverted = photo_to_gray(255 - photo)
    assert not inverted
    np.testing.assert_allclose(light_on_dark, gray, atol=1e-5)  # already MNIST polarity: same result
    with pytest.raises(ValueError, match="invert must be"):
        photo_to_gray(photo, invert="yes")


def test_large_photo_is_shrunk_first():
    photo = np.full((3000, 2000), 230, np.uint8)
    photo[1000:2000, 900:1100] = 20  # a dark bar
    gray, inverted = photo_to_gray(photo)
    assert inverted and gray.shape == (560, 373)
    s = digit_stages(gray)
    assert max(s.scaled.shape) == 20
    with pytest.raises(ValueError, match="max_side"):
        photo_to_gray(photo, max_side=10)


def test_uniform_photo_is_blank():
    gray, _ = photo_to_gray(np.full((50, 50), 200, np.uint8))
    assert not gray.any()
