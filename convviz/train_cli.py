"""``python -m convviz.train``: train the from-scratch CNN on MNIST from the command line and report its test accuracy.

:func:`main` parses the options (``--help`` lists them), builds the model (:meth:`convviz.model.ScratchCNN.from_preset`),
trains it with :func:`convviz.train.train` (a tqdm progress bar per batch, a line per epoch), saves it with ``--out``
and reports the saved model's accuracy. ``python -m convviz.train_cli`` runs the same.
"""

from __future__ import annotations

import argparse
import math
import sys

from convviz.config import TrainConfig
from convviz.train import evaluate, train

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m convviz.train",
        description="Train the from-scratch CNN on MNIST and report its accuracy on the test digits.",
        epilog="Example: CONVVIZ_MNIST=../shared/data/mnist.npz python -m convviz.train --preset fast "
               "--epochs 3 --out convviz/models/default.npz",
    )
    parser.add_argument("--preset", choices=["seed", "fast"], default="fast",
                        help="architecture: 'seed' = conv-conv-dense without pooling (the notebook's), "
                             "'fast' = conv-pool-conv-pool-dropout-dense (default: fast)")
    parser.add_argument("--filters", type=int, nargs=2, default=[32, 64], metavar=("F1", "F2"),
                        help="kernels in the first and second convolution (default: 32 64)")
    parser.add_argument("--kernel-size", type=int, default=3, help="side of the square kernels, pixels (default: 3)")
    parser.add_argument("--dropout", type=float, default=0.5, help="dropout rate of the fast preset (default: 0.5)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training digits (default: 1)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="digits per step (default: 32; one epoch of the fast preset then reaches ~98%%)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the initial weights, shuffling and dropout; same seed, same run (default: 0)")
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="MNIST .npz in Keras's layout; otherwise $CONVVIZ_MNIST, the Keras cache, then a download")
    parser.add_argument("--sample", action="store_true",
                        help="use the bundled 5,000/1,000-digit sample instead of the full MNIST")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="where to save the trained model (.npz); not saved when omitted")
    return parser


def main(argv=None) -> int:
    """The command line; returns the exit status. ``python -m convviz.train --help`` lists the options."""
    from tqdm import tqdm

    from convviz.data import MNISTUnavailableError, load_mnist, load_sample
    from convviz.model import ScratchCNN, load_model

    args = _parser().parse_args(argv)
    try:
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                             seed=args.seed)
        model = ScratchCNN.from_preset(args.preset, seed=args.seed, filters=tuple(args.filters),
                                       kernel_size=args.kernel_size, dropout=args.dropout)
        data = load_sample() if args.sample else load_mnist(args.data)
    except (ValueError, MNISTUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (x_train, _), (x_test, y_test) = data
    which = "bundled sample" if args.sample else "full MNIST"
    print(f"{which}: {len(x_train)} training, {len(x_test)} test digits; preset={args.preset} "
          f"filters={tuple(args.filters)} kernel_size={args.kernel_size} params={model.count_params()}; {config}")
    bar = tqdm(total=config.epochs * math.ceil(len(x_train) / config.batch_size), unit="batch", file=sys.stderr)

    def on_batch(history):
        with history.lock:
            loss, accuracy, rate = history.batch_loss[-1], history.batch_accuracy[-1], history.samples_per_second
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}", digits_s=f"{rate:.0f}", refresh=False)
        bar.update(1)

    def on_epoch(history):
        with history.lock:
            epoch, loss, accuracy = history.epoch, history.epoch_test_loss[-1], history.epoch_test_accuracy[-1]
        bar.write(f"epoch {epoch}/{config.epochs}: test_loss={loss:.4f} test_accuracy={accuracy:.4f}")

    history = train(model, data, config, on_batch=on_batch, on_epoch=on_epoch)
    bar.close()
    if args.out:
        path = model.save(args.out)
        model = load_model(path)  # report the accuracy of what was saved
        print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    loss, accuracy, _, _ = evaluate(model, x_test, y_test)
    print(f"trained {history.elapsed_s:.1f} s, {history.samples_per_second:.0f} digits/s; test_loss={loss:.4f}")
    print(f"test_accuracy={accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
