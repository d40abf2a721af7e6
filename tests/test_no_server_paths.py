"""#15: a learner never sees the server's file system layout. Each page is drawn in a state that names a file (a bad
run file, a run whose weights cannot be read, a damaged atlas cache, an unreadable runs folder, a missing MNIST
file) with CONVVIZ_RUNS_DIR at a distinctive folder: that folder's path appears in no element's text, while the
file's name does. The full path goes to the server's log."""

import logging
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from convviz import jobs
from convviz.model import ScratchCNN, make_spec
from convviz.runs import RunStore
from convviz.ui.atlas import SHIPPED_CACHE
from convviz.ui.text import md, without_server_paths

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "app_pages"
LEARNER = "learner0paths1"
SECRET = "srv-layout-9q4z"
BAD_RUN = "20260101-000000-fast-b00001.npz"
GOOD_RUN = "20260102-000000-fast-a00002"
CONFIG = {"epochs": 1, "batch_size": 64, "learning_rate": 0.01, "optimizer": "adam", "seed": 0, "train_limit": 500}


def _texts(at: AppTest) -> list[str]:
    """The text of every element on the page (main area, sidebar, toasts), as its protobuf prints it."""
    found = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            found.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def _history() -> dict:
    return {"epoch": [1], "train_loss": [1.0], "train_accuracy": [0.5], "test_loss": [1.1], "test_accuracy": [0.6],
            "batch_loss": [1.2, 1.0], "seconds": [1.0]}


@pytest.fixture
def runs_root(monkeypatch, tmp_path):
    root = tmp_path / SECRET / "runs"
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(root))
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")
    store = RunStore(root / LEARNER)
    model = ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)
    store.save(GOOD_RUN, model, preset="fast", dataset=jobs.SAMPLE_LABEL, config=CONFIG, history=_history(),
               name="Run 1")
    store.root.joinpath(BAD_RUN).write_bytes(b"not a zip at all")  # a bad run file
    return root


def _page(name: str, query=True) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=120)
    if query:
        at.query_params["learner"] = LEARNER
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _assert_no_path(at: AppTest, root: Path, names: list[str]):
    texts = _texts(at)
    leaks = [t for t in texts if SECRET in t or str(root) in t]
    assert not leaks, leaks
    for name in names:
        assert any(name in t or md(name) in t for t in texts), name


@pytest.mark.parametrize("page", ["3_Train.py", "6_Filter_Atlas.py"])
def test_a_bad_run_file_is_named_without_its_folder(runs_root, page):
    at = _page(page)
    _assert_no_path(at, runs_root, [BAD_RUN])


def test_a_damaged_atlas_cache_is_named_without_its_folder(runs_root, caplog):
    runs_root.joinpath(SHIPPED_CACHE).write_bytes(b"PK\x03\x04 damaged")
    with caplog.at_level(logging.INFO, logger="convviz.ui.text"):
        at = _page("6_Filter_Atlas.py")
    _assert_no_path(at, runs_root, [SHIPPED_CACHE])
    assert any(SECRET in r.getMessage() for r in caplog.records)  # the full path is in the server's log


@pytest.mark.parametrize("page", ["3_Train.py", "6_Filter_Atlas.py"])
def test_a_run_whose_weights_are_cut_short_is_named_without_its_folder(runs_root, page):
    path = runs_root / LEARNER / f"{GOOD_RUN}.npz"
    with zipfile.ZipFile(path) as src:
        members = {n: src.read(n) for n in src.namelist()}
    weight = max((n for n in members if n != "metadata.npy"), key=lambda n: len(members[n]))
    members[weight] = members[weight][: len(members[weight]) // 2]  # its header is whole, its data cut short
    with zipfile.ZipFile(path, "w") as dst:
        for n, data in members.items():
            dst.writestr(n, data)
    _assert_no_path(_page(page), runs_root, [f"{GOOD_RUN}.npz"])


def test_an_unreadable_runs_folder_is_not_shown_by_its_path(runs_root):
    learner = runs_root / LEARNER
    for child in learner.iterdir():
        child.unlink()
    learner.rmdir()
    learner.write_text("a file where the learner's folder should be")
    for page in ("3_Train.py", "6_Filter_Atlas.py", "4_Draw.py"):
        _assert_no_path(_page(page), runs_root, [])


def test_the_pages_show_no_path_of_the_runs_folder_or_mnist_file(runs_root, monkeypatch, tmp_path):
    missing = tmp_path / SECRET / "data" / "mnist-missing.npz"
    monkeypatch.setenv("CONVVIZ_MNIST", str(missing))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / SECRET / "keras"))
    st.cache_resource.clear()  # the full MNIST is looked for once per server
    try:
        for page in sorted(p.name for p in PAGES.glob("[0-9]_*.py")):
            at = _page(page)
            _assert_no_path(at, runs_root, ["mnist-missing.npz"] if page == "3_Train.py" else [])
    finally:
        st.cache_resource.clear()


@pytest.mark.parametrize("text, shown", [
    ("MNIST file '/srv/a/b/mnist.npz' is invalid", "MNIST file 'mnist.npz' is invalid"),
    ("runs folder `/home/u/.convviz/runs/learner0x` cannot be read", "runs folder `learner0x` cannot be read"),
    ("[Errno 13] Permission denied: '/tmp/x/y.npz'", "[Errno 13] Permission denied: 'y.npz'"),
    ("see https://example.org/a/b and 3/4 and and/or", "see https://example.org/a/b and 3/4 and and/or"),
    ("(H, W, C) / (kh, kw)", "(H, W, C) / (kh, kw)"),
    ("a run named /etc", "a run named /etc"),  # one part only: not taken for a path
])
def test_without_server_paths(text, shown):
    assert without_server_paths(text) == shown


def _shipped_model_downloads():
    from convviz.ui.export import shipped_model_downloads

    shipped_model_downloads()


def test_a_damaged_shipped_model_is_named_without_its_folder(runs_root, monkeypatch):
    """The final breaker's N3: the Train page's downloads said "model file '/…/model_junk.npz' is not a .npz
    archive" (the Draw and Atlas pages already showed the name only)."""
    import convviz.model

    junk = runs_root.parent / "modeljunk.npz"
    junk.write_bytes(b"not a zip at all")
    monkeypatch.setattr(convviz.model, "DEFAULT_MODEL_PATH", junk)
    at = AppTest.from_function(_shipped_model_downloads, default_timeout=60)
    at.run()
    assert not at.exception and any("cannot be downloaded" in e.value for e in at.error)
    _assert_no_path(at, runs_root, ["modeljunk.npz"])
