"""Tests of convviz.atlas: receptive fields from the layers' geometry, top patches against a brute-force search,
gradient ascent that raises its target and repeats with its seed, and the atlas file read back checked."""

import json
import os

import numpy as np
import pytest

from convviz import atlas as at
from convviz import atlas_synthesis
from convviz import npzfile
from convviz.data import load_sample
from convviz.model import DEFAULT_MODEL_PATH, ScratchCNN, load_model, make_spec


@pytest.fixture(scope="module")
def test_digits():
    (_, _), (x, y) = load_sample()
    return x, y


@pytest.fixture(scope="module")
def shipped():
    return load_model(DEFAULT_MODEL_PATH)


# --------------------------------------------------------------------------------------------- receptive fields
def test_fast_preset_crops_3x3_then_8x8_and_a_changed_spec_changes_them(test_digits):
    fields = at.receptive_fields(make_spec("fast"))
    assert fields["conv1"].size == (3, 3) and fields["conv1"].jump == (1, 1)
    assert fields["pool1"].size == (4, 4) and fields["pool1"].jump == (2, 2)
    assert fields["conv2"].size == (8, 8) and fields["conv2"].jump == (2, 2)
    assert fields["conv2"].window(10, 10) == (20, 20, 28, 28)  # the last cell ends at the digit's edge
    x, y = test_digits
    model = ScratchCNN(make_spec("fast", filters=(3, 4)), seed=1)
    patches = at.top_patches(model, x[:40], y[:40])
    assert patches["conv1"].crops.shape == (3, 9, 3, 3) and patches["conv2"].crops.shape == (4, 9, 8, 8)

    # the same layers without the pool: conv2 sees 3 + (3 - 1) = 5 pixels
    spec = [layer for layer in make_spec("fast", filters=(3, 4)) if layer["name"] != "pool1"]
    assert at.receptive_fields(spec)["conv2"].size == (5, 5)
    assert at.top_patches(ScratchCNN(spec, seed=1), x[:20])["conv2"].crops.shape == (4, 9, 5, 5)
    # 5x5 kernels: conv1 5, pool1 5 + 1 = 6 (jump 2), conv2 6 + 4 * 2 = 14
    spec = make_spec("fast", filters=(3, 4), kernel_size=5)
    assert at.receptive_fields(spec)["conv1"].size == (5, 5) and at.receptive_fields(spec)["conv2"].size == (14, 14)
    assert at.top_patches(ScratchCNN(spec, seed=1), x[:20])["conv2"].crops.shape == (4, 9, 14, 14)
    # a 3x3 pool (jump 3): conv2 sees 3 + 2 + 2 * 3 = 11
    spec = make_spec("fast", filters=(3, 4))
    spec[1]["pool_size"] = 3
    assert at.receptive_fields(spec)["conv2"] == at.ReceptiveField("conv2", (11, 11), (3, 3), (0, 0), (6, 6, 4))
    # the seed preset has no pool: 3 then 5
    assert at.receptive_fields(make_spec("seed"))["conv2"].size == (5, 5)


def _spec(*layers):
    """A model spec from conv / pool layer dicts, closed with flatten and a 10-unit dense layer."""
    return [*layers, {"type": "flatten", "name": "flatten"}, {"type": "dense", "name": "dense", "units": 10}]


GEOMETRIES = {
    "fast": make_spec("fast", filters=(2, 2)),
    "strides and same padding": _spec(
        {"type": "conv2d", "name": "conv1", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same",
         "activation": "relu"},
        {"type": "conv2d", "name": "conv2", "filters": 2, "kernel_size": 3, "padding": 1, "activation": "relu"}),
    "dilation and an overlapping pool": _spec(
        {"type": "conv2d", "name": "conv1", "filters": 2, "kernel_size": 3, "dilation_rate": 2, "activation": "relu"},
        {"type": "maxpool2d", "name": "pool1", "pool_size": 3, "strides": 2},
        {"type": "conv2d", "name": "conv2", "filters": 2, "kernel_size": (2, 3), "activation": "relu"}),
    "even kernel, same padding": _spec(
        {"type": "conv2d", "name": "conv1", "filters": 2, "kernel_size": 4, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d", "name": "pool1", "pool_size": 2},
        {"type": "conv2d", "name": "conv2", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same",
         "activation": "relu"}),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_receptive_field_is_the_pixels_that_move_the_cell(name):
    """Against the network itself: the bounding box of the input pixels whose change moves an output cell."""
    spec = GEOMETRIES[name]
    model = ScratchCNN(spec, seed=0)
    for _, module in model.layers:  # positive weights on a positive input: every path adds, nothing cancels
        if hasattr(module, "kernel"):
            module.kernel.assign(np.abs(module.kernel.numpy()) + 0.1)
    base = np.full((28, 28), 0.5, np.float32)
    bumped = np.repeat(base[None], 28 * 28, axis=0)
    bumped[np.arange(28 * 28), np.arange(28 * 28) // 28, np.arange(28 * 28) % 28] += 100.0
    outputs = model.activations(np.concatenate([base[None], bumped]))
    for layer, rf in at.receptive_fields(spec).items():
        h, w = rf.output_shape[:2]
        for row, col in {(0, 0), (h // 2, w // 2), (h - 1, w - 1)}:
            moved = np.abs(outputs[layer][1:, row, col, 0] - outputs[layer][0, row, col, 0]) > 1e-3
            rows, cols = np.nonzero(moved.reshape(28, 28))
            top, left, bottom, right = rf.window(row, col)
            assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == \
                (max(top, 0), max(left, 0), min(bottom, 28), min(right, 28)), (layer, row, col, rf)


def test_receptive_fields_stop_at_flatten_and_refuse_a_bad_spec():
    assert list(at.receptive_fields(make_spec("fast"))) == ["conv1", "pool1", "conv2", "pool2"]
    with pytest.raises(ValueError, match="unknown type"):
        at.receptive_fields([{"type": "conv3d", "name": "c"}])


def test_crops_past_the_edge_are_zeros():
    rf = at.ReceptiveField("conv1", (3, 3), (1, 1), (-1, -1), (28, 28, 1))
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 250 + 1
    crop = at.crop_patches(images, rf, np.array([1]), np.array([[0, 27]]))[0]
    np.testing.assert_array_equal(crop[0], 0)  # row -1
    np.testing.assert_array_equal(crop[:, 2], 0)  # column 28
    np.testing.assert_array_equal(crop[1:, :2], images[1, 0:2, 26:28])


# --------------------------------------------------------------------------------------------- top patches
def _brute_force(model, images, k=9):
    """The top-k search one digit, one filter and one cell at a time, in plain Python."""
    outputs = model.activations(images.astype(np.float32) / 255.0)
    result = {}
    for layer in at.conv_layer_names(model):
        maps = outputs[layer]
        n, h, w, f = maps.shape
        per_filter = []
        for filt in range(f):
            best = []
            for digit in range(n):
                value, cell = -np.inf, None
                for r in range(h):
                    for c in range(w):
                        if maps[digit, r, c, filt] > value:  # strictly greater: the first cell wins a tie
                            value, cell = maps[digit, r, c, filt], (r, c)
                best.append((-value, digit, cell))
            per_filter.append(sorted(best)[:k])  # strongest first, then the lower digit index
        result[layer] = per_filter
    return result


@pytest.mark.parametrize("spec", [make_spec("fast", filters=(3, 4)), GEOMETRIES["strides and same padding"]],
                         ids=["fast", "same padding"])
def test_top_patches_equal_a_brute_force_search(spec, test_digits):
    x, y = test_digits
    images, labels = x[:25], y[:25]
    model = ScratchCNN(spec, seed=3)
    found = at.top_patches(model, images, labels, batch_size=7)  # batches that do not divide 25
    expected = _brute_force(model, images)
    for layer, per_filter in expected.items():
        patches = found[layer]
        for filt, top in enumerate(per_filter):
            np.testing.assert_array_equal(patches.digits[filt], [d for _, d, _ in top])
            np.testing.assert_array_equal(patches.positions[filt], [cell for _, _, cell in top])
            np.testing.assert_allclose(patches.values[filt], [-v for v, _, _ in top], rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(patches.labels[filt], labels[patches.digits[filt]])
            for crop, digit, box in zip(patches.crops[filt], patches.digits[filt], patches.boxes()[filt]):
                padded = np.pad(images[digit], 20)
                top_, left, bottom, right = box + 20
                np.testing.assert_array_equal(crop, padded[top_:bottom, left:right])
            np.testing.assert_array_equal(patches.images[filt], images[patches.digits[filt]])


def test_top_patches_of_a_small_set_and_bad_arguments(test_digits):
    x, y = test_digits
    model = ScratchCNN(make_spec("fast", filters=(2, 3)), seed=0)
    few = at.top_patches(model, x[:4], y[:4])
    assert few["conv2"].values.shape == (3, 4)  # fewer digits than 9: all of them
    floats = at.top_patches(model, x[:4] / 255.0)
    np.testing.assert_array_equal(floats["conv1"].digits, few["conv1"].digits)
    assert (floats["conv1"].labels == -1).all()
    with pytest.raises(ValueError, match=r"images must have shape"):
        at.top_patches(model, x[:4, :20])
    with pytest.raises(ValueError, match=r"k must be an integer >= 1, got k=0"):
        at.top_patches(model, x[:4], k=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        at.top_patches(model, x[:4], y[:3])
    dense_only = ScratchCNN(_spec(), seed=0)
    assert at.top_patches(dense_only, x[:4]) == {}


# --------------------------------------------------------------------------------------------- gradient ascent
def test_ascent_raises_every_filters_mean_activation(shipped):
    settings = at.AscentSettings(steps=48)
    for layer in ("conv1", "conv2"):
        result = at.synthesise_filters(shipped, layer, settings)
        filters = dict(shipped.layers)[layer].filters
        assert result.images.shape == (filters, 28, 28) and result.images.dtype == np.float32
        assert result.images.min() >= 0.0 and result.images.max() <= 1.0
        # measured independently of the ascent: the filter's own mean activation on its image
        own = shipped.activations(result.images)[layer][np.arange(filters), :, :, np.arange(filters)].mean(axis=(1, 2))
        np.testing.assert_allclose(own, result.end, rtol=1e-4, atol=1e-5)
        assert (result.end >= result.start).all(), layer
        assert (result.end > result.start + 0.01).mean() > 0.9, (layer, result.start, result.end)
        noise_mean = shipped.activations(np.full((1, 28, 28), 0.1, np.float32))[layer][0].mean(axis=(0, 1))
        assert np.median(result.end / np.maximum(noise_mean, 1e-6)) > 2, layer


def test_class_images_are_classified_as_their_class(shipped):
    classes = at.synthesise_classes(shipped, at.AscentSettings(steps=48))
    s = classes.synthesis
    assert (s.end > s.start).all()
    np.testing.assert_array_equal(shipped.predict(s.images).argmax(axis=1), np.arange(10))
    assert (classes.probabilities > 0.9).all()


def test_ascent_repeats_with_its_seed_and_differs_with_another():
    model = ScratchCNN(make_spec("fast", filters=(3, 4)), seed=2)
    settings = at.AscentSettings(steps=12, seed=5)
    first, again = at.synthesise_filters(model, "conv2", settings), at.synthesise_filters(model, "conv2", settings)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.end, again.end)
    other = at.synthesise_filters(model, "conv2", at.AscentSettings(steps=12, seed=6))
    assert not np.allclose(first.images, other.images)
    np.testing.assert_array_equal(at.synthesise_classes(model, settings).synthesis.images,
                                  at.synthesise_classes(model, settings).synthesis.images)


def test_ascent_settings_and_layer_are_checked():
    with pytest.raises(ValueError, match="steps must be an integer from 1 to 10000, got steps=0"):
        at.AscentSettings(steps=0)
    with pytest.raises(ValueError, match=r"learning_rate must be a number in \(0, 1\], got learning_rate=0"):
        at.AscentSettings(learning_rate=0)
    with pytest.raises(ValueError, match=r"l2_decay must be a number in \[0, 1\), got l2_decay=1.0"):
        at.AscentSettings(l2_decay=1.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        at.AscentSettings(blur_sigma=float("nan"))
    model = ScratchCNN(make_spec("fast", filters=(2, 2)), seed=0)
    with pytest.raises(ValueError, match=r"layer must be one of the model's convolutions \['conv1', 'conv2'\], "
                                         r"got layer='pool1'"):
        at.synthesise_filters(model, "pool1")


def test_blur_keeps_a_uniform_image_uniform():
    blur = atlas_synthesis._blur_matrix(28, 0.7)
    np.testing.assert_allclose(blur @ np.ones((28, 28)) @ blur.T, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(atlas_synthesis._blur_matrix(5, 0.0), np.eye(5))


# --------------------------------------------------------------------------------------------- the atlas and its file
@pytest.fixture(scope="module")
def small():
    model = ScratchCNN(make_spec("fast", filters=(3, 4)), seed=4)
    (_, _), (x, y) = load_sample()
    calls = []
    result = at.compute_atlas(model, x[:60], y[:60], "sixty sample digits", at.AscentSettings(steps=8),
                              progress=lambda f, m: calls.append((f, m)))
    return model, result, calls


def test_compute_atlas_reports_progress_and_holds_every_layer(small):
    model, result, calls = small
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] < 0.2
    assert {m for _, m in calls} >= {"Searching 60 test digits", "Synthesising conv2's filters",
                                     "Synthesising the 10 classes", "Done"}
    assert list(result.layers) == ["conv1", "conv2"] and result.digit_count == 60
    assert result.layers["conv2"].filters == 4 and result.layers["conv2"].synthesis.images.shape == (4, 28, 28)
    assert result.digest == at.model_digest(model) and result.source == "sixty sample digits"


def test_model_digest_follows_the_weights():
    a = ScratchCNN(make_spec("fast", filters=(2, 2)), seed=0)
    b = ScratchCNN(make_spec("fast", filters=(2, 2)), seed=0)
    assert at.model_digest(a) == at.model_digest(b)
    b.layers[0][1].bias.assign([0.0, 1e-6])
    assert at.model_digest(a) != at.model_digest(b)


def test_atlas_file_round_trip(small, tmp_path):
    model, result, _ = small
    path = at.save_atlas(result, tmp_path / "sub" / "a.atlas.npz")
    assert [p.name for p in path.parent.iterdir()] == ["a.atlas.npz"]  # no temporary file left
    assert (path.stat().st_mode & 0o777) == 0o644
    back = at.load_atlas(path, model)
    assert back.source == result.source and back.settings == result.settings and back.digit_count == 60
    for name, layer in result.layers.items():
        for field in ("values", "digits", "labels", "positions", "crops", "images"):
            np.testing.assert_array_equal(getattr(back.layers[name].patches, field), getattr(layer.patches, field))
        np.testing.assert_array_equal(back.layers[name].synthesis.images, layer.synthesis.images)
        assert back.layers[name].patches.field == layer.patches.field
    np.testing.assert_array_equal(back.classes.synthesis.images, result.classes.synthesis.images)


def _rewrite(path, change):
    """The atlas file at ``path`` with its arrays passed through ``change(dict)`` (as an outside hand might)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    change(arrays)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _meta(arrays, **changes):
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))


BAD_FILES = {
    "truncated": (None, "not a .npz archive"),
    "another model": (lambda a: _meta(a, digest="0" * 64), "computed for another model"),
    "old version": (lambda a: a.update(atlas_version=np.array(0)), "atlas_version must be 1"),
    "layers": (lambda a: _meta(a, layers=["conv1"]), "are not the model's convolutions"),
    "digit out of range": (lambda a: a["conv2/digits"].__setitem__((0, 0), 60), r"conv2/digits has values outside"),
    "position out of range": (lambda a: a["conv1/positions"].__setitem__((0, 0, 0), 26), "outside the layer's"),
    "crops tampered": (lambda a: a["conv2/crops"].__setitem__((0, 0, 0, 0), 7), "not the receptive fields"),
    "NaN image": (lambda a: a["classes/synth"].__setitem__((0, 0, 0), np.nan), "NaN or infinite"),
    "wrong shape": (lambda a: a.update({"conv1/values": a["conv1/values"][:2]}), r"conv1/values has shape \(2, 9\)"),
    "missing array": (lambda a: a.pop("conv2/synth"), "missing the array 'conv2/synth'"),
    "settings": (lambda a: _meta(a, settings={"steps": -1}), "settings are not AscentSettings"),
    "field changed": (lambda a: a["conv2/field"].__setitem__(0, 9), "receptive field"),
    "pickled object": (lambda a: a.update(meta=np.array([{"x": 1}], dtype=object)), "objects or pickles"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_damaged_or_foreign_atlas_file_is_refused_and_left_as_it_is(case, small, tmp_path):
    model, result, _ = small
    path = at.save_atlas(result, tmp_path / "a.atlas.npz")
    change, message = BAD_FILES[case]
    if change is None:
        path.write_bytes(path.read_bytes()[:500])
    else:
        if case == "pickled object":
            with np.load(path, allow_pickle=False) as f:
                arrays = dict(f)
            change(arrays)
            np.savez(path, **arrays)
        else:
            _rewrite(path, change)
    before, mtime = path.read_bytes(), os.stat(path).st_mtime_ns
    with pytest.raises(ValueError, match=message) as info:
        at.load_atlas(path, model)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and os.stat(path).st_mtime_ns == mtime


def test_no_atlas_file_is_file_not_found(small, tmp_path):
    with pytest.raises(FileNotFoundError):
        at.load_atlas(tmp_path / "none.npz", small[0])


def test_a_failed_save_leaves_nothing(small, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(npzfile.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        at.save_atlas(small[1], tmp_path / "a.atlas.npz")
    assert list(tmp_path.iterdir()) == []
