"""Every input the app takes, with bad values: a clear message, no traceback, nothing of the user's lost.

One test (or parametrized case) per row of docs/robustness.md, at the level where the input enters:
the Convolution page (AppTest) for matrix cells, sizes and the kernel fit; the library for uploads
(``convviz.images.decode_upload``), model files (``convviz.model.load_model``), the MNIST file
(``convviz.data.load_mnist`` / ``read_mnist_file``) and training settings (``TrainConfig``); the Train
page (AppTest) for the bounds of its widgets.
"""

import io
import json
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from apptest_helpers import rerun, run_page

from convviz.data import ENV_VAR, MNISTUnavailableError, load_mnist, read_mnist_file
from convviz.images import decode_upload
from convviz.model import ScratchCNN, load_model, make_spec
from convviz.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONV_PAGE = ROOT / "app_pages" / "1_Convolution.py"
TRAIN_PAGE = ROOT / "app_pages" / "3_Train.py"


# --------------------------------------------------------------------------- matrix and kernel cells (page)
@pytest.fixture
def conv():
    return run_page(CONV_PAGE)


@pytest.fixture(scope="module")
def conv_shared():
    """One Convolution page for all the bad-cell cases: each case leaves its bad cell fixed again."""
    return run_page(CONV_PAGE)


def _editor(app, prefix):
    return f"{prefix}_editor_{app.session_state[f'{prefix}_ver']}"


def _output(app):
    return app.table[0].value.astype(float).values.tolist()


# Each case edits (row 1, column 1) to 5 and puts the bad value into (row 2, column 3), then types a good one.
# The browser's editor sends what was typed as text (the cells are text cells), so "abc" arrives as "abc".
CELL_CASES = [
    ("blank", None, "is blank"),
    ("empty_text", "", "is blank"),
    ("text", "abc", "is not a number ('abc')"),
    ("nan", float("nan"), "is blank or not a number (NaN)"),
    ("nan_text", "nan", "is blank or not a number (NaN)"),
    ("plus_inf", math.inf, "is infinite"),
    ("minus_inf", "-1e400", "is infinite"),
    ("huge_1e308", 1e308, "is too large (1e+308)"),
    # underflow: 1e-400 silently became 0 (issue 15); a subnormal is not kept as typed either
    ("underflow_1e-400", "1e-400", "is too close to 0 ('1e-400'): a number nearer to 0 than 1e-300 is not kept"),
    ("subnormal_text", "-2.5e-310", "is too close to 0 ('-2.5e-310')"),
    ("subnormal_number", 5e-324, "is too close to 0 ('5e-324')"),
]


@pytest.mark.parametrize("prefix, label", [("conv_x", "Input"), ("conv_k", "Kernel")])
@pytest.mark.parametrize("case, bad, message", CELL_CASES, ids=[c[0] for c in CELL_CASES])
def test_bad_matrix_cell(conv_shared, prefix, label, case, bad, message):
    conv = conv_shared
    original = float(conv.session_state[f"{prefix}_current"][1][2])
    conv.session_state[_editor(conv, prefix)] = {"edited_rows": {0: {"1": 5}, 1: {"3": bad}}}
    rerun(conv)
    (warning,) = conv.warning
    assert f"{label} cell (row 2, column 3) {message}" in warning.value
    assert f"keeps its previous value {original:g}" in warning.value and "your other edits are kept" in warning.value
    current = conv.session_state[f"{prefix}_current"]
    assert current[0][0] == 5 and current[1][2] == original  # the other edit kept, the bad one refused
    x, k = (np.asarray(conv.session_state[f"{p}_current"]) for p in ("conv_x", "conv_k"))
    assert _output(conv)[0][0] == float((x[:3, :3] * k).sum())  # the page goes on with the kept values
    conv.session_state[_editor(conv, prefix)] = {"edited_rows": {1: {"3": f" {original:g} "}}}  # type it again
    conv.run()
    assert not conv.warning and not conv.exception
    assert conv.session_state[f"{prefix}_current"][0][0] == 5


def test_numbers_are_kept_exactly_as_typed(conv):
    """What the learner types is read as a number as written: no letters dropped, no 0 in place of text."""
    conv.session_state[_editor(conv, "conv_x")] = {"edited_rows": {0: {"1": "1e-3", "2": "-2.5", "3": "−4"}}}
    conv.run()
    assert not conv.exception and not conv.warning
    assert list(conv.session_state["conv_x_current"][0][:3]) == [0.001, -2.5, -4.0]


def test_huge_cells_that_would_overflow_are_refused(conv):
    """Two 1e308 cells under one window would sum to inf; they are refused and the sums stay finite."""
    conv.session_state[_editor(conv, "conv_x")] = {"edited_rows": {0: {"1": 1e308, "3": 1e308}}}
    conv.run()
    assert not conv.exception
    texts = [w.value for w in conv.warning]
    assert any("Input cell (row 1, column 1) is too large (1e+308)" in t for t in texts)
    assert any("Input cell (row 1, column 3) is too large (1e+308)" in t for t in texts)
    assert np.isfinite(np.asarray(_output(conv))).all()


@pytest.mark.parametrize("prefix, size, limit, old", [("conv_x", 30, 28, 5), ("conv_x", None, 28, 5),
                                                      ("conv_k", 8, 7, 3), ("conv_k", None, 7, 3)])
def test_size_over_the_limit_keeps_the_edits(conv, prefix, size, limit, old):
    """A cleared or too-large Rows keeps the previous size (the field shows it again), and nothing is cut."""
    conv.session_state[_editor(conv, prefix)] = {"edited_rows": {0: {"1": 5}, old - 1: {"1": 6}}}
    conv.run()
    conv.number_input(key=f"{prefix}_rows").set_value(size).run()
    assert not conv.exception
    assert f"Rows was left empty or out of range: it stays {old} (type a whole number from 1 to {limit})" \
        in conv.warning[0].value
    assert conv.number_input(key=f"{prefix}_rows").value == old
    current = conv.session_state[f"{prefix}_current"]
    assert current.shape == (old, old) and current[0][0] == 5 and current[old - 1][0] == 6


def test_shrinking_then_growing_brings_the_cells_back(conv):
    conv.session_state[_editor(conv, "conv_x")] = {"edited_rows": {4: {"5": 9}}}
    conv.run()
    conv.number_input(key="conv_x_rows").set_value(1).run()
    assert conv.session_state["conv_x_current"].shape == (1, 5)
    conv.number_input(key="conv_x_rows").set_value(5).run()
    assert not conv.exception and conv.session_state["conv_x_current"][4][4] == 9


def test_kernel_larger_than_the_padded_input(conv):
    conv.session_state[_editor(conv, "conv_k")] = {"edited_rows": {0: {"1": 5}}}
    conv.run()
    conv.number_input(key="conv_k_rows").set_value(7).run()
    assert not conv.exception
    (error,) = conv.error
    assert "kernel does not fit" in error.value and "more padding" in error.value
    assert conv.session_state["conv_k_current"][0][0] == 5
    conv.selectbox(key="conv_padding").select("3").run()  # enough padding: it fits again
    assert not conv.error and not conv.exception and conv.table


# --------------------------------------------------------------------------- uploads (library)
def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb(side=20000):
    """A valid 1-bit grayscale PNG of side x side pixels, all black: ~50 MB raw, a few kB compressed."""
    row = b"\x00" * (1 + side // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise_png():
    return _encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8), "L"), "PNG")


def _truncated_png():
    whole = _noise_png()
    assert len(whole) > 4000
    return whole[: len(whole) // 2]


def _gif():
    frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


UPLOAD_CASES = [
    ("empty", lambda: b"", "is empty (0 bytes)"),
    ("not_an_image", lambda: b"%PDF-1.4 this is not a picture\n" * 10, "not a readable image"),
    ("truncated_png", _truncated_png, "could not be decoded"),
    ("bomb_20000x20000", _bomb, "too large to decode safely (Image size (400000000 pixels)"),
    ("50_mb", lambda: b"\x89PNG\r\n\x1a\n" + bytes(50 * 1024 * 1024), "over the 5 MB limit"),
    ("animated_gif", _gif, "is a GIF image; only PNG and JPEG are accepted"),
]


@pytest.mark.parametrize("case, make, message", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_upload(case, make, message):
    data = make()
    if case == "bomb_20000x20000":
        assert len(data) < 100_000  # small on disk, huge when decoded
    with pytest.raises(ValueError, match="upload") as info:
        decode_upload(data)
    assert message in str(info.value)


def test_16_bit_png_is_scaled_not_clipped():
    wide = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    image = Image.fromarray(wide)
    assert image.mode == "I;16"
    data = _encoded(image, "PNG")
    gray = decode_upload(data)[:, :, 0]
    np.testing.assert_allclose(gray, np.round(wide / 257.0), atol=1)  # 32768 -> 128, not 255
    rgb = decode_upload(data, "RGB")
    assert rgb.shape == (64, 64, 3) and np.array_equal(rgb[:, :, 0], gray)


def test_cmyk_jpeg_is_decoded():
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # white
    cmyk.paste((0, 0, 0, 255), (0, 0, 8, 16))  # left half black
    cmyk.paste((0, 255, 255, 0), (8, 0, 16, 8))  # top right red
    data = _encoded(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    gray = decode_upload(data)[:, :, 0]
    assert gray[:, :6].max() < 20 and gray[10:, 10:].min() > 235
    rgb = decode_upload(data, "RGB")
    assert tuple(rgb[2, 13]) == pytest.approx((255, 0, 0), abs=20)


# --------------------------------------------------------------------------- model files (library)
def _model_file(tmp_path):
    path = tmp_path / "model.npz"
    ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0).save(path)
    return path


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(path, **arrays)


def _wrong_spec(arrays):
    spec = json.loads(str(arrays["spec"]))
    spec[0]["type"] = "transformer"
    arrays["spec"] = np.array(json.dumps(spec))


def _wrong_shape(arrays):
    arrays["conv1/kernel"] = np.zeros((5, 5, 1, 2), np.float32)


MODEL_CASES = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a .npz archive"),
    ("pickle", lambda p: p.write_bytes(pickle.dumps({"weights": [1, 2, 3]})), "not a .npz archive"),
    ("npz_with_pickled_array", lambda p: np.savez(p, spec=np.array([{"a": 1}], dtype=object)),
     "holds object values; only plain numbers and text are read (never objects or pickles)"),
    ("wrong_spec", lambda p: _rewrite(p, _wrong_spec), "unknown type='transformer'"),
    ("wrong_shapes", lambda p: _rewrite(p, _wrong_shape), "conv1/kernel has shape (5, 5, 1, 2)"),
]


@pytest.mark.parametrize("case, damage, message", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_file(tmp_path, case, damage, message):
    path = _model_file(tmp_path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert path.read_bytes() == before  # only read


# --------------------------------------------------------------------------- the MNIST file (library)
def _mnist(path, **override):
    arrays = {"x_train": np.zeros((6, 28, 28), np.uint8), "y_train": np.arange(6, dtype=np.uint8),
              "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.arange(2, dtype=np.uint8)}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_mnist_file_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    missing = tmp_path / "nowhere" / "mnist.npz"
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(missing, download=False)
    text = str(info.value)
    assert str(missing) in text and "CONVVIZ_MNIST" in text and "load_sample" in text
    assert not missing.parent.exists()  # nothing created


MNIST_CASES = [
    ("truncated", lambda p: p.write_bytes(_mnist(p).read_bytes()[:300]), "not a .npz archive"),
    ("wrong_keys", lambda p: _mnist(p, y_test=None), "missing arrays ['y_test']"),
    ("wrong_dtypes", lambda p: _mnist(p, x_train=np.zeros((6, 28, 28), np.float32)),
     "x_train should be uint8"),
]


@pytest.mark.parametrize("case, make, message", MNIST_CASES, ids=[c[0] for c in MNIST_CASES])
def test_bad_mnist_file(tmp_path, monkeypatch, case, make, message):
    path = tmp_path / "mnist.npz"
    make(path)
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        read_mnist_file(path, sizes=None)
    assert str(path) in str(info.value) and message in str(info.value)
    monkeypatch.setenv(ENV_VAR, str(path))  # the same file found through CONVVIZ_MNIST
    with pytest.raises(ValueError, match="mnist.npz"):
        load_mnist(download=False)
    assert path.read_bytes() == before  # never modified, moved or deleted


# --------------------------------------------------------------------------- training settings
TRAIN_CASES = [
    ("batch_size_0", {"batch_size": 0}, "batch_size must be an integer >= 1, got batch_size=0"),
    ("learning_rate_0", {"learning_rate": 0.0}, "got learning_rate=0.0"),
    ("learning_rate_negative", {"learning_rate": -0.001}, "got learning_rate=-0.001"),
    ("learning_rate_nan", {"learning_rate": float("nan")}, "got learning_rate=nan"),
    ("epochs_0", {"epochs": 0}, "epochs must be an integer >= 1, got epochs=0"),
]


@pytest.mark.parametrize("case, values, message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_setting(case, values, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**values)
    assert message in str(info.value)


def test_train_page_widgets_cannot_give_bad_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = run_page(TRAIN_PAGE)
    assert at.number_input(key="train_epochs").min == 1
    for key in ("train_filters1", "train_filters2"):
        assert at.number_input(key=key).min == 1
    assert min(int(v) for v in at.select_slider(key="train_batch").options) >= 1
    assert all(0 < float(v) <= 1 for v in at.select_slider(key="train_lr").options)
