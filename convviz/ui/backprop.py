"""Streamlit glue of the Backpropagation page.

* :func:`backprop_animations` — the ``dK`` / scatter / gather step-throughs, each one Plotly figure whose
  frames step in the browser (the Convolution page's machinery), cached per input and settings.
* :func:`loss_panel`, :func:`bias_line`, :func:`tf_check` — the loss and ``grad_output``, ``db`` written out,
  and the line comparing every gradient with TensorFlow's.
* :func:`descent_panel` — one gradient-descent step: the kernel before, ``−η·dK``, after, the loss before / after.
* :func:`pool_relu_panel` — 2×2 max pooling's and ReLU's backward on a 4×4 map.
* :func:`learn_kernel_demo` — gradient descent learning a kernel back, stepped on the server in a fragment.

Session state (besides the widgets' own keys, all prefixed ``bp_``): ``_bp_server_runs`` (the page's runs,
:func:`convviz.ui.animations.count_server_run`), ``_bp_fit`` (the demo's :class:`convviz.descent.KernelFit`),
``_bp_fit_settings`` (the valid settings it was built from), ``_bp_fit_steps`` (the valid Steps value),
``_bp_fit_goal`` (the step Play runs to; None when stopped), ``_bp_pool_seed`` (the pooling example: 0 the
built-in one).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.backprop import ConvBackward, max_pool_backward, relu_backward
from convviz.descent import MAX_FIT_STEPS, KernelFit, check_learning_rate, descent_step
from convviz.figures import format_number, matrix_figure
from convviz.ui.animations import Animation, build_animation
from convviz.ui.numbers import number_input

TICK_S = 0.3
"""Seconds between two refreshes of the demo while it plays."""

STEPS_PER_TICK = 20
"""Gradient-descent steps the demo takes per refresh (about 1 ms of numpy on one digit)."""

MAX_DIGITS = 8
"""Most digits the demo learns from at once."""

_CHART = {"displayModeBar": False}


# --------------------------------------------------------------------------- where the page starts
INPUT_LIMIT, KERNEL_LIMIT = 12, 5
"""Largest input and kernel sides on this page (every window, input cell and step is a frame)."""


def _usable(values, limit: int) -> np.ndarray | None:
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    ok = values.ndim == 2 and 1 <= min(values.shape) and max(values.shape) <= limit and np.isfinite(values).all()
    return values.copy() if ok else None


def starting_matrices(default_input: np.ndarray, default_kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input and kernel the page starts from: the Convolution page's, if this session edited them there.

    Reads ``conv_x_current`` / ``conv_k_current`` (the Convolution page's editors); a matrix that is missing,
    has a bad cell or is larger than :data:`INPUT_LIMIT` / :data:`KERNEL_LIMIT` falls back to the default.
    Only the first visit uses them: afterwards the page's own editors keep the learner's edits.

    Returns:
        ``(input, kernel)``, float64.
    """
    ss = st.session_state
    x = _usable(ss.get("conv_x_current"), INPUT_LIMIT)
    k = _usable(ss.get("conv_k_current"), KERNEL_LIMIT)
    if x is None or k is None or k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        return default_input.copy(), default_kernel.copy()
    return x, k


# --------------------------------------------------------------------------- the step-throughs
@st.cache_resource(show_spinner="Preparing every step…", max_entries=32)
def backprop_animations(x: np.ndarray, kernel: np.ndarray, grad_output: np.ndarray, strides: int, padding,
                        dilation_rate: int, show_numbers: bool, steps_per_second: float) -> dict[str, Animation]:
    """The three step-throughs of a convolution's backward pass, cached per input and settings (shared by sessions).

    Args:
        x: ``(height, width)``.
        kernel: ``(kernel_height, kernel_width)``.
        grad_output: ``(h_out, w_out)``.
        strides, dilation_rate: ints >= 1.
        padding: ``"valid"``, ``"same"`` or an int >= 0.
        show_numbers: write the values in the input-sized cells.
        steps_per_second: Play's speed.

    Returns:
        ``{"dk": …, "scatter": …, "gather": …}``: :class:`convviz.ui.animations.Animation` of
        :func:`convviz.figures_backprop.kernel_grad_figure`, :func:`~convviz.figures_backprop.scatter_figure` and
        :func:`~convviz.figures_backprop.gather_figure`.

    Raises:
        ValueError: as :func:`convviz.backprop.conv2d_backward_steps`.
    """
    from convviz.backprop import conv2d_backward_steps
    from convviz.figures_backprop import gather_figure, kernel_grad_figure, scatter_figure

    back = conv2d_backward_steps(x, kernel, grad_output, strides, padding, dilation_rate)
    return {
        "dk": build_animation(lambda: (kernel_grad_figure(back, show_numbers, steps_per_second),
                                       len(back.kernel_steps))),
        "scatter": build_animation(lambda: (scatter_figure(back, show_numbers, steps_per_second),
                                            len(back.scatter_steps))),
        "gather": build_animation(lambda: (gather_figure(back, show_numbers, steps_per_second),
                                           len(back.gather_steps[0]))),
    }


def _matrices(*items: tuple[np.ndarray, str, bool], height: int = 230, keys: tuple[str, ...]) -> None:
    """Small matrix figures side by side: ``(values, title, signed)`` each, one column each."""
    for column, (values, title, signed), key in zip(st.columns(len(items)), items, keys):
        column.plotly_chart(matrix_figure(values, title, signed=signed, height=height), key=key, config=_CHART)


def _terms(values: np.ndarray) -> list[str]:
    return [f"({format_number(v)})" if v < 0 else format_number(v) for v in np.ravel(values)]


def _sum_text(terms: list[str], limit: int = 18) -> str:
    """``a + b + …`` for Markdown; past ``limit`` terms the middle ones are counted, not written."""
    if len(terms) <= limit:
        return " + ".join(terms)
    return " + ".join(terms[:limit - 3]) + f" + … ({len(terms) - limit + 1} more terms) + " + " + ".join(terms[-2:])


def loss_panel(output: np.ndarray, bias: float, loss: float, grad_output: np.ndarray,
               target: np.ndarray | None) -> None:
    """The forward output, the target (for the mean squared error) and ``grad_output``, with the loss written out.

    Args:
        output: ``y = x ⊛ K + b``, ``(h_out, w_out)``.
        bias: ``b``.
        loss: the loss's value.
        grad_output: ``dL/dy``.
        target: the target map, or None when ``grad_output`` was typed in.
    """
    n = output.size
    y_title = "Output y = x ⊛ K" + (f" + {format_number(bias)}" if bias else "")
    if target is not None:
        _matrices((output, y_title, False), (target, "Target t", False),
                  (grad_output, "grad_output = 2(y − t)/N", True), keys=("bp_fig_y", "bp_fig_t", "bp_fig_g"))
        squares = [f"{format_number(d)}²" if d >= 0 else f"({format_number(d)})²" for d in np.ravel(output - target)]
        st.markdown(f"**Loss**: mean squared error, L = mean((y − t)²) = ({_sum_text(squares)}) / {n}"
                    f" = **{format_number(loss, 4)}**. Its gradient with respect to each output cell is "
                    f"**grad_output = dL/dy = 2(y − t)/{n}**: that is what flows back into the convolution.")
    else:
        _matrices((output, y_title, False), (grad_output, "grad_output (typed in)", True),
                  keys=("bp_fig_y", "bp_fig_g"))
        st.markdown(f"**grad_output typed in.** Any grad_output is the gradient of the loss L = Σ grad_output · y "
                    f"(here L = **{format_number(loss, 4)}**), so the steps below and the descent step use that loss.")


def show_steps(animations: dict[str, Animation], prefix: str) -> None:
    """``dK`` full width, then scatter and gather side by side, each under its heading."""
    from convviz.ui.animations import show_animation

    st.markdown("#### 1 · The kernel gradient dK: each window adds grad_output · patch")
    st.caption("dK[a, b] = Σ over windows of grad_output[i, j] · (the input under tap (a, b)). Orange: one weight "
               "followed; the title writes its sum out, one term per window.")
    show_animation(animations["dk"], f"{prefix}_fig_dk", prefix)
    st.markdown("#### 2 · The input gradient dX, two ways")
    scatter, gather = st.columns(2, gap="medium")
    with scatter:
        st.markdown("**Scatter**: each output cell sends grad_output · kernel back onto the cells its window "
                    "covered; what lands on padding is dropped.")
        show_animation(animations["scatter"], f"{prefix}_fig_scatter", prefix, note=False)
    with gather:
        st.markdown("**Gather**: each input cell is a sum: grad_output spread by the stride and padded, "
                    "correlated with the **flipped** kernel (the convolution's transpose).")
        show_animation(animations["gather"], f"{prefix}_fig_gather", prefix, note=False)
    st.caption("Both give the same dX (the last scatter frame's total is the finished gather map). Dumoulin & Visin, "
               "*A guide to convolution arithmetic for deep learning* (2016), section 4: transposed convolution.")


def bias_line(grad_output: np.ndarray) -> None:
    """``db = Σ grad_output`` written out with its numbers."""
    st.markdown("#### 3 · The bias gradient db")
    total = format_number(float(np.sum(grad_output)), 4)
    st.markdown(f"The bias is added to every output cell, so db = Σ grad_output = "
                f"{_sum_text(_terms(grad_output))} = **{total}**")


@st.cache_data(show_spinner="Checking against TensorFlow…", max_entries=64)
def tf_gradients(x: np.ndarray, kernel: np.ndarray, grad_output: np.ndarray, strides: tuple, pads: tuple,
                 dilation_rate: tuple) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`convviz.tf_reference.conv_gradients` (TensorFlow imported on first use), cached per input."""
    from convviz.ui.resources import get_tensorflow

    get_tensorflow()
    from convviz.tf_reference import conv_gradients

    return conv_gradients(x, kernel, grad_output, strides, pads, dilation_rate)


def tf_check(back: ConvBackward) -> None:
    """One line: every gradient against ``tf.GradientTape`` on ``tf.nn.convolution``, with the max absolute difference.

    Equal means within ``1e-9 × max(1, the largest |gradient|)``: both sides compute in float64, whose rounding
    grows with the numbers (the editor allows cells up to :data:`convviz.ui.matrix_editor.MAX_CELL`).
    """
    dx, dk, db = tf_gradients(back.x, back.kernel, back.grad_output, back.strides, back.pads, back.dilation_rate)
    diffs = {"dK": float(np.abs(back.grad_kernel - dk).max()),
             "dX (gather)": float(np.abs(back.grad_input - dx).max()),
             "dX (scatter)": float(np.abs(back.scatter_steps[-1].total - dx).max()),
             "db": abs(back.grad_bias - db)}
    worst = max(diffs.values())
    detail = ", ".join(f"{name} {value:.2g}" for name, value in diffs.items())
    # float64 on both sides: equal up to rounding, which grows with the gradients' size (cells may reach 1e9)
    scale = max(1.0, float(np.abs(dk).max()), float(np.abs(dx).max()), abs(float(db)))
    if scale > 1.0:
        detail += f"; the largest gradient is {scale:.2g}, so up to {1e-9 * scale:.2g} is rounding"
    if worst <= 1e-9 * scale:
        st.success(f"Every gradient equals TensorFlow's (`tf.GradientTape` on `tf.nn.convolution`): "
                   f"max absolute difference {worst:.2g} ({detail}).", icon=":material/check_circle:")
    else:
        st.error(f"A gradient differs from TensorFlow's (`tf.GradientTape` on `tf.nn.convolution`): "
                 f"max absolute difference {worst:.2g} ({detail}).", icon=":material/error:")


# --------------------------------------------------------------------------- one step of gradient descent
def descent_panel(x: np.ndarray, kernel: np.ndarray, bias: float, loss, strides: int, padding,
                  dilation_rate: int) -> None:
    """The learning-rate box and one gradient-descent step on the kernel and the bias.

    Widget key: ``bp_lr``. A bad learning rate (blank, ≤ 0, above the maximum) gives a warning here only.

    Args:
        x, kernel, bias, strides, padding, dilation_rate: the page's convolution.
        loss: ``output -> (loss, grad_output)``.
    """
    st.markdown("#### 4 · One step of gradient descent: K ← K − η·dK, b ← b − η·db")
    left, right = st.columns([1, 3], vertical_alignment="center")
    rate = number_input(left, "Learning rate η", value=0.05, step=0.01, format="%g", key="bp_lr",
                        help="Try 0.05 (the loss goes down), then 0.5 (the step overshoots and the loss "
                             "goes up).")
    right.caption("A small η moves the kernel a little way down the slope and the loss falls; too large an η "
                  "jumps past the valley and the loss rises.")
    try:
        check_learning_rate(rate)
    except ValueError as exc:
        st.warning(f"Learning rate: {exc}. Type a number above 0 and at most 100; nothing else changed.")
        return
    step = descent_step(x, kernel, bias, rate, loss, strides, padding, dilation_rate)
    eta = f"{step.learning_rate:.4g}"  # 4 significant digits: 1e-20 is "1e-20", never "0"
    _matrices((step.kernel_before, "Kernel before", True), (step.update, f"−η·dK (η = {eta})", True),
              (step.kernel_after, "Kernel after", True), height=220,
              keys=("bp_fig_k_before", "bp_fig_update", "bp_fig_k_after"))
    st.markdown(f"Bias: {format_number(step.bias_before, 4)} − {eta} · {format_number(step.grad_bias, 4)} = "
                f"**{format_number(step.bias_after, 4)}**. Loss before the step **{format_number(step.loss_before, 4)}**,"
                f" after it **{format_number(step.loss_after, 4)}**.")
    if step.unchanged:
        st.info(f"η = {eta} is too small to change the loss at this precision: it stayed "
                f"{format_number(step.loss_before, 4)} (float64 keeps about 16 significant digits). Try a larger η.")
    elif step.went_down:
        st.success(f"The loss went down by {format_number(step.loss_before - step.loss_after, 4)} with η = {eta}.")
    else:
        st.warning(f"η = {eta} is too large here: the loss went **up** from {format_number(step.loss_before, 4)} to "
                   f"{format_number(step.loss_after, 4)} — the step overshot the minimum. Try a smaller η.")


# --------------------------------------------------------------------------- pooling and ReLU
def pool_relu_panel(steps_per_second: float) -> None:
    """2×2 max pooling's and ReLU's backward passes on a 4×4 map (buttons ``bp_pool_new`` and ``bp_pool_ties``)."""
    from convviz.figures_backprop import pool_backward_figure, relu_backward_figure
    from convviz.examples import pool_example

    ss = st.session_state
    st.markdown("#### 5 · Max pooling and ReLU, backwards")
    left, mid, _ = st.columns([1, 1, 3])
    if left.button("New example", key="bp_pool_new", help="A random 4×4 map (integers from −3 to 4)."):
        ss["_bp_pool_seed"] = ss.get("_bp_pool_seed", 0) + 1
    if mid.button("The example with ties", key="bp_pool_ties"):
        ss["_bp_pool_seed"] = 0
    z, grad_pooled = pool_example(ss.get("_bp_pool_seed", 0))
    relu_out = np.maximum(z, 0.0)
    pool = max_pool_backward(relu_out, grad_pooled)
    relu = relu_backward(z, pool.grad_input)
    st.caption("z → ReLU → 2×2 max pooling. Backwards, each pooling window sends its gradient to its maximum "
               "(ties: the first in row-major order, as TensorFlow does), then ReLU lets it through only where z > 0.")
    st.plotly_chart(pool_backward_figure(pool, steps_per_second / 2), key="bp_fig_pool", width="stretch",
                    config=_CHART)
    st.plotly_chart(relu_backward_figure(relu), key="bp_fig_relu", width="stretch", config=_CHART)


# --------------------------------------------------------------------------- learning a kernel
def _fit_settings() -> tuple[dict | None, int | None, list[str]]:
    """The demo's widgets: ``(settings, steps, problems)``; settings None when one is bad (problems say why)."""
    from convviz.examples import FIT_TARGETS

    c1, c2, c3, c4 = st.columns(4)
    target = c1.selectbox("Target kernel", FIT_TARGETS, key="bp_fit_target")
    digits = number_input(c2, "Digits", 1, MAX_DIGITS, 1, key="bp_fit_digits",
                          help="How many test digits of the bundled sample to learn from.")
    first = number_input(c3, "First test digit", 0, 999, 0, key="bp_fit_first")
    seed = number_input(c4, "Seed of the starting kernel", 0, 1_000_000, 0, key="bp_fit_seed")
    c5, c6, c7, _ = st.columns(4)
    rate = number_input(c5, "Learning rate η ", value=0.5, step=0.05, format="%g", key="bp_fit_lr")
    momentum = c6.slider("Momentum", 0.0, 0.99, 0.9, 0.01, key="bp_fit_momentum",
                         help="0 is plain gradient descent: much slower here (see the caption below).")
    steps = number_input(c7, "Steps", value=500, step=50, key="bp_fit_steps",
                         help=f"How many gradient-descent steps Play runs (1 to {MAX_FIT_STEPS}).")
    problems = []
    try:
        check_learning_rate(rate)
    except ValueError as exc:
        problems.append(f"Learning rate: {exc}.")
    if steps is None or not 1 <= steps <= MAX_FIT_STEPS or steps != int(steps):
        problems.append(f"Steps must be a whole number from 1 to {MAX_FIT_STEPS}, got {steps!r}.")
    if problems:
        return None, None, problems
    return ({"target": target, "digits": int(digits), "first": int(first), "seed": int(seed), "rate": float(rate),
             "momentum": float(momentum)}, int(steps), [])


def _new_fit(settings: dict) -> KernelFit:
    from convviz.examples import fit_target_kernel
    from convviz.ui.resources import get_sample

    x_test = get_sample()[1][0]
    first = min(settings["first"], len(x_test) - settings["digits"])
    images = x_test[first:first + settings["digits"]] / 255.0
    return KernelFit(images, fit_target_kernel(settings["target"], settings["seed"]), settings["rate"],
                     settings["momentum"], settings["seed"])


def _play() -> None:
    ss = st.session_state
    fit, goal = ss["_bp_fit"], ss["_bp_fit_steps"]
    if fit.steps >= goal or fit.diverged:  # Play at the end starts again
        ss["_bp_fit"] = _new_fit(ss["_bp_fit_settings"])
    ss["_bp_fit_goal"] = goal


def _stop() -> None:
    st.session_state["_bp_fit_goal"] = None


def _to_the_end() -> None:
    ss = st.session_state
    fit, goal = ss["_bp_fit"], ss["_bp_fit_steps"]
    ss["_bp_fit_goal"] = None
    if fit.steps < goal and not fit.diverged:
        fit.run(goal - fit.steps)


def _reset() -> None:
    ss = st.session_state
    ss["_bp_fit"] = _new_fit(ss["_bp_fit_settings"])
    ss["_bp_fit_goal"] = None


def _fit_status(fit: KernelFit) -> None:
    """What the demo has reached: the learned kernel's max distance to the target, and when it passed 1e-3."""
    tol = f"{fit.tolerance:g}"
    if fit.diverged:
        st.error(f"The loss blew up at step {fit.steps} (η = {fit.learning_rate:g} is too large for this input): "
                 "lower η, then press Reset.")
    elif fit.reached_at is not None:
        st.success(f"Learned: max |K − K*| = {fit.errors[fit.reached_at]:.2g} ≤ {tol} at step "
                   f"**{fit.reached_at}**; now {fit.error:.2g} after {fit.steps} steps (loss {fit.losses[-1]:.2g}).",
                   icon=":material/check_circle:")
    else:
        st.info(f"Step {fit.steps}: max |K − K*| = {fit.error:.3g} (learned when ≤ {tol}); "
                f"loss {fit.losses[-1]:.3g}.")


def _fit_view(fit: KernelFit) -> None:
    from convviz.figures_backprop import fit_curves_figure

    _fit_status(fit)
    left, mid, right = st.columns([1, 1, 2])
    left.plotly_chart(matrix_figure(fit.kernel, f"Learned kernel (step {fit.steps})", signed=True, height=250),
                      key="bp_fit_fig_learned", config=_CHART)
    mid.plotly_chart(matrix_figure(fit.target_kernel, "Target kernel K*", signed=True, height=250),
                     key="bp_fit_fig_target", config=_CHART)
    right.plotly_chart(fit_curves_figure(fit.losses, fit.errors, fit.tolerance, fit.reached_at),
                       key="bp_fit_fig_curves", config=_CHART)
    bound = float(np.abs(fit.target_output[0]).max()) or 1.0
    a, b, c = st.columns(3)
    a.plotly_chart(matrix_figure(fit.images[0], "Input: the first digit", show_numbers=False, height=260),
                   key="bp_fit_fig_input", config=_CHART)
    with np.errstate(over="ignore", invalid="ignore"):
        learned = np.clip(fit.output()[0], -bound, bound)  # a diverged kernel's NaN cells are left blank
    b.plotly_chart(matrix_figure(learned, "Output of the learned kernel", signed=True, show_numbers=False,
                                 height=260), key="bp_fit_fig_output", config=_CHART)
    c.plotly_chart(matrix_figure(fit.target_output[0], "Target output (digit ⊛ K*)", signed=True,
                                 show_numbers=False, height=260), key="bp_fit_fig_target_output", config=_CHART)


def learn_kernel_demo() -> None:
    """The "Learn a kernel" demo: gradient descent recovers a known kernel from its outputs, live, on the server.

    Widget keys ``bp_fit_*``; Play / Stop, "Run to the end" and Reset. While it plays, a fragment refreshes every
    :data:`TICK_S` seconds and takes :data:`STEPS_PER_TICK` steps (no worker, no thread: numpy in the fragment).
    """
    from convviz.ui.resources import sample_or_message

    ss = st.session_state
    st.markdown("#### 6 · Learn a kernel")
    st.caption("The target output is a digit convolved with a known kernel K*. Start from a random kernel and run "
               "gradient descent on the mean squared error between its output and the target: the kernel learns "
               "K* back. Momentum (v ← μ·v − η·dK, K ← K + v; Polyak 1964) carries it along the long, narrow valley "
               "that a smooth digit makes: with μ = 0 (plain descent) it is still 0.1 away after 500 steps.")
    sample, message = sample_or_message()
    if sample is None:
        st.info(message)
        return
    settings, steps, problems = _fit_settings()
    for problem in problems:
        st.warning(f"{problem} The demo keeps its last kernel; nothing else changed.")
    if settings is not None:
        ss["_bp_fit_steps"] = steps
        if ss.get("_bp_fit_settings") != settings or "_bp_fit" not in ss:
            ss["_bp_fit_settings"] = settings
            ss["_bp_fit"] = _new_fit(settings)
            ss["_bp_fit_goal"] = None
    if "_bp_fit" not in ss:
        return
    playing = ss.get("_bp_fit_goal") is not None
    b1, b2, b3, _ = st.columns([1, 1, 1, 3])
    if playing:
        b1.button("Stop", key="bp_fit_stop", on_click=_stop, type="primary")
    else:
        b1.button("▶ Play", key="bp_fit_play", on_click=_play, disabled=settings is None, type="primary")
    b2.button("Run to the end", key="bp_fit_end", on_click=_to_the_end, disabled=settings is None)
    b3.button("Reset", key="bp_fit_reset", on_click=_reset, disabled=settings is None)

    @st.fragment(run_every=TICK_S if playing else None)
    def live() -> None:
        fit, goal = ss["_bp_fit"], ss.get("_bp_fit_goal")
        if goal is not None:
            if fit.steps < goal and not fit.diverged:
                fit.run(min(STEPS_PER_TICK, goal - fit.steps))
            if fit.steps >= goal or fit.diverged:
                ss["_bp_fit_goal"] = None
                st.rerun(scope="app")  # the timer off, the Play button back
        _fit_view(fit)

    live()
