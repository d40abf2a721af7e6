"""Memory one training step holds, against the forward pass's numbers (issue 15: ``convviz.model.MAX_STEP_NUMBERS``).

Not a test: ``nice -n 19 python benchmarks/train_step_memory.py`` from the repository root. For each architecture and
batch below, in a fresh process: build the model, run two compiled training steps on random digits, and print the
growth of the process's peak resident memory (``ru_maxrss``) over the step, beside ``forward_cost(spec).numbers *
batch * 4`` bytes (the forward pass's float32 numbers) and their ratio.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

CASES = [("seed", 32, 64, 3, 512), ("fast", 32, 64, 3, 512), ("seed", 128, 128, 9, 64), ("seed", 128, 128, 7, 128)]


def _one(preset: str, f1: int, f2: int, k: int, batch: int) -> None:
    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, os.getcwd())
    from convviz.model import ScratchCNN, forward_cost, make_spec
    from convviz.train import Adam, make_step

    spec = make_spec(preset, (f1, f2), k)
    model = ScratchCNN(spec, seed=0)
    step = make_step(model, Adam(model.trainable_variables, 1e-3))
    x = tf.constant(np.random.default_rng(0).random((batch, 28, 28, 1)).astype("float32"))
    y = tf.constant(np.arange(batch) % 10, tf.int32)
    seed = tf.constant([1, 2], tf.int64)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(x, y, seed)
    start = time.perf_counter()
    step(x, y, seed)
    seconds = time.perf_counter() - start
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    forward = forward_cost(spec).numbers * batch * 4
    print(f"| {preset} {f1}/{f2} k{k} | {batch} | {forward / 1e6:,.0f} | {grew / 1e6:,.0f} | {grew / forward:.1f} "
          f"| {seconds:.2f} |")


def main() -> None:
    print("| architecture | batch | forward numbers (MB) | step's memory growth (MB) | ratio | step (s) |\n"
          "|---|---|---|---|---|---|")
    for case in CASES:
        subprocess.run([sys.executable, __file__, "--one", *map(str, case)], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        preset, *numbers = sys.argv[2:]
        _one(preset, *map(int, numbers))
    else:
        main()
