"""Reading files that come from outside (MNIST copies, model files, saved runs, job records) safely.

One place for the checks every such file gets, **before** anything is allocated for its contents:

* :func:`read_npz` — an ``.npz`` must exist, be at most :attr:`NpzLimits.max_file_bytes` on disk,
  and be a plain zip archive whose central directory lists at most :attr:`NpzLimits.max_members`
  ``.npy`` members (checked from the archive's end record, and from its ZIP64 end record when a locator
  points to one, before Python's ``zipfile`` builds its list; the directory must lie inside the file). Each member read must declare at most :attr:`NpzLimits.max_member_bytes` uncompressed
  (:attr:`NpzLimits.max_total_bytes` for all members read together); its ``.npy`` header must
  describe a plain array (bool, integer, float or text; no objects, no pickles, at most 8
  dimensions) whose data fits in what the member declares. Only then is the array read, with
  ``allow_pickle=False``. The reader never decompresses more than a member declares.
* :func:`text_member_pieces` — one text member, checked the same way, decompressed piece by piece as it is
  consumed (a long text never held whole); :func:`member_names` — the members, none read.
* :func:`parse_json` / :func:`read_json_file` — JSON text at most ``max_chars`` characters (a
  file at most ``max_bytes`` bytes) and at most ``max_depth`` levels of nesting; ``NaN`` and
  ``Infinity`` are refused.

Every refusal is a ``ValueError`` that names the file and, for a limit, the limit. ``MemoryError``,
``RecursionError``, ``TypeError`` and the errors of ``zipfile`` / ``zlib`` / numpy never escape:
each becomes such a ``ValueError``. Nothing here modifies, moves or deletes a file.

The limits (:data:`MODEL_LIMITS` for model files and saved runs, :data:`MNIST_LIMITS` for MNIST
copies) are documented in ``docs/robustness.md``.

Size: the one guarded reader of outside files: the zip checks, the two ways to read members and the JSON limits
share their refusals and their limits; split, each part would import the others' private checks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MAX_JSON_CONTAINERS", "MAX_JSON_DEPTH", "MAX_METADATA_CHARS", "MNIST_LIMITS", "MODEL_LIMITS", "NpzLimits",
           "entry_kind", "member_names", "open_regular_file", "parse_json", "read_json_file", "read_npz",
           "text_member_pieces", "write_npz"]

_MiB = 1024 * 1024
MAX_JSON_DEPTH = 16
"""Deepest nesting of lists / objects accepted in any JSON read back from disk (a run's metadata needs 3)."""
MAX_JSON_CONTAINERS = 100_000
"""Most lists / objects (counted as ``{`` and ``[`` in the text, before parsing) in any JSON read back from disk.
A run's metadata holds a few dozen, a progress record's first-layer kernels at most 28×28 lists; 24 million
characters of ``{},{},…`` would be 8 million dicts, 1.3 GB and 12 s to parse."""
MAX_METADATA_CHARS = 24_000_000
"""Longest metadata JSON (a saved run's settings and history) in a model file, characters. A run of 50
epochs at batch size 8 on the full MNIST (375,000 batches) writes about 11 million."""
MAX_SPEC_CHARS = 65_536
"""Longest spec JSON text in a model file, characters (the model's layers; :mod:`convviz.model` checks the spec
itself)."""
_MAX_NDIM = 8
_MAX_HEADER_BYTES = 10_000  # numpy's own default for .npy headers
_ALLOWED_KINDS = "biufU"  # bool, signed / unsigned integers, floats, unicode text
_EOCD = struct.Struct("<4s4H2LH")  # the zip "end of central directory" record
_EOCD_SIGNATURE = b"PK\x05\x06"
_CENTRAL_ENTRY_BYTES = 46 + 1024  # one central directory entry, with a generous name and extra field


@dataclass(frozen=True)
class NpzLimits:
    """What an ``.npz`` may declare before :func:`read_npz` refuses it (bytes are uncompressed unless said).

    Attributes:
        max_file_bytes: size of the file on disk, bytes.
        max_members: entries in the archive's central directory.
        max_member_bytes: declared uncompressed size of one member read (its ``.npy`` header and data), bytes.
        max_total_bytes: declared uncompressed sizes of all members read by one call, together, bytes.
        max_text_chars: characters of one text member (JSON such as a model's spec or a run's metadata).
        text_chars_by_member: ``(member name, characters)`` pairs: a tighter limit for the named text members
            (a model's ``spec``), checked from the member's header like ``max_text_chars``.
    """

    max_file_bytes: int
    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    max_text_chars: int = 0
    text_chars_by_member: tuple = ()


MODEL_LIMITS = NpzLimits(max_file_bytes=128 * _MiB, max_members=64, max_member_bytes=100 * _MiB,
                         max_total_bytes=128 * _MiB, max_text_chars=MAX_METADATA_CHARS,
                         text_chars_by_member=(("spec", MAX_SPEC_CHARS),))
"""Model files and saved runs: weights of up to :data:`convviz.model.MAX_PARAMS` float32 numbers (20 MB)
and a run's metadata of up to :data:`MAX_METADATA_CHARS` characters (stored as 4-byte text)."""

MNIST_LIMITS = NpzLimits(max_file_bytes=64 * _MiB, max_members=16, max_member_bytes=64 * _MiB,
                         max_total_bytes=96 * _MiB, max_text_chars=0)
"""MNIST copies: the full set is 4 members, 55 MB uncompressed (``x_train`` 47 MB), 11.5 MB on disk."""


class _Refused(ValueError):
    """A check of this module failed; the message already names the file."""


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def entry_kind(mode: int) -> str:
    """What a file-system entry is, from its ``st_mode``: ``"file"``, ``"folder"``, ``"link"``, ``"named pipe"``,
    ``"socket"``, ``"device"`` or ``"special file"``."""
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "link"),
                       (stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
                       (stat.S_ISBLK, "device")):
        if test(mode):
            return name
    return "special file"


def open_regular_file(path, where: str):
    """Open ``path`` for reading in binary mode, only if it is (or links to) a regular file.

    Opened without blocking (``O_NONBLOCK``: a named pipe would otherwise wait forever for a writer), then
    checked on the open handle (``fstat``), so what is read is what was checked.

    Args:
        path: the file.
        where: the file in messages, e.g. ``"model file '/x/y.npz'"``.

    Returns:
        ``(handle, size)``: a binary file object (the caller closes it) and its size in bytes.

    Raises:
        FileNotFoundError: nothing at ``path`` (or a link to nothing).
        ValueError: a folder, named pipe, socket or device, e.g. ``"model file '/x' is a folder, not a file"``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except IsADirectoryError:
        raise _Refused(f"{where} is a folder, not a file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(f"{where} is a {entry_kind(info.st_mode)}, not a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _check_directory(handle, size: int, where: str, limits: NpzLimits) -> None:
    """Refuse an archive whose end records announce more members (or a larger directory) than allowed.

    Python's ``zipfile`` builds one object per central directory entry when it opens an archive, and reads the
    whole directory the end record announces, so the counts are read first: from the classic end record
    (``PK\\x05\\x06``) and, when a ZIP64 locator (``PK\\x06\\x07``) precedes it, from the ZIP64 end record it
    points to (``PK\\x06\\x06``), which ``zipfile`` trusts over the classic one (:func:`_check_zip64`). Either
    record's directory must lie inside the file, before the end records.
    """
    tail_size = min(size, _EOCD.size + 65535)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _Refused(f"{where} is not a .npz archive (truncated, or another kind of file)")
    end_at = size - tail_size + at  # where the classic end record starts in the file
    _, disk, _, this_disk, entries, directory_bytes, directory_at, _ = _EOCD.unpack(tail[at:at + _EOCD.size])
    if disk != 0 or this_disk != entries:
        raise _Refused(f"{where} is a multi-part archive; a .npz written by numpy is not")
    if _check_zip64(handle, end_at, where, limits, (entries, directory_bytes, directory_at)):
        return
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF or directory_at == 0xFFFFFFFF:
        raise _Refused(f"{where} is a ZIP64 archive without its ZIP64 end record (truncated or damaged)")
    _check_counts(entries, directory_bytes, directory_at, end_at, where, limits)


_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # the ZIP64 end of central directory record (without extensible data)
_EOCD64_SIGNATURE = b"PK\x06\x06"
_LOCATOR64 = struct.Struct("<4sLQL")  # the ZIP64 end of central directory locator, just before the classic record
_LOCATOR64_SIGNATURE = b"PK\x06\x07"


def _check_zip64(handle, end_at: int, where: str, limits: NpzLimits, classic: tuple[int, int, int]) -> bool:
    """Check the ZIP64 end record when a locator precedes the classic one: True when there is one, else False.

    ``zipfile`` reads a ZIP64 end record wherever a locator sits right before the classic end record and then uses
    its counts (8-byte fields: a 2 kB file can claim a million members). So when the locator is there, the ZIP64
    record must be right before it (where ``zipfile`` looks), on disk 0, within the same limits as the classic
    record (:func:`_check_counts`), and agree with every classic field that is not the ZIP64 placeholder
    (``0xFFFF`` / ``0xFFFFFFFF``).
    """
    if end_at < _LOCATOR64.size:
        return False
    handle.seek(end_at - _LOCATOR64.size)
    signature, disk, record_at, disks = _LOCATOR64.unpack(handle.read(_LOCATOR64.size))
    if signature != _LOCATOR64_SIGNATURE:
        return False
    expected_at = end_at - _LOCATOR64.size - _EOCD64.size
    if disk != 0 or disks > 1:
        raise _Refused(f"{where} is a multi-part ZIP64 archive; a .npz written by numpy is not")
    if expected_at < 0 or record_at != expected_at:
        raise _Refused(f"{where} has a ZIP64 locator pointing to byte {record_at:,}, not to a ZIP64 end record "
                       "right before it (damaged or crafted)")
    handle.seek(expected_at)
    fields = _EOCD64.unpack(handle.read(_EOCD64.size))
    signature, _, _, _, disk, start_disk, this_disk, entries, directory_bytes, directory_at = fields
    if signature != _EOCD64_SIGNATURE:
        raise _Refused(f"{where} has a ZIP64 locator but no ZIP64 end record where it points (damaged or crafted)")
    if disk != 0 or start_disk != 0 or this_disk != entries:
        raise _Refused(f"{where} is a multi-part ZIP64 archive; a .npz written by numpy is not")
    _check_counts(entries, directory_bytes, directory_at, expected_at, where, limits)
    for name, value, placeholder, classic_value in (
            ("members", entries, 0xFFFF, classic[0]), ("directory bytes", directory_bytes, 0xFFFFFFFF, classic[1]),
            ("directory offset", directory_at, 0xFFFFFFFF, classic[2])):
        if classic_value != placeholder and classic_value != value:
            raise _Refused(f"{where}: its ZIP64 end record says {value:,} {name} but its classic end record says "
                           f"{classic_value:,} (damaged or crafted)")
    return True


def _check_counts(entries: int, directory_bytes: int, directory_at: int, end_at: int, where: str,
                  limits: NpzLimits) -> None:
    """Refuse more members than ``limits.max_members``, a directory larger than that many entries take, or one
    that does not lie inside the file before its end record (``end_at``)."""
    if entries > limits.max_members:
        raise _Refused(f"{where} lists {entries:,} members ({directory_bytes:,} directory bytes), over the limit "
                       f"of {limits.max_members} members")
    if directory_bytes > limits.max_members * _CENTRAL_ENTRY_BYTES:
        raise _Refused(f"{where} declares a central directory of {directory_bytes:,} bytes, over the limit of "
                       f"{limits.max_members * _CENTRAL_ENTRY_BYTES:,} ({limits.max_members} members of at most "
                       f"{_CENTRAL_ENTRY_BYTES:,} bytes)")
    if directory_at + directory_bytes > end_at:
        raise _Refused(f"{where} declares a central directory of {directory_bytes:,} bytes at byte {directory_at:,}, "
                       f"past its end record at byte {end_at:,} (truncated, damaged or crafted)")


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limits: NpzLimits) -> None:
    """Read and check one member's ``.npy`` header; refuse it unless its array is plain and fits."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise _Refused(f"{where}: member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _Refused(f"{where}: member {name!r} uses compression method {info.compress_type}; numpy writes "
                       "only stored or deflated members")
    if info.file_size > limits.max_member_bytes:
        raise _Refused(f"{where}: member {name!r} declares {_mb(info.file_size)} uncompressed, over the limit of "
                       f"{_mb(limits.max_member_bytes)} per member")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member, _MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member, _MAX_HEADER_BYTES)
        else:
            raise _Refused(f"{where}: member {name!r} has .npy format version {version}; expected 1.0 or 2.0")
        header_bytes = member.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _ALLOWED_KINDS:
        raise _Refused(f"{where}: member {name!r} holds {dtype!s} values; only plain numbers and text are read "
                       "(never objects or pickles)")
    text_limit = dict(limits.text_chars_by_member).get(name.removesuffix(".npy"), limits.max_text_chars)
    if dtype.kind == "U" and math.prod(shape) * (dtype.itemsize // 4) > text_limit:
        raise _Refused(f"{where}: member {name!r} declares {math.prod(shape) * (dtype.itemsize // 4):,} characters "
                       f"of text, over the limit of {text_limit:,}")
    if len(shape) > _MAX_NDIM:
        raise _Refused(f"{where}: member {name!r} has {len(shape)} dimensions, over the limit of {_MAX_NDIM}")
    data_bytes = math.prod(shape) * dtype.itemsize
    if data_bytes > limits.max_member_bytes:
        raise _Refused(f"{where}: member {name!r} declares an array of shape {shape} {dtype!s} "
                       f"({_mb(data_bytes)}), over the limit of {_mb(limits.max_member_bytes)} per member")
    if header_bytes + data_bytes > info.file_size:
        raise _Refused(f"{where}: member {name!r} declares shape {shape} {dtype!s} ({data_bytes:,} bytes) but "
                       f"holds only {max(0, info.file_size - header_bytes):,} bytes of data (truncated)")


def read_npz(path, what: str, keys=None, limits: NpzLimits = MODEL_LIMITS) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, each checked against ``limits`` before it is read.

    Args:
        path: the file.
        what: how messages call it, e.g. ``"MNIST"`` or ``"model"`` (-> ``"model file '...' ..."``).
        keys: names of the arrays to read (those present; the rest are not decompressed), or None for all.
        limits: the :class:`NpzLimits` to enforce (:data:`MODEL_LIMITS` by default).

    Returns:
        ``{name: np.ndarray}``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a folder, named pipe or device instead of a file; a file over a limit (its size, member
            count, a member's or all members' declared uncompressed size, an array's declared size, the
            number of dimensions), not a zip archive
            (truncated, or another kind of file), an array of objects (pickles), duplicate or foreign
            members, or a damaged member. The message names the file and, for a limit, the limit.

    Example:
        >>> read_npz(DEFAULT_MODEL_PATH, "model", keys=["format_version"])  # doctest: +SKIP
        {'format_version': array(1)}
    """
    with _checked_members(path, what, keys, limits) as (archive, wanted, _):
        arrays = {}
        for key, info in wanted.items():
            with archive.open(info) as member:
                arrays[key] = np.lib.format.read_array(member, allow_pickle=False, max_header_size=_MAX_HEADER_BYTES)
        return arrays


def member_names(path, what: str, limits: NpzLimits = MODEL_LIMITS) -> list[str]:
    """The array names of an ``.npz`` (its members without ``.npy``), after :func:`read_npz`'s checks of the file
    and its directory; no member is read.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_npz`.
    """
    with _checked_members(path, what, [], limits) as (_, _, names):
        return names


def text_member_pieces(path, what: str, name: str, limits: NpzLimits = MODEL_LIMITS, piece_chars: int = 1 << 18):
    """The 0-d text member ``name`` of an ``.npz``, in pieces of at most ``piece_chars`` characters, so that a long
    text is never held whole: checked as :func:`read_npz` checks it (file, directory, the member's ``.npy`` header
    and its declared characters against ``limits``), then decompressed as it is consumed.

    Args:
        path, what, limits: as :func:`read_npz`.
        name: the member's array name (e.g. ``"metadata"``).
        piece_chars: characters per piece.

    Yields:
        ``str`` pieces; nothing when there is no such member.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_npz`; also a member that is not one text value, or whose
            data ends before its header's length or is not UTF-32 text.
    """
    with _checked_members(path, what, [name], limits) as (archive, wanted, _):
        if name not in wanted:
            return
        where = f"{what} file {str(path)!r}"
        with archive.open(wanted[name]) as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member, _MAX_HEADER_BYTES)
            if dtype.kind != "U" or shape != ():
                raise _Refused(f"{where}: member {name!r} must be one text value, got {dtype} {shape}")
            codec = "utf-32-be" if dtype.byteorder == ">" else "utf-32-le"
            remaining = dtype.itemsize
            while remaining:
                data = member.read(min(remaining, 4 * piece_chars))
                if not data:
                    raise _Refused(f"{where}: member {name!r} ends before its {dtype.itemsize // 4:,} characters")
                remaining -= len(data)
                yield data.decode(codec, errors="surrogatepass").rstrip("\x00") if not remaining else \
                    data.decode(codec, errors="surrogatepass")


@contextlib.contextmanager
def _checked_members(path, what: str, keys, limits: NpzLimits):
    """``(archive, {key: ZipInfo} of the wanted members present, all member names)`` after every check of
    :func:`read_npz` but the reads; any failure inside, the caller's reads included, is mapped as it documents.

    """
    path = Path(path)
    where = f"{what} file {str(path)!r}"
    try:
        handle, size = open_regular_file(path, where)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} file at {str(path)!r}") from None
    except OSError as exc:
        raise ValueError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        with handle:
            if size > limits.max_file_bytes:
                raise _Refused(f"{where} is {_mb(size)}, over the limit of {_mb(limits.max_file_bytes)} for a "
                               f"{what} file")
            _check_directory(handle, size, where, limits)
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                infos = archive.infolist()
                if len(infos) > limits.max_members:
                    raise _Refused(f"{where} has {len(infos):,} members, over the limit of {limits.max_members}")
                names = [info.filename for info in infos]
                if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                    raise _Refused(f"{where} has duplicate members or members that are not .npy arrays: "
                                   f"{sorted(names)[:10]}")
                by_key = {info.filename[:-4]: info for info in infos}
                wanted = list(by_key) if keys is None else [k for k in keys if k in by_key]
                total = sum(by_key[k].file_size for k in wanted)
                if total > limits.max_total_bytes:
                    raise _Refused(f"{where} declares {_mb(total)} uncompressed, over the limit of "
                                   f"{_mb(limits.max_total_bytes)} for a {what} file")
                for key in wanted:
                    _check_member(archive, by_key[key], where, limits)
                yield archive, {key: by_key[key] for key in wanted}, list(by_key)
    except _Refused:
        raise
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{where} is not a .npz archive (truncated, or another kind of file: {exc})") from None
    except MemoryError:
        raise ValueError(f"{where} needs more memory than is available to read, though it is within the limits "
                         f"({limits})") from None
    except Exception as exc:  # zlib.error, EOFError, OSError, numpy's header errors, a damaged member...
        raise ValueError(f"{where} is not a readable .npz ({type(exc).__name__}: {exc})") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


_LARGEST_FLOAT_INT = int(sys.float_info.max)


def _parse_int(digits: str) -> int:
    """A JSON integer, refused when no float can hold it (``1`` then 400 zeros): every number read back from disk
    must convert to a float without ``OverflowError``."""
    value = int(digits)
    if abs(value) > _LARGEST_FLOAT_INT:
        raise ValueError(f"an integer of {len(digits.lstrip('-')):,} digits is too large for a float "
                         f"(at most {sys.float_info.max:.3g})")
    return value


def _depth(value, limit: int) -> int:
    """Nesting depth of lists / dicts in ``value`` (iterative: no recursion); stops counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return deepest


def parse_json(text, where: str, max_chars: int, max_depth: int = MAX_JSON_DEPTH, max_values: int | None = None):
    """Parse JSON text read back from a file, within limits.

    Args:
        text: the text (a ``str``, or a 0-d numpy text array as stored in an ``.npz``).
        where: the file (or part of it) in messages, e.g. ``"run file '/x/y.npz': metadata"``.
        max_chars: the most characters accepted.
        max_depth: the deepest nesting of lists / objects accepted.
        max_values: the most values (list items and object members) accepted, or None for no limit; counted as
            commas before parsing (an upper bound: commas in strings count too), so a file that holds too many
            costs a scan, not a parse.

    Returns:
        The parsed value (dicts, lists, str, int, finite float, bool, None).

    Raises:
        ValueError: not text, over ``max_chars``, :data:`MAX_JSON_CONTAINERS`, ``max_values`` or ``max_depth``, invalid
            JSON, ``NaN`` / ``Infinity``, or an integer too large for a float (over about 1.8e308, which would raise
            ``OverflowError`` wherever it is used as a number); the message names ``where`` and the limit.
    """
    if isinstance(text, np.ndarray):
        if text.shape != () or text.dtype.kind != "U":
            raise ValueError(f"{where} is not JSON text (an array of {text.dtype!s}, shape {text.shape})")
        chars = text.dtype.itemsize // 4
        if chars > max_chars:
            raise ValueError(f"{where} is {chars:,} characters of JSON, over the limit of {max_chars:,}")
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"{where} is not JSON text (got {type(text).__name__})")
    if len(text) > max_chars:
        raise ValueError(f"{where} is {len(text):,} characters of JSON, over the limit of {max_chars:,}")
    containers = text.count("{") + text.count("[")  # an upper bound (braces in strings count too), before parsing
    if containers > MAX_JSON_CONTAINERS:
        raise ValueError(f"{where} has up to {containers:,} lists / objects, over the limit of {MAX_JSON_CONTAINERS:,}")
    if max_values is not None:
        values = text.count(",") + 1  # an upper bound (commas in strings count too), before parsing
        if values > max_values:
            raise ValueError(f"{where} holds up to {values:,} values (counted as commas), over the limit of "
                             f"{max_values:,}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except RecursionError:
        raise ValueError(f"{where} is nested deeper than Python can parse (the limit is {max_depth} levels)") from None
    except MemoryError:
        raise ValueError(f"{where} needs more memory than is available to parse ({len(text):,} characters)") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, as is a refused NaN
        raise ValueError(f"{where} is not valid JSON ({exc})") from None
    depth = _depth(value, max_depth)
    if depth > max_depth:
        raise ValueError(f"{where} is nested {depth}+ levels deep, over the limit of {max_depth}")
    return value


def read_json_file(path, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, max_values: int | None = None):
    """Read a JSON file, checking its size on disk before reading it.

    Args:
        path: the file.
        what: how messages call it, e.g. ``"job record"``.
        max_bytes: the largest file accepted, bytes.
        max_depth, max_values: as :func:`parse_json`.

    Returns:
        The parsed value.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: over a limit, not UTF-8, or not valid JSON; the message names the file and the limit.
    """
    path = Path(path)
    where = f"{what} {str(path)!r}"
    try:
        handle, size = open_regular_file(path, where)
        with handle:
            if size > max_bytes:
                raise _Refused(f"{where} is {size:,} bytes, over the limit of {max_bytes:,} bytes")
            raw = handle.read(max_bytes + 1)  # the file may have grown since it was checked
        if len(raw) > max_bytes:
            raise _Refused(f"{where} is over {max_bytes:,} bytes, the limit")
        text = raw.decode("utf-8")
    except (_Refused, FileNotFoundError):
        raise
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text ({exc})") from None
    except (OSError, MemoryError) as exc:
        raise ValueError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    return parse_json(text, where, max_chars=max_bytes, max_depth=max_depth, max_values=max_values)


def write_npz(path, arrays: dict) -> Path:
    """Write ``arrays`` to one compressed ``.npz`` at ``path``, atomically, readable by all (mode 0644).

    The file is written under a temporary name (``.<name>.<random>.tmp``) in the same folder, flushed to
    disk, then moved into place with ``os.replace``: a crash never leaves a half-written file at ``path``
    (the runs list ignores such hidden temporary names), and a failure removes the temporary file. The
    folder is created if need be.

    Args:
        path: the destination (``.npz`` is not appended).
        arrays: ``{name: np.ndarray}``.

    Returns:
        The path written.

    Raises:
        OSError: the folder cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are shared (replicas, other learners' servers)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
