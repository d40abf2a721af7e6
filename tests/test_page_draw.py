"""AppTest of the Draw page: a digit fed through the canvas's state gets a prediction and the stages."""

import base64
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from apptest_helpers import rerun, run_page

from convviz.model import DEFAULT_MODEL_PATH, ScratchCNN
from convviz.ui.training import DRAW_MODEL_KEY

PAGE = Path(__file__).resolve().parent.parent / "app_pages" / "4_Draw.py"
_spec = importlib.util.spec_from_file_location("strokes", Path(__file__).parent / "e2e" / "strokes.py")
strokes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strokes)


def canvas_state(rgba) -> dict:
    """The state streamlit-drawable-canvas 0.13 keeps under its key (read from its st_canvas source):
    ``{"drawing": {"raw": <fabric json>, "data": <PNG data URL>}, "backgroundFit": None}``."""
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"drawing": {"raw": {"objects": [{"type": "path"}], "background": "#000000"}, "data": url},
            "backgroundFit": None}


def _page(model=None):
    return run_page(PAGE, session_state=None if model is None else {DRAW_MODEL_KEY: (model, "a test model")})


def _predictions(at):
    return [m.value for m in at.markdown if "prediction:" in m.value.lower()]


def _chart_ids(at):
    return [el.proto.id for el in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def small_model():
    return ScratchCNN.from_preset("fast", seed=1, filters=(4, 8))


def test_empty_canvas_prompts(small_model):
    at = _page(small_model)
    assert any("Draw a digit" in i.value for i in at.info)
    assert not _predictions(at)
    assert not any("draw_chart_stages" in i for i in _chart_ids(at))
    assert at.button(key="draw_clear").label == "Clear"
    # a canvas that was drawn on and then wiped is blank too
    blank = np.zeros((280, 280, 4), np.uint8)
    blank[..., 3] = 255
    at.session_state["draw_canvas_0"] = canvas_state(blank)
    rerun(at)
    assert any("Draw a digit" in i.value for i in at.info) and not _predictions(at)


def test_drawn_digit_gets_prediction_stages_and_insides(small_model):
    at = _page(small_model)
    at.session_state["draw_canvas_0"] = canvas_state(strokes.render(strokes.canvas_paths(7, box=(20, 20, 90, 140))))
    rerun(at)
    preds = _predictions(at)
    assert len(preds) == 1 and re.search(r"Prediction: \d \(\d+\.\d%\)", preds[0]), preds
    ids = _chart_ids(at)
    for key in ("draw_chart_probs_prediction", "draw_chart_stages", "draw_chart_maps_conv1", "draw_chart_maps_conv2",
                "draw_chart_saliency"):
        assert any(key in i for i in ids), (key, ids)
    assert any("Model: a test model" in c.value for c in at.caption)
    assert any("centre of mass" in c.value for c in at.caption)
    assert not at.info  # no prompt once there is a digit

    rerun(at.toggle(key="draw_compare").set_value(True))
    assert len(_predictions(at)) == 2 and any("Naive resize prediction" in p for p in _predictions(at))
    stages = next(el for el in at.get("plotly_chart") if "draw_chart_stages" in el.proto.id)
    assert "naive" in stages.proto.spec  # the extra panel

    at.button(key="draw_clear").click().run()  # a fresh canvas key: nothing drawn
    assert not at.exception, at.exception
    assert not _predictions(at) and any("Draw a digit" in i.value for i in at.info)


def test_upload_dark_on_light_photo(small_model):
    at = _page(small_model)
    at.radio(key="draw_source").set_value("Upload a photo").run()
    photo = 255 - strokes.render(strokes.canvas_paths(3))[:, :, 0]  # dark ink on white paper
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG")
    at.file_uploader(key="draw_upload").set_value(("three.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    assert len(_predictions(at)) == 1
    assert any("inverted" in c.value for c in at.caption)
    rerun(at.file_uploader(key="draw_upload").set_value(("bad.png", b"not an image at all", "image/png")))
    assert any("bad.png" in e.value and "PNG or JPEG" in e.value for e in at.error)
    assert not _predictions(at)


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped model is not built yet")
def test_shipped_model_reads_a_drawn_digit():
    at = _page()
    assert any("Model: the shipped model" in c.value for c in at.caption)
    at.session_state["draw_canvas_0"] = canvas_state(strokes.render(strokes.canvas_paths(4)))
    rerun(at)
    assert _predictions(at)[0].startswith("## Prediction: 4 ")


def test_chosen_model_can_be_dropped(small_model):
    at = _page(small_model)
    rerun(at.button(key="draw_use_shipped").click())
    assert DRAW_MODEL_KEY not in at.session_state
    if not DEFAULT_MODEL_PATH.is_file():
        assert any("shipped model is not available" in w.value for w in at.warning)


def test_a_model_whose_output_is_not_a_number_gets_an_error_not_a_made_up_class():
    def script():
        import numpy as np
        import streamlit as st

        from convviz.ui.drawing import show_prediction

        st.session_state["top"] = show_prediction(np.full(10, np.nan, np.float32))

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(script, default_timeout=120).run()
    assert not at.exception
    assert at.session_state["top"] == -1
    assert "output is not a number" in at.error[0].value
    assert not any("Prediction:" in m.value for m in at.markdown)


def _canvas_data(at) -> dict:
    """What the page sent its canvas component this run (``initialDrawing`` and the pen settings)."""
    import json

    def find(node):
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ == "UnknownElement" and child.type == "bidi_component":
                return child
            found = find(child)
            if found is not None:
                return found
        return None

    return json.loads(find(at._tree).proto.json)  # AppTest has no public view of a custom component


def _app_at_draw(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from apptest_helpers import APP

    monkeypatch.setenv("CONVVIZ_DASK_SCHEDULER", "not-a-scheduler")  # no cluster needed here
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page("app_pages/4_Draw.py")
    return rerun(at)


def _away_and_back(at):
    at.switch_page("app_pages/1_Convolution.py")
    rerun(at)
    assert "draw_canvas_0" not in at.session_state and "draw_canvas_1" not in at.session_state  # Streamlit dropped it
    at.switch_page("app_pages/4_Draw.py")
    return rerun(at)


def _draw_a_seven(at):
    """A drawn 7 (with its strokes' JSON) sent as the canvas's state; the state and the one prediction shown."""
    state = canvas_state(strokes.render(strokes.canvas_paths(7)))
    state["drawing"]["raw"] = {"version": "6.0", "objects": [{"type": "Path", "path": [["M", 40, 40], ["L", 90, 200]]}]}
    at.session_state["draw_canvas_0"] = state
    rerun(at)
    before = _predictions(at)
    assert len(before) == 1
    return state, before


def test_a_drawing_and_its_prediction_survive_leaving_the_page_until_clear(monkeypatch):
    """Kind 5 of #15: the learner's drawing is not lost by visiting another page; the canvas comes back with its
    strokes, the prediction with it; Clear still clears, also across pages."""
    at = _app_at_draw(monkeypatch)
    assert _canvas_data(at)["initialDrawing"] == {"objects": [], "background": "#000000"}
    state, before = _draw_a_seven(at)
    assert _canvas_data(at)["initialDrawing"]["objects"] == []  # fixed while mounted: the client is never redrawn

    at = _away_and_back(at)
    assert _predictions(at) == before and not at.info  # the same prediction, no "Draw a digit" prompt
    assert _canvas_data(at)["initialDrawing"]["objects"] == state["drawing"]["raw"]["objects"]  # the strokes again
    assert any("draw_chart_stages" in i for i in _chart_ids(at))

    at.button(key="draw_clear").click().run()
    assert not _predictions(at) and any("Draw a digit" in i.value for i in at.info)
    assert _canvas_data(at)["initialDrawing"]["objects"] == []
    at = _away_and_back(at)
    assert not _predictions(at) and _canvas_data(at)["initialDrawing"]["objects"] == []


def test_an_oversized_drawing_is_used_but_not_kept(monkeypatch):
    """A client's drawing JSON over MAX_KEPT_DRAWING_CHARS still gets its prediction, but is not stored to be sent
    back: after leaving the page the canvas starts empty, with the prompt (nothing breaks)."""
    from convviz.ui.drawing import MAX_KEPT_DRAWING_CHARS

    at = _app_at_draw(monkeypatch)
    state = canvas_state(strokes.render(strokes.canvas_paths(4)))
    state["drawing"]["raw"] = {"objects": [{"type": "Path", "note": "x" * MAX_KEPT_DRAWING_CHARS}]}
    at.session_state["draw_canvas_0"] = state
    rerun(at)
    assert len(_predictions(at)) == 1
    at = _away_and_back(at)
    assert not _predictions(at) and any("Draw a digit" in i.value for i in at.info)
    assert _canvas_data(at)["initialDrawing"]["objects"] == []


def test_a_drawing_survives_a_look_at_the_upload(small_model):
    """"Upload a photo" hides the canvas (Streamlit drops its state); back to "Draw", the drawing is there again."""
    at = _page(small_model)
    state = canvas_state(strokes.render(strokes.canvas_paths(1)))
    at.session_state["draw_canvas_0"] = state
    rerun(at)
    before = _predictions(at)
    assert len(before) == 1
    rerun(at.radio(key="draw_source").set_value("Upload a photo"))
    assert not _predictions(at)
    rerun(at.radio(key="draw_source").set_value("Draw"))
    assert _predictions(at) == before
    assert _canvas_data(at)["initialDrawing"]["objects"] == state["drawing"]["raw"]["objects"]


@pytest.mark.parametrize("crafted", [
    {"drawing": "x"}, {"drawing": [1, 2]}, {"drawing": {"data": 5}}, {"drawing": {"data": ["a"]}},
    {"drawing": {"data": {"a": 1}}}, {"backgroundFit": {}}, {"backgroundFit": 5}, {"backgroundFit": "x"},
], ids=["drawing_str", "drawing_list", "data_int", "data_list", "data_dict", "fit_empty", "fit_int", "fit_str"])
def test_a_crafted_canvas_state_resets_the_canvas_to_the_kept_drawing(monkeypatch, crafted):
    """#15 kind 6 (the breaker's K1): valid JSON of a shape no canvas sends made the canvas component raise
    (AttributeError, KeyError, TypeError) in the page run. Now: a toast, a fresh canvas that starts from the
    learner's last drawing, and the same prediction."""
    at = _app_at_draw(monkeypatch)
    state, before = _draw_a_seven(at)
    at.session_state["draw_canvas_0"] = crafted
    rerun(at)
    assert any("reset to your last drawing" in t.value for t in at.toast), [t.value for t in at.toast]
    assert _predictions(at) == before and not at.error and not at.warning
    assert _canvas_data(at)["initialDrawing"]["objects"] == state["drawing"]["raw"]["objects"]
    rerun(at)  # the next run goes on without a toast
    assert not at.toast and _predictions(at) == before
