"""convviz.data: the MNIST search order, validation, never touching user files, the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from convviz import data as cdata
from convviz.data import (ENV_VAR, SAMPLE_PATH, MNISTUnavailableError, keras_cache_path, load_mnist, load_sample,
                          read_mnist_file)


def write_mnist(path: Path, marker: int, train: int = 60000, test: int = 10000, **overrides) -> Path:
    """A valid all-zero MNIST-layout file whose first training label is ``marker`` (to tell files apart)."""
    arrays = {"x_train": np.zeros((train, 28, 28), np.uint8), "y_train": np.zeros(train, np.uint8),
              "x_test": np.zeros((test, 28, 28), np.uint8), "y_test": np.zeros(test, np.uint8)}
    arrays["y_train"][0] = marker
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def fingerprint(path: Path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_size


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real MNIST anywhere: HOME and KERAS_HOME point into tmp_path, CONVVIZ_MNIST unset, no download."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(ENV_VAR, raising=False)

    def no_download(cache):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(cdata, "_download_to_cache", no_download)
    return tmp_path


def test_keras_cache_path_follows_keras_home_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_cache_path() == tmp_path / "kh" / "datasets" / "mnist.npz"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert keras_cache_path() == tmp_path / "h" / ".keras" / "datasets" / "mnist.npz"


def test_search_order_path_then_env_then_cache(isolated, monkeypatch):
    arg = write_mnist(isolated / "arg.npz", marker=1)
    env = write_mnist(isolated / "env.npz", marker=2)
    cache = write_mnist(keras_cache_path(), marker=3)
    monkeypatch.setenv(ENV_VAR, str(env))
    assert load_mnist(arg)[0][1][0] == 1
    assert load_mnist()[0][1][0] == 2
    assert load_mnist(isolated / "missing.npz")[0][1][0] == 2  # a missing path falls through
    monkeypatch.delenv(ENV_VAR)
    assert load_mnist()[0][1][0] == 3
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == ((60000, 28, 28), (60000,),
                                                                            (10000, 28, 28), (10000,))
    assert x_train.dtype == y_train.dtype == np.uint8
    assert cache.is_file() and arg.is_file() and env.is_file()


def test_nothing_found_lists_every_place_and_how_to_fix(isolated, monkeypatch):
    missing_env = isolated / "nowhere" / "mnist.npz"
    monkeypatch.setenv(ENV_VAR, str(missing_env))
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist(isolated / "missing.npz")
    message = str(info.value)
    assert str(isolated / "missing.npz") in message
    assert str(missing_env) in message and ENV_VAR in message
    assert str(keras_cache_path()) in message
    assert "network unreachable (test)" in message  # the download was tried last and its failure reported
    assert "internet" in message and f"set {ENV_VAR}=" in message
    order = [message.index(s) for s in ("path argument", ENV_VAR + " environment", "Keras cache", "download")]
    assert order == sorted(order)
    assert not keras_cache_path().exists()
    assert isinstance(info.value, RuntimeError)


def test_download_skipped_when_disabled(isolated):
    with pytest.raises(MNISTUnavailableError, match=r"skipped \(download=False\)"):
        load_mnist(download=False)


@pytest.mark.parametrize("where", ["path", "env", "cache"])
def test_corrupt_file_raises_naming_it_and_stays_untouched(isolated, monkeypatch, where):
    good = write_mnist(isolated / "good.npz", marker=4)
    bad = isolated / "bad.npz" if where != "cache" else keras_cache_path()
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated archive
    before = fingerprint(bad)
    if where == "env":
        monkeypatch.setenv(ENV_VAR, str(bad))
    with pytest.raises(ValueError, match="bad.npz|mnist.npz") as info:
        load_mnist(bad if where == "path" else None)
    assert str(bad) in str(info.value)
    assert fingerprint(bad) == before


def test_garbage_bytes_rejected_and_untouched(isolated):
    bad = isolated / "garbage.npz"
    bad.write_bytes(b"this is not a zip archive at all" * 10)
    before = fingerprint(bad)
    with pytest.raises(ValueError, match="not a .npz archive"):
        load_mnist(bad)
    assert fingerprint(bad) == before


@pytest.mark.parametrize("overrides, message", [
    ({"y_test": None}, r"missing arrays \['y_test'\]"),
    ({"y_train": np.full(60000, 10, np.uint8)}, "labels outside 0-9"),
    ({"x_test": np.zeros((10000, 28, 28), np.float32)}, "x_test should be uint8"),
    ({"x_train": np.zeros((60000, 27, 28), np.uint8)}, r"got uint8 \(60000, 27, 28\)"),
])
def test_invalid_contents_rejected(isolated, overrides, message):
    bad = write_mnist(isolated / "odd.npz", marker=0, **overrides)
    before = fingerprint(bad)
    with pytest.raises(ValueError, match=message):
        load_mnist(bad)
    assert fingerprint(bad) == before


def test_pickled_arrays_are_never_loaded(isolated):
    bad = isolated / "pickle.npz"
    np.savez(bad, x_train=np.array([object()], dtype=object), y_train=np.zeros(1, np.uint8),
             x_test=np.zeros(1, np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="pickle"):
        load_mnist(bad)


def test_download_goes_through_a_fresh_temp_dir_and_never_replaces_the_cache(isolated, monkeypatch):
    import tensorflow as tf

    monkeypatch.undo()  # restore the real _download_to_cache, then isolate again
    monkeypatch.setenv("HOME", str(isolated / "home"))
    monkeypatch.setenv("KERAS_HOME", str(isolated / "keras"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    seen = []

    def fake_get_file(fname, origin, file_hash, cache_dir, cache_subdir):
        assert origin == cdata.MNIST_URL and file_hash == cdata.MNIST_SHA256
        assert os.listdir(cache_dir) == []  # a fresh, empty directory, never the user's cache
        seen.append(cache_dir)
        return str(write_mnist(Path(cache_dir) / cache_subdir / fname, marker=7))

    monkeypatch.setattr(tf.keras.utils, "get_file", fake_get_file)
    assert load_mnist()[0][1][0] == 7
    cache = keras_cache_path()
    assert read_mnist_file(cache)[0][1][0] == 7  # the verified download was moved into Keras's cache
    assert not Path(seen[0]).exists()  # and the temporary directory is gone
    assert [p.name for p in cache.parent.iterdir()] == ["mnist.npz"]
    # With the cache present it is read, never downloaded again.
    monkeypatch.setattr(tf.keras.utils, "get_file", lambda *a, **k: pytest.fail("downloaded again"))
    assert load_mnist()[0][1][0] == 7


def test_bundled_sample_is_real_balanced_and_small():
    (x_train, y_train), (x_test, y_test) = load_sample()
    assert x_train.shape == (5000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert np.bincount(y_train, minlength=10).tolist() == [500] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert SAMPLE_PATH.stat().st_size < 2_000_000
    # Real digits: ink on a dark background, about 19% of pixels lit, as in MNIST.
    lit = (x_train > 0).mean()
    assert 0.12 < lit < 0.26 and x_train.max() == 255
    with np.load(SAMPLE_PATH, allow_pickle=False) as f:
        assert f["train_indices"].shape == (5000,) and f["test_indices"].shape == (1000,)


def test_sample_matches_the_full_set_when_available():
    full = os.environ.get(ENV_VAR) or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz")
    if not Path(full).is_file():
        pytest.skip("full MNIST not available here")
    (x_train, y_train), (x_test, y_test) = read_mnist_file(full)
    (sx_train, sy_train), (sx_test, sy_test) = load_sample()
    with np.load(SAMPLE_PATH, allow_pickle=False) as f:
        train_idx, test_idx = f["train_indices"], f["test_indices"]
    assert np.array_equal(x_train[train_idx], sx_train) and np.array_equal(y_train[train_idx], sy_train)
    assert np.array_equal(x_test[test_idx], sx_test) and np.array_equal(y_test[test_idx], sy_test)


def test_an_extra_axis_on_the_images_blames_the_images_not_the_labels(isolated):
    bad = write_mnist(isolated / "extra_axis.npz", marker=0, x_train=np.zeros((60000, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"x_train should be uint8 \(60000, 28, 28\), got uint8 \(60000, 28, 28, 1\)") as info:
        load_mnist(bad)
    assert "y_train" not in str(info.value)
    with pytest.raises(ValueError, match=r"x_train should be uint8 .*, got uint8 \(60000, 28, 28, 1\)") as info:
        read_mnist_file(bad, sizes=None)  # no expected counts: y is judged by x's
    assert "y_train" not in str(info.value)
