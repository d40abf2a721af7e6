"""#15 kind 3, large legal images: decode_upload shrinks while pixels are 8-bit integers and turns a phone photo
upright after shrinking; the prepared channels and digit match the plain full-size pipeline within a tolerance."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from convviz.images import decode_upload, fit_image
from convviz.preprocess import prepare_photo


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = img.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def _stroke(height: int, width: int) -> np.ndarray:
    """A mask with a digit-like stroke: a bar and a slanted arm, away from the centre."""
    mask = np.zeros((height, width), bool)
    mask[height // 5: 4 * height // 5, width // 2 - width // 20: width // 2 + width // 20] = True
    rows = np.arange(height // 5, height // 2)
    for r in rows:
        c = width // 2 - (r - height // 5) * width // (2 * height)
        mask[r, max(0, c - width // 30): c + width // 30] = True
    return mask


def _images() -> dict[str, bytes]:
    mask = _stroke(2400, 1800)
    rgba = np.zeros((2400, 1800, 4), np.uint8)
    rgba[mask] = (250, 240, 230, 255)
    dark = np.zeros((2400, 1800, 4), np.uint8)
    dark[mask] = (20, 30, 10, 255)
    paper = np.full((2400, 1800, 3), (230, 220, 205), np.uint8)
    paper[mask] = (30, 30, 60)
    sixteen = np.where(mask, 60000, 3000).astype("<u2")
    palette = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).convert("P")
    pal_alpha = Image.fromarray(paper).quantize(8)
    pal_alpha.info["transparency"] = int(np.asarray(pal_alpha)[0, 0])
    return {
        "rgba_light_ink": _png(Image.fromarray(rgba, "RGBA")),
        "rgba_dark_ink": _png(Image.fromarray(dark, "RGBA")),
        "sixteen_bit": _png(Image.frombytes("I;16", (1800, 2400), sixteen.tobytes())),
        "palette": _png(palette),
        "palette_transparent": _png(pal_alpha),
        "one_bit": _png(Image.fromarray(mask)),
        "phone_jpeg_exif6": _jpeg(Image.fromarray(paper).transpose(Image.Transpose.ROTATE_90), orientation=6),
        "jpeg_exif8": _jpeg(Image.fromarray(paper).transpose(Image.Transpose.ROTATE_270), orientation=8),
        "cmyk_jpeg": _jpeg(Image.fromarray(paper).convert("CMYK")),
    }


def _plain(data: bytes, mode: str, max_side: int) -> np.ndarray:
    """The straightforward pipeline, every step at full size: upright, 8-bit, composited, converted, then one fair
    Lanczos resize (no reduction by whole factors first)."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if img.mode.startswith("I;16"):
        wide = np.asarray(img, np.float64)
        img = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        pixels = np.asarray(rgba)
        opaque = pixels[..., 3] > 127
        shade = 255 if (pixels[..., :3][opaque].mean() if opaque.any() else 255.0) < 128 else 0
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (shade,) * 3 + (255,)), rgba)
    img = img.convert(mode)
    scale = min(1.0, max_side / max(img.size))
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    arr = np.asarray(img, np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


IMAGES = _images()


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("mode,max_side", [("L", 280), ("RGB", 280), ("L", 560)])
def test_prepared_channels_and_digit_match_the_full_size_pipeline(name, mode, max_side):
    data = IMAGES[name]
    got, want = decode_upload(data, mode, max_side), _plain(data, mode, max_side)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.5  # of 255
    channels, channels_want = fit_image(got, 28, min_side=3), fit_image(want, 28, min_side=3)
    assert np.abs(channels - channels_want).max() < 0.03
    if mode == "L":
        digit, digit_want = prepare_photo(got)[0].image, prepare_photo(want)[0].image
        assert np.abs(digit - digit_want).max() < 0.1  # main's code: up to 0.084 on these
        assert np.abs(digit - digit_want).mean() < 0.005


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_after_shrinking(orientation):
    arr = np.zeros((1500, 900, 3), np.uint8)
    arr[:300, :150] = 255  # a white block in the stored picture's top-left corner
    data = _jpeg(Image.fromarray(arr), orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L").resize(
        (180, 300) if orientation < 5 else (300, 180), Image.Resampling.BOX), np.float64)
    got = decode_upload(data, "L", max_side=300)[:, :, 0].astype(np.float64)
    assert got.shape == upright.shape
    assert np.abs(got - upright).mean() < 3


def test_a_large_rgba_png_is_never_copied_at_full_size_as_floats():
    """A 5000x5000 RGBA PNG (100 MB of pixels) is shrunk as 8-bit pixels: numpy never holds a full-size array."""
    import tracemalloc

    rgba = np.zeros((5000, 5000, 4), np.uint8)
    rgba[1000:4000, 2200:2800] = 255
    data = _png(Image.fromarray(rgba, "RGBA"))
    del rgba
    tracemalloc.start()
    out = decode_upload(data, "L", max_side=280)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (280, 280, 1) and out.max() == 255
    assert peak < 5_000_000  # numpy/Python allocations, bytes; a full-size uint8 copy would be 25-100 MB


def test_a_large_jpeg_counts_the_pixels_it_is_decoded_at():
    """An 8000x8000 JPEG (a 64-Mpixel photo) was refused as over 25 Mpixels though it is decoded at 1/8 scale for
    a 280 or 560 px picture; it is accepted then, and refused when it would be decoded whole."""
    from PIL import ImageDraw

    from convviz.images import MAX_PIXELS

    img = Image.new("L", (8000, 8000), 240)
    ImageDraw.Draw(img).line([(2000, 1500), (6000, 1500), (3500, 6500)], fill=20, width=600)
    data = _jpeg(img.convert("RGB"))
    for side in (280, 560):
        got = decode_upload(data, "L", max_side=side)
        assert got.shape == (side, side, 1) and got.min() < 60 and got.max() > 200
        digit = prepare_photo(got)[0].image
        assert digit.max() == 1.0 and digit[:, :4].max() == 0  # the 7 inverted, centred
    with pytest.raises(ValueError, match=f"8000x8000 = 64,000,000 pixels, over the limit of {MAX_PIXELS:,}"):
        decode_upload(data, "L")
    big_png = io.BytesIO()
    Image.new("1", (6000, 6000)).save(big_png, "PNG")
    with pytest.raises(ValueError, match="decompression bomb"):  # a PNG is always decoded whole
        decode_upload(big_png.getvalue(), "L", max_side=280)
