"""Text read back from disk (file names, run names, datasets, error messages), made safe to show on a page.

Two helpers, used wherever such a value is shown:

- :func:`printable`: any text as printable UTF-8. A file name that is not valid UTF-8 reaches Python with
  surrogate escapes (``bad\\udcff.npz``) that Streamlit cannot encode (``UnicodeEncodeError``); it is shown as
  ``bad\\xff.npz``. Control characters (a newline in a file name) are shown escaped too.
- :func:`md`: :func:`printable`, then :func:`without_server_paths`, then Markdown escaped, for text that goes into
  ``st.warning`` / ``st.caption`` / ``st.markdown`` / a widget label or help: a run named
  ``[Click](https://evil.example)`` is shown as those characters, never as a link.
- :func:`without_server_paths`: every absolute file path in a text shortened to its last part (a library's
  ``ValueError`` names the file by its full path, which is right for a library user; a learner must not see the
  server's folders). The full text is logged on the server, once per text.

Neither imports Streamlit.
"""

from __future__ import annotations

import logging
import re

_LOGGER = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKDOWN = re.compile(r"([\\*_\[\]()`<>|~$])")
"""Characters Streamlit's Markdown gives a meaning to anywhere in a line (links and images need ``[``, a colour
``:red[...]`` too). ``# + - !`` only matter at the start of a line or before ``[``: the values are put mid-sentence
and :func:`printable` escapes newlines, so they are left as they are (run ids keep their dashes)."""
_PART = r"[^\s'\"`/<>|,;:()\[\]{}]+"
_ABSOLUTE_PATH = re.compile(rf"(?<![\w.:/~\\-])/(?:{_PART}/)+({_PART})")
"""An absolute POSIX path of two parts or more (``/srv/runs/x.npz``), not part of a URL (``https://a/b``), a
fraction (``3/4``) or a word (``and/or``): the slash that starts it follows no letter, digit, dot, colon or slash."""
_LOGGED: set[str] = set()
_MAX_LOGGED = 1000


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
    return _MARKDOWN.sub(r"\\\1", without_server_paths(printable(value)))


def without_server_paths(text: str) -> str:
    """``text`` with every absolute file path (two parts or more) shortened to its last part, the file's or
    folder's name; the full text is logged on the server (once per distinct text).

    Args:
        text: a message, e.g. a library's ``ValueError`` that names a file by its full path.

    Returns:
        The text with the paths shortened; other text unchanged.

    Example:
        >>> without_server_paths("MNIST file '/srv/data/mnist.npz' is invalid")
        "MNIST file 'mnist.npz' is invalid"
    """
    text = str(text)
    shown = _ABSOLUTE_PATH.sub(lambda m: m.group(1), text)
    if shown != text and text not in _LOGGED and len(_LOGGED) < _MAX_LOGGED:
        _LOGGED.add(text)
        _LOGGER.info("shown without its server paths: %s", text)
    return shown
