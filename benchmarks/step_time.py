"""What the server does for the Convolution page's step-through, now that stepping plays in the browser.

Not a test: run ``python benchmarks/step_time.py [repeats] [--transposed]`` from the repository root.

Stepping (the slider, Play) is plotly.js animating the frames of one figure in the
browser: it costs the server nothing (the browser test
``tests/e2e/test_pages.py::test_convolution_steps_in_the_browser_without_a_server_run`` checks that no
script run happens). What the server still does is build that figure once per input, kernel and
setting. For a 5×5, a 16×16 and a 28×28 input (3×3 kernel, 'same' padding except 5×5 'valid'; random
integers, a new draw each time so the page's figure cache misses) this prints:

* ``positions``: window positions, one animation frame each;
* ``figure_kB``: the figure's JSON as sent to the browser;
* ``rerun_ms``: the server time of a whole page run after an input change (AppTest ``Reload`` of the
  random preset: the new input, its positions, the figure, the table, the TensorFlow check), median and
  p95 over ``repeats`` runs;
* ``build_ms``: of that, computing the positions and building the figure (the page's own figure, from
  its cache entry), median.

Then the same for the page's Transposed mode (``--transposed`` only that): one step per input cell, 3x3
kernel, stride 1 and stride 2 ('valid'); the figure's frames carry the band of output rows the current input
row reaches.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

CASES = ((5, "valid"), (16, "same"), (28, "same"))
TRANSPOSED_CASES = ((5, 1), (16, 1), (28, 1), (5, 2), (16, 2), (28, 2))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def time_reloads(at: AppTest, repeats: int, animation_of) -> dict:
    """Click the input's Reload ``repeats + 1`` times (the first warms up); ``animation_of(at)`` -> the page's
    ``Animation`` from its cache entry. Returns the figure's size, the rerun and build times and the last run's
    page text (captions and infos, markdown)."""
    rerun_ms, build_ms, sizes = [], [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        at.button(key="conv_x_reload").click().run()
        elapsed = (time.perf_counter() - start) * 1000
        assert not at.exception, [e.value for e in at.exception]
        animation = animation_of(at)
        rerun_ms.append(elapsed)
        build_ms.append(animation.build_s * 1000)
        sizes.append(animation.size_bytes)
    rerun_ms, build_ms = rerun_ms[1:], build_ms[1:]
    note = next(c.value for c in list(at.caption) + list(at.info) if "are in your browser" in c.value)
    return {"positions": int(re.search(r"All (\d+) ", note).group(1)), "figure_kB": statistics.median(sizes) / 1000,
            "rerun_p50": statistics.median(rerun_ms), "rerun_p95": percentile(rerun_ms, 95),
            "build_p50": statistics.median(build_ms), "markdown": [m.value for m in at.markdown]}


def page(size: int, transposed: bool = False) -> AppTest:
    """The Convolution page with a ``size`` x ``size`` random-integer input (in the Transposed mode if asked)."""
    at = AppTest.from_file(str(ROOT / "app_pages" / "1_Convolution.py"), default_timeout=120)
    at.run()
    if transposed:
        at.radio(key="conv_direction").set_value("Transposed").run()
    at.number_input(key="conv_x_rows").set_value(size).run()
    at.number_input(key="conv_x_cols").set_value(size).run()
    at.selectbox(key="conv_x_preset").select("Random integers").run()
    return at


def measure(size: int, padding: str, repeats: int) -> dict:
    from convviz.ui.animations import conv_animation

    at = page(size)
    at.selectbox(key="conv_padding").select(padding).run()
    assert not at.exception, [e.value for e in at.exception]
    return time_reloads(at, repeats, lambda at: conv_animation(
        at.session_state["conv_x_current"], at.session_state["conv_k_current"], 1, padding, 1, 0.0, False,
        size <= 16, 2.0))


def measure_transposed(size: int, strides: int, repeats: int) -> dict:
    from convviz.ui.transposed import transposed_animation

    at = page(size, transposed=True)
    at.slider(key="conv_stride").set_value(strides).run()
    assert not at.exception and not at.error, [e.value for e in list(at.exception) + list(at.error)]
    r = time_reloads(at, repeats, lambda at: transposed_animation(
        at.session_state["conv_x_current"], at.session_state["conv_k_current"], strides, "valid", 1, 0, size <= 16,
        2.0))
    out = next(m for m in r["markdown"] if m.startswith("**The finished output**"))
    return r | {"output": re.search(r"\((\d+×\d+)", out).group(1)}


def main(repeats: int = 10, transposed_only: bool = False) -> None:
    if not transposed_only:
        forward(repeats)
    print(f"Convolution page, Transposed mode: server work per input change ({repeats} changes each)")
    for size, strides in TRANSPOSED_CASES:
        r = measure_transposed(size, strides, repeats)
        print(f"{size}x{size} input, 3x3 kernel, stride {strides}: steps={r['positions']} output={r['output']} "
              f"figure_kB={r['figure_kB']:.0f} rerun_ms p50={r['rerun_p50']:.0f} p95={r['rerun_p95']:.0f} "
              f"build_ms p50={r['build_p50']:.0f}")


def forward(repeats: int) -> None:
    print(f"Convolution page: server work per input change ({repeats} changes each; stepping itself costs the "
          "server nothing)")
    for size, padding in CASES:
        r = measure(size, padding, repeats)
        print(f"{size}x{size} input, 3x3 kernel, '{padding}': positions={r['positions']} "
              f"figure_kB={r['figure_kB']:.0f} rerun_ms p50={r['rerun_p50']:.0f} p95={r['rerun_p95']:.0f} "
              f"build_ms p50={r['build_p50']:.0f}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--transposed"]
    main(int(args[0]) if args else 10, transposed_only="--transposed" in sys.argv[1:])
