"""What each filter looks for: top image patches and synthesised inputs (TensorFlow and numpy, no Streamlit).

Two views of every filter of a model's convolution layers, as in J. Yosinski, J. Clune, A. Nguyen,
T. Fuchs and H. Lipson, "Understanding Neural Networks Through Deep Visualization" (ICML Deep
Learning Workshop, 2015) and its Deep Visualization Toolbox:

* **Top patches** (:func:`top_patches`): the test digits on which the filter fires most. Each digit
  counts once, at the output cell where the filter's activation is largest; the patch shown is that
  cell's **receptive field** — the input pixels it depends on — cut from the digit. Receptive fields
  are worked out from the layers' geometry (:func:`receptive_fields`), never hard-coded.
* **Synthesised inputs** (:func:`synthesise_filters`, :func:`synthesise_classes`): an input image
  built by gradient ascent on its pixels to make a filter's mean activation (or a class's score) as
  large as possible, regularised as in Yosinski et al. so that it stays image-like (see
  :class:`AscentSettings`).

:func:`compute_atlas` does both for every convolution layer and the 10 classes;
:func:`save_atlas` / :func:`load_atlas` keep the result in one ``.npz`` (written atomically, read back
through :func:`convviz.npzfile.read_npz` and checked against the model, so a damaged file is a
``ValueError``, never a half-read atlas).

The computations have their own modules: :mod:`convviz.atlas_patches` (receptive fields, top patches) and
:mod:`convviz.atlas_synthesis` (gradient ascent); their public names are importable from here too. This module
puts them together (:func:`compute_atlas`) and owns the atlas file.

Images are MNIST-style: float ``(28, 28)`` in ``[0, 1]`` (0 = background), or uint8 ``(n, 28, 28)``
as :mod:`convviz.data` loads them. Layout is NHWC.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convviz.atlas_patches import (INPUT_SHAPE, TOP_K, ReceptiveField, TopPatches, conv_layer_names, crop_patches,
                                   receptive_fields, top_patches)
from convviz.atlas_synthesis import AscentSettings, ClassImages, Synthesis, synthesise_classes, synthesise_filters
from convviz.npzfile import NpzLimits, parse_json, read_npz, write_npz

__all__ = ["ATLAS_LIMITS", "ATLAS_VERSION", "AscentSettings", "Atlas", "ClassImages", "LayerAtlas",
           "ReceptiveField", "Synthesis", "TopPatches", "compute_atlas", "conv_layer_names", "crop_patches",
           "load_atlas", "model_digest", "receptive_fields", "save_atlas", "synthesise_classes",
           "synthesise_filters", "top_patches"]

ATLAS_VERSION = 1
"""Bumped whenever what :func:`compute_atlas` computes changes: an atlas of another version is recomputed."""

_MiB = 1024 * 1024
ATLAS_LIMITS = NpzLimits(max_file_bytes=64 * _MiB, max_members=512, max_member_bytes=32 * _MiB,
                         max_total_bytes=96 * _MiB, max_text_chars=100_000)
"""What an atlas file may declare before :func:`load_atlas` refuses it (a 1,024-filter layer's nine digits per
filter are 7 MB)."""


# --------------------------------------------------------------------------------------------- the atlas
@dataclass(frozen=True)
class LayerAtlas:
    """One convolution layer's atlas: its top patches and synthesised inputs, filter by filter."""

    patches: TopPatches
    synthesis: Synthesis

    @property
    def name(self) -> str:
        return self.patches.layer

    @property
    def filters(self) -> int:
        return len(self.patches.values)


@dataclass(frozen=True)
class Atlas:
    """Everything the Filter atlas page shows for one model.

    Attributes:
        digest: :func:`model_digest` of the model it was computed for.
        source: which digits were searched, in words (e.g. ``"the full MNIST test set"``).
        digit_count: how many digits were searched.
        settings: the :class:`AscentSettings` used.
        layers: ordered ``name -> LayerAtlas``, one per convolution layer.
        classes: :class:`ClassImages`.
        seconds: how long :func:`compute_atlas` took, wall-clock seconds.
        version: :data:`ATLAS_VERSION` when computed.
    """

    digest: str
    source: str
    digit_count: int
    settings: AscentSettings
    layers: dict
    classes: ClassImages
    seconds: float
    version: int = ATLAS_VERSION


def model_digest(model) -> str:
    """SHA-256 (hex) of a model's spec and weights: equal digests, equal models.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.

    Returns:
        64 hex characters.
    """
    digest = hashlib.sha256(json.dumps(model.spec, sort_keys=True).encode("utf-8"))
    for name, value in sorted(model.weights().items()):
        digest.update(name.encode("utf-8"))
        digest.update(np.ascontiguousarray(value, np.float32).tobytes())
    return digest.hexdigest()


_STAGE_WEIGHTS = {"patches": 0.15, "layers": 0.7, "classes": 0.15}
"""Shares of :func:`compute_atlas`'s progress bar: roughly their shares of its time on 2 cores."""


def compute_atlas(model, images, labels, source: str, settings: AscentSettings | None = None,
                  progress=None, batch_size: int = 1000) -> Atlas:
    """Top patches and synthesised inputs for every convolution layer of ``model``, and the 10 class images.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        images: uint8 ``(n, 28, 28)`` test digits (or floats in ``[0, 1]``).
        labels: ``(n,)`` their labels.
        source: where the digits come from, in words, kept with the atlas.
        settings: :class:`AscentSettings` (the defaults when None).
        progress: optional ``callable(fraction, message)``, fraction from 0 to 1.
        batch_size: digits per forward pass for the top patches.

    Returns:
        :class:`Atlas`.

    Raises:
        ValueError: as :func:`top_patches`.
    """
    settings = settings or AscentSettings()
    began = time.perf_counter()
    names = conv_layer_names(model)

    def report(base: float, share: float, message: str):
        if progress is None:
            return None
        return lambda fraction: progress(min(1.0, base + share * fraction), message)

    done = 0.0
    patches = top_patches(model, images, labels, batch_size=batch_size,
                          progress=report(done, _STAGE_WEIGHTS["patches"], f"Searching {len(images):,} test digits"))
    done += _STAGE_WEIGHTS["patches"]
    layers = {}
    for name in names:
        share = _STAGE_WEIGHTS["layers"] * _layer_cost(model, name, names)
        synthesis = synthesise_filters(model, name, settings, report(done, share, f"Synthesising {name}'s filters"))
        done += share
        layers[name] = LayerAtlas(patches=patches[name], synthesis=synthesis)
    if not names:
        done += _STAGE_WEIGHTS["layers"]
    classes = synthesise_classes(model, settings, report(done, 1.0 - done, "Synthesising the 10 classes"))
    if progress is not None:
        progress(1.0, "Done")
    return Atlas(digest=model_digest(model), source=str(source), digit_count=len(images), settings=settings,
                 layers=layers, classes=classes, seconds=time.perf_counter() - began)


def _layer_cost(model, name: str, names: list[str]) -> float:
    """This layer's share of the layers' synthesis time: filters times depth (layers run), normalised."""
    order = [n for n, _ in model.layers]
    modules = {n: model.get_layer(n) for n in names}
    cost = {n: modules[n].filters * (order.index(n) + 1) for n in names}
    return cost[name] / sum(cost.values())


# --------------------------------------------------------------------------------------------- the atlas file
def save_atlas(atlas: Atlas, path) -> Path:
    """Write ``atlas`` to one ``.npz``, atomically (:func:`convviz.npzfile.write_npz`: a temporary file, then a rename).

    Args:
        atlas: from :func:`compute_atlas`.
        path: the destination.

    Returns:
        The path written.

    Raises:
        OSError: the folder cannot be written (nothing is left behind).
    """
    meta = {"digest": atlas.digest, "source": atlas.source, "digit_count": atlas.digit_count,
            "settings": asdict(atlas.settings), "layers": list(atlas.layers), "seconds": atlas.seconds}
    arrays = {"atlas_version": np.array(atlas.version), "meta": np.array(json.dumps(meta))}
    for name, layer in atlas.layers.items():
        p, s = layer.patches, layer.synthesis
        arrays.update({f"{name}/field": p.field.as_array(), f"{name}/values": p.values, f"{name}/digits": p.digits,
                       f"{name}/labels": p.labels, f"{name}/positions": p.positions, f"{name}/crops": p.crops,
                       f"{name}/images": p.images, f"{name}/synth": s.images, f"{name}/synth_start": s.start,
                       f"{name}/synth_end": s.end})
    c = atlas.classes
    arrays.update({"classes/synth": c.synthesis.images, "classes/start": c.synthesis.start,
                   "classes/end": c.synthesis.end, "classes/probabilities": c.probabilities})
    return write_npz(path, arrays)


def _array(arrays: dict, key: str, shape: tuple, kinds: str, low=None, high=None) -> np.ndarray:
    """``arrays[key]``, checked: present, of ``shape``, of a dtype kind in ``kinds``, finite, within [low, high]."""
    if key not in arrays:
        raise ValueError(f"missing the array {key!r}")
    value = arrays[key]
    if value.shape != shape or value.dtype.kind not in kinds:
        raise ValueError(f"{key} has shape {value.shape} dtype {value.dtype}, expected {shape} of kind {kinds!r}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ValueError(f"{key} contains NaN or infinite values")
    if value.size and ((low is not None and value.min() < low) or (high is not None and value.max() > high)):
        raise ValueError(f"{key} has values outside [{low}, {high}]")
    return value


def load_atlas(path, model) -> Atlas:
    """Read an atlas written by :func:`save_atlas` for ``model``, every array checked against the model.

    Read through :func:`convviz.npzfile.read_npz` within :data:`ATLAS_LIMITS`. The atlas must be of
    :data:`ATLAS_VERSION`, for this model (:func:`model_digest`), with one entry per convolution
    layer whose receptive field equals :func:`receptive_fields`' and whose arrays have the shapes,
    types and ranges :func:`compute_atlas` gives (patches equal to the crops of their digits). The
    file is never changed.

    Args:
        path: the file.
        model: the :class:`convviz.model.ScratchCNN` it should describe.

    Returns:
        :class:`Atlas`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: anything else wrong, naming the file and the problem (an atlas of another model,
            of another version, or damaged).
    """
    arrays = read_npz(path, "atlas", limits=ATLAS_LIMITS)
    try:
        meta, names, settings = _read_meta(arrays, model)
        count = meta["digit_count"]
        fields = receptive_fields(model.spec)
        modules = {name: model.get_layer(name) for name in names}
        k = min(TOP_K, count)
        layers = {name: _read_layer(arrays, name, modules[name].filters, fields[name], count, k) for name in names}
        classes = ClassImages(
            synthesis=Synthesis(images=_array(arrays, "classes/synth", (10, *INPUT_SHAPE), "f", 0.0, 1.0),
                                start=_array(arrays, "classes/start", (10,), "f"),
                                end=_array(arrays, "classes/end", (10,), "f")),
            probabilities=_array(arrays, "classes/probabilities", (10,), "f", 0.0, 1.0))
    except ValueError as exc:
        raise ValueError(f"atlas file {str(path)!r} is invalid: {exc}") from None
    except Exception as exc:  # TypeError, MemoryError...: never past the loader
        raise ValueError(f"atlas file {str(path)!r} is invalid ({type(exc).__name__}: {str(exc)[:300]})") from None
    return Atlas(digest=meta["digest"], source=meta["source"], digit_count=count, settings=settings, layers=layers,
                 classes=classes, seconds=float(meta["seconds"]))


def _read_meta(arrays: dict, model) -> tuple[dict, list[str], AscentSettings]:
    """An atlas file's version and ``meta`` text, checked against ``model``: ``(meta, layer names, settings)``.

    Raises:
        ValueError: another version or model, other layers, or a field out of range.
    """
    version = arrays.get("atlas_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu" or int(version) != ATLAS_VERSION:
        raise ValueError(f"atlas_version must be {ATLAS_VERSION}, got {version!r}")
    meta_text = arrays.get("meta")
    if meta_text is None or meta_text.shape != () or meta_text.dtype.kind != "U":
        raise ValueError("missing the 'meta' text")
    meta = parse_json(meta_text, "its meta", max_chars=ATLAS_LIMITS.max_text_chars)
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    if meta.get("digest") != model_digest(model):
        raise ValueError("it was computed for another model (the weights or the spec differ)")
    names = conv_layer_names(model)
    if meta.get("layers") != names:
        raise ValueError(f"its layers {str(meta.get('layers'))[:200]} are not the model's convolutions {names}")
    count = meta.get("digit_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"digit_count must be an integer >= 1, got {str(count)[:40]}")
    source, seconds = meta.get("source"), meta.get("seconds")
    if not isinstance(source, str) or len(source) > 500:
        raise ValueError("source must be text of at most 500 characters")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < 1e7:
        raise ValueError(f"seconds must be a number from 0, got {str(seconds)[:40]}")
    settings = meta.get("settings")
    if not isinstance(settings, dict) or set(settings) != set(AscentSettings.__dataclass_fields__):
        raise ValueError("settings are not AscentSettings")
    return meta, names, AscentSettings(**settings)


def _read_layer(arrays: dict, name: str, f: int, rf: ReceptiveField, count: int, k: int) -> LayerAtlas:
    """One layer's arrays of an atlas file (``f`` filters, ``k`` patches each, digits below ``count``), checked.

    Raises:
        ValueError: another receptive field, an array of the wrong shape, type or range, or crops that are not
            the receptive fields of their digits.
    """
    stored = _array(arrays, f"{name}/field", (9,), "iu")
    if not np.array_equal(stored, rf.as_array()):
        raise ValueError(f"{name}'s receptive field {stored.tolist()} is not the model's "
                         f"{rf.as_array().tolist()}")
    h_out, w_out = rf.output_shape[:2]
    digits = _array(arrays, f"{name}/digits", (f, k), "iu", 0, count - 1)
    positions = _array(arrays, f"{name}/positions", (f, k, 2), "iu", 0)
    if positions.size and (positions[..., 0].max() >= h_out or positions[..., 1].max() >= w_out):
        raise ValueError(f"{name}/positions lie outside the layer's {h_out}x{w_out} output")
    images = _array(arrays, f"{name}/images", (f, k, *INPUT_SHAPE), "u")
    crops = _array(arrays, f"{name}/crops", (f, k, *rf.size), "u")
    if images.dtype != np.uint8 or crops.dtype != np.uint8:
        raise ValueError(f"{name}'s digits and crops must be uint8")
    if not np.array_equal(crops, _crops_of(images, rf, positions)):
        raise ValueError(f"{name}/crops are not the receptive fields of its digits")
    patches = TopPatches(
        layer=name, field=rf, values=_array(arrays, f"{name}/values", (f, k), "f").astype(np.float32),
        digits=digits.astype(np.int64), labels=_array(arrays, f"{name}/labels", (f, k), "iu", -1, 9)
        .astype(np.int64), positions=positions.astype(np.int64), crops=crops, images=images)
    synthesis = Synthesis(images=_array(arrays, f"{name}/synth", (f, *INPUT_SHAPE), "f", 0.0, 1.0),
                          start=_array(arrays, f"{name}/synth_start", (f,), "f"),
                          end=_array(arrays, f"{name}/synth_end", (f,), "f"))
    return LayerAtlas(patches=patches, synthesis=synthesis)


def _crops_of(images: np.ndarray, field_: ReceptiveField, positions: np.ndarray) -> np.ndarray:
    """The receptive fields at ``positions`` of ``(F, k, 28, 28)`` digits (one digit per patch)."""
    f, k = positions.shape[:2]
    flat = images.reshape(f * k, *INPUT_SHAPE)
    return crop_patches(flat, field_, np.arange(f * k).reshape(f, k), positions)
