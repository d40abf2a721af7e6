"""Training speed: the from-scratch CNN against Keras and against a raw ``tf.nn.conv2d`` loop.

Three models of the same architecture (the "fast" preset: conv 3x3x32 relu -> maxpool 2 ->
conv 3x3x64 relu -> maxpool 2 -> flatten -> dropout 0.5 -> dense 10), trained on the same MNIST
batches (batch 128) with Adam (learning rate 1e-3):

* ``scratch``: :class:`convviz.model.ScratchCNN` with the engine's compiled step
  (``convviz.train``: hand-written conv2d backward, hand-written Adam);
* ``keras``: a ``tf.keras.Sequential`` of ``tf.keras.layers`` trained with ``model.fit``
  (Keras's Adam);
* ``tfnn``: a raw ``tf.function`` loop with ``tf.nn.conv2d`` / ``tf.nn.max_pool2d``
  (the same hand-written Adam as ``scratch``, so only the layers differ).

After a warm-up (tracing), the three run interleaved, A B C A B C ..., a fixed number of batches
each per round, so that the machine's drift hits all three alike. It prints each one's
throughput (digits/s over all rounds) and the medians over rounds of the paired ratios::

    scratch_vs_keras=X.XX   (scratch digits/s divided by keras digits/s, same round)
    scratch_vs_tfnn=X.XX

Usage (from the repository root; uses $CONVVIZ_MNIST or the Keras cache, else the bundled sample)::

    CONVVIZ_MNIST=../shared/data/mnist.npz python benchmarks/train_speed.py --rounds 7 --batches 25

This is a benchmark, not a test: figures depend on the machine and its load.
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

from convviz.data import MNISTUnavailableError, load_mnist, load_sample  # noqa: E402
from convviz.model import ScratchCNN  # noqa: E402
from convviz.train import Adam, cross_entropy, make_step  # noqa: E402


def scratch_runner(seed: int):
    """Batches -> seconds for the from-scratch model and the engine's own training step."""
    model = ScratchCNN.from_preset("fast", seed=seed)
    step = make_step(model, Adam(model.trainable_variables, learning_rate=1e-3))
    counter = [0]

    def run(batches):
        t0 = time.perf_counter()
        for x, y in batches:
            loss, _ = step(x, y, tf.constant([seed, counter[0]], tf.int64))
            counter[0] += 1
        float(loss)  # wait for the last step
        return time.perf_counter() - t0

    return run


def keras_runner(seed: int, batch_size: int):
    """Batches -> seconds for a Keras Sequential trained by ``model.fit`` on exactly those batches."""
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        tf.keras.layers.Conv2D(32, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Conv2D(64, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dropout(0.5),
        tf.keras.layers.Dense(10),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    def run(batches):
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - t0

    return run


def tfnn_runner(seed: int):
    """Batches -> seconds for the same network written with ``tf.nn`` ops in a raw ``tf.function`` loop."""
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        return tf.Variable((rng.standard_normal(shape) * np.sqrt(2 / (fan_in + fan_out))).astype(np.float32))

    k1, b1 = glorot((3, 3, 1, 32), 9, 288), tf.Variable(tf.zeros([32]))
    k2, b2 = glorot((3, 3, 32, 64), 288, 576), tf.Variable(tf.zeros([64]))
    w, b = glorot((1600, 10), 1600, 10), tf.Variable(tf.zeros([10]))
    variables = [k1, b1, k2, b2, w, b]
    adam = Adam(variables, learning_rate=1e-3)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32), tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([2], tf.int64)])
    def step(x, y, dropout_seed):
        with tf.GradientTape() as tape:
            h = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "VALID") + b1)
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            h = tf.nn.relu(tf.nn.conv2d(h, k2, 1, "VALID") + b2)
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            h = tf.reshape(h, [-1, 1600])
            keep = tf.random.stateless_uniform(tf.shape(h), seed=dropout_seed) >= 0.5
            h = tf.where(keep, h / 0.5, 0.0)
            loss = cross_entropy(tf.matmul(h, w) + b, y)
        adam.apply(tape.gradient(loss, variables))
        return loss

    counter = [0]

    def run(batches):
        t0 = time.perf_counter()
        for x, y in batches:
            loss = step(x, y, tf.constant([seed, counter[0]], tf.int64))
            counter[0] += 1
        float(loss)
        return time.perf_counter() - t0

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Training speed of the from-scratch CNN vs Keras and tf.nn.")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds A B C (default: 7)")
    parser.add_argument("--batches", type=int, default=25, help="batches per model per round (default: 25)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up batches per model (default: 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        (x_train, y_train), _ = load_mnist(download=False)
        source = "full MNIST"
    except (MNISTUnavailableError, ValueError) as exc:
        (x_train, y_train), _ = load_sample()
        source = f"bundled sample ({type(exc).__name__})"
    needed = (args.warmup + args.rounds * args.batches) * args.batch_size
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    order = np.resize(order, needed)  # wraps around the sample if it is too small
    x = (x_train[order].astype(np.float32) / 255.0)[..., None]
    y = y_train[order].astype(np.int32)
    batches = [(tf.constant(x[i: i + args.batch_size]), tf.constant(y[i: i + args.batch_size]))
               for i in range(0, needed, args.batch_size)]
    warm, timed = batches[: args.warmup], batches[args.warmup:]
    print(f"data: {source}; batch {args.batch_size}; warm-up {args.warmup} batches; "
          f"{args.rounds} rounds x {args.batches} batches per model; TF {tf.__version__}; "
          f"{os.cpu_count()} CPUs; inter/intra threads {tf.config.threading.get_inter_op_parallelism_threads()}/"
          f"{tf.config.threading.get_intra_op_parallelism_threads()} (0 = all)")

    runners = {"scratch": scratch_runner(args.seed), "keras": keras_runner(args.seed, args.batch_size),
               "tfnn": tfnn_runner(args.seed)}
    for run in runners.values():
        run(warm)
    seconds = {name: [] for name in runners}
    for r in range(args.rounds):
        chunk = timed[r * args.batches: (r + 1) * args.batches]
        for name, run in runners.items():
            seconds[name].append(run(chunk))
        print(f"round {r + 1}: " + "  ".join(f"{name} {args.batches * args.batch_size / s[-1]:7.0f} digits/s"
                                             for name, s in seconds.items()), flush=True)
    digits = args.batches * args.batch_size
    for name, s in seconds.items():
        print(f"{name}_samples_per_s={digits * len(s) / sum(s):.0f}")
    for other in ("keras", "tfnn"):
        ratios = [o / s for s, o in zip(seconds["scratch"], seconds[other])]  # throughput ratio = time ratio inverted
        print(f"  {other} per round: {' '.join(f'{q:.2f}' for q in ratios)}")
        print(f"scratch_vs_{other}={statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
