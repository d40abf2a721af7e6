"""Streamlit glue for the Filter atlas page: the model choice, the atlas computed once per model, the views.

The atlas itself is :mod:`convviz.atlas` (TensorFlow, no Streamlit) and its figures
:mod:`convviz.figures_atlas`; this module wires them to widgets and keeps the results:

* **On disk, per model.** A saved run's atlas is written next to its checkpoint in the learner's runs
  folder (:meth:`convviz.runs.RunStore.atlas_path`: the hidden file ``.<run id>.atlas.npz``, never listed
  as a run, deleted with the run); the shipped model's is ``.shipped.atlas.npz`` in the runs folder's root.
  Each file is written atomically and read back through :func:`convviz.atlas.load_atlas`, which checks
  it against the model: an atlas of older weights (a run trained further) or a damaged file is
  computed again and replaced, never shown.
* **In memory, per server** (``st.cache_resource``): the last :data:`KEPT_IN_MEMORY` atlases, so a page
  opened again does not even read the file.
* **Computed in the background**, one at a time per server, in a thread that makes no ``st.*`` call: a
  fragment shows its progress every half second and reruns the page when it is done, so the page's
  widgets stay usable meanwhile and two learners opening the same model share one computation.

Widget keys: ``atlas_model`` (the shipped model or a saved run), ``atlas_layer``, ``atlas_filter_<layer>``
(the filter of that layer shown whole), ``atlas_retry`` (after a failed computation). Chart keys: ``atlas_fig_patches``,
``atlas_fig_synth``, ``atlas_fig_filter``, ``atlas_fig_classes``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from convviz import figures_atlas as fa
from convviz.ui import training as tr
from convviz.ui.text import md, printable

MODEL_KEY = "atlas_model"
LAYER_KEY = "atlas_layer"
FILTER_KEY = "atlas_filter"
RETRY_KEY = "atlas_retry"
SHIPPED = "shipped"
"""The ``atlas_model`` option of the shipped model (the others are run ids)."""
SHIPPED_CACHE = ".shipped.atlas.npz"
"""The shipped model's atlas file, in the runs folder's root."""
KEPT_IN_MEMORY = 16
"""Atlases kept in the server's memory (about 1 MB each for the "fast" preset)."""
PROGRESS_EVERY_S = 0.5
_RUN_MODEL_KEY = "_atlas_run_model"
"""``st.session_state`` key: the saved run's model last loaded by this session, with its file's identity."""

_COMPUTING = threading.BoundedSemaphore(1)
"""One atlas computed at a time in this server: a second waits ("queued") rather than halving the first's speed."""


@dataclass
class Choice:
    """The model the page shows.

    Attributes:
        model: the :class:`convviz.model.ScratchCNN`.
        digest: :func:`convviz.atlas.model_digest` of it.
        description: how the page names it.
        cache_path: its atlas file.
    """

    model: object
    digest: str
    description: str
    cache_path: Path


class AtlasJob:
    """One atlas computed in a background thread (no ``st.*`` calls there).

    Attributes read by the page: ``fraction`` (0 to 1), ``message``, ``started`` (``time.monotonic()``),
    ``atlas`` (when done), ``error`` (text, when it failed), ``save_error`` (text, when the file could not
    be written), ``note`` (why it is being computed again), ``finished``.
    """

    def __init__(self, key, model, path: Path, digits, source: str, note: str | None, on_done):
        self.key, self.model, self.path, self.digits, self.source = key, model, path, digits, source
        self.note, self._on_done = note, on_done
        self.fraction, self.message = 0.0, "Waiting for another atlas to finish"
        self.started = time.monotonic()
        self.atlas = self.error = self.save_error = None
        self.finished = False
        self.thread = threading.Thread(target=self._run, name=f"convviz-atlas-{key[1][:8]}", daemon=True)

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = float(fraction), message

    def _run(self) -> None:
        from convviz.atlas import compute_atlas, save_atlas

        try:
            with _COMPUTING:
                self.started, self.message = time.monotonic(), "Starting"
                images, labels = self.digits
                atlas = compute_atlas(self.model, images, labels, self.source, progress=self._progress)
            try:
                save_atlas(atlas, self.path)
            except OSError as exc:
                self.save_error = str(exc)
            self.atlas = atlas
        except Exception as exc:  # shown on the page; the thread never dies with a traceback
            self.error = f"{type(exc).__name__}: {str(exc)[:500]}"
        finally:
            self.finished = True
            self.digits = None
            self._on_done(self)


class _Atlases:
    """This server's finished atlases (the last :data:`KEPT_IN_MEMORY`) and its computations, by key.

    A key is ``(cache file, model digest)``.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.done: OrderedDict = OrderedDict()
        self.jobs: dict = {}
        self.unsaved: dict = {}  # key -> why its file could not be written

    def unsaved_reason(self, key) -> str | None:
        """Why the atlas of ``key`` is only in memory (its file could not be written), or None."""
        with self.lock:
            return self.unsaved.get(key)

    def get(self, key):
        with self.lock:
            if key in self.done:
                self.done.move_to_end(key)
                return self.done[key]
            return None

    def put(self, key, atlas) -> None:
        with self.lock:
            self.done[key] = atlas
            self.done.move_to_end(key)
            while len(self.done) > KEPT_IN_MEMORY:
                self.done.popitem(last=False)

    def job(self, key) -> AtlasJob | None:
        with self.lock:
            return self.jobs.get(key)

    def start(self, key, model, path, digits, source, note) -> AtlasJob:
        """The computation for ``key``: the one under way, or a new one started now."""
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                job = self.jobs[key] = AtlasJob(key, model, path, digits, source, note, self._finished)
                job.thread.start()
            return job

    def _finished(self, job: AtlasJob) -> None:
        if job.atlas is not None:
            self.put(job.key, job.atlas)
            with self.lock:
                self.jobs.pop(job.key, None)
                if job.save_error:
                    self.unsaved[job.key] = job.save_error
                else:
                    self.unsaved.pop(job.key, None)

    def forget(self, key) -> None:
        """Drop a failed computation, so that the next page run starts it again."""
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and job.finished:
                del self.jobs[key]


@st.cache_resource
def atlases() -> _Atlases:
    """This server's :class:`_Atlases` (shared by every session)."""
    return _Atlases()


# --------------------------------------------------------------------------------------------- the model
@st.cache_resource(show_spinner=False)
def _shipped_digest() -> str:
    from convviz.atlas import model_digest
    from convviz.ui.resources import get_default_model

    return model_digest(get_default_model())


def _run_model(store, record):
    """The saved run's model and digest, loaded once per checkpoint in this session.

    Raises:
        FileNotFoundError, ValueError, OSError: as :meth:`convviz.runs.RunStore.load`.
    """
    from convviz.atlas import model_digest

    stat = record.path.stat()
    identity = (record.run_id, stat.st_mtime_ns, stat.st_size)
    held = st.session_state.get(_RUN_MODEL_KEY)
    if held is None or held[0] != identity:
        model, _ = store.load(record.run_id)
        held = (identity, model, model_digest(model))
        st.session_state[_RUN_MODEL_KEY] = held
    return held[1], held[2]


def choose_model() -> Choice | None:
    """The model picker (the shipped model and this learner's saved runs) and the chosen model.

    A file of the runs folder that is not a readable run is named in a warning and left as it is; a run
    whose weights cannot be read gives an error naming the file (left as it is too).

    Returns:
        The :class:`Choice`, or None when the chosen model cannot be used (the page says why).
    """
    from convviz.runs import default_runs_dir
    from convviz.ui.resources import model_or_message

    store = tr.get_store()
    try:
        records, skipped = store.list_runs(batches=False)
    except OSError as exc:
        st.warning(f"Your runs folder {md(repr(str(store.root)))} cannot be read ({md(exc)}); only the shipped model is offered.")
        records, skipped = [], []
    for item in skipped[:3]:
        st.warning(f"A file in your runs folder was skipped, {md(item.name)}: {md(item.reason.rstrip('.'))}. It was left as "
                   "it is (the Train page can delete it); your other runs are offered as usual.")
    if len(skipped) > 3:
        st.warning(f"{len(skipped) - 3:,} more files in your runs folder were skipped: none is a readable run. They "
                   "were left as they are (the Train page can delete them); your other runs are offered as usual.")
    by_id = {r.run_id: r for r in records}
    options = [SHIPPED, *by_id]
    if st.session_state.get(MODEL_KEY) not in options:
        st.session_state[MODEL_KEY] = SHIPPED
    chosen = st.selectbox(
        "Model", options, key=MODEL_KEY,
        format_func=lambda o: "The shipped model (convviz/models/default.npz)" if o == SHIPPED else
        f"{printable(by_id[o].name)} · {by_id[o].preset} · weights {tr.weights_when(by_id[o].history)} · "
        f"{'—' if by_id[o].test_accuracy is None else f'{by_id[o].test_accuracy:.2%}'} · {o}",
        help="The shipped model, or one of your saved runs (Train page) as its checkpoint is now.")
    if chosen == SHIPPED:
        model, message = model_or_message()
        if model is None:
            st.error(message)
            return None
        return Choice(model, _shipped_digest(), "the shipped model (convviz/models/default.npz)",
                      default_runs_dir() / SHIPPED_CACHE)
    record = by_id[chosen]
    try:
        model, digest = _run_model(store, record)
    except (FileNotFoundError, ValueError, OSError) as exc:
        st.error(f"{md(record.name)} cannot be shown: {md(exc)}. The file was left as it is; choose another model.")
        return None
    return Choice(model, digest, tr.draw_description(record), store.atlas_path(chosen))


# --------------------------------------------------------------------------------------------- the atlas
def _test_digits():
    """``((images, labels), source)``: the full MNIST's test digits when this server has them, else the sample's."""
    with st.spinner("Looking for the full MNIST…"):
        full, _ = tr.full_mnist()
    if full is not None:
        return full[1], f"the {len(full[1][0]):,} digits of the full MNIST test set"
    sample = tr.get_sample()
    return sample[1], (f"the {len(sample[1][0]):,} test digits of the bundled MNIST sample (the full MNIST is not "
                       "available on this server)")


def atlas_or_progress(choice: Choice):
    """The chosen model's atlas, from memory, from its file, or computed now with a progress bar.

    Returns:
        The :class:`convviz.atlas.Atlas`, or None while it is being computed (the progress is shown) or
        when its computation failed (the error is shown, with a button to try again).
    """
    from convviz.atlas import load_atlas

    holder = atlases()
    key = (str(choice.cache_path), choice.digest)
    atlas = holder.get(key)
    if atlas is not None:
        return atlas
    job = holder.job(key)
    if job is None:
        note = None
        try:
            atlas = load_atlas(choice.cache_path, choice.model)
        except FileNotFoundError:
            pass
        except ValueError as exc:
            note = f"The atlas saved for this model could not be used, so it is computed again: {md(exc)}"
        if atlas is not None:
            holder.put(key, atlas)
            return atlas
        digits, source = _test_digits()
        job = holder.start(key, choice.model, choice.cache_path, digits, source, note)
    if job.error:
        st.error(f"The atlas could not be computed: {md(job.error)}")
        st.button("Try again", key=RETRY_KEY, on_click=holder.forget, args=(key,))
        return None
    if job.atlas is not None:
        return job.atlas
    if job.note:
        st.info(job.note)
    _progress(key)
    return None


@st.fragment(run_every=PROGRESS_EVERY_S)
def _progress(key) -> None:
    """The computation's progress bar, refreshed every :data:`PROGRESS_EVERY_S`; the page reruns when it ends."""
    job = atlases().job(key)
    if job is None or job.finished:
        st.rerun()
    elapsed = time.monotonic() - job.started
    st.progress(job.fraction, text=f"Computing the atlas of this model, once (it is kept afterwards): {job.message}… "
                                   f"{job.fraction:.0%}, {elapsed:.0f} s")


# --------------------------------------------------------------------------------------------- the views
def field_story(spec, layer: str) -> str:
    """How ``layer``'s receptive field grows from one input pixel, layer by layer, with the numbers.

    Args:
        spec: the model's spec.
        layer: a convolution or pooling layer of it.

    Returns:
        Markdown, e.g. ``conv1 (3×3): 1 + (3 − 1)·1 = **3** → pool1 (2×2, stride 2): 3 + (2 − 1)·1 = **4** → …``.
    """
    from convviz.atlas import receptive_fields

    size, jump, parts = 1, 1, []
    for name, rf in receptive_fields(spec).items():
        window = (rf.size[0] - size) // jump + 1
        stride = rf.jump[0] // jump
        what = f"{window}×{window}" + (f", stride {stride}" if stride > 1 else "")
        parts.append(f"{name} ({what}): {size} + ({window} − 1)·{jump} = **{rf.size[0]}**")
        size, jump = rf.size[0], rf.jump[0]
        if name == layer:
            break
    return " → ".join(parts)


def ascent_text(settings) -> str:
    """The synthesis, in words, with the settings' numbers (Markdown)."""
    s = settings
    return (
        f"Regularised gradient ascent on the input, after J. Yosinski, J. Clune, A. Nguyen, T. Fuchs and H. Lipson, "
        f"*Understanding Neural Networks Through Deep Visualization* (2015). Start from faint noise (pixels drawn "
        f"from 0 to {s.init_scale:g}, seed {s.seed}); then, {s.steps} times: move every pixel {s.learning_rate:g} "
        f"along the gradient of the objective (scaled to unit standard deviation); shrink the image by "
        f"{s.l2_decay:.0%} (*L2 decay*: only what the objective keeps asking for stays); every {s.blur_every} steps "
        f"blur it (a Gaussian of {s.blur_sigma:g} pixels: no pattern finer than a pen stroke); keep each pixel "
        "between 0 and 1, as in a real digit. For a filter the objective is its mean activation over the layer's "
        "cells (while the filter is off everywhere, whose gradient is 0, its mean input to the ReLU instead); for a "
        "class, its score. Each image is shown stretched to its own brightest pixel; hover one for the activation "
        "it reaches.")


def show_atlas(atlas, choice: Choice) -> None:
    """The atlas: which digits, the layer choice, its filters' patches and synthesised inputs, one filter whole,
    and the ten classes."""
    unsaved = atlases().unsaved_reason((str(choice.cache_path), choice.digest))
    kept = (f"kept in `{choice.cache_path}`" if unsaved is None else
            f"kept in this server's memory only: it could not be saved to `{choice.cache_path}` ({unsaved})")
    st.caption(f"Model: {choice.description}. Patches searched in {atlas.source}. Computed in {atlas.seconds:.0f} s "
               f"and {kept}.")
    names = list(atlas.layers)
    missing = [n for n in ("conv1", "conv2") if n not in names]
    if missing:
        has = (f"it has {len(names)} convolution layer{'s' if len(names) != 1 else ''}: {', '.join(names)}" if names
               else "it has no convolution layer at all")
        st.warning(f"This model has no {' and no '.join(missing)}: {has}, "
                   f"{'shown below' if names else 'so only the class images are shown'}.")
    if names:
        if st.session_state.get(LAYER_KEY) not in names:
            st.session_state[LAYER_KEY] = names[0]
        layer = st.radio("Layer", names, key=LAYER_KEY, horizontal=True,
                         format_func=lambda n: f"{n} ({atlas.layers[n].filters} filters)")
        _show_layer(atlas, choice, layer)
    st.markdown("### The ten classes")
    st.caption("The same ascent on the class's score (the logit, before the softmax) instead of one filter: the "
               "input the whole network finds most like each digit. Hover an image for its score and probability.")
    st.plotly_chart(fa.class_figure(atlas.classes), key="atlas_fig_classes")


def _show_layer(atlas, choice: Choice, layer: str) -> None:
    item = atlas.layers[layer]
    rh, rw = item.patches.field.size
    st.markdown(f"### {layer}: {item.filters} filters, each seeing {rh}×{rw} input pixels")
    st.caption(f"One output cell of {layer} depends on a {rh}×{rw} patch of the digit, its *receptive field*, worked "
               f"out from the layers' kernel sizes, strides and pools: {field_story(choice.model.spec, layer)}.")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.caption("**Strongest patches.** Each block is one filter: its 9 strongest test digits, each cut to the "
                   "receptive field where the filter fired most. Hover a patch for its activation and its place.")
        st.plotly_chart(fa.patches_figure(item.patches, width_px=480), key="atlas_fig_patches")
    with right:
        st.caption("**Synthesised.** The input that makes the filter fire most on average, built by gradient ascent "
                   "on the pixels (how: below).")
        st.plotly_chart(fa.synthesis_figure(item.synthesis, layer, width_px=320), key="atlas_fig_synth")
    with st.expander("How the synthesised images are made"):
        st.markdown(ascent_text(atlas.settings))
    filters, key = list(range(item.filters)), f"{FILTER_KEY}_{layer}"
    if st.session_state.get(key) not in filters:
        st.session_state[key] = 0
    chosen = st.selectbox("Filter shown whole", filters, key=key,
                          format_func=lambda f: f"{layer} filter {f} (strongest activation "
                                                f"{item.patches.values[f][0]:.2f})")
    st.caption("The chosen filter's strongest digits whole, the patch it saw outlined in red, its activation "
               "under each; its synthesised input last.")
    values = item.patches.values[chosen]
    if len(values) > 1 and values[-1] == values[0]:
        st.caption(f"All {len(values)} shown tie at {values[0]:.2f}: more test digits may drive this filter just as "
                   "hard (a fully inked patch often does); tied digits are shown in test-set order.")
    st.plotly_chart(fa.filter_figure(item.patches, chosen, item.synthesis), key="atlas_fig_filter")


def keep_learner_in_address() -> None:
    """The learner key in this page's address too (a bookmark finds the same runs)."""
    tr.keep_learner_in_address()
