"""Hostile and odd input (issue 15): one test (or parametrized group) per kind, every input built here.

1. One bad run file is one warning, with a way to delete it; the other runs are listed.
2. A small file is refused by its declared sizes and spec values before it costs memory.
3. Every decodable image is answered (tiny, thin, rotated by EXIF); a PNG text bomb gets advice.
4. Values read back from disk (and the learner key in the address) are validated like user input.
5. A bad matrix edit is refused with a message and the previous value kept (more in test_robustness.py).
6. A crafted client message cannot edit outside the matrix or grow it.
Also: learners never see a traceback (``client.showErrorDetails``).
"""

import hashlib
import io
import json
import math
import struct
import time
import tomllib
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from apptest_helpers import run_page
from streamlit.testing.v1 import AppTest

from convviz import jobs
from convviz.data import read_mnist_file
from convviz.images import decode_upload, fit_image
from convviz.model import ScratchCNN, load_model, make_spec
from convviz.npzfile import parse_json
from convviz.preprocess import digit_stages, photo_to_gray, prepare_photo
from convviz.runs import RunStore, check_history, check_settings
from convviz.ui.matrix_editor import cell_text
from convviz.ui.text import md

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAGE = ROOT / "app_pages" / "3_Train.py"
STACK_PAGE = ROOT / "app_pages" / "2_Stacked_Channels.py"
DRAW_PAGE = ROOT / "app_pages" / "4_Draw.py"
CONV_PAGE = ROOT / "app_pages" / "1_Convolution.py"
LEARNER = "learner0hostile"
GOOD_RUN = "20260102-000000-fast-a00001"


# --------------------------------------------------------------------------- helpers: files built in the test
def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npy_header_only(shape, dtype) -> bytes:
    """A .npy member whose header declares ``shape`` / ``dtype`` but which holds no data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_zip(path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


def _declare_uncompressed(path, size: int) -> None:
    """Patch the first member's declared uncompressed size (local header and central directory) to ``size``."""
    data = bytearray(Path(path).read_bytes())
    struct.pack_into("<L", data, data.find(b"PK\x03\x04") + 22, size)
    struct.pack_into("<L", data, data.find(b"PK\x01\x02") + 24, size)
    Path(path).write_bytes(bytes(data))


def _history(epochs_done=1):
    return {"batch_loss": [2.3, 2.0, 1.7], "batch_accuracy": [0.1, 0.3, 0.5], "epoch_test_loss": [1.2] * epochs_done,
            "epoch_test_accuracy": [0.6] * epochs_done, "epoch": epochs_done, "batch": 3, "batches_per_epoch": 3,
            "epochs": 2, "samples_per_second": 50.0, "elapsed_s": 2.0, "eta_s": 1.0, "status": "stopped",
            "error": None, "final_test_loss": 1.2, "final_test_accuracy": 0.6}


CONFIG = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 2, "batch_size": 64,
          "learning_rate": 0.001, "seed": 0}


def _good_run(store: RunStore, run_id=GOOD_RUN) -> str:
    model = ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)
    store.save(run_id, model, preset="fast", dataset=jobs.SAMPLE_LABEL, config=CONFIG, history=_history(),
               name="Run 1")
    return run_id


def _with_metadata(store: RunStore, run_id: str, change) -> Path:
    """A copy of the good run as ``run_id`` whose metadata text is ``change(metadata dict)`` (a str or a dict).

    The copy has the older layout (the whole history in the metadata JSON, as files written before the per-batch
    members), so a change can reach every history value; that layout is still read."""
    members = _members(store.path(GOOD_RUN))
    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(members["metadata.npy"]))))
    meta["run_id"] = run_id
    if meta.pop("batch_history", None) == "members":
        for key in ("batch_loss", "batch_accuracy"):
            values = np.lib.format.read_array(io.BytesIO(members.pop(f"history_{key}.npy")))
            meta["history"][key] = values.tolist()
    text = change(meta)
    members["metadata.npy"] = _npy(np.array(text if isinstance(text, str) else json.dumps(text)))
    return _write_zip(store.path(run_id), members)


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _set(meta, section, key, value):
    meta[section][key] = value
    return meta


# --------------------------------------------------------------------------- kind 1: one bad file, one warning
def _bad_runs(store: RunStore) -> dict[str, str]:
    """Bad run files next to the good one: ``{file name: what its warning says}``."""
    cases = {
        "20260101-000000-fast-b00001": (lambda m: json.dumps(m).replace('"history": {',
                                                                        f'"deep": {_nested(5000)}, "history": {{'),
                                        "nested deeper than Python can parse"),
        "20260101-000000-fast-b00002": (lambda m: _set(m, "config", "seed", json.loads(_nested(30))),
                                        "nested 17+ levels deep, over the limit of 16"),
        "20260101-000000-fast-b00003": (lambda m: dict(m, history="all good"),
                                        "metadata['history'] must be an object"),
        "20260101-000000-fast-b00004": (lambda m: _set(m, "history", "batch_loss", [2.3, "abc", 1.7]),
                                        "metadata['history']['batch_loss'] must be a number from 0 to inf, got abc"),
        "20260101-000000-fast-b00005": (lambda m: _set(m, "config", "epochs", 1e30),
                                        "metadata['config']['epochs'] must be an integer from 1 to 10,000, got 1e+30"),
        "20260101-000000-fast-b00006": (lambda m: "{not json", "its metadata is not valid JSON"),
        # valid JSON, but a lone surrogate is no text a page can send (the whole list once failed to draw)
        "20260101-000000-fast-b00009": (lambda m: json.dumps(dict(m, name="Run \ud800")),
                                        "metadata['name'] must be text that UTF-8 can encode, got 'Run \\ud800'"),
    }
    expected = {}
    for run_id, (change, message) in cases.items():
        _with_metadata(store, run_id, change)
        expected[f"{run_id}.npz"] = message
    huge = store.path("20260101-000000-fast-b00007")
    members = _members(store.path(GOOD_RUN))
    members["metadata.npy"] = _npy_header_only((), "<U25000000")
    _write_zip(huge, members)
    expected[huge.name] = "declares 25,000,000 characters of text, over the limit of 24,000,000"
    with pytest.raises(ValueError, match="declares 25,000,000 characters of text, over the limit of 24,000,000"):
        store.record("20260101-000000-fast-b00007")  # opening it says the same as the list
    store.path("20260101-000000-fast-b00008").write_bytes(b"PK\x03\x04 garbage")
    expected["20260101-000000-fast-b00008.npz"] = "not a .npz archive"
    return expected


def test_kind1_each_bad_run_file_is_one_warning_and_can_be_deleted(tmp_path):
    store = RunStore(tmp_path)
    _good_run(store)
    expected = _bad_runs(store)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [GOOD_RUN]
    reasons = {item.name: item.reason for item in skipped}
    assert set(reasons) == set(expected)
    for name, message in expected.items():
        assert message in reasons[name], (name, reasons[name])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # listing changes nothing
    for name in expected:  # record() names the file too
        with pytest.raises(ValueError, match=name[:-4]):
            store.record(name[:-4])
    store.discard("20260101-000000-fast-b00003.npz")
    assert not (tmp_path / "20260101-000000-fast-b00003.npz").exists()
    assert len(store.list_runs()[1]) == len(expected) - 1
    model, record = store.load(GOOD_RUN)  # the good run, weights and all, is still there
    assert record.test_accuracy == 0.6 and model.count_params() > 0
    for bad in ("../x.npz", "sub/x.npz", ".hidden.npz", "notes.txt", ""):
        with pytest.raises(ValueError, match="not a file name of the runs folder"):
            store.discard(bad)


def _train_page(monkeypatch, runs_root, learner=LEARNER):
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(runs_root))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")  # no cluster is started: the list is what is tested
    at = AppTest.from_file(str(TRAIN_PAGE), default_timeout=60)
    at.query_params["learner"] = learner
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_kind1_the_train_page_lists_the_good_runs_and_offers_to_delete_a_bad_file(monkeypatch, tmp_path):
    store = RunStore(tmp_path / LEARNER)
    _good_run(store)
    expected = _bad_runs(store)
    at = _train_page(monkeypatch, tmp_path)
    warnings = [w.value for w in at.warning if "A file in the runs folder was skipped" in w.value]
    assert len(warnings) == len(expected)
    for name, message in expected.items():  # shown with Markdown escaped (convviz.ui.text.md)
        assert any(md(name) in w and md(message) in w for w in warnings), name
    assert list(at.dataframe[0].value["Run id"]) == [GOOD_RUN]
    name = "20260101-000000-fast-b00001.npz"
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    at.button(key=f"runs_discard_{digest}").click().run()
    at.button(key="runs_discard_yes").click().run()
    assert not at.exception
    assert any(f"Deleted the file {name}" in s.value for s in at.success)
    assert not store.root.joinpath(name).exists() and len(list(store.root.glob("*.npz"))) == len(expected)
    assert list(at.dataframe[0].value["Run id"]) == [GOOD_RUN]


def test_kind4_a_run_planned_past_the_resume_box_still_shows(monkeypatch, tmp_path):
    """check_settings allows 10,000 planned epochs; the page's "Train up to epoch" box tops out at 50: the run shows,
    the box clamped (it raised StreamlitValueAboveMaxError before)."""
    store = RunStore(tmp_path / LEARNER)
    _good_run(store)
    _with_metadata(store, "20260103-000000-fast-c00001", lambda m: _set(m, "config", "epochs", 100))
    at = _train_page(monkeypatch, tmp_path)
    assert sorted(at.dataframe[0].value["Run id"]) == [GOOD_RUN, "20260103-000000-fast-c00001"]
    box = at.number_input(key="runs_epochs_20260103-000000-fast-c00001")
    assert box.value == box.max == 50


# --------------------------------------------------------------------------- kind 2: refused before allocating
def _model_file(tmp_path) -> Path:
    path = tmp_path / "good.npz"
    ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0).save(path)
    return path


def _spec_file(path, spec) -> Path:
    """A 'model file' that is only a spec (the spec is checked before any weights are looked at)."""
    return _write_zip(path, {"format_version.npy": _npy(np.array(1)), "spec.npy": _npy(np.array(json.dumps(spec)))})


def _conv(**values):
    return dict({"type": "conv2d", "name": "conv1", "filters": 2, "kernel_size": 3}, **values)


_DENSE = {"type": "dense", "name": "dense", "units": 10}
_FLAT = {"type": "flatten", "name": "flatten"}


def _many_members(path, good):
    members = _members(good)
    members.update({f"extra{i}.npy": _npy(np.zeros(1)) for i in range(100)})
    return _write_zip(path, members)


def _declared_2gib(path, good):
    _write_zip(path, {"format_version.npy": _npy(np.array(1)), **{k: v for k, v in _members(good).items()
                                                                   if k != "format_version.npy"}})
    _declare_uncompressed(path, 2**31)
    return path


def _header_says(path, good, name, shape, dtype):
    members = _members(good)
    members[name] = _npy_header_only(shape, dtype) + b"\0" * 64
    return _write_zip(path, members)


def _sparse(path, size):
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _mnist_members(x_train=None, extra=0):
    members = {"x_train.npy": x_train if x_train is not None else _npy(np.zeros((6, 28, 28), np.uint8)),
               "y_train.npy": _npy(np.zeros(6, np.uint8)), "x_test.npy": _npy(np.zeros((2, 28, 28), np.uint8)),
               "y_test.npy": _npy(np.zeros(2, np.uint8))}
    members.update({f"x{i}.npy": _npy(np.zeros(1)) for i in range(extra)})
    return members


SMALL_FILES = [
    ("filters_100000", "model", lambda p, g: _spec_file(p, [_conv(filters=100000), _FLAT, _DENSE]),
     "filters must be at most the limit MAX_FILTERS=1024, got filters=100000"),
    ("kernel_1e9", "model", lambda p, g: _spec_file(p, [_conv(kernel_size=10**9), _FLAT, _DENSE]),
     "kernel_size must be at most the limit MAX_WINDOW=28"),
    ("padding_1e6", "model", lambda p, g: _spec_file(p, [_conv(padding=10**6), _FLAT, _DENSE]),
     "int from 0 to the limit MAX_WINDOW=28, got padding=1000000"),
    ("units_1e12", "model", lambda p, g: _spec_file(p, [_FLAT, dict(_DENSE, units=10**12)]),
     "units must be at most the limit MAX_UNITS=4096"),
    ("layers_1000", "model", lambda p, g: _spec_file(p, [dict(_FLAT, name=f"f{i}") for i in range(1000)]),
     "spec has 1000 layers, over the limit of MAX_LAYERS=24"),
    ("params_9M", "model", lambda p, g: _spec_file(p, [_conv(filters=1024), _conv(name="conv2", filters=1024), _FLAT,
                                                       _DENSE]), "over the limit of MAX_PARAMS=5,000,000"),
    ("spec_nested", "model", lambda p, g: _write_zip(p, {"format_version.npy": _npy(np.array(1)),
                                                         "spec.npy": _npy(np.array(_nested(20)))}),
     "the spec is nested 5+ levels deep, over the limit of 4"),
    ("member_declares_2gib", "model", lambda p, g: _declared_2gib(p, g),
     "declares 2,147.5 MB uncompressed, over the limit of 134.2 MB for a model file"),
    ("array_declares_4tb", "model", lambda p, g: _header_says(p, g, "dense/w.npy", (10**6, 10**6), "<f4"),
     "declares an array of shape (1000000, 1000000) float32 (4,000,000.0 MB), over the limit of 104.9 MB per member"),
    ("array_longer_than_its_data", "model", lambda p, g: _header_says(p, g, "dense/w.npy", (1000, 1000), "<f4"),
     "holds only 64 bytes of data (truncated)"),
    ("101_members", "model", _many_members, "over the limit of 64 members"),
    ("file_129_mb", "model", lambda p, g: _sparse(p, 129 * 2**20), "is 135.3 MB, over the limit of 134.2 MB"),
    ("mnist_x_train_7_gb", "MNIST", lambda p, g: _write_zip(p, _mnist_members(_npy_header_only((10**7, 28, 28),
                                                                                             "|u1"))),
     "declares an array of shape (10000000, 28, 28) uint8 (7,840.0 MB), over the limit of 67.1 MB per member"),
    ("mnist_20_members", "MNIST", lambda p, g: _write_zip(p, _mnist_members(extra=16)),
     "over the limit of 16 members"),
    ("mnist_file_65_mb", "MNIST", lambda p, g: _sparse(p, 65 * 2**20), "over the limit of 67.1 MB for a MNIST file"),
]


@pytest.mark.parametrize("case, kind, make, message", SMALL_FILES, ids=[c[0] for c in SMALL_FILES])
def test_kind2_a_small_file_is_refused_before_it_costs_memory(tmp_path, case, kind, make, message):
    good = _model_file(tmp_path)
    path = make(tmp_path / "bad.npz", good)
    before = path.stat().st_size
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(ValueError) as info:
            load_model(path) if kind == "model" else read_mnist_file(path, sizes=None)
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert str(path) in text and message in text, text
    assert "limit" in text or "truncated" in text
    assert peak < 20 * 2**20, f"{peak / 1e6:.0f} MB allocated before the refusal"
    assert elapsed < 10
    assert path.stat().st_size == before  # only read
    assert load_model(good).count_params() > 0  # the good file beside it still loads


def test_kind2_json_limits_name_the_file_and_the_limit():
    where = "run file '/x/r.npz': metadata"
    for text, limit, message in [(_nested(100_000), 300_000, "nested deeper than Python can parse"),
                                 (_nested(17), 100, "nested 17+ levels deep, over the limit of 16"),
                                 ("[" + "1," * 60 + "1]", 100, "is 123 characters of JSON, over the limit of 100"),
                                 ('{"a": NaN}', 100, "NaN is not a number JSON allows"),
                                 (np.zeros(3), 100, "is not JSON text"),
                                 # many tiny objects: refused from the text, before 8 million dicts are built
                                 ("[" + "{}," * 7_900_000 + "{}]", 24_000_000,
                                  "has up to 7,900,002 lists / objects, over the limit of 100,000")]:
        with pytest.raises(ValueError) as info:
            parse_json(text, where, max_chars=limit)
        assert str(info.value).startswith(where) and message in str(info.value), str(info.value)
    assert parse_json('{"a": [1, [2]]}', where, max_chars=100) == {"a": [1, [2]]}
    # a long flat list (a long run's batch losses) is measured for depth without a record per number
    import tracemalloc
    text = "[" + "0.5," * 2_000_000 + "0.5]"
    tracemalloc.start()
    assert len(parse_json(text, where, max_chars=24_000_000)) == 2_000_001
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 150 * 2**20, peak  # the floats and the list (~64 MB), not a tuple per number on top


# --------------------------------------------------------------------------- kind 3: ordinary images
def _png(array, **info) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **info)
    return buffer.getvalue()


def _exif_jpeg() -> bytes:
    """A 40x20 landscape JPEG (left half dark, right half light) whose EXIF says: rotate 90° clockwise to show."""
    array = np.full((20, 40), 230, np.uint8)
    array[:, :20] = 20
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def _text_bomb() -> bytes:
    """A valid 8x8 PNG with a zTXt chunk that inflates to 2 MB (Pillow refuses text chunks over 1 MB)."""
    png = _png(np.zeros((8, 8), np.uint8))
    data = b"Comment\x00\x00" + zlib.compress(b"a" * (2 * 1024 * 1024), 9)
    chunk = struct.pack(">I", len(data)) + b"zTXt" + data + struct.pack(">I", zlib.crc32(b"zTXt" + data))
    return png[:33] + chunk + png[33:]  # after IHDR


def _strip(height, width):
    array = np.zeros((height, width), np.uint8)
    array[:, ::3] = 255
    return _png(array)


IMAGES = [
    ("tiny_1x1", lambda: _png(np.full((1, 1), 255, np.uint8)), (1, 1)),
    ("tiny_2x2_rgb", lambda: _png(np.full((2, 2, 3), 200, np.uint8)), (2, 2)),
    ("strip_1x300", lambda: _strip(1, 300), (1, 280)),
    ("strip_300x1", lambda: _strip(300, 1), (280, 1)),
    ("strip_2x20000", lambda: _strip(2, 20000), (1, 280)),
    ("exif_rotated_jpeg", _exif_jpeg, (40, 20)),
]


@pytest.mark.parametrize("case, make, shape", IMAGES, ids=[c[0] for c in IMAGES])
def test_kind3_every_decodable_image_is_answered(case, make, shape):
    data = make()
    start = time.monotonic()
    for mode in ("L", "RGB"):
        image = decode_upload(data, mode, max_side=280)
        assert image.shape[:2] == shape and image.shape[2] == (1 if mode == "L" else 3)
        real = fit_image(image, 28, min_side=3)  # the Stacked Channels page's input
        assert min(real.shape[:2]) >= 3 and max(real.shape[:2]) <= 28
        digit = prepare_photo(image)[0].image  # what the shipped model sees (Stacked Channels page)
        assert digit.shape == (28, 28) and np.isfinite(digit).all()
    gray, _ = photo_to_gray(decode_upload(data, "L", max_side=560)[:, :, 0])  # the Draw page
    assert digit_stages(gray).gray.shape == gray.shape
    assert time.monotonic() - start < 10
    if case == "exif_rotated_jpeg":  # upright: what was the left half is now the top half
        upright = decode_upload(data, "L")[:, :, 0]
        assert upright[:18].mean() < 60 and upright[22:].mean() > 180


def test_kind3_a_phone_jpeg_and_a_large_transparent_png():
    """A JPEG with a multi-picture segment (Pillow: MPO) is a JPEG; a 5000x5000 transparent PNG (110 kB) is shrunk
    before its transparency is composited (at full size: 1.3 GB)."""
    import resource
    import subprocess
    import sys

    photo, thumb = Image.new("RGB", (60, 40), "white"), Image.new("RGB", (6, 4), "black")
    buf = io.BytesIO()
    photo.save(buf, "MPO", save_all=True, append_images=[thumb])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    assert decode_upload(buf.getvalue(), mode="L", max_side=280).shape == (40, 60, 1)
    code = ("import io, resource, numpy as np; from PIL import Image; from convviz.images import decode_upload\n"
            "a = np.zeros((5000, 5000, 4), np.uint8); a[1000:4000, 2000:3000] = 255\n"
            "b = io.BytesIO(); Image.fromarray(a, 'RGBA').save(b, 'PNG')\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "out = decode_upload(b.getvalue(), mode='L', max_side=280)\n"
            "print(out.shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shape, grown_mb = done.stdout.rsplit(")", 1)
    assert shape + ")" == "(280, 280, 1)" and int(grown_mb) < 400, done.stdout  # MB above the file's own 100 MB


def test_kind3_a_png_text_bomb_gets_advice():
    with pytest.raises(ValueError) as info:
        decode_upload(_text_bomb())
    text = str(info.value)
    assert "metadata chunk (text or colour profile) that unpacks to more than 1 MB" in text
    assert "save the picture again without its metadata" in text


@pytest.mark.parametrize("case, make", [("tiny_1x1", IMAGES[0][1]), ("strip_1x300", IMAGES[2][1]),
                                        ("strip_2x20000", IMAGES[4][1]), ("exif_rotated_jpeg", _exif_jpeg),
                                        ("text_bomb", _text_bomb)])
def test_kind3_the_upload_pages_answer_odd_images(case, make):
    stack = run_page(STACK_PAGE)
    stack.radio(key="stack_source").set_value("Upload an image").run()
    stack.file_uploader(key="stack_upload").set_value((f"{case}.png", make(), "image/png")).run()
    assert not stack.exception, [e.value for e in stack.exception]
    if case == "text_bomb":
        assert any("save the picture again without its metadata" in e.value for e in stack.error)
        return
    assert not stack.error
    assert any("→ feature maps" in m.value for m in stack.markdown)
    if case.startswith("strip"):
        assert any("its edge pixels were repeated" in c.value for c in stack.caption)
    draw = run_page(DRAW_PAGE)
    draw.radio(key="draw_source").set_value("Upload a photo").run()
    draw.file_uploader(key="draw_upload").set_value((f"{case}.png", make(), "image/png")).run()
    assert not draw.exception and not draw.error, [e.value for e in draw.exception]


# --------------------------------------------------------------------------- kind 4: values the page trusts
@pytest.mark.parametrize("key", ["abcdefgh1\n", "abcdefgh1\r\n", "ABCDEFGH12", "../../tmp/x", "abcdefg", "a" * 33,
                                 "abcdefgh 1", "abcdefgh1/"])
def test_kind4_a_learner_key_must_match_whole(tmp_path, key):
    with pytest.raises(ValueError, match="learner must be 8-32 lowercase letters or digits"):
        jobs.JobFiles(tmp_path, key)
    assert jobs.LEARNER_RE.fullmatch(key) is None


def test_kind4_the_train_page_ignores_a_learner_key_with_a_newline(monkeypatch, tmp_path):
    at = _train_page(monkeypatch, tmp_path, learner="abcdefgh12\n")
    assert at.session_state["_learner"] != "abcdefgh12\n"
    assert jobs.LEARNER_RE.fullmatch(at.session_state["_learner"])
    assert not [p for p in tmp_path.rglob("*") if "\n" in p.name]
    with pytest.raises(ValueError, match="not a run id"):
        RunStore(tmp_path).path(GOOD_RUN + "\n")


BAD_HISTORIES = [
    ({"epochs": 1e30}, "['epochs'] must be an integer from 0 to 10,000, got 1e+30"),
    ({"batch_loss": [1.0, "abc", 2.0], "batch_accuracy": [0.1] * 3}, "['batch_loss'] must be a number"),
    ({"epoch_test_accuracy": [2.0]}, "['epoch_test_accuracy'] must be a number from 0 to 1, got 2.0"),
    ({"batch_loss": [-1.0, 1.0, 1.0]}, "['batch_loss'] must be a number from 0 to inf, got -1.0"),
    ({"eta_s": "soon"}, "['eta_s'] must be a number"),
    ({"status": "exploded"}, "['status'] must be one of"),
    ({"epoch": 5}, "has 5 finished epochs but 1 test losses"),
    ({"batch_accuracy": [0.5]}, "has 3 batch losses but 1 batch accuracies"),
    ({"error": ["not", "text"]}, "['error'] must be text"),
    ({"final_test_loss": None}, "only one of final_test_loss and final_test_accuracy"),
]


@pytest.mark.parametrize("change, message", BAD_HISTORIES, ids=[str(c[0])[:30] for c in BAD_HISTORIES])
def test_kind4_a_history_read_back_is_validated(change, message):
    with pytest.raises(ValueError) as info:
        check_history(dict(_history(), **change), "history")
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"epochs": 1e30}, "['epochs'] must be an integer from 1 to 10,000, got 1e+30"),
    ({"epochs": True}, "['epochs'] must be an integer"),
    ({"filters": [1, 2, 3]}, "['filters'] must be a pair of integers"),
    ({"filters": [1, 10**9]}, "['filters'] must be an integer from 1 to 1,024"),
    ({"learning_rate": 0}, "['learning_rate'] must be a number in (0, 1]"),
    ({"learning_rate": "fast"}, "['learning_rate'] must be a number"),
    ({"preset": "transformer"}, "['preset'] must be 'fast' or 'seed'"),
    ({"seed": -1}, "['seed'] must be an integer from 0"),
])
def test_kind4_settings_read_back_are_validated(change, message):
    with pytest.raises(ValueError) as info:
        check_settings(dict(CONFIG, **change), "config")
    assert message in str(info.value), str(info.value)
    assert check_settings(dict(CONFIG, unknown="dropped")) == CONFIG


T0 = float(int(time.time()) - 100)  # a submission time in the recent past (a time in the future is refused)


def _job(files: jobs.JobFiles, run_id: str, **change):
    job = {"run_id": run_id, "submission": "1798000000000000000-abcdef", "submitted_at": T0,
           "submitted": True, "name": "Run 1", "number": 1, "settings": CONFIG, "dataset": jobs.SAMPLE_LABEL,
           "created": "2026-01-02T00:00:00+00:00", "resume": False}
    files.job_path(run_id).write_text(json.dumps(dict(job, **change)))


def _progress(files: jobs.JobFiles, run_id: str, **change):
    progress = {"submission": "1798000000000000000-abcdef", "status": "finished", "error": None,
                "heartbeat": T0 + 1, "history": _history(), "first_kernel": np.zeros((3, 3, 1, 2)).tolist()}
    files.progress_path(run_id).write_text(json.dumps(dict(progress, **change)))


@pytest.mark.parametrize("what, write, message", [
    ("job_epochs_1e30", lambda f, r: _job(f, r, settings=dict(CONFIG, epochs=1e30)), None),
    ("job_not_json", lambda f, r: f.job_path(r).write_text("{"), None),
    ("progress_loss_text", lambda f, r: (_job(f, r), _progress(f, r, history=dict(_history(), batch_loss=["x"] * 3))),
     "['batch_loss'] must be a number"),
    ("progress_ragged_kernel", lambda f, r: (_job(f, r), _progress(f, r, first_kernel=[[1, 2], [3]])),
     "['first_kernel'] must be a (height, width, channels, filters) array"),
    ("progress_nested", lambda f, r: (_job(f, r), f.progress_path(r).write_text(_nested(50_000))),
     "nested deeper than Python can parse"),
    ("progress_40_mb", lambda f, r: (_job(f, r), _sparse(f.progress_path(r), 40 * 2**20)),
     "over the limit of 28,194,304 bytes"),
])
def test_kind4_job_and_progress_records_read_back_are_validated(tmp_path, what, write, message):
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    bad = "20260101-000000-fast-c00001"
    _good_run(files.store, bad)
    write(files, bad)
    state = jobs.run_state(files, bad, now=T0 + 2)
    if message is None:  # an invalid job record counts as none: the run is its checkpoint
        assert state is None and files.read_job(bad) is None
        problems = []
        files.read_job(bad, problems)
        assert problems and "job record" in problems[0] and bad in problems[0]
    else:
        assert state.state == "failed" and not state.active
        assert "its progress cannot be read" in state.error and message in state.error, state.error
    records, skipped = files.store.list_runs()
    assert {r.run_id for r in records} == {GOOD_RUN, bad} and not skipped


# --------------------------------------------------------------------------- kind 6: crafted client messages
CRAFTED = [
    ("row_999", {"edited_rows": {999: {"1": 3}}}, 1),
    ("column_99", {"edited_rows": {0: {"99": 3}}}, 1),
    ("column_0_and_index", {"edited_rows": {0: {"0": 3, "_index": 1}}}, 2),
    ("negative_row", {"edited_rows": {-1: {"1": 3}}}, 1),
    ("20000_added_rows", {"added_rows": [{"1": 1}] * 20_000}, 20_000),
    ("deleted_rows", {"deleted_rows": [0, 1, 999]}, 3),
    ("row_not_a_dict", {"edited_rows": {0: "x"}}, 1),
]


@pytest.mark.parametrize("case, state, ignored", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_kind6_edits_outside_the_matrix_are_ignored(case, state, ignored):
    at = run_page(CONV_PAGE)
    key = f"conv_x_editor_{at.session_state['conv_x_ver']}"
    state = dict(state, edited_rows={**state.get("edited_rows", {}), 2: {"2": "7"}})  # and one good edit
    at.session_state[key] = state
    start = time.monotonic()
    at.run()
    assert time.monotonic() - start < 20
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"{ignored} edit(s) outside the 5×5 input were ignored" in w.value for w in at.warning)
    current = at.session_state["conv_x_current"]
    assert current.shape == (5, 5) and current[2][1] == 7  # the size holds; the good edit is kept
    assert at.session_state["conv_x_ver"] == 1  # a fresh editor, showing the matrix as it is kept


# --------------------------------------------------------------------------- no tracebacks for learners
def test_learners_never_see_a_traceback():
    import streamlit.config as config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    value = settings["client"]["showErrorDetails"]
    assert value == "none" and value in {o.value for o in config.ShowErrorDetailsConfigOptions}
    assert math.isfinite(settings["server"]["maxUploadSize"])


# --------------------------------------------------------------------------- kind 5 again: an edit sent with a resize
BP_PAGE = ROOT / "app_pages" / "5_Backpropagation.py"
EDITORS = [(CONV_PAGE, "conv_x", "Input"), (CONV_PAGE, "conv_k", "Kernel"), (BP_PAGE, "bp_x", "Input"),
           (BP_PAGE, "bp_k", "Kernel"), (BP_PAGE, "bp_t", "Target")]


@pytest.mark.parametrize("page, prefix, label", EDITORS, ids=[e[1] for e in EDITORS])
def test_kind5_an_edit_sent_with_a_resize_is_kept(page, prefix, label):
    """The resize callback runs before the page and rebuilds the editor: an edit in the same message was lost (the
    cell stayed 1, no message). Now it is applied (or refused with a message) first, on every matrix editor."""
    at = run_page(page)
    rows, cols = at.session_state[f"{prefix}_current"].shape
    key = lambda: f"{prefix}_editor_{at.session_state[f'{prefix}_ver']}"  # noqa: E731
    # grow by a row (its callback) and edit (row 2, column 2) in the same message (the breaker's repro)
    at.session_state[key()] = {"edited_rows": {1: {"2": "7"}}, "added_rows": [], "deleted_rows": []}
    at.number_input(key=f"{prefix}_rows").set_value(rows + 1).run()
    assert not at.exception, [e.value for e in at.exception]
    current = at.session_state[f"{prefix}_current"]
    assert current.shape == (rows + 1, cols) and current[1][1] == 7
    # the same with Rows set without its callback (a script, a client that skips it): the fields and the matrix agree
    at.session_state[key()] = {"edited_rows": {0: {"2": "6"}}}
    at.session_state[f"{prefix}_rows"] = rows + 2
    at.run()
    current = at.session_state[f"{prefix}_current"]
    assert current.shape == (rows + 2, cols) and current[0][1] == 6 and current[1][1] == 7
    assert at.number_input(key=f"{prefix}_rows").value == rows + 2
    # shrink to one row while editing row 2: hidden, not lost; growing brings it back
    at.session_state[key()] = {"edited_rows": {1: {"1": "-3.5"}}}
    at.number_input(key=f"{prefix}_rows").set_value(1).run()
    assert at.session_state[f"{prefix}_current"].shape == (1, cols)
    at.number_input(key=f"{prefix}_rows").set_value(rows).run()
    current = at.session_state[f"{prefix}_current"]
    assert current[1][0] == -3.5 and current[1][1] == 7
    # a bad cell sent with a resize is refused with the usual message, its previous value kept
    before = float(current[0][0])
    at.session_state[key()] = {"edited_rows": {0: {"1": "abc"}, 1: {"2": "8"}}}
    at.number_input(key=f"{prefix}_cols").set_value(cols - 1 if cols > 1 else 2).run()
    assert not at.exception
    assert any(f"{label} cell (row 1, column 1) is not a number ('abc')" in w.value for w in at.warning)
    current = at.session_state[f"{prefix}_current"]
    assert current[0][0] == before and current[1][1] == 8
    # an out-of-range size with an edit: the size stays, the edit is kept (by the page's own run)
    at.session_state[key()] = {"edited_rows": {0: {"1": "4"}}}
    at.session_state[f"{prefix}_rows"] = None
    at.run()
    assert any(f"{label} Rows was left empty or out of range" in w.value for w in at.warning)
    assert at.session_state[f"{prefix}_current"][0][0] == 4


def test_kind5_the_resize_button_keeps_an_edit_of_the_target():
    """The Backpropagation page's "Resize the target" button (a callback too) applies a pending edit first."""
    at = run_page(BP_PAGE)
    at.selectbox(key="bp_padding").select("same").run()
    key = f"bp_t_editor_{at.session_state['bp_t_ver']}"
    at.session_state[key] = {"edited_rows": {0: {"1": "9"}, 2: {"3": "x"}}}
    at.button(key="bp_resize_ref").click().run()
    assert not at.exception, [e.value for e in at.exception]
    current = at.session_state["bp_t_current"]
    assert current.shape == (5, 5) and current[0][0] == 9 and current[2][2] == 3  # the "x" refused: 3 kept
    assert any("Target cell (row 3, column 3) is not a number ('x')" in w.value for w in at.warning)


# --------------------------------------------------------------------------- kind 8: no file where a run file goes
def _deadline(seconds: int):
    """Fail (instead of hanging) if the block takes longer: opening a named pipe used to wait for ever."""
    import signal

    def fail(signum, frame):
        raise TimeoutError(f"took over {seconds} s (blocked on a named pipe?)")

    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


def _odd_entries(store: RunStore, outside: Path) -> dict[str, str]:
    """A folder, a named pipe, a link out of the folder, a dangling link at run paths: ``{run id: reason}``."""
    import os

    folder = store.path("20260101-000000-fast-d00001")
    folder.mkdir()
    (folder / "keep.txt").write_text("the learner's notes")
    os.mkfifo(store.path("20260101-000000-fast-d00002"))
    os.symlink(outside, store.path("20260101-000000-fast-d00003"))
    os.symlink(store.root / "gone.npz", store.path("20260101-000000-fast-d00004"))
    return {"20260101-000000-fast-d00001": "it is a folder, not a run file (ConvViz never deletes a folder",
            "20260101-000000-fast-d00002": "it is a named pipe, not a run file",
            "20260101-000000-fast-d00003": "outside the runs folder, which is never followed",
            "20260101-000000-fast-d00004": "which does not exist"}


def test_kind8_a_folder_pipe_or_link_at_a_run_path_is_named_and_never_followed(tmp_path):
    import os

    store = RunStore(tmp_path / "runs")
    _good_run(store)
    outside = tmp_path / "elsewhere.npz"
    outside.write_bytes(store.path(GOOD_RUN).read_bytes())  # a valid run file, but not in the folder
    expected = _odd_entries(store, outside)
    outside_bytes = outside.read_bytes()
    _deadline(20)
    try:
        records, skipped = store.list_runs()
        assert [r.run_id for r in records] == [GOOD_RUN]
        reasons = {item.name[:-4]: item for item in skipped}
        assert set(reasons) == set(expected)
        for run_id, message in expected.items():
            assert message in reasons[run_id].reason, reasons[run_id]
            assert reasons[run_id].deletable == (run_id != "20260101-000000-fast-d00001")
            with pytest.raises(ValueError, match=run_id):  # record() and load() name the file, never hang
                store.record(run_id)
            with pytest.raises(ValueError, match=run_id):
                store.load(run_id)
        # a folder is never deleted, by delete() or discard(); nothing in it is touched
        for remove in (lambda: store.delete("20260101-000000-fast-d00001"),
                       lambda: store.discard("20260101-000000-fast-d00001.npz")):
            with pytest.raises(ValueError, match="is a folder"):
                remove()
        assert (store.path("20260101-000000-fast-d00001") / "keep.txt").read_text() == "the learner's notes"
        # a link is removed itself, never what it leads to; a pipe is removed
        for run_id in ("20260101-000000-fast-d00002", "20260101-000000-fast-d00003", "20260101-000000-fast-d00004"):
            store.discard(f"{run_id}.npz")
            assert not os.path.lexists(store.path(run_id))
        assert outside.read_bytes() == outside_bytes
        # the library's readers: a folder or a pipe is a ValueError naming it (was FileNotFoundError / a hang)
        from convviz.npzfile import read_json_file

        os.mkfifo(tmp_path / "pipe.json")
        with pytest.raises(ValueError, match="pipe.json' is a named pipe, not a file"):
            read_json_file(tmp_path / "pipe.json", "job record", max_bytes=100)
        with pytest.raises(ValueError, match=r"model file '.*d00001.npz' is a folder, not a file"):
            load_model(store.path("20260101-000000-fast-d00001"))
        with pytest.raises(FileNotFoundError):
            load_model(tmp_path / "missing.npz")
    finally:
        import signal

        signal.alarm(0)
    assert [r.run_id for r in store.list_runs()[0]] == [GOOD_RUN]


def test_kind8_job_files_that_are_folders_or_links(tmp_path):
    """The files a run adds beside its checkpoint: a folder is left alone, a link is never followed."""
    import os

    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    files.job_path(GOOD_RUN).mkdir()
    (files.job_path(GOOD_RUN) / "inside").write_text("x")
    target = tmp_path / "outside-stop"
    os.symlink(target, files.stop_path(GOOD_RUN))  # a dangling link out of the folder
    problems = []
    assert files.read_job(GOOD_RUN, problems) is None and "is a folder, not a file" in problems[0]
    assert jobs.run_state(files, GOOD_RUN) is None
    files.request_stop(GOOD_RUN)  # replaces the link by a file: nothing is created outside
    assert not target.exists() and files.stop_path(GOOD_RUN).is_file() and not files.stop_path(GOOD_RUN).is_symlink()
    files.forget(GOOD_RUN)
    assert (files.job_path(GOOD_RUN) / "inside").read_text() == "x"  # the folder is left as it is
    files.store.delete(GOOD_RUN)
    assert not files.store.path(GOOD_RUN).exists() and files.job_path(GOOD_RUN).is_dir()
    files.store.path(GOOD_RUN).mkdir()  # a folder where the checkpoint goes: saving says so, writes nothing
    with pytest.raises(ValueError, match="cannot save run .* is a folder"):
        files.store.save(GOOD_RUN, ScratchCNN(make_spec("fast", filters=(2, 4))), preset="fast",
                         dataset=jobs.SAMPLE_LABEL, config=CONFIG, history=_history())
    assert not list(files.store.path(GOOD_RUN).iterdir())


def test_kind8_the_train_page_shows_a_folder_without_a_delete_button(monkeypatch, tmp_path):
    store = RunStore(tmp_path / LEARNER)
    _good_run(store)
    folder = store.path("20260101-000000-fast-d00001")
    folder.mkdir()
    at = _train_page(monkeypatch, tmp_path)
    (warning,) = [w.value for w in at.warning if "A file in the runs folder was skipped" in w.value]
    assert folder.name in warning and "it is a folder, not a run file" in warning
    digest = hashlib.sha1(folder.name.encode()).hexdigest()[:12]
    assert at.button(key=f"runs_discard_{digest}").disabled
    assert list(at.dataframe[0].value["Run id"]) == [GOOD_RUN] and folder.is_dir()


# --------------------------------------------------------------------------- kind 4 again: times, ids, sizes
@pytest.mark.parametrize("heartbeat", [9.9e10, time.time() + 3600, 1e308, -1.0, 0.0, "soon", True])
def test_kind4_a_heartbeat_in_the_future_or_not_a_time_fails_the_run(tmp_path, heartbeat):
    """A heartbeat of 9.9e10 (the year 5107) kept a run shown as running for ever."""
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    _job(files, GOOD_RUN)
    _progress(files, GOOD_RUN, status="running", heartbeat=heartbeat)
    state = jobs.run_state(files, GOOD_RUN)
    assert state.state == "failed" and not state.active
    assert "['heartbeat'] must be seconds since 1970, from 2020 to now (at most 300 s ahead)" in state.error


def test_kind4_a_time_slightly_ahead_is_accepted_and_a_job_from_the_future_is_not(tmp_path):
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    _job(files, GOOD_RUN, submitted_at=time.time())
    _progress(files, GOOD_RUN, status="running", heartbeat=time.time() + 60)  # another machine's clock, a bit ahead
    assert jobs.run_state(files, GOOD_RUN).state == "running"
    for change in ({"submitted_at": 9.9e10}, {"created": "9999-12-31T00:00:00+00:00"}, {"created": "yesterday"},
                   {"created": "2026-01-02T00:00:00"}):  # no time zone
        _job(files, GOOD_RUN, **change)
        problems = []
        assert files.read_job(GOOD_RUN, problems) is None and problems, change
    store = files.store
    _with_metadata(store, "20260101-000000-fast-e00001", lambda m: dict(m, updated="9999-12-31T00:00:00+00:00"))
    _with_metadata(store, "20260101-000000-fast-e00002", lambda m: dict(m, created="2026-13-45T00:00:00+00:00"))
    reasons = {s.name: s.reason for s in store.list_runs()[1]}
    assert "metadata['updated'] must be a time from 2020 to now (at most 300 s ahead)" in \
        reasons["20260101-000000-fast-e00001.npz"]
    assert "metadata['created'] must be an ISO 8601 time" in reasons["20260101-000000-fast-e00002.npz"]


ARABIC_INDIC = "٢٠٢٦٠١٠٢-٠٠٠٠٠٠-fast-a00001"  # the good run's id in Arabic-Indic digits (\d matched them)


def test_kind4_ids_are_ascii_digits_only(tmp_path):
    store = RunStore(tmp_path)
    _good_run(store)
    with pytest.raises(ValueError, match="not a run id"):
        store.path(ARABIC_INDIC)
    (tmp_path / f"{ARABIC_INDIC}.npz").write_bytes(store.path(GOOD_RUN).read_bytes())
    records, skipped = store.list_runs()
    assert [r.run_id for r in records] == [GOOD_RUN]
    assert [s.reason for s in skipped] == ["not a ConvViz run file name"]
    files = jobs.JobFiles(tmp_path, LEARNER)
    with pytest.raises(ValueError, match="not a submission id"):
        files.claim_path(GOOD_RUN, "١٧٩٨٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠-abcdef")
    with pytest.raises(ValueError, match="learner must be"):
        jobs.JobFiles(tmp_path, "abcdefgh١٢")
    _with_metadata(store, "20260101-000000-fast-f00001", lambda m: dict(m, name="Run ١٢"))
    (record,) = [r for r in store.list_runs()[0] if r.run_id == "20260101-000000-fast-f00001"]
    assert record.name == "Run ١٢" and record.number is None  # a name, not run number 12


def test_kind4_a_history_too_long_is_refused_before_its_values_are_read(monkeypatch, tmp_path):
    """2.3 million batches made every Train page render take 39 s; a history is capped at MAX_HISTORY_BATCHES."""
    from convviz.config import MAX_HISTORY_BATCHES, check_run_length

    n = MAX_HISTORY_BATCHES + 1
    with pytest.raises(ValueError, match=r"\['batch_loss'\] has 500,001 values, over the limit of "
                                         r"MAX_HISTORY_BATCHES=500,000"):
        check_history(dict(_history(), batch_loss=["not even numbers"] * n, batch_accuracy=[0.5] * n))
    from convviz.npzfile import parse_json as parse  # the metadata's values are counted before it is parsed

    with pytest.raises(ValueError, match=r"metadata holds up to 2,000,000 values \(counted as commas\), over the limit"):
        parse(json.dumps({"history": {"batch_loss": [0.5] * 2_000_000}}), "metadata", 10**8, max_values=1_030_000)
    with pytest.raises(ValueError, match="over the limit of MAX_EPOCHS=10,000"):
        check_history(dict(_history(), epoch_test_loss=[1.0] * 10_001))
    with pytest.raises(ValueError, match=r"epochs=100 x batches_per_epoch=7500 = 750,000 batches is over the limit"):
        check_run_length(100, 7500)
    check_run_length(50, 7500)  # the Train page's longest run: 50 epochs at batch size 8 on the full MNIST
    store = RunStore(tmp_path / LEARNER)
    _good_run(store)
    big = 2_300_000
    _with_metadata(store, "20260101-000000-fast-a00009",
                   lambda m: dict(m, history=dict(m["history"], batch_loss=[0.5] * big, batch_accuracy=[0.9] * big)))
    with pytest.raises(ValueError) as opened:  # opening it: its values are counted before they are parsed too
        store.record("20260101-000000-fast-a00009")
    assert "holds up to 4,600," in str(opened.value) and \
        "values (counted as commas), over the limit of 1,030,000" in str(opened.value)
    at = _train_page(monkeypatch, tmp_path)
    (warning,) = [w.value for w in at.warning if "A file in the runs folder was skipped" in w.value]
    assert "holds up to 4,600," in warning and md("values (counted as commas), over the limit of 1,030,000") in warning
    assert list(at.dataframe[0].value["Run id"]) == [GOOD_RUN]


def test_kind4_resume_refuses_a_run_whose_history_could_not_be_read_back(tmp_path):
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    long = "20260101-000000-fast-a00010"
    _with_metadata(files.store, long, lambda m: _set(m, "history", "batches_per_epoch", 7500))
    manager = jobs.JobManager(n_workers=1)  # no cluster is started: both are refused before anything is queued
    with pytest.raises(ValueError, match="epochs must be at most 10,000, got epochs=10001"):
        manager.resume(files, GOOD_RUN, 10_001)
    with pytest.raises(ValueError, match="epochs=100 x batches_per_epoch=7500 = 750,000 batches is over the limit"):
        manager.resume(files, long, 100)
    assert files.read_job(GOOD_RUN) is None and files.read_job(long) is None and manager.status[0] == "idle"


def test_kind4_training_never_writes_a_history_it_could_not_read_back():
    from convviz.train import TrainConfig, TrainingJob

    rng = np.random.default_rng(0)
    data = ((rng.integers(0, 255, (60, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60, dtype=np.uint8)),
            (rng.integers(0, 255, (10, 28, 28), dtype=np.uint8), rng.integers(0, 10, 10, dtype=np.uint8)))
    with pytest.raises(ValueError, match="epochs=10000 x batches_per_epoch=60 = 600,000 batches is over the limit"):
        TrainingJob(ScratchCNN(make_spec("fast", filters=(2, 4))), data, TrainConfig(epochs=10_000, batch_size=1))


# --------------------------------------------------------------------------- kind 6 again: the drawing canvas
def _canvas_state(png: bytes) -> dict:
    import base64

    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return {"drawing": {"raw": {"objects": [{"type": "path"}], "background": "#000000"}, "data": url},
            "backgroundFit": None}


def _huge_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_kind6_a_crafted_canvas_picture_is_checked_like_an_upload():
    """The canvas's picture comes from its client: a huge, odd-mode or non-PNG one was decoded as it came."""
    from convviz.images import decode_canvas

    drawn = np.zeros((280, 280, 4), np.uint8)
    drawn[..., 3] = 255
    drawn[100:180, 130:150, :3] = 255
    assert np.array_equal(decode_canvas(_png(drawn), max_side=1120), drawn)
    assert decode_canvas(_png(np.zeros((280, 280), np.uint8)), max_side=1120).shape == (280, 280, 4)  # grayscale
    with pytest.raises(ValueError, match="the drawing is 3000x3000 pixels, larger than the canvas"):
        decode_canvas(_huge_png(3000), max_side=1120)
    with pytest.raises(ValueError, match="too large to decode safely"):  # 400 Mpixels: refused before decoding
        decode_canvas(_huge_png(20_000), max_side=1120)
    with pytest.raises(ValueError, match="not the canvas's PNG"):
        decode_canvas(_exif_jpeg(), max_side=10_000)
    at = AppTest.from_file(str(DRAW_PAGE), default_timeout=60)
    for png in (_huge_png(20_000), b"not a png", _exif_jpeg()):
        at.session_state["draw_canvas_0"] = _canvas_state(png)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("The drawing could not be read" in w.value for w in at.warning)
    at.session_state["draw_canvas_0"] = {"drawing": {"raw": {}, "data": "data:text/plain,no base64"}}
    at.run()
    assert not at.exception


# --------------------------------------------------------------------------- session hostile2: more kinds
HUGE = 10**400  # valid JSON; float(HUGE) and math.isfinite(HUGE) raise OverflowError


def test_kind4_a_huge_integer_read_back_is_a_value_error_never_an_overflow(monkeypatch, tmp_path):
    """``1`` then 400 zeros as a job's ``submitted_at``, a heartbeat or a loss broke the Train page (OverflowError)."""
    from convviz.runs import check_time

    with pytest.raises(ValueError, match=r"\['heartbeat'\] must be seconds since 1970.*an integer of about 401 digits"):
        check_time(HUGE, "progress record 'x'", "heartbeat")
    with pytest.raises(ValueError, match=r"\['batch_loss'\] must be a number.*about 401 digits"):
        check_history(dict(_history(), batch_loss=[HUGE, 1.0, 1.0]), "history")
    with pytest.raises(ValueError, match="an integer of 401 digits is too large for a float"):
        parse_json(json.dumps({"x": -HUGE}), "record", max_chars=1000)
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    job_bad, beat_bad = "20260101-000000-fast-c00001", "20260101-000000-fast-c00002"
    for run_id in (job_bad, beat_bad):
        _good_run(files.store, run_id)
    _job(files, job_bad, submitted_at=HUGE)
    _job(files, beat_bad)
    _progress(files, beat_bad, heartbeat=HUGE)
    problems = []
    assert files.read_job(job_bad, problems) is None and "too large for a float" in problems[0]
    assert files.read_progress(beat_bad) is None
    _with_metadata(files.store, "20260101-000000-fast-c00003",
                   lambda meta: json.dumps(meta).replace('"batch_loss": [2.3,', f'"batch_loss": [{HUGE},'))
    records, skipped = files.store.list_runs()
    assert "20260101-000000-fast-c00003" not in [r.run_id for r in records]
    assert any("too large for a float" in s.reason for s in skipped)
    _train_page(monkeypatch, tmp_path)  # no exception


def test_kind1_file_and_run_names_from_disk_are_shown_printable_and_as_plain_text(monkeypatch, tmp_path):
    """A file name that is not UTF-8 crashed the Train page (UnicodeEncodeError); a file or run named like a Markdown
    link was shown as a link. Every name read back from disk goes through convviz.ui.text.md / printable."""
    import os

    from convviz.ui.text import printable

    assert printable("bad\udcff.npz") == "bad\\xff.npz" and printable("a\nb\ud800") == "a\\nb\\ud800"
    assert md("[Click](https://evil.example) *x* `y` <b>") == \
        "\\[Click\\]\\(https://evil.example\\) \\*x\\* \\`y\\` \\<b\\>"
    store = RunStore(tmp_path / LEARNER)
    _good_run(store)
    with open(os.path.join(os.fsencode(store.root), b"bad\xff.npz"), "wb") as handle:
        handle.write(b"x")
    (store.root / "[Click here to restore your runs](https:evil.example).npz").write_bytes(b"x")
    _with_metadata(store, "20260103-000000-fast-a00009",
                   lambda meta: dict(meta, name="[Run 1: click](https://evil.example)",
                                     dataset="**[Full MNIST](https://evil.example)**"))
    at = _train_page(monkeypatch, tmp_path)
    warnings = [w.value for w in at.warning if "A file in the runs folder was skipped" in w.value]
    assert len(warnings) == 2
    assert any("bad\\\\xff.npz" in w for w in warnings)  # md escapes the backslash printable wrote
    assert any("\\[Click here to restore your runs\\]\\(https:evil.example\\).npz" in w for w in warnings)
    at.selectbox(key="runs_choice").set_value("20260103-000000-fast-a00009").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in (*at.caption, *at.markdown, *at.warning, *at.error, *at.success, *at.info)]
    assert not any("](https" in text for text in shown), [t for t in shown if "evil" in t]
    assert any("\\[Run 1: click\\]\\(https://evil.example\\)" in text for text in shown)
    assert any("\\*\\*\\[Full MNIST\\]" in text for text in shown)


def test_kind8_a_learner_folder_that_is_a_link_is_refused(monkeypatch, tmp_path):
    """``<runs root>/learner0victim -> /elsewhere``: discard("precious.npz") deleted a file outside the runs root."""
    import os

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.npz").write_bytes(b"someone's data, not a run")
    root = tmp_path / "runs"
    root.mkdir()
    os.symlink(outside, root / LEARNER)
    store = RunStore(root / LEARNER)
    for attempt in (store.list_runs, lambda: store.discard("precious.npz"), lambda: store.path(GOOD_RUN),
                    lambda: store.delete(GOOD_RUN), lambda: _good_run(store)):
        with pytest.raises(NotADirectoryError, match="is a link to .*never follows a linked runs folder"):
            attempt()
    assert (outside / "precious.npz").read_bytes() == b"someone's data, not a run"
    assert [p.name for p in outside.iterdir()] == ["precious.npz"]
    at = _train_page(monkeypatch, root)
    assert any("never follows a linked runs folder" in e.value for e in at.error), [e.value for e in at.error]
    assert not any(b.key and b.key.startswith("runs_discard_") for b in at.button)


@pytest.mark.parametrize("shape", [(3, 3, 1, 0), (1, 1, 1, 802_816), (29, 3, 1, 2), (3, 3, 5, 2),
                                   (1, 1, 1, 1025)])
def test_kind4_a_first_kernel_read_back_is_a_first_convolution_kernel(tmp_path, shape):
    """(3, 3, 1, 0) reached kernel_grid_figure (zero-size max); (1, 1, 1, 802816) made a 108 MB figure."""
    from convviz import model

    assert (jobs.KERNEL_SIDE_LIMIT, jobs.KERNEL_FILTER_LIMIT) == (model.MAX_WINDOW, model.MAX_FILTERS)
    files = jobs.JobFiles(tmp_path, LEARNER)
    _good_run(files.store)
    _job(files, GOOD_RUN)
    _progress(files, GOOD_RUN, first_kernel=np.zeros(shape).tolist())
    problems = []
    assert files.read_progress(GOOD_RUN, problems) is None
    assert f"['first_kernel'] must be a first convolution's kernel" in problems[0] and str(shape) in problems[0]
    _progress(files, GOOD_RUN, first_kernel=np.zeros((28, 28, 1, 1024)).tolist())
    assert files.read_progress(GOOD_RUN)["first_kernel"] is not None


def test_kind4_kernel_grid_figure_refuses_an_empty_kernel():
    from convviz.figures_training import kernel_grid_figure

    for shape in ((3, 3, 1, 0), (3, 3, 0, 2), (0, 3, 1, 2)):
        with pytest.raises(ValueError, match=r"at least one filter.*got \(" + ", ".join(map(str, shape))):
            kernel_grid_figure(np.zeros(shape))


def test_kind2_a_spec_whose_convolution_gathers_gigabytes_per_image_is_refused(tmp_path):
    """1x1 conv to 1024 channels then a 28x28 'same' conv: a 20 KB file within every other limit needed 2.34 GiB
    to predict one digit (the im2col patch matrix)."""
    from convviz.model import ARCHITECTURES, MAX_PATCH_NUMBERS, validate_spec

    spec = [{"type": "conv2d", "name": "conv1", "filters": 1024, "kernel_size": 1, "padding": "same"},
            {"type": "conv2d", "name": "conv2", "filters": 6, "kernel_size": 28, "padding": "same"},
            {"type": "flatten", "name": "flatten"}, {"type": "dense", "name": "dense", "units": 10}]
    with pytest.raises(ValueError, match=r"layer 'conv2' \(conv2d\) gathers 28x28 windows of 28x28x1024 = "
                                         r"629,407,744 numbers per image, over the limit of MAX_PATCH_NUMBERS"):
        validate_spec(spec)
    with pytest.raises(ValueError, match="MAX_PATCH_NUMBERS"):
        load_model(_spec_file(tmp_path / "bomb.npz", spec))
    for preset in ARCHITECTURES:  # every preset at its defaults, with a wide margin
        shapes = validate_spec(make_spec(preset))
        assert max(s[0] * s[1] for s in shapes if len(s) == 3) * 9 * 64 * 10 < MAX_PATCH_NUMBERS
    validate_spec(make_spec("seed", filters=(256, 256), kernel_size=7))  # 3.2 M: the largest a run's settings make


def test_kind3_a_large_16_bit_png_is_shrunk_before_it_becomes_floats():
    """A 5000x5000 16-bit grayscale PNG (60 KB) took 5 s and +620 MB: a float64 array of the whole picture."""
    from convviz.images import decode_canvas

    wide = (np.arange(5000, dtype=np.uint16)[None, :] * 13).repeat(5000, 0)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG", compress_level=9)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        small = decode_upload(buffer.getvalue(), "L", max_side=280)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert small.shape == (280, 280, 1) and peak < 20 * 2**20 and seconds < 2.5, (peak, seconds)
    expected = np.round(wide[0].astype(np.float64) / 257.0)  # the 16-bit scaling: 0-65535 -> 0-255, not clipped
    assert abs(int(small[0, -1, 0]) - expected[-18:].mean()) <= 2 and abs(int(small[0, 0, 0]) - expected[:18].mean()) <= 2
    canvas = io.BytesIO()
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(canvas, format="PNG")
    assert (decode_canvas(canvas.getvalue(), max_side=10)[..., :3] == 255).all()  # one owner of the 16-bit scaling
    canvas = io.BytesIO()
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(canvas, format="PNG")
    assert (decode_canvas(canvas.getvalue(), max_side=10)[..., :3] == 128).all()  # was 255 (clipped)


@pytest.mark.parametrize("rate", [1e-20, 1e-300])
def test_kind5_a_learning_rate_too_small_to_change_the_loss_is_said_so(rate):
    """η = 1e-20 said "η = 0 is too large here: the loss went up from 0.6667 to 0.6667"."""
    at = AppTest.from_file(str(ROOT / "app_pages" / "5_Backpropagation.py"), default_timeout=100)
    at.run()
    at.number_input(key="bp_lr").set_value(rate).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("went **up**" in w.value or "too large" in w.value for w in at.warning), [w.value for w in at.warning]
    (note,) = [i.value for i in at.info if "too small to change the loss" in i.value]
    assert f"η = {rate:.4g} is too small" in note and "stayed 0.6667" in note
    at.number_input(key="bp_lr").set_value(0.5).run()  # the overshoot is still a warning, η shown as it is
    assert any("η = 0.5 is too large here: the loss went **up**" in w.value for w in at.warning)


# --------------------------------------------------------------------------- session hostile3: F4, F8, F9, F11
def _with_zip64_end(data: bytes, members: int, directory_bytes=None, directory_at=None, classic_placeholders=True,
                    locator_at=None, disks=1, signature=b"PK\x06\x06") -> bytes:
    """``data`` (a valid .npz) with a ZIP64 end record and locator inserted before its classic end record, claiming
    ``members`` members (and the directory size / offset given, else the true ones)."""
    end = data.rfind(b"PK\x05\x06")
    fields = list(struct.unpack("<4s4H2LH", data[end:end + 22]))
    size, offset = fields[5], fields[6]
    record = struct.pack("<4sQ2H2L4Q", signature, 44, 45, 45, 0, 0, members, members,
                         size if directory_bytes is None else directory_bytes,
                         offset if directory_at is None else directory_at)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end if locator_at is None else locator_at, disks)
    if classic_placeholders:
        fields[3:7] = [0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF]
    return data[:end] + record + locator + struct.pack("<4s4H2LH", *fields)


ZIP64_CASES = [  # (case, changes, words of the message)
    ("a_million_members", {"members": 1_000_000}, "lists 1,000,000 members"),
    ("65_members", {"members": 65}, "over the limit of 64 members"),
    ("2**40_members", {"members": 2**40}, "over the limit of 64 members"),
    ("a_terabyte_directory", {"members": 1, "directory_bytes": 2**40}, "over the limit of 68,480 (64 members"),
    ("directory_past_the_end", {"members": 1, "directory_at": 10**6}, "past its end record"),
    ("directory_offset_2**63", {"members": 1, "directory_at": 2**63}, "past its end record"),
    ("classic_says_1_zip64_says_a_million", {"members": 1_000_000, "classic_placeholders": False},
     "lists 1,000,000 members"),
    ("classic_and_zip64_disagree", {"members": 3, "classic_placeholders": False}, "but its classic end record says"),
    ("locator_points_elsewhere", {"members": 1_000_000, "locator_at": 0}, "ZIP64 locator pointing to byte 0"),
    ("no_record_where_the_locator_points", {"members": 1_000_000, "signature": b"XX\x06\x06"}, "no ZIP64 end record"),
    ("multi_disk", {"members": 1_000_000, "disks": 2}, "multi-part"),
]


@pytest.mark.parametrize("case, changes, message", ZIP64_CASES, ids=[c[0] for c in ZIP64_CASES])
def test_f4_zip64_end_records_are_checked_before_zipfile_reads_them(tmp_path, case, changes, message):
    """F4: zipfile trusts a ZIP64 end record over the classic one (a 1 kB file claiming a million members took
    7.3 s and 584 MB); its counts, directory size and offset are checked first, with the classic path's limits."""
    good = _model_file(tmp_path)
    path = tmp_path / f"{case}.npz"
    path.write_bytes(_with_zip64_end(good.read_bytes(), **changes))
    tracemalloc.start()
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        load_model(path)
    elapsed, (_, peak) = time.monotonic() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(path) in str(info.value) and message in str(info.value), str(info.value)
    assert elapsed < 1.0 and peak < 20e6, (elapsed, peak)


def test_f4_a_true_zip64_end_record_within_the_limits_loads_and_mnist_has_its_own_limit(tmp_path):
    good = _model_file(tmp_path)
    honest = tmp_path / "honest64.npz"
    members = len(_members(good))
    honest.write_bytes(_with_zip64_end(good.read_bytes(), members))
    assert load_model(honest).spec == load_model(good).spec
    mnist = tmp_path / "mnist64.npz"
    _write_zip(mnist, _mnist_members())
    mnist.write_bytes(_with_zip64_end(mnist.read_bytes(), 17))  # MNIST_LIMITS allows 16 members
    with pytest.raises(ValueError, match="over the limit of 16 members") as info:
        read_mnist_file(mnist, sizes=None)
    assert str(mnist) in str(info.value)


# F8: nothing typed is lost when Streamlit forgets a widget (another page shown, an editor not drawn)
APP = ROOT / "app.py"


def _edit_cell(at, prefix: str, row: int, column: int, text: str) -> None:
    at.session_state[f"{prefix}_editor_{at.session_state[f'{prefix}_ver']}"] = {"edited_rows": {row: {str(column): text}}}


def _editor_shows(at, prefix: str) -> np.ndarray:
    """The matrix the editor on the page shows (what the learner sees), as numbers."""
    (editor,) = [e for e in at.get("arrow_data_frame") if e.proto.id and prefix in str(e.proto.id)] or [None]
    return np.array(at.session_state[f"{prefix}_base"]) if editor is None else editor.value.astype(float).to_numpy()


def _no_wrong_warnings(at):
    assert not at.exception, [e.value for e in at.exception]
    wrong = [w.value for w in at.warning if "left empty" in w.value or "not a number" in w.value]
    assert not wrong, wrong


PAGES_WITH_EDITORS = [("app_pages/1_Convolution.py", None, ["conv_x", "conv_k"]),
                      ("app_pages/1_Convolution.py", ("conv_direction", "Transposed"), ["conv_x", "conv_k"]),
                      ("app_pages/5_Backpropagation.py", None, ["bp_x", "bp_k", "bp_t"])]


@pytest.mark.parametrize("page, setting, prefixes", PAGES_WITH_EDITORS, ids=["convolution", "transposed", "backprop"])
def test_f8_typed_cells_sizes_and_boxes_survive_another_page(monkeypatch, tmp_path, page, setting, prefixes):
    """F8: a typed cell went back to its old value (and Rows said "was left empty") after visiting another page:
    Streamlit drops the state of widgets not drawn. The accepted matrix, its size and every number box are kept."""
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")  # the home page starts no training cluster
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(page).run()
    if setting:
        at.radio(key=setting[0]).set_value(setting[1]).run()
    expected = {}
    for n, prefix in enumerate(prefixes):
        _edit_cell(at, prefix, 0, 1, str(40 + n))  # row 1, column 1
        at.run()
        rows, cols = at.session_state[f"{prefix}_current"].shape
        at.number_input(key=f"{prefix}_rows").set_value(rows + 1).run()
        _no_wrong_warnings(at)
        expected[prefix] = np.array(at.session_state[f"{prefix}_current"])
        assert expected[prefix][0, 0] == 40 + n and expected[prefix].shape == (rows + 1, cols)
    box, typed = (("conv_output_padding", 1) if setting else ("conv_bias", 2.5)) if "Convolution" in page \
        else ("bp_fit_steps", 300)
    at.number_input(key=box).set_value(typed).run()
    for other in ("app_pages/2_Stacked_Channels.py", "app_pages/4_Draw.py"):
        at.switch_page(other).run()
        at.switch_page(page).run()
        _no_wrong_warnings(at)
        for prefix in prefixes:
            current = at.session_state[f"{prefix}_current"]
            assert np.array_equal(current, expected[prefix]), (prefix, current)
            assert np.array_equal(_editor_shows(at, prefix), current)  # the editor shows what the page uses
            assert at.number_input(key=f"{prefix}_rows").value == current.shape[0]
            assert at.number_input(key=f"{prefix}_cols").value == current.shape[1]
        assert at.number_input(key=box).value == typed
    # and the page still works: a further edit goes through
    _edit_cell(at, prefixes[0], 1, 1, "9")
    at.run()
    assert at.session_state[f"{prefixes[0]}_current"][1, 0] == 9 and at.session_state[f"{prefixes[0]}_current"][0, 0] == 40


def test_f8_the_loss_toggle_keeps_the_target_and_grad_output():
    """F8: on the Backpropagation page the target editor (MSE) and the grad_output editor (typed) are drawn one at a
    time; toggling the loss lost the other's typed cells and size, with wrong "Rows was left empty" warnings."""
    at = run_page(BP_PAGE)
    _edit_cell(at, "bp_t", 0, 1, "11")
    at.run()
    at.number_input(key="bp_t_cols").set_value(2).run()
    target = np.array(at.session_state["bp_t_current"])
    assert target[0, 0] == 11 and target.shape[1] == 2
    at.radio(key="bp_loss").set_value(at.radio(key="bp_loss").options[1]).run()
    _no_wrong_warnings(at)
    _edit_cell(at, "bp_g", 1, 2, "-6")
    at.run()
    at.number_input(key="bp_g_rows").set_value(2).run()
    grad = np.array(at.session_state["bp_g_current"])
    assert grad[1, 1] == -6 and grad.shape[0] == 2
    for _ in range(2):
        at.radio(key="bp_loss").set_value(at.radio(key="bp_loss").options[0]).run()
        _no_wrong_warnings(at)
        assert np.array_equal(at.session_state["bp_t_current"], target)
        assert at.number_input(key="bp_t_cols").value == 2 and np.array_equal(_editor_shows(at, "bp_t"), target)
        at.radio(key="bp_loss").set_value(at.radio(key="bp_loss").options[1]).run()
        _no_wrong_warnings(at)
        assert np.array_equal(at.session_state["bp_g_current"], grad)
        assert at.number_input(key="bp_g_rows").value == 2


# F9: crafted values sent to number boxes (NaN, ±inf, 1e300, fractions for whole numbers)
NUMBER_BOXES = [  # (page, key, whole, a good value to set after)
    (CONV_PAGE, "conv_x_rows", True, 4), (CONV_PAGE, "conv_x_cols", True, 6), (CONV_PAGE, "conv_k_rows", True, 2),
    (CONV_PAGE, "conv_k_cols", True, 2), (CONV_PAGE, "conv_output_padding", True, 1), (CONV_PAGE, "conv_bias", False, 1.5),
    (STACK_PAGE, "stack_seed", True, 3), (STACK_PAGE, "stack_digit", True, 5),
    (TRAIN_PAGE, "train_filters1", True, 4), (TRAIN_PAGE, "train_filters2", True, 8), (TRAIN_PAGE, "train_epochs", True, 3),
    (TRAIN_PAGE, "train_seed", True, 9), (TRAIN_PAGE, f"runs_epochs_{GOOD_RUN}", True, 3),
    (BP_PAGE, "bp_x_rows", True, 4), (BP_PAGE, "bp_x_cols", True, 4), (BP_PAGE, "bp_k_rows", True, 2),
    (BP_PAGE, "bp_k_cols", True, 2), (BP_PAGE, "bp_t_rows", True, 2), (BP_PAGE, "bp_t_cols", True, 2),
    (BP_PAGE, "bp_bias", False, 0.5), (BP_PAGE, "bp_lr", False, 0.1), (BP_PAGE, "bp_fit_digits", True, 2),
    (BP_PAGE, "bp_fit_first", True, 7), (BP_PAGE, "bp_fit_seed", True, 11), (BP_PAGE, "bp_fit_lr", False, 0.25),
    (BP_PAGE, "bp_fit_steps", True, 100),
]
CRAFTED = [float("nan"), float("inf"), float("-inf"), 1e300, 2.7]
UNBOUNDED_FLOATS = {"bp_lr", "bp_fit_lr"}  # a learning rate of 1e300 is the page's to refuse (check_learning_rate)


def _box_page(page, monkeypatch, tmp_path, key=None):
    if page == TRAIN_PAGE:
        _good_run(RunStore(tmp_path / LEARNER))
        return _train_page(monkeypatch, tmp_path)
    at = run_page(page)
    if page == STACK_PAGE:  # the digit box shows with the sample as the real input (the default)
        assert at.number_input(key="stack_digit")
    if key == "conv_output_padding":  # Output padding is enabled in the Transposed mode only (a disabled box takes no value)
        at.radio(key="conv_direction").set_value("Transposed").run()
    return at


@pytest.mark.parametrize("page, key, whole, good", NUMBER_BOXES, ids=[b[1].split("_2026")[0] for b in NUMBER_BOXES])
def test_f9_every_number_box_survives_a_crafted_value(monkeypatch, tmp_path, page, key, whole, good):
    """F9: Streamlit 1.67's NumberInputSerde.deserialize calls int() on an integer box's value: NaN or inf raised
    before the page ran, on every later run (the session stayed broken), and 2.7 became 2 silently. Every box now
    keeps its previous value and says why, and the session goes on."""
    at = _box_page(page, monkeypatch, tmp_path, key)
    for value in CRAFTED if whole else CRAFTED[:4]:
        previous = at.number_input(key=key).value
        at.number_input(key=key).set_value(value).run()
        assert not at.exception, (value, [e.value for e in at.exception])
        warnings = [w.value for w in at.warning]
        if key in UNBOUNDED_FLOATS and value == 1e300:
            assert any("learning_rate must be <= 100" in w for w in warnings), warnings
        else:
            name_said = [w for w in warnings if "it stays" in w and ("was left empty or out of range" in w
                                                                     or "must be a whole number, got 2.7" in w)]
            assert name_said, (value, warnings)
            assert at.number_input(key=key).value == previous  # the value shown is the value kept
            assert at.session_state[key] == previous
        at.run()  # the next rerun works, the message is gone
        assert not at.exception and not any("it stays" in w.value for w in at.warning)
        at.number_input(key=key).set_value(good).run()
        assert not at.exception and at.session_state[key] == good
        if whole:
            assert isinstance(at.session_state[key], int)


def test_f9_every_number_box_of_the_app_is_in_the_list_and_goes_through_the_one_helper(monkeypatch, tmp_path):
    """Every number box drawn on a page is tested above, and none is drawn but by convviz.ui.numbers.number_input."""
    listed = {(page, key) for page, key, _, _ in NUMBER_BOXES}
    for page in (CONV_PAGE, STACK_PAGE, TRAIN_PAGE, BP_PAGE, DRAW_PAGE, ROOT / "app_pages" / "6_Filter_Atlas.py"):
        at = _box_page(page, monkeypatch, tmp_path)
        drawn = {(page, box.key) for box in at.number_input}
        assert drawn <= listed | {(BP_PAGE, "bp_g_rows"), (BP_PAGE, "bp_g_cols")}, drawn - listed
    for path in [*ROOT.glob("app_pages/*.py"), ROOT / "app.py", *ROOT.glob("convviz/**/*.py")]:
        if path.name != "numbers.py":
            assert ".number_input(" not in path.read_text(), path


# F11: the rest: a long number said to be long, a fraction of a size refused, names shown as text
@pytest.mark.parametrize("prefix, label", [("conv_x", "Input"), ("conv_k", "Kernel")])
def test_f11_a_number_too_long_is_said_to_be_too_long(prefix, label):
    at = run_page(CONV_PAGE)
    longest = "0." + "0" * 61 + "1"  # 64 characters: 1e-62, kept exactly
    previous = at.session_state[f"{prefix}_current"][1, 2]
    for text, length in (("0." + "0" * 62 + "1", 65), ("1" * 65, 65), (" 7" * 40, 79), ("9" * 10_000, 10_000)):
        at.session_state[f"{prefix}_editor_{at.session_state[f'{prefix}_ver']}"] = {
            "edited_rows": {0: {"2": "5"}, 1: {"3": text}}}
        at.run()
        (warning,) = [w.value for w in at.warning]
        assert (f"{label} cell (row 2, column 3) is too long ({length:,} characters, at most 64; write it shorter" in warning
                and f"keeps its previous value {cell_text(previous)};" in warning), warning
        assert at.session_state[f"{prefix}_current"][1, 2] == previous and at.session_state[f"{prefix}_current"][0, 1] == 5
    _edit_cell(at, prefix, 1, 3, longest)
    at.run()
    assert not at.warning and at.session_state[f"{prefix}_current"][1, 2] == 1e-62


@pytest.mark.parametrize("key", ["conv_x_rows", "conv_x_cols", "conv_k_rows", "conv_k_cols"])
def test_f11_a_fractional_size_is_refused_and_the_size_shown_is_the_size_used(key):
    """``conv_x_rows = 2.7`` was truncated to 2 silently (the box said 2.7)."""
    at = run_page(CONV_PAGE)
    prefix, axis = key.rsplit("_", 1)
    for value in (2.7, 1.5, 3.0000001, 4.0):
        before = at.session_state[f"{prefix}_current"].shape
        at.number_input(key=key).set_value(value).run()
        shape = at.session_state[f"{prefix}_current"].shape
        shown = at.number_input(key=key).value
        assert shown == shape[0 if axis == "rows" else 1]  # the value shown is the value used
        if value == 4.0:
            assert shown == 4 and isinstance(at.session_state[key], int) and not at.warning
        else:
            assert shape == before
            assert any(f"must be a whole number, got {value:g}: it stays {shown}" in w.value for w in at.warning)


NAMES = ["[Click me](https://evil.example).png", "**bold**_x_.png", "<b>x</b>.png", "$x^2$.png", "a`b`c.png",
         ":red[warning].png"]


@pytest.mark.parametrize("name", NAMES)
def test_f11_uploaded_file_names_are_shown_as_text(name):
    """An upload's name reaches the page as the browser sends it; it is shown Markdown-escaped (convviz.ui.text.md),
    in the error for a bad file and in the Stacked Channels page's description of a good one."""
    escaped = md(name)
    stack = run_page(STACK_PAGE)
    stack.radio(key="stack_source").set_value("Upload an image").run()
    stack.file_uploader(key="stack_upload").set_value((name, b"not an image", "image/png")).run()
    assert any(f"Cannot use '{escaped}'" in e.value for e in stack.error), [e.value for e in stack.error]
    stack.file_uploader(key="stack_upload").set_value((name, _png(np.full((28, 28), 200, np.uint8)), "image/png"))
    stack.run()
    assert any(f"Input upload '{escaped}'" in m.value for m in stack.markdown)
    draw = run_page(DRAW_PAGE)
    draw.radio(key="draw_source").set_value("Upload a photo").run()
    draw.file_uploader(key="draw_upload").set_value((name, b"not an image", "image/png")).run()
    assert any(f"Could not use '{escaped}'" in e.value for e in draw.error), [e.value for e in draw.error]
    for element in [*stack.error, *stack.markdown, *draw.error]:
        assert name not in element.value or name == escaped


def test_kind6_the_widget_guard_is_installed_with_convviz_ui_and_this_streamlit_has_what_it_wraps():
    """Fails if a new Streamlit moves WStates.__getitem__ / get_serialized (convviz/ui/widget_guard.py wraps them;
    its behaviour is checked over a real websocket in tests/e2e/test_crafted_messages.py)."""
    import convviz.ui  # noqa: F401  (installs the guard)
    from streamlit.runtime.state import session_state
    from convviz.ui import widget_guard

    assert widget_guard.installed()
    assert getattr(session_state.WStates.get_serialized, "__name__", "") == "serialize_widget_value"
    assert widget_guard.install() is True  # idempotent


@pytest.mark.parametrize("chars", [65_537, 1_000_000, 23_999_000])
def test_kind2_a_model_spec_longer_than_its_limit_is_refused_from_its_header(tmp_path, chars):
    """The spec has its own limit (65,536 characters); a 24-million-character spec (224 kB compressed) took 2.7 s
    and 288 MB before its JSON was refused (issue #15's breaker, session 6)."""
    good = tmp_path / "good.npz"
    ScratchCNN(make_spec("fast", filters=(2, 2)), seed=0).save(good)
    with np.load(good) as arrays:
        members = {name: arrays[name] for name in arrays.files}
    members["spec"] = np.array(" " * (chars - 2) + "[]")
    bad = tmp_path / "long_spec.npz"
    np.savez_compressed(bad, **members)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"member 'spec.npy' declares {chars:,} characters of text, over the "
                                             "limit of 65,536"):
            load_model(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak
