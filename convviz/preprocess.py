"""Turn a drawing or a photo of a digit into a 28x28 image prepared the way MNIST's were.

MNIST's digits were made from bilevel NIST scans: each was "size normalized to fit in a 20x20
pixel box while preserving their aspect ratio", which left grey levels from the anti-aliasing,
and then "centered in a 28x28 image by computing the center of mass of the pixels, and
translating the image so as to position this point at the center of the 28x28 field"
(Y. LeCun, C. Cortes and C. Burges, "The MNIST database of handwritten digits", 1998).
Measured on MNIST's training set the centre of mass sits at (row 14.0, column 14.0) in pixel
indices with a spread of 0.29 px, the spread of a whole-pixel shift: so the translation here is
by whole pixels, onto (14, 14).

A network trained on MNIST only ever saw digits prepared like this. A digit drawn small in a
corner of a 280x280 canvas and naively resized to 28x28 is a tiny blob off to one side, a
picture no training digit resembles; :func:`naive_resize` makes that picture so the pages can
show the difference.

This module is the one way a picture becomes the network's input: :func:`prepare_canvas` (the Draw
page's canvas) and :func:`prepare_photo` (an upload on the Draw or Stacked Channels page) turn it into
ink (:func:`canvas_to_gray`, :func:`photo_to_gray`) and prepare it (:func:`digit_stages`).

Pure numpy and Pillow: no TensorFlow, no Streamlit. Images are 2-D ``(height, width)`` arrays of
ink intensity, float32 in ``[0, 1]``: 0 is background, 1 is full ink (MNIST's polarity, white
digits on black).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["BOX_SIZE", "FIELD_SIZE", "INK_THRESHOLD", "PHOTO_SIDE", "BlankImageError", "DigitStages", "canvas_to_gray",
           "center_of_mass", "digit_stages", "naive_resize", "photo_to_gray", "prepare_canvas", "prepare_photo"]

FIELD_SIZE = 28
"""Side of the output image, pixels."""

BOX_SIZE = 20
"""Side of the box the digit is scaled to fit, pixels."""

INK_THRESHOLD = 0.1
"""Ink intensity above which a pixel counts as part of the digit (for the bounding box and blank test)."""

PHOTO_SIDE = 560
"""A photo's longer side is shrunk to at most this many pixels before it is prepared (:func:`photo_to_gray`), so a
huge or very thin picture costs no more than a small one."""


class BlankImageError(ValueError):
    """The image has no ink: nothing to crop, scale or centre."""


@dataclass(frozen=True)
class DigitStages:
    """Every stage of :func:`digit_stages`, for showing the preparation side by side.

    Attributes:
        gray: the input as ink intensity, float32 ``(height, width)`` in ``[0, 1]``.
        blank: ``True`` when no pixel exceeds :data:`INK_THRESHOLD`; ``image`` is then the empty 28x28 field
            (all zeros: what the network would see) and the stages between are ``None``.
        bbox: the ink's bounding box in ``gray``, ``(top, left, bottom, right)``, bottom/right exclusive, pixels.
        cropped: ``gray[top:bottom, left:right]``, float32.
        scaled: ``cropped`` resized (Lanczos, anti-aliased) so its longer side is :data:`BOX_SIZE`,
            keeping the aspect ratio; float32 ``(h, w)`` with ``max(h, w) == 20``, peak rescaled to 1.
        mass_center_scaled: centre of mass of ``scaled``, ``(row, column)`` in its pixel indices.
        offset: where ``scaled``'s top-left corner lands in the 28x28 field, ``(row, column)``, pixels.
        image: the result, float32 ``(28, 28)`` in ``[0, 1]``: the network's input.
        mass_center: centre of mass of ``image``, ``(row, column)``; within half a pixel of (14, 14)
            unless the digit is so lopsided that centring it would push ink out of the field.
    """

    gray: np.ndarray
    blank: bool
    bbox: tuple[int, int, int, int] | None = None
    cropped: np.ndarray | None = None
    scaled: np.ndarray | None = None
    mass_center_scaled: tuple[float, float] | None = None
    offset: tuple[int, int] | None = None
    image: np.ndarray | None = None
    mass_center: tuple[float, float] | None = None

    def digit(self) -> np.ndarray:
        """The prepared digit, refusing a blank picture.

        Returns:
            float32 ``(28, 28)`` in ``[0, 1]`` (:attr:`image`).

        Raises:
            BlankImageError: (a ``ValueError``) there is no ink: "the picture is blank: draw or upload a digit".
        """
        if self.blank:
            raise BlankImageError("the picture is blank: draw or upload a digit")
        return self.image


def _check_rgba(rgba) -> np.ndarray:
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected an RGBA image of shape (height, width, 4), got shape {arr.shape}")
    return arr


def canvas_to_gray(rgba) -> np.ndarray:
    """Ink intensity of a drawing-canvas image (light strokes on a dark or transparent background).

    The image is composited over black: ``ink = luminance * alpha``, with ITU-R BT.601 luminance
    ``0.299 R + 0.587 G + 0.114 B``. A transparent background and a black one both read as 0.

    Args:
        rgba: uint8 ``(height, width, 4)`` (or ``(height, width, 3)``, taken as opaque) as returned
            by the canvas; floats in ``[0, 1]`` are accepted too.

    Returns:
        float32 ``(height, width)`` in ``[0, 1]``.

    Raises:
        ValueError: the array is not ``(height, width, 3 or 4)``, echoing its shape.
    """
    arr = _check_rgba(rgba)
    scale = 255.0 if arr.dtype.kind in "ui" else 1.0
    rgb = arr[..., :3].astype(np.float32) / scale
    alpha = arr[..., 3].astype(np.float32) / scale if arr.shape[2] == 4 else np.ones(arr.shape[:2], np.float32)
    lum = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(lum * alpha, 0.0, 1.0).astype(np.float32)


def photo_to_gray(image, invert="auto", max_side: int = PHOTO_SIDE) -> tuple[np.ndarray, bool]:
    """Ink intensity of a photo or scan of a digit, with the background brought to 0.

    Dark ink on light paper is the usual photo; MNIST is the opposite. With ``invert="auto"``
    the image is inverted when its border (the outer 5% on each side) is lighter than mid-grey,
    i.e. when the paper is light. The paper's level (the median) is then subtracted, the
    contrast stretched so the strongest ink becomes 1, and faint texture below 0.3 set to 0.
    An image larger than ``max_side`` on its longer side is first shrunk (box filter) to it.

    Args:
        image: a ``PIL.Image.Image`` (any mode; transparency reads as white paper) or an array
            ``(height, width)`` / ``(height, width, 1, 3 or 4)``, uint8 or floats in ``[0, 1]``.
        invert: ``"auto"``, ``True`` or ``False``.
        max_side: longest side kept, pixels, >= 28.

    Returns:
        ``(gray, inverted)``: float32 ``(height, width)`` in ``[0, 1]``, and whether it was inverted.

    Raises:
        ValueError: an unsupported shape, ``invert`` or ``max_side`` value, echoing it.
    """
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got invert={invert!r}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 28:
        raise ValueError(f"max_side must be an integer >= 28, got max_side={max_side!r}")
    if isinstance(image, Image.Image):
        rgba = image.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent areas read as paper
        gray = np.asarray(Image.alpha_composite(bg, rgba).convert("L"), np.float32) / 255.0
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim == 2 and arr.size:
            gray = arr.astype(np.float32) / (255.0 if arr.dtype.kind in "ui" else 1.0)
        else:
            arr = _check_rgba(arr)
            scale = 255.0 if arr.dtype.kind in "ui" else 1.0
            gray = (arr[..., :3].astype(np.float32) / scale) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = gray.shape
    if max(h, w) > max_side:
        factor = max_side / max(h, w)
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        gray = np.asarray(Image.fromarray(gray.astype(np.float32)).resize(size, Image.Resampling.BOX), np.float32)
        h, w = gray.shape
    if invert == "auto":
        bh, bw = max(1, h // 20), max(1, w // 20)
        border = np.concatenate([gray[:bh].ravel(), gray[-bh:].ravel(), gray[:, :bw].ravel(), gray[:, -bw:].ravel()])
        invert = bool(np.median(border) > 0.5)
    if invert:
        gray = 1.0 - gray
    background = float(np.median(gray))
    peak = float(gray.max())
    if peak - background < 1e-6:
        return np.zeros_like(gray, dtype=np.float32), invert
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    ink[ink < 0.3] = 0.0
    return ink.astype(np.float32), invert


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted mean position ``(row, column)`` of a 2-D image, in pixel indices.

    Raises:
        ValueError: the image is not 2-D or has no positive mass.
    """
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    mass = image.sum()
    if not mass > 0:
        raise BlankImageError(f"the image has no ink (total intensity {mass})")
    rows = np.arange(image.shape[0]) @ image.sum(axis=1) / mass
    cols = np.arange(image.shape[1]) @ image.sum(axis=0) / mass
    return float(rows), float(cols)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased (Lanczos) resize of a float image, clipped back to [0, 1]."""
    out = Image.fromarray(image.astype(np.float32)).resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def _check_gray(gray) -> np.ndarray:
    gray = np.asarray(gray, np.float32)
    if gray.ndim != 2 or gray.shape[0] < 1 or gray.shape[1] < 1:
        raise ValueError(f"expected a 2-D ink image (height, width), got shape {gray.shape}")
    if not np.all(np.isfinite(gray)):
        raise ValueError("the ink image contains NaN or infinite values")
    return np.clip(gray, 0.0, 1.0)


def digit_stages(gray) -> DigitStages:
    """Prepare an ink image the way MNIST's digits were, keeping every stage.

    1. **Crop** to the bounding box of the pixels above :data:`INK_THRESHOLD`.
    2. **Scale** (Lanczos, anti-aliased) so the longer side is 20 px, keeping the aspect ratio;
       the peak is rescaled to 1 (MNIST's strokes reach full intensity).
    3. **Centre**: paste into a 28x28 field shifted by whole pixels so that the centre of mass
       lands on (14, 14); the shift is clamped so no ink leaves the field.

    Args:
        gray: ink intensity ``(height, width)``, floats in ``[0, 1]`` (see :func:`canvas_to_gray`,
            :func:`photo_to_gray`).

    Returns:
        :class:`DigitStages`; ``.blank`` is ``True`` (the middle stages ``None``, ``.image`` all zeros) when
        there is no ink.

    Raises:
        ValueError: ``gray`` is not a finite 2-D array, echoing its shape.

    Example:
        >>> g = np.zeros((280, 280), np.float32); g[20:60, 200:215] = 1.0   # a small bar, top right
        >>> s = digit_stages(g)
        >>> s.bbox, s.scaled.shape, s.image.shape, [round(c) for c in s.mass_center]
        ((20, 200, 60, 215), (20, 8), (28, 28), [14, 14])
    """
    gray = _check_gray(gray)
    ink = gray > INK_THRESHOLD
    if not ink.any():
        return _blank(gray)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    cropped = gray[top:bottom, left:right]
    h, w = cropped.shape
    factor = BOX_SIZE / max(h, w)
    new_h, new_w = max(1, min(BOX_SIZE, round(h * factor))), max(1, min(BOX_SIZE, round(w * factor)))
    scaled = _resize(cropped, new_h, new_w)
    peak = float(scaled.max())
    if peak <= 0.0:  # a speck so faint that resampling erased it
        return _blank(gray)
    scaled = scaled / peak
    com_r, com_c = center_of_mass(scaled)
    target = FIELD_SIZE / 2  # 14.0: MNIST's measured centre of mass, in pixel indices
    off_r = int(np.clip(round(target - com_r), 0, FIELD_SIZE - new_h))
    off_c = int(np.clip(round(target - com_c), 0, FIELD_SIZE - new_w))
    image = np.zeros((FIELD_SIZE, FIELD_SIZE), np.float32)
    image[off_r:off_r + new_h, off_c:off_c + new_w] = scaled
    return DigitStages(gray=gray, blank=False, bbox=(top, left, bottom, right), cropped=cropped, scaled=scaled,
                       mass_center_scaled=(com_r, com_c), offset=(off_r, off_c), image=image,
                       mass_center=center_of_mass(image))


def _blank(gray: np.ndarray) -> DigitStages:
    return DigitStages(gray=gray, blank=True, image=np.zeros((FIELD_SIZE, FIELD_SIZE), np.float32))


def prepare_canvas(rgba) -> DigitStages:
    """A drawing-canvas image prepared as an MNIST digit: :func:`digit_stages` of :func:`canvas_to_gray`.

    Args:
        rgba: the canvas's image, uint8 ``(height, width, 4)``, light strokes on black/transparent.

    Returns:
        :class:`DigitStages` (``.digit()`` is the float32 ``(28, 28)`` input, ``.gray`` the ink).

    Raises:
        ValueError: the array is not ``(height, width, 3 or 4)``, echoing its shape.
    """
    return digit_stages(canvas_to_gray(rgba))


def prepare_photo(image, invert="auto", max_side: int = PHOTO_SIDE) -> tuple[DigitStages, bool]:
    """A photo, scan or any decoded picture prepared as an MNIST digit: :func:`digit_stages` of
    :func:`photo_to_gray` (paper inverted when light, background removed, then crop, 20x20, centre).

    Args:
        image: as :func:`photo_to_gray`: uint8 ``(height, width)`` / ``(height, width, 1, 3 or 4)`` (e.g.
            :func:`convviz.images.decode_upload`'s output) or a ``PIL.Image.Image``.
        invert: ``"auto"``, ``True`` or ``False``.
        max_side: longest side kept, pixels, >= 28.

    Returns:
        ``(stages, inverted)``: :class:`DigitStages` (``.image`` float32 ``(28, 28)``, all zeros when there is
        no ink) and whether the picture was inverted.

    Raises:
        ValueError: an unsupported shape, ``invert`` or ``max_side`` value, echoing it.

    Example:
        >>> paper = np.full((40, 20), 255, np.uint8); paper[10:30, 8:12] = 0   # a dark bar on white
        >>> stages, inverted = prepare_photo(paper)
        >>> inverted, stages.image.shape, float(stages.image.max())
        (True, (28, 28), 1.0)
    """
    gray, inverted = photo_to_gray(image, invert, max_side)
    return digit_stages(gray), inverted


def naive_resize(gray) -> np.ndarray:
    """The whole image squeezed to 28x28 (anti-aliased), with no crop or centring: the comparison case.

    Args:
        gray: ink intensity ``(height, width)``, floats in ``[0, 1]``.

    Returns:
        float32 ``(28, 28)`` in ``[0, 1]``.

    Raises:
        ValueError: ``gray`` is not a finite 2-D array, echoing its shape.
    """
    return _resize(_check_gray(gray), FIELD_SIZE, FIELD_SIZE)
