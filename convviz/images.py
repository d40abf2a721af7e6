"""Safe decoding of uploaded images (Pillow; no Streamlit).

An upload is untrusted bytes. :func:`decode_upload` checks, in order: that
there are bytes at all, the file size (at most :data:`MAX_UPLOAD_BYTES`), the
format (PNG or JPEG only, by content, not by file name), the pixel count
before decoding (a "decompression bomb" — a small file that expands to a
huge image — is refused, and so is a PNG text chunk that inflates past
Pillow's limit), then decodes, turns the picture upright as its EXIF
orientation says (a phone photo; Pillow's ``ImageOps.exif_transpose``), converts
to grayscale or RGB and, when asked, shrinks it (Pillow's ``thumbnail``, which
first reduces by whole factors, so a long thin strip costs no more than a square).
Every refusal is a ``ValueError`` whose message says what to fix; every image
that decodes is answered, however small or thin (:func:`fit_image` widens an
image thinner than a kernel).
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

__all__ = ["ALLOWED_FORMATS", "MAX_PIXELS", "MAX_UPLOAD_BYTES", "decode_canvas", "decode_upload", "fit_image"]

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
"""Largest accepted upload, bytes (5 MB)."""

MAX_PIXELS = 25_000_000
"""Largest image decoded, width x height pixels (about 5000 x 5000). A JPEG decoded at a reduced scale (when a
``max_side`` asks for a small picture, libjpeg decodes at 1/2, 1/4 or 1/8) counts at that scale: an 8000 x 8000
JPEG shrunk to 280 is decoded as 1000 x 1000. Pillow refuses any image declared over 89 Mpixels first."""

ALLOWED_FORMATS = ("PNG", "JPEG", "MPO")
"""Pillow format names accepted. ``MPO`` is a JPEG with a multi-picture segment, as many phone cameras write
(Pillow opens such a file as MPO); its first picture, the photo itself, is the one decoded."""


class _Refused(ValueError):
    """A check of this module refused the upload; the message says what to do."""


def _text_chunk_message(exc: ValueError) -> str | None:
    """Pillow's refusal of a PNG text / ICC chunk that inflates too far, as advice; None for other errors."""
    text = str(exc)
    if "MAX_TEXT_CHUNK" in text or "Decompressed data too large" in text or "text chunks" in text:
        return (f"the uploaded PNG carries a metadata chunk (text or colour profile) that unpacks to more than "
                f"{PngImagePlugin.MAX_TEXT_CHUNK // (1024 * 1024)} MB (at most "
                f"{PngImagePlugin.MAX_TEXT_MEMORY // (1024 * 1024)} MB of text in all), more than is safe to read "
                "(it may be a decompression bomb); save the picture again without its metadata (for example "
                "export it as a new PNG or JPEG, or take a screenshot of it) and upload that")
    return None


def _open_checked(data: bytes, max_side: int | None, refuse_side: int | None = None,
                  draft_mode: str | None = None) -> Image.Image:
    """Open ``data`` with Pillow after the size, format and pixel-count checks, decoded (``load``); see
    :func:`decode_upload` for what is refused. ``max_side`` lets a JPEG decode at a reduced scale, and
    ``draft_mode="L"`` lets a colour JPEG decode straight to grayscale (its luma, Y); a side over
    ``refuse_side`` is refused before decoding."""
    if data is None or len(data) == 0:
        raise ValueError("the uploaded file is empty (0 bytes); choose a PNG or JPEG image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"the uploaded file is {len(data) / 1e6:.1f} MB, over the 5 MB limit; upload a smaller PNG or JPEG"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt not in ALLOWED_FORMATS:
                raise _Refused(
                    f"the uploaded file is a {fmt or 'unknown'} image; only PNG and JPEG are accepted"
                )
            w, h = img.size
            if w < 1 or h < 1:
                raise _Refused(f"the uploaded image has no pixels ({w}x{h}); choose another image")
            if fmt in ("JPEG", "MPO") and (max_side is not None or draft_mode == "L"):
                # decode at 1/2, 1/4 or 1/8 scale when that is enough, and to grayscale when that is asked for;
                # before the pixel count, which limits what is decoded (a 48-Mpixel phone photo is 6 Mpixels at 1/2)
                img.draft("L" if draft_mode == "L" and img.mode == "RGB" else img.mode,
                          (max_side, max_side) if max_side is not None else img.size)
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise _Refused(
                    f"the uploaded image is {w}x{h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,} "
                    "(it may be a decompression bomb); upload a smaller image"
                )
            if refuse_side is not None and max(w, h) > refuse_side:
                raise _Refused(f"the drawing is {w}x{h} pixels, larger than the canvas (at most {refuse_side} a side)")
            img.load()
    except _Refused:
        raise
    except ValueError as exc:  # Pillow's own refusals (a PNG text chunk that inflates too far, ...)
        advice = _text_chunk_message(exc)
        raise ValueError(advice or f"the uploaded image could not be decoded ({exc}); it may be corrupt") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"the uploaded image is too large to decode safely ({exc}); upload a smaller image") from None
    except UnidentifiedImageError:
        raise ValueError("the uploaded file is not a readable image; upload a PNG or JPEG") from None
    except (OSError, SyntaxError, EOFError, struct.error, IndexError, TypeError, MemoryError) as exc:
        raise ValueError(f"the uploaded image could not be decoded ({type(exc).__name__}: {exc}); it may be "
                         "truncated or corrupt") from None

    return img


def _sixteen_bit_to_8(img: Image.Image, max_side: int | None) -> Image.Image:
    """A 16-bit (``I;16*``) or 32-bit (``I``) grayscale picture as 8-bit ``"L"``, 0-65535 scaled to 0-255 (Pillow's
    ``convert("L")`` clips every value above 255 to white); other modes are returned as they are.

    With ``max_side``, the picture is shrunk first (keeping its aspect ratio, longer side ``max_side``) by Pillow's
    box filter, which works on 16-bit pixels, so only the small picture becomes a float array: a 5000x5000 16-bit PNG
    of 60 KB took 5 s and 620 MB as a float64 array of the whole picture.
    """
    if not (img.mode.startswith("I;16") or img.mode == "I"):
        return img
    width, height = img.size
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        img = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    wide = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")


def decode_upload(data: bytes, mode: str = "L", max_side: int | None = None) -> np.ndarray:
    """Decode an uploaded PNG or JPEG into a uint8 array, upright as its EXIF orientation says.

    Args:
        data: the file's bytes.
        mode: ``"L"`` for grayscale (one channel) or ``"RGB"`` (three channels).
        max_side: shrink the picture (keeping its aspect ratio) so its longer side is at most this
            many pixels, >= 1; None keeps its size. JPEGs are decoded at a reduced scale when that suffices.

    Returns:
        uint8 ``(height, width, channels)`` with channels 1 for ``"L"``, 3 for ``"RGB"``; every side >= 1.
        Transparency is composited onto a contrasting background; 16-bit grayscale is scaled
        to 8 bits (0-65535 -> 0-255); CMYK JPEGs are converted by Pillow; an EXIF orientation
        (a phone photo taken sideways) is applied with ``PIL.ImageOps.exif_transpose``.

    Raises:
        ValueError: empty file, file over 5 MB, not a PNG/JPEG, more than
            :data:`MAX_PIXELS` pixels (decompression bomb), a PNG metadata chunk that
            inflates past Pillow's limit, or an unreadable (truncated, corrupt) file; the
            message names the problem and the fix.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' (grayscale) or 'RGB', got mode={mode!r}")
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side must be an integer >= 1 or None, got max_side={max_side!r}")
    img = _open_checked(data, max_side, draft_mode=mode)
    transpose = _exif_transpose_method(img)  # read now: shrinking drops the EXIF block; applied to the small picture
    img = _shrink_uint8(_sixteen_bit_to_8(img, max_side), max_side)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Put transparent areas on the colour that contrasts with what is drawn: dark ink on a
        # transparent sheet goes on white (a scan), light strokes go on black (MNIST's polarity).
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        rgba = _shrink_uint8(rgba, max_side)  # a palette picture is shrunk once it is RGBA
        pixels = np.asarray(rgba)
        opaque = pixels[..., 3] > 127
        ink = pixels[..., :3][opaque].mean() if opaque.any() else 255.0
        shade = 255 if ink < 128 else 0
        background = Image.new("RGBA", rgba.size, (shade, shade, shade, 255))
        img = Image.alpha_composite(background, rgba)
    img = _shrink_uint8(img.convert(mode), max_side)  # a palette or 1-bit picture is shrunk once converted
    if transpose is not None:
        img = img.transpose(transpose)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


_SHRINKABLE_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")
"""8-bit modes that Pillow's ``reduce`` (behind ``thumbnail``) takes; ``P`` (palette) and ``1`` are converted first."""


def _shrink_uint8(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` shrunk (keeping its aspect ratio) so its longer side is at most ``max_side``, while its pixels are
    still 8-bit integers: Pillow's ``thumbnail`` first reduces by a whole factor (box averaging, cheap) and only
    then resamples (Lanczos) from at most ``reducing_gap`` (2) times the final size (a 5000x5000 RGBA
    picture to 560: 0.2 s less than from 3 times, and within 2/255 of it). A picture in another mode
    (palette, 1-bit), already small enough, or ``max_side`` None is returned as it is."""
    if max_side is None or max(img.size) <= max_side or img.mode not in _SHRINKABLE_MODES:
        return img
    img = img.copy() if img.readonly else img
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return img


_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that turns the picture upright (the table of ``PIL.ImageOps.exif_transpose``)."""


def _exif_transpose_method(img: Image.Image) -> Image.Transpose | None:
    """The transpose that turns ``img`` upright as its EXIF orientation says (a phone photo taken sideways), or
    None (no EXIF, orientation 1, or a damaged EXIF block: the picture is kept as it was stored).

    Applying it after shrinking gives what ``ImageOps.exif_transpose`` gives before (a flip or a quarter turn
    commutes with a shrink into a ``max_side`` square), without copying the full-size picture."""
    try:
        return _TRANSPOSE_FOR_ORIENTATION.get(img.getexif().get(_ORIENTATION_TAG))
    except Exception:  # noqa: BLE001 - a damaged EXIF block
        return None


def decode_canvas(data: bytes, max_side: int) -> np.ndarray:
    """Decode the drawing canvas's picture (a PNG its client sends, so untrusted) into RGBA pixels.

    The same checks as :func:`decode_upload` (size, format, pixel count before decoding, metadata chunks),
    then: PNG only, and at most ``max_side`` pixels a side (the canvas's own size times the screen's pixel
    ratio), so a crafted message cannot make the page work on a huge picture.

    Args:
        data: the PNG's bytes.
        max_side: the largest accepted width or height, pixels.

    Returns:
        uint8 ``(height, width, 4)``; a 16-bit grayscale PNG is scaled to 8 bits as in :func:`decode_upload`.

    Raises:
        ValueError: as :func:`decode_upload`, or not a PNG, or a side over ``max_side``, e.g.
            ``"the drawing is 20000x20000 pixels, larger than the canvas (at most 1120 a side)"``.
    """
    img = _open_checked(data, None, refuse_side=max_side)
    if img.format != "PNG":
        raise ValueError(f"the drawing is a {img.format} image, not the canvas's PNG")
    return np.asarray(_sixteen_bit_to_8(img, None).convert("RGBA"), dtype=np.uint8)


def fit_image(image: np.ndarray, size: int = 28, min_side: int = 1) -> np.ndarray:
    """Shrink an image so its longer side is at most ``size`` pixels, keeping its channels, and widen a thin one.

    A side shorter than ``min_side`` after fitting (a thin strip, a tiny icon) is widened to
    ``min_side`` by repeating its edge pixels equally on both sides, so a ``min_side x min_side``
    kernel always fits.

    Args:
        image: uint8 ``(height, width, channels)`` with 1 or 3 channels.
        size: the longest side allowed (pixels), >= 1.
        min_side: the shortest side returned (pixels), 1 to ``size``.

    Returns:
        float64 ``(h, w, channels)`` in [0, 1], ``min_side <= h, w`` and ``max(h, w) <= size``.

    Raises:
        ValueError: not a non-empty 3-D array with 1 or 3 channels, or ``min_side`` out of range.

    Example:
        >>> fit_image(np.zeros((1, 500, 1), np.uint8), 28, min_side=3).shape
        (3, 28, 1)
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.size == 0:
        raise ValueError(f"image must be a non-empty (height, width, 1 or 3) array, got shape {arr.shape}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or not 1 <= min_side <= size:
        raise ValueError(f"min_side must be an integer from 1 to size={size}, got min_side={min_side!r}")
    h, w, c = arr.shape
    scale = min(1.0, size / max(h, w))
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    mode = "L" if c == 1 else "RGB"
    pil = Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode)
    if new != pil.size:
        pil = pil.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = np.asarray(pil, dtype=np.float64) / 255.0
    out = out[:, :, None] if c == 1 else out
    grow = [max(0, min_side - n) for n in out.shape[:2]]
    if any(grow):
        out = np.pad(out, [(g // 2, g - g // 2) for g in grow] + [(0, 0)], mode="edge")
    return out
