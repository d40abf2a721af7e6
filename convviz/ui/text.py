"""Text read back from disk (file names, run names, datasets, error messages), made safe to show on a page.

Two helpers, used wherever such a value is shown:

- :func:`printable`: any text as printable UTF-8. A file name that is not valid UTF-8 reaches Python with
  surrogate escapes (``bad\\udcff.npz``) that Streamlit cannot encode (``UnicodeEncodeError``); it is shown as
  ``bad\\xff.npz``. Control characters (a newline in a file name) are shown escaped too.
- :func:`md`: :func:`printable`, then Markdown escaped, for text that goes into ``st.warning`` / ``st.caption`` /
  ``st.markdown`` / a widget label or help: a run named ``[Click](https://evil.example)`` is shown as those
  characters, never as a link.

Neither imports Streamlit.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKDOWN = re.compile(r"([\\*_\[\]()`<>|~$])")
"""Characters Streamlit's Markdown gives a meaning to anywhere in a line (links and images need ``[``, a colour
``:red[...]`` too). ``# + - !`` only matter at the start of a line or before ``[``: the values are put mid-sentence
and :func:`printable` escapes newlines, so they are left as they are (run ids keep their dashes)."""


def printable(value) -> str:
    """``str(value)`` as printable UTF-8 text.

    Args:
        value: anything; usually a file name or a message read back from disk.

    Returns:
        The text with surrogate-escaped bytes as ``\\xNN``, lone surrogates as ``\\udNNN`` and control characters
        as ``\\xNN`` / ``\\uNNNN``; other text unchanged.

    Example:
        >>> printable("bad\\udcff.npz")
        'bad\\\\xff.npz'
    """
    text = str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name decoding made (e.g. "\ud800" from JSON)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def md(value) -> str:
    """:func:`printable` text with every Markdown character escaped by a backslash, for Streamlit Markdown.

    Args:
        value: anything read back from disk (or sent by a browser) that is put into Markdown.

    Returns:
        Text that Streamlit shows as it is: no link, emphasis, HTML, colour, math or heading.

    Example:
        >>> md("[Click](https://evil)")
        '\\\\[Click\\\\]\\\\(https://evil\\\\)'
    """
    return _MARKDOWN.sub(r"\\\1", printable(value))
