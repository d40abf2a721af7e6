"""Training engine for :class:`convviz.model.ScratchCNN`, independent of Streamlit.

* :func:`train` runs mini-batch training synchronously: a ``tf.GradientTape``
  step compiled with ``tf.function`` (not ``keras.Model.fit``), softmax
  cross-entropy written out as ``logsumexp(z) - z[label]``, and Adam written
  by hand (:class:`Adam`, Kingma & Ba, "Adam: A method for stochastic
  optimization", ICLR 2015; Keras's defaults beta_1=0.9, beta_2=0.999,
  epsilon=1e-7).
* :class:`TrainingJob` runs :func:`train` in a background thread with a
  lock-protected history that a UI can poll (:meth:`TrainingJob.snapshot`),
  and :meth:`TrainingJob.stop` to end it after the current batch.
* ``python -m convviz.train --help`` is the command line (:mod:`convviz.train_cli`).

Repeatable runs: with the same model seed and :class:`TrainConfig` seed, the
weights start the same, each epoch's shuffling is
``numpy.random.default_rng([seed, epoch]).permutation``, and the dropout masks
of step ``t`` come from the stateless seed ``(seed, t)``.

The model and data are arguments; nothing here reads module-level state.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import tensorflow as tf

from convviz.config import TrainConfig, check_run_length
from convviz.model import check_training_batch
from convviz.tensor_ops import log_softmax, softmax

__all__ = ["Adam", "History", "TrainConfig", "TrainingJob", "cross_entropy", "evaluate", "make_step", "prepare_data",
           "train"]

class Adam:
    """Adam, written out (Kingma & Ba 2015, Algorithm 1, in the "epsilon hat" form Keras uses).

    For each variable ``w`` with gradient ``g`` at step ``t``::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w -= learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)

    Args:
        variables: the ``tf.Variable`` s to update.
        learning_rate: step size, > 0.
        beta_1, beta_2: decay rates of the moment estimates, in [0, 1).
        epsilon: small constant for numerical safety.
    """

    def __init__(self, variables, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        self.variables = list(variables)
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.iterations = tf.Variable(0.0, trainable=False)

    def apply(self, gradients):
        """One update; call inside or outside ``tf.function``."""
        t = self.iterations.assign_add(1.0)
        step = self.learning_rate * tf.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        for g, w, m, v in zip(gradients, self.variables, self.m, self.v):
            m.assign(self.beta_1 * m + (1.0 - self.beta_1) * g)
            v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(g))
            w.assign_sub(step * m / (tf.sqrt(v) + self.epsilon))


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy: ``mean(logsumexp(z) - z[label])``, i.e. ``-mean(log_softmax(z)[label])``
    (:func:`convviz.tensor_ops.log_softmax`).

    Args:
        logits: ``(batch, classes)`` float32.
        labels: ``(batch,)`` int32 class indices.

    Returns:
        Scalar float32 (nats).
    """
    return -tf.reduce_mean(tf.gather(log_softmax(logits), labels, axis=1, batch_dims=1))


def prepare_data(data):
    """Check ``((x_train, y_train), (x_test, y_test))`` and convert it for training.

    Args:
        data: images uint8 ``(n, 28, 28)`` (0-255) or floats in [0, 1] ``(n, 28, 28)`` /
            ``(n, 28, 28, 1)``; labels integers 0-9 ``(n,)``. Each split needs >= 1 digit.

    Returns:
        The same structure with images float32 ``(n, 28, 28, 1)`` in [0, 1] and labels int32.

    Raises:
        ValueError: a wrong structure, shape, dtype or label, naming it.
    """
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError("data must be ((x_train, y_train), (x_test, y_test))") from None
    out = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        given_shape = x.shape
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        elif x.dtype != np.float32:
            x = x.astype(np.float32)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[1:] != (28, 28, 1) or len(x) < 1:
            raise ValueError(f"x_{split} must have shape (n >= 1, 28, 28), got {given_shape}")
        if y.shape != (len(x),) or y.dtype.kind not in "iu":
            raise ValueError(f"y_{split} must be integers of shape ({len(x)},), got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"y_{split} must hold labels 0-9, got min={y.min()} max={y.max()}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"x_{split} contains NaN or infinite values")
        out.append((x, y.astype(np.int32)))
    return tuple(out)


def evaluate(model, x, y, batch_size: int = 1000):
    """Loss and accuracy of ``model`` on labelled images (inference mode).

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        x: images ``(n, 28, 28)`` / ``(n, 28, 28, 1)``, uint8 0-255 or floats in [0, 1].
        y: labels ``(n,)`` 0-9.
        batch_size: images per forward pass, >= 1.

    Returns:
        ``(loss, accuracy, predicted_labels, probabilities)``: mean cross-entropy
        (nats, float), fraction correct (float in [0, 1]), int ``(n,)``, float32 ``(n, 10)``.

    Raises:
        ValueError: bad shapes or labels.
    """
    ((x, y), _) = prepare_data(((x, y), (x[:1], y[:1])))
    logits = model.logits(x, batch_size=batch_size)
    loss = float(cross_entropy(logits, y))
    predicted = logits.argmax(axis=1)
    return loss, float((predicted == y).mean()), predicted, softmax(logits).numpy()


@dataclass
class History:
    """What a run has done so far. Mutate and read only under ``lock``; :meth:`snapshot` copies.

    Attributes:
        batch_loss, batch_accuracy: one value per training step (on that step's batch, dropout on).
        epoch_test_loss, epoch_test_accuracy: one per finished epoch, on the whole test split.
        epoch: epochs finished; batch: steps done in the current epoch.
        samples_per_second: recent training throughput (digits/s).
        elapsed_s, eta_s: seconds since start; estimated seconds left.
        status: one of ``pending running stopped finished failed``; error: message when failed.
    """

    epochs: int = 0
    batches_per_epoch: int = 0
    batch_loss: list = field(default_factory=list)
    batch_accuracy: list = field(default_factory=list)
    epoch_test_loss: list = field(default_factory=list)
    epoch_test_accuracy: list = field(default_factory=list)
    epoch: int = 0
    batch: int = 0
    samples_per_second: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    status: str = "pending"
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict:
        """A copy of every field (lists copied), taken under the lock."""
        with self.lock:
            return {
                "batch_loss": list(self.batch_loss), "batch_accuracy": list(self.batch_accuracy),
                "epoch_test_loss": list(self.epoch_test_loss),
                "epoch_test_accuracy": list(self.epoch_test_accuracy),
                "epoch": self.epoch, "batch": self.batch, "batches_per_epoch": self.batches_per_epoch,
                "epochs": self.epochs, "samples_per_second": self.samples_per_second,
                "elapsed_s": self.elapsed_s, "eta_s": self.eta_s, "status": self.status, "error": self.error,
            }


def make_step(model, optimizer):
    """The compiled training step for ``model``: forward (dropout on), loss, gradients, Adam update.

    Args:
        model: a :class:`convviz.model.ScratchCNN`.
        optimizer: an :class:`Adam` over ``model.trainable_variables``.

    Returns:
        ``step(x, y, seed) -> (loss, accuracy)``, a ``tf.function``: ``x`` float32 ``(batch, 28, 28, 1)``, ``y``
        int32 ``(batch,)``, ``seed`` int64 ``(2,)`` (the dropout masks' stateless seed); scalar float32 tensors.
    """
    variables = optimizer.variables

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32), tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([2], tf.int64)])
    def step(x, y, seed):
        with tf.GradientTape() as tape:
            logits = model(x, training=True, seed=seed)
            loss = cross_entropy(logits, y)
        optimizer.apply(tape.gradient(loss, variables))
        correct = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

    return step


class _Pace:
    """The throughput of the last 50 steps and the time left, from step and evaluation durations."""

    def __init__(self, batches: int, epochs: int, test_digits: int):
        self.batches, self.epochs, self.test_digits = batches, epochs, test_digits
        self.recent = deque(maxlen=50)  # (seconds, digits) of recent steps
        self.eval_seconds = None

    def step_done(self, seconds: float, digits: int, global_step: int, epoch: int) -> tuple[float, float]:
        """Record a step; returns ``(digits per second, seconds left)``."""
        self.recent.append((seconds, digits))
        seconds, digits = sum(r[0] for r in self.recent), sum(r[1] for r in self.recent)
        steps_left = self.batches * self.epochs - global_step
        eval_guess = self.eval_seconds if self.eval_seconds is not None else self.test_digits / max(
            digits / seconds, 1e-9) / 3
        return digits / seconds, steps_left * seconds / len(self.recent) + (self.epochs - epoch) * eval_guess

    def epoch_done(self, eval_seconds: float, epoch: int) -> float:
        """Record an evaluation; returns the seconds left after epoch ``epoch`` (0-based)."""
        self.eval_seconds = eval_seconds
        step_seconds = sum(r[0] for r in self.recent) / len(self.recent)
        return (self.epochs - epoch - 1) * (self.batches * step_seconds + eval_seconds)


def train(model, data, config: TrainConfig, on_batch=None, stop_event=None, history: History | None = None,
          on_epoch=None, start_epoch: int = 0) -> History:
    """Train ``model`` in place with mini-batch Adam, evaluating on the test split after each epoch.

    Args:
        model: a :class:`convviz.model.ScratchCNN` (its variables are updated).
        data: ``((x_train, y_train), (x_test, y_test))`` as from :func:`convviz.data.load_mnist`
            (see :func:`prepare_data`).
        config: a :class:`TrainConfig`.
        on_batch: optional ``callable(history)`` after each step (called outside the lock).
        stop_event: optional ``threading.Event``; when set, training ends after the current step.
        history: optional :class:`History` to fill (e.g. one a UI is polling); a new one otherwise.
        on_epoch: optional ``callable(history)`` after each epoch's test evaluation.
        start_epoch: epochs already done (resuming a run): training runs epochs
            ``start_epoch .. config.epochs - 1`` with the same per-epoch shuffles
            and dropout seeds a run from scratch would use; ``history`` should
            hold the earlier epochs. Adam's moments start afresh.

    Returns:
        The :class:`History`, with status ``"finished"`` or ``"stopped"``.

    Raises:
        ValueError: bad data or config, or a batch over :data:`convviz.model.MAX_STEP_NUMBERS`
            (:func:`convviz.model.check_training_batch`), before anything is allocated.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if hasattr(model, "spec"):  # a ScratchCNN (tests also train bare tf.Modules)
        check_training_batch(model.spec, config.batch_size)
    (x_train, y_train), (x_test, y_test) = prepare_data(data)
    history = history if history is not None else History()
    n = len(x_train)
    batches = math.ceil(n / config.batch_size)
    start = time.perf_counter()
    check_run_length(config.epochs, batches)
    with history.lock:
        history.epochs, history.batches_per_epoch, history.status = config.epochs, batches, "running"
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, Integral) or not 0 <= start_epoch <= config.epochs:
        raise ValueError(f"start_epoch must be in [0, epochs={config.epochs}], got start_epoch={start_epoch!r}")
    step = make_step(model, Adam(model.trainable_variables, learning_rate=config.learning_rate))
    pace = _Pace(batches, config.epochs, len(x_test))
    global_step, stopped = start_epoch * batches, False
    for epoch in range(start_epoch, config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        for b in range(batches):
            if stop_event is not None and stop_event.is_set():
                stopped = True
                break
            idx = order[b * config.batch_size: (b + 1) * config.batch_size]
            t0 = time.perf_counter()
            loss, accuracy = step(x_train[idx], y_train[idx], tf.constant([config.seed, global_step], tf.int64))
            loss, accuracy = float(loss), float(accuracy)
            global_step += 1
            rate, eta = pace.step_done(time.perf_counter() - t0, len(idx), global_step, epoch)
            with history.lock:
                history.batch_loss.append(loss)
                history.batch_accuracy.append(accuracy)
                history.batch, history.samples_per_second, history.eta_s = b + 1, rate, eta
                history.elapsed_s = time.perf_counter() - start
            if on_batch is not None:
                on_batch(history)
        if stopped:
            break
        t0 = time.perf_counter()
        test_loss, test_accuracy, _, _ = evaluate(model, x_test, y_test)
        eta = pace.epoch_done(time.perf_counter() - t0, epoch)
        with history.lock:
            history.epoch_test_loss.append(test_loss)
            history.epoch_test_accuracy.append(test_accuracy)
            history.epoch, history.elapsed_s, history.eta_s = epoch + 1, time.perf_counter() - start, eta
        if on_epoch is not None:
            on_epoch(history)
    with history.lock:
        history.status = "stopped" if stopped else "finished"
        history.elapsed_s = time.perf_counter() - start
        history.eta_s = 0.0
    return history


def _restore_history(history: History, saved: dict, config: TrainConfig) -> int:
    """Fill ``history`` from a saved snapshot; returns the epoch to start from.

    Per-batch entries past the last completed epoch (an epoch cut short by a
    stop or a crash) are dropped, since that epoch is trained again.
    """
    try:
        done = int(saved.get("epoch", 0))
        per_epoch = int(saved.get("batches_per_epoch", 0)) or history.batches_per_epoch
        keep = done * per_epoch
        batch_loss = [float(v) for v in saved.get("batch_loss", [])][:keep]
        batch_accuracy = [float(v) for v in saved.get("batch_accuracy", [])][:keep]
        test_loss = [float(v) for v in saved.get("epoch_test_loss", [])][:done]
        test_accuracy = [float(v) for v in saved.get("epoch_test_accuracy", [])][:done]
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"resume_history is not a saved history ({exc})") from None
    if not 0 <= done < config.epochs:
        raise ValueError(f"the saved run has {done} epochs done; epochs must be more than that, "
                         f"got epochs={config.epochs}")
    if per_epoch != history.batches_per_epoch:
        raise ValueError(f"the saved run had {per_epoch} batches per epoch but these data and batch size "
                         f"give {history.batches_per_epoch}; resume with the same dataset and batch size")
    history.batch_loss, history.batch_accuracy = batch_loss, batch_accuracy
    history.epoch_test_loss, history.epoch_test_accuracy = test_loss, test_accuracy
    history.epoch = done
    return done


class TrainingJob:
    """:func:`train` in a background thread, for a UI to poll. Makes no Streamlit calls.

    Args:
        model: the :class:`convviz.model.ScratchCNN` to train (``job.model``).
        data: ``((x_train, y_train), (x_test, y_test))``; checked here.
        config: a :class:`TrainConfig`.
        on_checkpoint: optional ``callable(model, history_snapshot)``, called in the
            training thread after every epoch and once more when the run stops or
            finishes (e.g. :meth:`convviz.runs.RunStore.save`).
        resume_history: a saved history snapshot to continue from (resuming a
            run): training starts at its ``epoch``; its per-batch and per-epoch
            lists are kept, so the charts continue.

    Raises:
        ValueError: bad data or config (at construction, before any thread starts).

    Example:
        >>> job = TrainingJob(model, load_sample(), TrainConfig(epochs=2))  # doctest: +SKIP
        >>> job.start(); ...; job.snapshot()["status"]  # doctest: +SKIP
        'running'
    """

    def __init__(self, model, data, config: TrainConfig, on_checkpoint=None, resume_history: dict | None = None):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.model = model
        self.config = config
        self._data = prepare_data(data)
        n = len(self._data[0][0])
        self._history = History(epochs=config.epochs, batches_per_epoch=math.ceil(n / config.batch_size))
        check_run_length(config.epochs, self._history.batches_per_epoch)
        self._start_epoch = 0
        if resume_history is not None:
            self._start_epoch = _restore_history(self._history, resume_history, config)
        self._on_checkpoint = on_checkpoint
        self.checkpoint_error: str | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TrainingJob:
        """Start training in a daemon thread; returns ``self``.

        Raises:
            RuntimeError: the job was already started.
        """
        if self._thread is not None:
            raise RuntimeError("this TrainingJob was already started; make a new one to train again")
        with self._history.lock:
            self._history.status = "running"
        self._thread = threading.Thread(target=self._run, name="convviz-training", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        try:
            train(self.model, self._data, self.config, stop_event=self._stop_event, history=self._history,
                  on_epoch=lambda history: self._checkpoint(), start_epoch=self._start_epoch)
        except Exception as exc:  # reported through status / error, never raised in the thread
            with self._history.lock:
                self._history.status = "failed"
                self._history.error = f"{type(exc).__name__}: {exc}"
            return
        self._checkpoint()

    def _checkpoint(self):
        """Hand the model and a history snapshot to ``on_checkpoint`` (in this thread, between steps).

        A failing checkpoint (disk full, folder removed) does not stop training:
        its message is kept in :attr:`checkpoint_error` for the UI to show.
        """
        if self._on_checkpoint is None:
            return
        try:
            self._on_checkpoint(self.model, self._history.snapshot())
            self.checkpoint_error = None
        except Exception as exc:
            self.checkpoint_error = f"{type(exc).__name__}: {exc}"

    def stop(self):
        """Ask the job to end after the current batch; the model and history are kept."""
        self._stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (at most ``timeout`` seconds); True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()

    def is_alive(self) -> bool:
        """Whether the training thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``stopped``, ``finished`` or ``failed``."""
        with self._history.lock:
            return self._history.status

    @property
    def error(self) -> str | None:
        """The error message when ``status == "failed"``, else None."""
        with self._history.lock:
            return self._history.error

    def snapshot(self) -> dict:
        """A copy of the history (see :meth:`History.snapshot`), taken under the lock."""
        return self._history.snapshot()


if __name__ == "__main__":  # python -m convviz.train: the command line lives in convviz.train_cli
    from convviz.train_cli import main

    sys.exit(main())
