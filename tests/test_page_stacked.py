"""AppTest of app_pages/2_Stacked_Channels.py: the stacked notebook example, many filters, uploads, the model."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from apptest_helpers import run_page

from convviz.model import DEFAULT_MODEL_PATH

PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "2_Stacked_Channels.py"




@pytest.fixture
def at():
    return run_page(PAGE)


def tables(app):
    return [t.value.astype(float).values.tolist() for t in app.table]


def window_line(app, position: int = 1) -> str:
    """The step-through figure's written sum (first annotation) at 1-based window ``position`` (tags and line breaks removed)."""
    chart = next(el for el in app.get("plotly_chart") if "stack_fig_steps" in el.proto.id)
    frame = next(f for f in json.loads(chart.proto.spec)["frames"] if f["name"] == str(position))
    return re.sub(r"<[^>]+>", "", frame["layout"]["annotations"][0]["text"].replace("<br>", " "))


def png(arr, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def test_defaults_give_the_notebooks_stacked_numbers(at):
    assert tables(at)[0] == [[128, 96, 128], [64, 128, 96], [64, 96, 128]]
    line = window_line(at)
    assert line.startswith("Window (row 1, column 1): 4 + 4") and "= 128" in line
    assert line.count("4 +") == 31


def test_next_steps_every_channel_at_once(at):
    line = window_line(at, 2)
    assert line.startswith("Window (row 1, column 2): 3 + 3") and "= 96" in line


def test_the_figure_shows_the_kernel_and_the_window_in_each_channel(at):
    chart = next(el for el in at.get("plotly_chart") if "stack_fig_steps" in el.proto.id)
    fig = json.loads(chart.proto.spec)
    assert fig["layout"]["xaxis2"]["title"]["text"].startswith("Kernel 3×3×32")
    taps = fig["frames"][4]["layout"]["shapes"][0]["path"]  # position 5: rows 1-3, columns 1-3 of each channel
    assert taps.count("M") == 4 * 8  # four channels drawn, 4 horizontal + 4 vertical lines each


def test_channel_count_scales_the_sum(at):
    at.slider(key="stack_channels").set_value(1).run()
    assert tables(at)[0] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    at.slider(key="stack_channels").set_value(64).run()
    assert tables(at)[0] == [[256, 192, 256], [128, 256, 192], [128, 192, 256]]


def test_depthwise_keeps_one_map_per_channel(at):
    at.radio(key="stack_mode").set_value("Depthwise (one map per channel)").run()
    assert not at.exception
    assert tables(at)[0] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert any("`(3, 3, 32)`: one map per channel, no sum." in m.value for m in at.markdown)
    assert "channel 1: 4" in window_line(at)


def test_many_filters_shapes(at):
    assert any("`(28, 28, 1)` ⊛ kernels `(3, 3, 1, 64)` → feature maps `(26, 26, 64)`" in m.value
               for m in at.markdown)
    at.slider(key="stack_filters").set_value(5).run()
    assert any("`(3, 3, 1, 5)` → feature maps `(26, 26, 5)`" in m.value for m in at.markdown)


def test_rgb_upload_gives_three_channels(at):
    at.radio(key="stack_source").set_value("Upload an image").run()
    at.radio(key="stack_color").set_value("RGB (3)").run()
    image = np.zeros((56, 40, 3), dtype=np.uint8)
    image[10:40, 15:25] = (255, 128, 0)
    at.file_uploader(key="stack_upload").set_value(("shape.png", png(image), "image/png")).run()
    assert not at.exception and not at.error
    assert any("`(28, 20, 3)` ⊛ kernels `(3, 3, 3, 64)` → feature maps `(26, 18, 64)`" in m.value
               for m in at.markdown)


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"this is not an image", "not a readable image"),
    ("empty.png", b"", "empty"),
    ("anim.png", None, "only PNG and JPEG"),
])
def test_bad_uploads_get_a_clear_message(at, name, data, message):
    if data is None:
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, format="GIF")
        data = buf.getvalue()
    at.radio(key="stack_source").set_value("Upload an image").run()
    at.file_uploader(key="stack_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_decompression_bomb_upload(at):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6000, 6000), dtype=bool), "1").save(buf, format="PNG")
    at.radio(key="stack_source").set_value("Upload an image").run()
    at.file_uploader(key="stack_upload").set_value(("bomb.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert any("decompression bomb" in e.value for e in at.error)


def test_shipped_model_feature_maps(at):
    if not DEFAULT_MODEL_PATH.is_file():
        assert any("shipped model is not available" in i.value for i in at.info)
        return
    shapes = next(m.value for m in at.markdown if m.value.startswith("input `(28, 28, 1)`"))
    assert "conv1 `(26, 26, 32)`" in shapes and "conv2 `(11, 11, 64)`" in shapes
    at.radio(key="stack_kernels").set_value("Learned: the shipped model's conv1").run()
    assert not at.exception
    assert any("kernels `(3, 3, 1, 32)` → feature maps `(26, 26, 32)`" in m.value for m in at.markdown)
