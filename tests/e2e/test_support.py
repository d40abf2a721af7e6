"""Unit tests of the browser tests' support code (no browser, no server): the log check and the port picker."""

import socket

from .server import free_port, server_log_errors

SOCKET_CLOSED = """\
Exception in ASGI application
Traceback (most recent call last):
  File "/site-packages/streamlit/web/server/starlette/starlette_websocket.py", line 516, in _websocket_endpoint
    data = await websocket.receive_bytes()
starlette.websockets.WebSocketDisconnect: 1001

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/site-packages/starlette/websockets.py", line 104, in send
    raise WebSocketDisconnected('Cannot call "send" once a close message has been sent.')
starlette.websockets.WebSocketDisconnected: Cannot call "send" once a close message has been sent.
  Stopping...
"""

THREAD_ERROR = """\
Exception in thread Thread-3 (run):
Traceback (most recent call last):
  File "/work/main/convviz/train.py", line 10, in run
    step()
ValueError: learning_rate must be > 0, got learning_rate=0
"""


def test_socket_closed_noise_is_not_an_error():
    assert server_log_errors("I0000 startup\n" + SOCKET_CLOSED) == []


def test_a_thread_traceback_is_an_error_even_after_the_noise():
    errors = server_log_errors(SOCKET_CLOSED + THREAD_ERROR)
    assert len(errors) == 1
    assert errors[0].startswith("Exception in thread Thread-3")
    assert errors[0].endswith("ValueError: learning_rate must be > 0, got learning_rate=0")


def test_an_asgi_traceback_with_another_cause_is_an_error():
    log = SOCKET_CLOSED.replace("starlette.websockets.WebSocketDisconnected: Cannot call",
                                "RuntimeError: Cannot call")
    assert len(server_log_errors(log)) == 1


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
