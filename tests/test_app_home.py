"""The entry point: navigation with a real home page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_home_page_renders_the_notebook_example_and_links():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value.startswith("ConvViz")
    text = " ".join(m.value for m in at.markdown)
    assert "from scratch" in text and "feature map" in text
    charts = [c for c in at.get("plotly_chart")]
    assert len(charts) == 3
    spec = charts[2].proto.spec
    assert '"text":[["4","3","4"],["2","4","3"],["2","3","4"]]' in spec.replace(" ", "")
