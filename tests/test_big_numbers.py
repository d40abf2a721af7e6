"""#15 kinds 5/6: a huge number in a matrix cell or a number box is refused as too large (naming the limit), never
as "not a number", whether it is typed (text) or sent as a JSON number (a Python int past a float's range)."""

import re
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import rerun, run_page

from convviz.ui.matrix_editor import MAX_CELL, parse_cell
from convviz.ui.numbers import number_problem

CONV_PAGE = Path(__file__).resolve().parents[1] / "app_pages" / "1_Convolution.py"
LIMIT = f"use numbers between {-MAX_CELL:g} and {MAX_CELL:g}"

BIG = [
    ("int_10_400", 10**400, "is too large (an integer of 401 digits)"),
    ("minus_int_10_400", -(10**400), "is too large (an integer of 401 digits)"),
    ("int_5000_digits", 7 * 10**4999, "is too large (an integer of 5,000 digits)"),  # str() of it raises
    ("int_60_digits", int("9" * 60), "is too large (an integer of 60 digits)"),
    ("int_1e20", 10**20, "is too large (1e+20)"),
    ("text_60_digits", "1" * 60, "is too large (a number of 60 digits)"),
    ("text_400_digits", "9" * 400, "is too long (400 characters, at most 64; write it shorter) and too large (a "
                                   "number of 400 digits)"),
    ("text_minus_80_digits", "-" + "8" * 80, "is too long (81 characters, at most 64; write it shorter) and too "
                                             "large (a number of 80 digits)"),
    ("text_1e400", "1e400", "is infinite as a float, so too large ('1e400')"),
]


@pytest.mark.parametrize("raw, message", [c[1:] for c in BIG], ids=[c[0] for c in BIG])
def test_a_huge_number_is_too_large_not_not_a_number(raw, message):
    with pytest.raises(ValueError) as info:
        parse_cell(raw, "Input cell (row 1, column 1)")
    text = str(info.value)
    assert text.startswith(f"Input cell (row 1, column 1) {message}") and LIMIT in text
    assert "not a number" not in text


@pytest.mark.parametrize("raw, message", [
    ("0" * 69 + "1", "is too long (70 characters, at most 64"),  # 1 with leading zeros: long, not large
    ("x" * 70, "is too long (70 characters"),
    ("12abc", "is not a number ('12abc')"),
])
def test_long_or_wrong_text_keeps_its_own_message(raw, message):
    with pytest.raises(ValueError, match="^" + re.escape("Cell " + message)):
        parse_cell(raw, "Cell")


def test_a_number_box_refuses_a_huge_integer_without_raising():
    """``math.isfinite(10**400)`` raised OverflowError inside the check."""
    assert number_problem(10**400, 1, 28, True) == "empty or out of range"
    assert number_problem(10**400, None, None, True) == "empty or out of range"
    assert number_problem(10**400, None, None, False) == "empty or out of range"  # settle would call float() on it
    assert number_problem(-(10**400), 0, None, False) == "empty or out of range"


@pytest.mark.parametrize("raw, message", [(10**400, "is too large (an integer of 401 digits)"),
                                          (int("1" * 60), "is too large (an integer of 60 digits)"),
                                          ("9" * 400, "is too long (400 characters, at most 64; write it shorter) "
                                                      "and too large (a number of 400 digits)")],
                         ids=["json_int_10_400", "json_int_60_digits", "typed_400_digits"])
def test_the_page_says_too_large_and_keeps_the_cell(raw, message):
    """As the editor's client sends it: a JSON number is a Python int of any size once parsed."""
    conv = run_page(CONV_PAGE)
    key = f"conv_x_editor_{conv.session_state['conv_x_ver']}"
    original = float(conv.session_state["conv_x_current"][1][2])
    conv.session_state[key] = {"edited_rows": {0: {"1": 5}, 1: {"3": raw}}}
    rerun(conv)
    (warning,) = conv.warning
    assert f"Input cell (row 2, column 3) {message}: {LIMIT}" in warning.value
    assert "not a number" not in warning.value and f"keeps its previous value {original:g}" in warning.value
    current = np.asarray(conv.session_state["conv_x_current"])
    assert current[0][0] == 5 and current[1][2] == original
