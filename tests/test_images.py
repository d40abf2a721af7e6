"""convviz.images: safe decoding of uploads (size, type, bomb, corrupt) and conversion."""

import io

import numpy as np
import pytest
from PIL import Image

from convviz import images


def encode(arr, fmt="PNG", mode=None):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt)
    return buf.getvalue()


def test_png_to_grayscale_and_rgb():
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    data = encode(rgb)
    gray = images.decode_upload(data, "L")
    assert gray.shape == (10, 12, 1) and gray.dtype == np.uint8
    assert 70 <= gray[0, 0, 0] <= 80  # ITU-R 601 luma of pure red
    color = images.decode_upload(data, "RGB")
    assert color.shape == (10, 12, 3) and tuple(color[0, 0]) == (255, 0, 0)


def test_jpeg_is_accepted():
    arr = np.full((8, 8), 200, dtype=np.uint8)
    out = images.decode_upload(encode(arr, "JPEG"), "L")
    assert out.shape == (8, 8, 1) and abs(int(out[0, 0, 0]) - 200) <= 3


def test_transparency_is_composited_on_black():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white but fully transparent
    assert images.decode_upload(encode(rgba), "L").max() == 0


def test_empty_file():
    with pytest.raises(ValueError, match="empty"):
        images.decode_upload(b"", "L")


def test_too_many_bytes():
    with pytest.raises(ValueError, match="over the 5 MB limit"):
        images.decode_upload(b"\x89PNG" + b"0" * images.MAX_UPLOAD_BYTES, "L")


def test_wrong_type_is_named():
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, format="GIF")
    with pytest.raises(ValueError, match="GIF image; only PNG and JPEG"):
        images.decode_upload(gif.getvalue(), "L")
    with pytest.raises(ValueError, match="not a readable image"):
        images.decode_upload(b"hello, this is text", "L")


def test_truncated_file():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="could not be decoded|not a readable image"):
        images.decode_upload(data[: len(data) // 2], "L")


def test_decompression_bomb_is_refused_before_decoding():
    # A 1-bit 6000x6000 PNG of zeros compresses to a few kB but holds 36 million pixels.
    data = encode(np.zeros((6000, 6000), dtype=bool), mode="1")
    assert len(data) < images.MAX_UPLOAD_BYTES
    with pytest.raises(ValueError, match="decompression bomb"):
        images.decode_upload(data, "L")


def test_bad_mode():
    with pytest.raises(ValueError, match="mode='CMYK'"):
        images.decode_upload(b"x", "CMYK")


def test_prepare_photo_inverts_dark_on_light_and_fits():
    from convviz.preprocess import prepare_photo  # the one way a decoded picture becomes the model's input

    img = np.full((40, 20), 255, dtype=np.uint8)
    img[10:30, 8:12] = 0  # a dark stroke on white paper
    stages, inverted = prepare_photo(img)
    square = stages.image
    assert inverted and square.shape == (28, 28) and square.dtype == np.float32
    assert square.max() > 0.9 and square[0, 0] == 0.0  # stroke light, border black
    _, inverted = prepare_photo(255 - img)
    assert not inverted


def test_fit_image_keeps_channels():
    out = images.fit_image(np.zeros((100, 50, 3), dtype=np.uint8), 28)
    assert out.shape == (28, 14, 3)
    assert images.fit_image(np.zeros((10, 10, 1), dtype=np.uint8), 28).shape == (10, 10, 1)
    with pytest.raises(ValueError, match="got shape"):
        images.fit_image(np.zeros((10, 10, 2), dtype=np.uint8))


def test_transparent_background_contrasts_with_the_ink():
    import io

    import numpy as np
    from PIL import Image

    from convviz.images import decode_upload

    for ink, expected_background in ((0, 255), (255, 0)):
        rgba = np.zeros((40, 40, 4), np.uint8)
        rgba[10:30, 18:22] = (ink, ink, ink, 255)  # a stroke on a fully transparent sheet
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
        gray = decode_upload(buf.getvalue(), mode="L")[..., 0]
        assert gray[0, 0] == expected_background and gray[20, 20] == ink
