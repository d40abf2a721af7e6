"""Reading ``.npz`` files that come from outside (MNIST copies, model files, saved runs) safely.

One place for the checks every such file gets: it must exist and be a zip archive, it is read with
``allow_pickle=False`` (nothing in it is ever executed), and every failure is a ``ValueError`` that
names the file. Nothing here modifies, moves or deletes the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

__all__ = ["read_npz"]


def read_npz(path, what: str, keys=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, read without unpickling anything.

    Args:
        path: the file.
        what: how messages call it, e.g. ``"MNIST"`` or ``"model"`` (-> ``"model file '...' ..."``).
        keys: names of the arrays to read (those present; the rest are not decompressed), or None for all.

    Returns:
        ``{name: np.ndarray}``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a zip archive (truncated, or another kind of file), an array that needs
            pickles, or a damaged member; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{what} file {str(path)!r} is not a .npz archive (truncated, or another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = data.files if keys is None else [k for k in keys if k in data.files]
            return {name: data[name] for name in names}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zipfile.LargeZipFile) as exc:
        raise ValueError(f"{what} file {str(path)!r} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zlib.error and friends from a damaged member
        raise ValueError(f"{what} file {str(path)!r} is corrupt ({type(exc).__name__}: {exc})") from None
