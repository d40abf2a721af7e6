"""Server-side time of one step of the Convolution page (a 16×16 input, a 3×3 kernel).

Not a test: run ``python benchmarks/step_time.py [repeats]`` from the repository root.
It sets the page up through AppTest (16×16 random integers, Notebook X kernel,
'same' padding, so 256 window positions), then times ``Next`` clicks. AppTest
reruns the whole script on each click, so this is an upper bound: in the
browser the step controls live in an ``st.fragment`` and only it reruns.
Target: median under 100 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402


def main(repeats: int = 60) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "1_Convolution.py"), default_timeout=60)
    at.run()
    at.number_input(key="conv_x_rows").set_value(16).run()
    at.number_input(key="conv_x_cols").set_value(16).run()
    at.selectbox(key="conv_x_preset").select("Random integers").run()
    at.selectbox(key="conv_padding").select("same").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.table[0].value.shape == (16, 16), at.table[0].value.shape
    for _ in range(3):  # warm-up
        at.button(key="conv_next").click().run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.button(key="conv_next").click().run()
        times.append((time.perf_counter() - start) * 1000)
    assert not at.exception
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"Convolution page, 16x16 input, 3x3 kernel, 'same' padding: {repeats} Next clicks "
          f"(full-script AppTest reruns), now at window {at.slider(key='conv_step').value} of 256")
    print(f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, min {times[0]:.1f} ms, max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
