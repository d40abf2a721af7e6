"""MNIST: find the full set without ever harming a user's files, or use the bundled sample.

:func:`load_mnist` looks, in order, at

1. the ``path`` argument;
2. the ``CONVVIZ_MNIST`` environment variable;
3. Keras's cache file, ``$KERAS_HOME/datasets/mnist.npz`` (``~/.keras/datasets/mnist.npz``
   when ``KERAS_HOME`` is unset);
4. a download by Keras (the same URL and SHA-256 as ``tf.keras.datasets.mnist.load_data()``)
   into a fresh temporary directory; the verified file is then moved into the cache of step 3.

A local file is read by :func:`convviz.npzfile.read_npz` (within
:data:`convviz.npzfile.MNIST_LIMITS`, checked before anything is decompressed; never unpickled)
and checked (keys, shapes, dtypes, labels 0-9). It is only ever read: never modified,
moved or deleted. (Keras's own ``get_file`` deletes a cached file whose hash
does not match when it cannot download again, which is why no user file is
ever handed to Keras, and why the download goes to an empty temporary
directory.)

:func:`load_sample` reads the small class-balanced sample that ships in the
package (``convviz/data/mnist_sample.npz``: 5,000 training and 1,000 test
digits drawn from the real MNIST by ``scripts/make_mnist_sample.py``).

MNIST (Y. LeCun, C. Cortes, C. J. C. Burges) is distributed under the
Creative Commons Attribution-Share Alike 3.0 licence.

Arrays use Keras's layout: images uint8 ``(n, 28, 28)`` (0 = background,
255 = ink), labels uint8 ``(n,)`` with values 0-9.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from convviz.npzfile import MNIST_LIMITS, read_npz

__all__ = ["ENV_VAR", "MNIST_SHA256", "MNIST_URL", "MNISTUnavailableError", "SAMPLE_PATH", "keras_cache_path",
           "load_mnist", "load_sample", "read_mnist_file"]

ENV_VAR = "CONVVIZ_MNIST"
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "mnist_sample.npz"
"""The bundled sample (5,000 train / 1,000 test digits, class-balanced)."""
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
"""URL and hash that ``tf.keras.datasets.mnist.load_data()`` uses (Keras 3)."""

FULL_SIZES = (60000, 10000)
SAMPLE_SIZES = (5000, 1000)
_KEYS = ("x_train", "y_train", "x_test", "y_test")


class MNISTUnavailableError(RuntimeError):
    """The full MNIST could not be found or downloaded; the message lists each place tried."""


def keras_cache_path() -> Path:
    """Keras's MNIST cache file: ``$KERAS_HOME/datasets/mnist.npz``, default ``~/.keras/datasets/mnist.npz``.

    Returns:
        The path (it may not exist). Read from the environment at each call.
    """
    home = os.environ.get("KERAS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".keras"
    return base / "datasets" / "mnist.npz"


def read_mnist_file(path, sizes: tuple[int, int] | None = FULL_SIZES):
    """Read and check one MNIST ``.npz`` in Keras's layout, without changing it.

    Args:
        path: the file.
        sizes: expected ``(train, test)`` digit counts, or ``None`` to accept any counts >= 1.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 ``(n, 28, 28)`` and ``(n,)``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the file is not a readable ``.npz``, is over a limit of
            :data:`convviz.npzfile.MNIST_LIMITS` (checked before anything is decompressed), or its
            contents are wrong (missing keys, shapes, dtypes, labels outside 0-9), naming it.
    """
    path = Path(path)
    arrays = read_npz(path, "MNIST", keys=_KEYS, limits=MNIST_LIMITS)
    missing = [key for key in _KEYS if key not in arrays]
    if missing:
        raise ValueError(f"MNIST file {str(path)!r} is invalid: missing arrays {missing}")
    problems = []
    for split, expected in zip(("train", "test"), sizes or (None, None)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        n = expected if expected is not None else (x.shape[0] if x.ndim >= 1 else -1)  # y is judged by x's count
        if x.dtype != np.uint8 or x.shape != (n, 28, 28) or n < 1:
            problems.append(f"x_{split} should be uint8 {(expected or 'n', 28, 28)}, got {x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.shape != (max(n, 0),):
            problems.append(f"y_{split} should be uint8 ({expected or 'n'},), got {y.dtype} {y.shape}")
        elif y.size and y.max() > 9:
            problems.append(f"y_{split} has labels outside 0-9 (max {int(y.max())})")
    if problems:
        raise ValueError(f"MNIST file {str(path)!r} is invalid: " + "; ".join(problems))
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _download_to_cache(cache: Path):
    """Download MNIST with Keras into an empty temporary directory, verify it, move it to ``cache``.

    Keras's ``get_file`` checks the SHA-256 (:data:`MNIST_SHA256`). The file
    is moved into ``cache`` only if nothing is there yet (temporary name in
    the same directory, then ``os.replace``); if the cache cannot be written
    the data is still returned.
    """
    import tensorflow as tf  # heavy; only needed to download

    with tempfile.TemporaryDirectory(prefix="convviz-mnist-") as tmp:
        downloaded = tf.keras.utils.get_file("mnist.npz", origin=MNIST_URL, file_hash=MNIST_SHA256,
                                             cache_dir=tmp, cache_subdir="")
        data = read_mnist_file(downloaded)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            if not cache.exists():
                fd, partial = tempfile.mkstemp(prefix=".mnist.", suffix=".tmp", dir=cache.parent)
                os.close(fd)
                shutil.copyfile(downloaded, partial)
                if cache.exists():
                    os.unlink(partial)
                else:
                    os.replace(partial, cache)
        except OSError:
            pass  # a read-only home: the data is still usable this time
    return data


def load_mnist(path=None, download: bool = True):
    """The full MNIST (60,000 training and 10,000 test digits), from the first place that has it.

    Args:
        path: a ``.npz`` in Keras's layout to try first, or ``None``.
        download: whether to try downloading with Keras as the last resort.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 ``(60000, 28, 28)``,
        ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``.

    Raises:
        ValueError: a file that exists (from ``path``, ``CONVVIZ_MNIST`` or
            the Keras cache) but is invalid, naming it. The file is left as it is.
        MNISTUnavailableError: no place had it; the message lists each place
            tried and how to fix it.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
        >>> x_train.shape, y_test[:3]  # doctest: +SKIP
        ((60000, 28, 28), array([7, 2, 1], dtype=uint8))
    """
    env = os.environ.get(ENV_VAR)
    cache = keras_cache_path()
    places = [("path argument", None if path is None else Path(path).expanduser(), "not given"),
              (f"{ENV_VAR} environment variable", Path(env).expanduser() if env else None, "not set"),
              ("Keras cache", cache, "")]
    tried = []
    for label, candidate, why_none in places:
        if candidate is None:
            tried.append(f"{label}: {why_none}")
        elif candidate.is_file():
            return read_mnist_file(candidate)
        elif candidate.is_dir():
            tried.append(f"{label}: {str(candidate)!r} is a folder, not a file (give the path of mnist.npz itself)")
        else:
            tried.append(f"{label}: no file at {str(candidate)!r}")
    if download:
        try:
            return _download_to_cache(cache)
        except Exception as exc:  # no network, blocked URL, hash mismatch...
            tried.append(f"download with Keras from {MNIST_URL}: failed ({type(exc).__name__}: {exc})")
    else:
        tried.append("download with Keras: skipped (download=False)")
    raise MNISTUnavailableError(
        "The full MNIST could not be found. Places tried, in order:\n  - " + "\n  - ".join(tried)
        + f"\nTo fix it: run once with internet access (it is saved to {str(cache)!r}), or download "
        f"mnist.npz yourself and set {ENV_VAR}=/path/to/mnist.npz. "
        "Without it, the bundled 5,000/1,000-digit sample (convviz.data.load_sample) still works."
    )


def load_sample():
    """The class-balanced MNIST sample that ships in the package.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 ``(5000, 28, 28)``,
        ``(5000,)``, ``(1000, 28, 28)``, ``(1000,)``; 500 and 100 digits per class.

    Raises:
        ValueError: the bundled file is damaged, naming it.
        FileNotFoundError: the package was installed without it.
    """
    return read_mnist_file(SAMPLE_PATH, SAMPLE_SIZES)
