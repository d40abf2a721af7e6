"""The convolution pages' step-throughs: every window position as one browser-side animation.

* :func:`conv_animation` / :func:`stacked_animation` — every window position as one Plotly
  figure whose frames step in the browser (slider, Play / Pause / Reset), cached per
  input (:class:`Animation`, built and measured by :func:`build_animation`).
* :func:`speed_picker` — the Play speed; :func:`show_animation` places a step-through with a line on what was sent;
  :func:`count_server_run` counts the server's runs of the page (the browser tests read it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

PLAY_SPEEDS = (0.5, 1.0, 2.0, 4.0)
"""Play speeds offered, window positions per second."""

LARGE_FIGURE_BYTES = 500_000
"""An animation larger than this gets a note on the page saying how much is sent to the browser."""


@dataclass(frozen=True)
class Animation:
    """A step-through figure and what the page says about it.

    Attributes:
        figure: the Plotly figure with one animation frame per window position.
        positions: number of window positions (frames).
        size_bytes: the figure's JSON size, as sent to the browser (bytes).
        build_s: server time to compute the positions and build the figure (seconds).
        result: the finished output the figure steps to, when the page shows it from here (else None).
    """

    figure: object
    positions: int
    size_bytes: int
    build_s: float
    result: np.ndarray | None = None


def build_animation(build) -> Animation:
    """Run ``build() -> (figure, positions)`` and time it and measure the figure as sent (for :class:`Animation`)."""
    import plotly.io as pio

    start = time.perf_counter()
    fig, positions = build()
    size = len(pio.to_json(fig, validate=False).encode("utf-8"))
    return Animation(fig, positions, size, time.perf_counter() - start)


@st.cache_resource(show_spinner="Preparing every window position…", max_entries=32)
def conv_animation(x: np.ndarray, kernel: np.ndarray, strides: int, padding, dilation_rate: int, bias: float,
                   flip_kernel: bool, show_numbers: bool, steps_per_second: float) -> Animation:
    """Every window position of a 2-D convolution as one browser-side animation, cached per input and settings.

    One object per distinct input is shared by every session (``st.cache_resource``); pages never change it.

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)`` as the user gave it.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        bias: added to every sum.
        flip_kernel: true convolution (the kernel flipped) instead of cross-correlation.
        show_numbers: write the values in the input and output cells.
        steps_per_second: Play's speed (window positions per second).

    Returns:
        :class:`Animation` of :func:`convviz.figures.conv_steps_figure`.

    Raises:
        ValueError: as :func:`convviz.ops.conv2d_steps` (e.g. a kernel larger than the padded input).
    """
    from convviz.figures import conv_steps_figure
    from convviz.geometry import padding_2d
    from convviz.ops import conv2d_steps

    def build():
        steps = conv2d_steps(x, kernel, strides, padding, dilation_rate, bias, flip_kernel=flip_kernel)
        pads = padding_2d(x.shape, kernel.shape, strides, padding, dilation_rate)
        title = "Kernel (flipped)" if flip_kernel else "Kernel"
        return conv_steps_figure(x, pads, steps, show_numbers, title, steps_per_second), len(steps)

    return build_animation(build)


@st.cache_resource(show_spinner="Preparing every window position…", max_entries=32)
def stacked_animation(x: np.ndarray, kernel: np.ndarray, out_map: np.ndarray, channels: tuple[int, ...],
                      depthwise: bool, steps_per_second: float) -> Animation:
    """The stacked-channels window positions as one browser-side animation, cached per input and settings.

    Args:
        x: ``(height, width, channels)``.
        kernel: ``(kh, kw, channels)``.
        out_map: ``(h_out, w_out)``, the map drawn filling in.
        channels: indices of the channels drawn.
        depthwise: the sums are kept apart (depthwise convolution).
        steps_per_second: Play's speed.

    Returns:
        :class:`Animation` of :func:`convviz.figures.stacked_steps_figure`.
    """
    from convviz.figures import stacked_steps_figure
    from convviz.ops import conv2d_steps

    def build():
        steps = conv2d_steps(x, kernel)
        return stacked_steps_figure(x, kernel, steps, out_map, list(channels), depthwise, steps_per_second), len(steps)

    return build_animation(build)


def speed_picker(prefix: str) -> float:
    """The Play speed, window positions per second (widget key ``{prefix}_speed``)."""
    return float(st.select_slider("Play speed (steps/s)", PLAY_SPEEDS, value=2.0, key=f"{prefix}_speed",
                                  help="How fast ▶ Play moves the window. Changing it rebuilds the animation "
                                       "(back to position 1)."))


def show_animation(animation: Animation, key: str, prefix: str, note: bool = True,
                   what: str = "window positions") -> None:
    """Place the step-through figure, then a line on what was sent and how often the server ran this page.

    Args:
        animation: from :func:`conv_animation` or :func:`stacked_animation`.
        key: the chart's widget key (browser tests find it as ``.st-key-<key>``).
        prefix: the page's prefix for :func:`count_server_run` (e.g. ``"conv"``).
        note: write the line (False: the figure alone, e.g. one of two side by side).
        what: what a step is, in the line (``"All 9 window positions are in your browser"``).
    """
    st.plotly_chart(animation.figure, key=key, width="stretch", config={"displayModeBar": False})
    if not note:
        return
    kb = animation.size_bytes / 1000
    runs = st.session_state.get(f"_{prefix}_server_runs", 0)
    text = (f"All {animation.positions} {what} are in your browser ({kb:,.0f} kB): the slider and Play "
            f"move between them without asking the server. Server runs of this page for you: {runs} "
            "(one each time you change the input, the kernel or a setting).")
    if animation.size_bytes > LARGE_FIGURE_BYTES:
        st.info(f"This input has many {what}, so the animation is large and may take a moment to arrive "
                f"on a slow connection; a smaller input or a larger stride sends less. {text}")
    else:
        st.caption(text)


def count_server_run(prefix: str) -> int:
    """Count this run of the page's script for this session; :func:`show_animation` writes the count on the page.

    Kept under the non-widget key ``_{prefix}_server_runs`` of ``st.session_state``. Browser tests read the
    number to check that stepping and Play never rerun the page.

    Returns:
        How many times the server has run this page for this session, this run included.
    """
    key = f"_{prefix}_server_runs"
    st.session_state[key] = st.session_state.get(key, 0) + 1
    return st.session_state[key]
