"""The settings of a training run, importable without TensorFlow (the web server checks them before it
queues a run; :mod:`convviz.train` re-exports :class:`TrainConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

__all__ = ["MAX_HISTORY_BATCHES", "TrainConfig", "check_run_length"]

MAX_HISTORY_BATCHES = 500_000
"""Most batches one run may train and record (its history keeps a loss and an accuracy per batch, and is read
back from disk on every Train page render). The Train page's longest run, 50 epochs at batch size 8 on the full
MNIST, is 375,000; a history read back with more is refused (:func:`convviz.runs.check_history`)."""


def check_run_length(epochs: int, batches_per_epoch: int) -> None:
    """Refuse a run whose history would pass :data:`MAX_HISTORY_BATCHES` (it could not be read back).

    Raises:
        ValueError: ``epochs * batches_per_epoch`` over the limit, echoing both, e.g.
            ``"a run of epochs=100 x batches_per_epoch=7500 = 750,000 batches is over the limit of ..."``.
    """
    total = int(epochs) * int(batches_per_epoch)
    if total > MAX_HISTORY_BATCHES:
        raise ValueError(f"a run of epochs={epochs} x batches_per_epoch={batches_per_epoch} = {total:,} batches is "
                         f"over the limit of MAX_HISTORY_BATCHES={MAX_HISTORY_BATCHES:,} (its history could not be "
                         "read back); train fewer epochs or use a larger batch size")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Args:
        epochs: passes over the training split, >= 1.
        batch_size: digits per step, >= 1.
        learning_rate: Adam's step size, > 0 (and <= 1).
        seed: shuffling and dropout seed, int >= 0.

    Raises:
        ValueError: a value out of range, echoing it.
    """

    epochs: int = 1
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, Real) or not math.isfinite(lr) or not 0 < lr <= 1:
            raise ValueError(f"learning_rate must be a number in (0, 1], got learning_rate={lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, Integral) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got seed={self.seed!r}")
