"""convviz.ui.widget_guard: a widget value sent under an id no widget can have is not stored (it passed for a
``st.session_state`` key and made the page's first widget call raise KeyError); the three wrapped methods exist."""

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.state import session_state

import convviz.ui  # noqa: F401  (installs the guard)
from convviz.ui import widget_guard


def test_the_guard_wraps_the_three_methods():
    assert widget_guard.installed()
    assert session_state.WStates.set_widget_from_proto.__name__ == "store_widget_value"
    assert session_state.WStates.get_serialized.__name__ == "serialize_widget_value"


@pytest.mark.parametrize("widget_id", ["", "foo", "conv_x_current", "$ID-x", " $$ID-x"])
def test_a_value_under_a_non_widget_id_is_not_stored_and_is_noted(widget_id):
    states = session_state.WStates()
    sent = WidgetState(id=widget_id)
    sent.int_value = 1
    widget_guard.announce_refused()  # forget earlier refusals (outside a page its toast goes nowhere)
    states.set_widget_from_proto(sent)
    assert widget_id not in states.states
    assert len(widget_guard.refused_keys()) == 1  # noted, for the page's toast and the server's log


def test_a_value_under_a_widget_id_is_stored():
    states = session_state.WStates()
    sent = WidgetState(id="$$ID-0123456789abcdef-conv_x_rows")
    sent.double_value = 3.0
    states.set_widget_from_proto(sent)
    assert "$$ID-0123456789abcdef-conv_x_rows" in states.states
