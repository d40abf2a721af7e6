"""Crafted client messages (issue #15, kind 6): a widget value no browser would send is refused and the session
goes on. Sent over the app's own websocket, as a hostile client would, to the session server of tests/e2e.

Before convviz/ui/widget_guard.py, each of these left the session showing Streamlit's error box on every later
run of every page (the serialized value stayed in the session and its deserializer raised on every rerun).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

LEARNER = "learner=crafted0messages1"


class Client:
    """One browser session, spoken to in Streamlit's protocol (BackMsg out, ForwardMsg in)."""

    def __init__(self, base_url: str):
        self.host = urlparse(base_url).netloc

    async def open(self):
        request = HTTPRequest(f"ws://{self.host}/_stcore/stream", headers={"Origin": f"http://{self.host}"})
        self.ws = await websocket_connect(request, subprotocols=["streamlit"], max_message_size=256 * 2**20)

    async def run(self, page: str, state: dict | None = None, timeout: float = 240.0) -> dict:
        """One script run of ``page`` with the given widget values ``{widget id: (proto field, value)}``."""
        message = BackMsg()
        rerun = message.rerun_script
        rerun.query_string, rerun.page_name = LEARNER, page
        for widget_id, (field, value) in (state or {}).items():
            widget = rerun.widget_states.widgets.add()
            widget.id = widget_id
            setattr(widget, field, value)
        await self.ws.write_message(message.SerializeToString(), binary=True)
        seen = {"exceptions": [], "kinds": [], "ids": [], "finished": None}
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), timeout)
            assert raw is not None, "the server closed the connection"
            forward = ForwardMsg()
            forward.ParseFromString(raw)
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                element = forward.delta.new_element
                element_kind = element.WhichOneof("type")
                seen["kinds"].append(element_kind)
                if element_kind == "exception":
                    seen["exceptions"].append(f"{element.exception.type}: {element.exception.message[:200]}")
                widget_id = getattr(getattr(element, element_kind), "id", "")
                if widget_id:
                    seen["ids"].append(widget_id)
            elif kind == "script_finished":
                seen["finished"] = forward.script_finished
                return seen

    def close(self):
        self.ws.close()


CASES = [  # (page, the widget's key, proto field, value)
    ("Convolution", "conv_x_editor", "string_value", '{"edited_rows": {"abc": {}}}'),
    ("Convolution", "conv_x_editor", "string_value", "{{{"),
    ("Convolution", "conv_x_editor", "string_value", "null"),
    ("Convolution", "conv_x_editor", "string_value", '{"edited_rows": {"1.5": {"1": "3"}}}'),
    ("Convolution", "conv_x_editor", "string_value", '{"edited_rows": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("Convolution", "conv_x_rows", "string_value", "abc"),
    ("Convolution", "conv_x_rows", "json_value", '{"a": 1}'),
    ("Convolution", "conv_stride", "string_value", "x"),
    ("Draw", "draw_canvas_0", "json_value", "not json"),
    ("Convolution", "conv_direction", "int_value", 99),  # option indices out of range: were one run's error box
    ("Convolution", "conv_mode", "int_value", 7),
    ("Convolution", "conv_padding", "int_value", 10**6),
    ("Convolution", "conv_x_reload", "json_value", "xx"),
]


async def _opened(base_url, page):
    """A session on ``page`` after one plain run: ``(client, that run)``."""
    client = Client(base_url)
    await client.open()
    try:
        first = await client.run(page)
        assert not first["exceptions"], first["exceptions"]
    except BaseException:
        client.close()
        raise
    return client, first


async def _crafted_then_plain(base_url, page, key, field, value):
    client, first = await _opened(base_url, page)
    try:
        ids = [i for i in first["ids"] if i.endswith("-" + key) or f"-{key}_" in i]
        assert ids, f"no widget {key!r} on {page}: {first['ids'][:20]}"
        crafted = await client.run(page, {ids[0]: (field, value)})
        plain = await client.run(page)
        other = await client.run("Backpropagation" if page != "Backpropagation" else "Convolution")
        back = await client.run(page)
        return crafted, plain, other, back
    finally:
        client.close()


@pytest.mark.parametrize("page, key, field, value", CASES, ids=[f"{c[1]}-{c[2]}-{str(c[3])[:12]}" for c in CASES])
def test_a_crafted_widget_value_is_refused_and_the_session_goes_on(base_url, page, key, field, value):
    # Its own thread and event loop: pytest-playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        crafted, plain, other, back = pool.submit(asyncio.run,
                                                  _crafted_then_plain(base_url, page, key, field, value)).result()
    for name, run in (("crafted", crafted), ("next", plain), ("other page", other), ("back", back)):
        assert run["exceptions"] == [], f"{name} run: {run['exceptions']}"
        assert run["finished"] is not None
    assert "toast" in crafted["kinds"], crafted["kinds"]  # the learner is told the value was ignored
    assert "toast" not in plain["kinds"]  # once


async def _sent_then_plain(base_url, page, pick_id, field, value):
    """One run of ``page``, one with ``value`` sent under the id ``pick_id(ids of the first run)``, one plain."""
    client, first = await _opened(base_url, page)
    try:
        return await client.run(page, {pick_id(first["ids"]): (field, value)}), await client.run(page)
    finally:
        client.close()


def _sent_and_answered(page, pick_id, field, value, base_url):
    # Its own thread and event loop, as above.
    with ThreadPoolExecutor(1) as pool:
        crafted, plain = pool.submit(asyncio.run, _sent_then_plain(base_url, page, pick_id, field, value)).result()
    for name, run in (("crafted", crafted), ("next", plain)):
        assert run["exceptions"] == [], f"{name} run: {run['exceptions']}"
        assert run["finished"] is not None
    return crafted, plain


NON_WIDGET_IDS = [("", "int_value", 1), ("foo", "string_value", "x"), ("conv_x_current", "string_value", "[[1e308]]")]


@pytest.mark.parametrize("widget_id, field, value", NON_WIDGET_IDS, ids=["empty", "foo", "a_session_key"])
def test_a_value_under_an_id_no_widget_has_is_refused(base_url, widget_id, field, value):
    """It passed for a key of st.session_state and made the page's first widget call raise KeyError (the learner
    saw an error box for that run); the guard does not store it (convviz/ui/widget_guard.py)."""
    crafted, plain = _sent_and_answered("Convolution", lambda ids: widget_id, field, value, base_url)
    assert "toast" in crafted["kinds"] and "toast" not in plain["kinds"]


@pytest.mark.parametrize("edit", ['{"edited_rows": {"0": {"1": 1' + "0" * 400 + "}}}",
                                  '{"edited_rows": {"0": {"1": ' + "9" * 5000 + "}}}",
                                  '{"edited_rows": {}, "added_rows": [{"1": 3}], "deleted_rows": ["a", 999999, -1]}'],
                         ids=["json_int_401_digits", "json_int_5000_digits", "added_and_odd_deleted_rows"])
def test_a_huge_json_number_or_odd_rows_in_a_matrix_edit(base_url, edit):
    """A 401-digit JSON number reaches the cell check (said too large, not "not a number"); one of 5,000 digits is
    past what Python's JSON reader takes (refused by the guard, with the toast); odd row lists are ignored."""
    crafted, _ = _sent_and_answered("Convolution", lambda ids: next(i for i in ids if "-conv_x_editor" in i),
                                    "string_value", edit, base_url)
    assert ("toast" in crafted["kinds"]) == ("9" * 5000 in edit)
