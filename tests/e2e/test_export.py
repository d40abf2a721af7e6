"""Browser test: the Train page's "Take the shipped model home" downloads, saved by Chromium from the running server.

The ``.keras`` file is a deferred download (made when clicked, in the server, outside any script run): this is
where it is checked end to end. Run with ``pytest tests/e2e/test_export.py``; needs Debian's Chromium.
"""

from __future__ import annotations

import zipfile

import pytest

from .test_pages import assert_no_errors, open_page

pytestmark = pytest.mark.e2e


def _download(page, key: str, tmp_path):
    with page.expect_download(timeout=120_000) as info:
        page.locator(f".st-key-{key} button").first.click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    return target


def test_the_shipped_model_downloads_as_weights_script_and_keras_file(page, tmp_path):
    open_page(page, "/Train", "Train the network")
    page.get_by_text("Take the shipped model home").first.scroll_into_view_if_needed()
    weights = _download(page, "export_default_npz", tmp_path)
    script = _download(page, "export_default_py", tmp_path)
    keras_file = _download(page, "export_default_keras", tmp_path)
    assert (weights.name, script.name, keras_file.name) == ("convviz_default.npz", "convviz_default_keras.py",
                                                            "convviz_default.keras")
    from convviz.model import DEFAULT_MODEL_PATH, load_model

    shipped = load_model(DEFAULT_MODEL_PATH).weights()
    assert all((load_model(weights).weights()[k] == v).all() for k, v in shipped.items())
    compile(script.read_text(), script.name, "exec")
    with zipfile.ZipFile(keras_file) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())
    import keras

    loaded = keras.models.load_model(keras_file)
    assert [layer.name for layer in loaded.layers][-1] == "softmax"
    assert_no_errors(page)
