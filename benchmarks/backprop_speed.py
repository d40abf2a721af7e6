"""What the Backpropagation page costs the server: the "Learn a kernel" steps, the records, the figures.

Not a test: run ``python benchmarks/backprop_speed.py [repeats]`` from the repository root.

Prints, medians over ``repeats`` runs:

* ``fit_50_steps_ms``: 50 gradient-descent steps of :class:`convviz.descent.KernelFit` (numpy, on the
  server) on 1 and on 8 digits of the bundled sample, 3×3 Sobel x target: the issue asks for well under a
  second per 50 steps;
* the demo from its defaults (test digit #0, Sobel x, η 0.5, momentum 0.9, seed 0): the step at which
  ``max |K − K*|`` first reaches 1e-3, its value there, and after 500 steps;
* ``records_ms`` / ``figures_kB``: :func:`convviz.backprop.conv2d_backward_steps` and the three step-through
  figures (dK, scatter, gather) for the seed's 5×5 example and for the page's largest case (12×12 input,
  5×5 kernel, padding 2: 16×16 windows).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.io as pio  # noqa: E402

from convviz.backprop import conv2d_backward_steps  # noqa: E402
from convviz.descent import KernelFit  # noqa: E402
from convviz.data import load_sample  # noqa: E402
from convviz.figures_backprop import gather_figure, kernel_grad_figure, scatter_figure  # noqa: E402
from convviz.geometry import conv_geometry  # noqa: E402
from convviz.examples import NOTEBOOK_INPUT, NOTEBOOK_KERNEL, kernel_preset  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(repeats: int = 7) -> None:
    digits = load_sample()[1][0] / 255.0
    sobel = kernel_preset("Sobel x")
    for count in (1, 8):
        fits = iter([KernelFit(digits[:count], sobel) for _ in range(repeats)])
        print(f"fit_50_steps_ms ({count} digit{'s' if count > 1 else ''}): "
              f"{median_ms(lambda: next(fits).run(50), repeats):.2f}")
    fit = KernelFit(digits[0], sobel)
    fit.run(500)
    print(f"demo defaults: max |K - K*| <= 1e-3 first at step {fit.reached_at} "
          f"({fit.errors[fit.reached_at]:.2g}); after 500 steps {fit.error:.2g}, loss {fit.losses[-1]:.2g}")
    rng = np.random.default_rng(0)
    cases = (("seed 5x5, 3x3, valid", NOTEBOOK_INPUT, NOTEBOOK_KERNEL, 0),
             ("12x12, 5x5, padding 2", rng.random((12, 12)).round(2), rng.random((5, 5)).round(2), 2))
    for name, x, k, padding in cases:
        grad = rng.random(conv_geometry(x.shape, k.shape, 1, padding)[3]).round(2)
        records = median_ms(lambda: conv2d_backward_steps(x, k, grad, 1, padding), repeats)
        back = conv2d_backward_steps(x, k, grad, 1, padding)
        sizes = [len(pio.to_json(build(back, max(x.shape) <= 10), validate=False)) / 1000
                 for build in (kernel_grad_figure, scatter_figure, gather_figure)]
        build_ms = median_ms(lambda: [build(back) for build in (kernel_grad_figure, scatter_figure, gather_figure)],
                             max(1, repeats // 3))
        print(f"{name}: records_ms={records:.1f} figures_build_ms={build_ms:.0f} "
              f"figures_kB dK={sizes[0]:.0f} scatter={sizes[1]:.0f} gather={sizes[2]:.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
