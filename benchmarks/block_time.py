"""Where a training step's time goes: the "fast" preset's two conv -> relu -> 2x2 pool blocks, three ways.

For each block (batch 128: 28x28x1 -> 13x13x32 and 13x13x32 -> 5x5x64) it times one forward and
backward pass (gradients for the kernel, the bias and, for the second block, the input) of:

* ``fused``: :func:`convviz.tensor_ops.conv2d_maxpool`, what :class:`convviz.model.ScratchCNN` runs;
* ``layers``: the same block layer by layer with our own code (``conv2d`` + bias + relu, then
  ``MaxPool2D``), what ran before the fused block existed;
* ``tf_nn``: ``tf.nn.conv2d`` + bias + ``tf.nn.relu`` + ``tf.nn.max_pool2d`` (oneDNN kernels).

Each is a compiled ``tf.function``; after a warm-up they run interleaved (A B C A B C ...) and the
median milliseconds per call are printed, with ``fused`` over ``tf_nn`` and ``layers`` over ``fused``.

Usage (repository root)::

    python benchmarks/block_time.py --rounds 9 --calls 10

A benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from convviz.layers import MaxPool2D  # noqa: E402
from convviz.tensor_ops import conv2d, conv2d_maxpool  # noqa: E402

BLOCKS = {"block 1 (conv1+pool1)": ((28, 28, 1), 32, False), "block 2 (conv2+pool2)": ((13, 13, 32), 64, True)}


def make_calls(shape, filters, input_gradient, batch, seed=0):
    """The three implementations of one block as zero-argument compiled functions."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.random((batch,) + shape), tf.float32)
    kernel = tf.Variable(rng.standard_normal((3, 3, shape[-1], filters)).astype(np.float32) * 0.1)
    bias = tf.Variable(np.full(filters, 0.01, np.float32))
    pool = MaxPool2D(2)
    forwards = {
        "fused": lambda x: conv2d_maxpool(x, kernel, bias),
        "layers": lambda x: pool(tf.maximum(conv2d(x, kernel) + bias, 0.0)),
        "tf_nn": lambda x: tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "VALID") + bias), 2, 2, "VALID"),
    }

    def compiled(forward):
        @tf.function
        def call():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = forward(x)
                loss = tf.reduce_sum(y * y)
            targets = [kernel, bias] + ([x] if input_gradient else [])
            return tape.gradient(loss, targets)
        return call

    return {name: compiled(f) for name, f in forwards.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Forward + backward time of the fast preset's two blocks.")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default: 9)")
    parser.add_argument("--calls", type=int, default=10, help="calls per implementation per round (default: 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    print(f"batch {args.batch_size}; {args.rounds} rounds x {args.calls} calls; TF {tf.__version__}; "
          f"{os.cpu_count()} CPUs")
    for label, (shape, filters, input_gradient) in BLOCKS.items():
        calls = make_calls(shape, filters, input_gradient, args.batch_size)
        for call in calls.values():  # trace and warm up
            call()
            call()
        ms = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    out = call()
                out[0].numpy()
                ms[name].append((time.perf_counter() - t0) / args.calls * 1000)
        med = {name: statistics.median(v) for name, v in ms.items()}
        print(f"{label}: " + "  ".join(f"{name} {value:.2f} ms" for name, value in med.items())
              + f"  | fused/tf_nn {med['fused'] / med['tf_nn']:.2f}  layers/fused {med['layers'] / med['fused']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
