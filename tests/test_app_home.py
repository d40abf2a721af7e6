"""The entry point: navigation with a real home page."""

from apptest_helpers import APP, rerun, run_page


def test_home_page_renders_the_notebook_example_and_links():
    at = run_page(APP)
    assert at.title[0].value.startswith("ConvViz")
    text = " ".join(m.value for m in at.markdown)
    assert "from scratch" in text and "feature map" in text
    charts = [c for c in at.get("plotly_chart")]
    assert len(charts) == 3
    spec = charts[2].proto.spec
    assert '"text":[["4","3","4"],["2","4","3"],["2","3","4"]]' in spec.replace(" ", "")


def test_the_sidebar_starts_with_home_and_every_page_keeps_its_address():
    """``st.navigation``: "Home" first (not "app", the entry script's name), then the pages at their old addresses."""
    at = run_page(APP)
    registered = list(at._registered_pages.values())  # what the sidebar lists, in order (AppTest has no public view)
    assert [p["page_name"] for p in registered] == ["Home", "Convolution", "Stacked Channels", "Train", "Draw",
                                                    "Backpropagation", "Filter Atlas"]
    assert [p["url_pathname"] for p in registered] == ["", "Convolution", "Stacked_Channels", "Train", "Draw",
                                                       "Backpropagation", "Filter_Atlas"]
    assert not (APP.parent / "pages").exists()  # a pages/ folder would make Streamlit bypass st.navigation


def test_switch_page_runs_each_page_from_the_entry_script(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = run_page(APP)
    at.switch_page("app_pages/4_Draw.py")
    rerun(at)
    assert [m.value for m in at.markdown][0] == "## Draw a digit and ask the network"
    at.switch_page("app_pages/1_Convolution.py")
    rerun(at)
    assert [m.value for m in at.markdown][0] == "## Convolution, one window at a time"


def test_a_learner_key_in_the_home_address_is_kept_when_the_learner_moves_on(monkeypatch, tmp_path):
    """A bookmarked ``/?learner=…``, then another page (whose address has no query): the session keeps the key the
    Train page uses (``training.learner_key``), instead of a fresh one."""
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = run_page(APP, query_params={"learner": "bookmark0key1"})
    assert at.session_state["_learner"] == "bookmark0key1"
    at.query_params.clear()  # Streamlit drops the address's query when the learner moves to another page
    at.switch_page("app_pages/4_Draw.py")
    rerun(at)
    assert at.session_state["_learner"] == "bookmark0key1"


def _first_page(path: str) -> "AppTest":
    """The app opened at ``path`` (a page's own address, not Home), run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page(path)
    return rerun(at)


def test_the_training_cluster_starts_whatever_page_is_opened_first(monkeypatch, tmp_path):
    """/Convolution or /Draw first: the cluster is asked to start (in the background) once the page is drawn,
    not only on Home or Train; with a malformed CONVVIZ_DASK_SCHEDULER nothing is started and the page still works."""
    from convviz import jobs

    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(jobs.SCHEDULER_ENV, raising=False)
    started = []
    monkeypatch.setattr(jobs.JobManager, "ensure_started", lambda self: started.append(self.embedded))
    for path, heading in (("app_pages/1_Convolution.py", "## Convolution, one window at a time"),
                          ("app_pages/4_Draw.py", "## Draw a digit and ask the network")):
        started.clear()
        at = _first_page(path)
        assert [m.value for m in at.markdown][0] == heading
        assert started == [True], path  # the embedded cluster, asked once per run (it starts once per server)
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "not-a-scheduler")
    started.clear()
    at = _first_page("app_pages/1_Convolution.py")
    assert [m.value for m in at.markdown][0] == "## Convolution, one window at a time" and started == []
