"""Draw the class-balanced MNIST sample that ships as ``convviz/data/mnist_sample.npz``.

Usage (from the repository root)::

    python scripts/make_mnist_sample.py --mnist ../shared/data/mnist.npz

It picks, with ``numpy.random.default_rng(seed)``, 500 training digits per
class from MNIST's 60,000 training digits and 100 test digits per class from
its 10,000 test digits, keeps them in their original order, and writes the
digits, the labels and the indices they came from (``train_indices``,
``test_indices``) into one compressed ``.npz`` in Keras's layout. The same
MNIST file and seed always give the same sample.

MNIST (Y. LeCun, C. Cortes, C. J. C. Burges) is distributed under CC BY-SA 3.0;
the sample is a derivative shared under the same licence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convviz.data import SAMPLE_PATH, load_mnist, read_mnist_file  # noqa: E402


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each label 0-9, drawn without replacement, sorted.

    Raises:
        ValueError: a class has fewer than ``per_class`` digits.
    """
    picked = []
    for digit in range(10):
        pool = np.flatnonzero(labels == digit)
        if len(pool) < per_class:
            raise ValueError(f"class {digit} has {len(pool)} digits, fewer than per_class={per_class}")
        picked.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=None, help="full MNIST .npz (default: convviz.data.load_mnist's search)")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", default=str(SAMPLE_PATH))
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_mnist(args.mnist, download=False)
    rng = np.random.default_rng(args.seed)
    train_idx = balanced_indices(y_train, args.train_per_class, rng)
    test_idx = balanced_indices(y_test, args.test_per_class, rng)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=x_train[train_idx], y_train=y_train[train_idx],
                        x_test=x_test[test_idx], y_test=y_test[test_idx],
                        train_indices=train_idx.astype(np.int32), test_indices=test_idx.astype(np.int32),
                        seed=np.array(args.seed))
    read_mnist_file(out, sizes=(len(train_idx), len(test_idx)))  # check what was written
    print(f"wrote {out}: {len(train_idx)} train + {len(test_idx)} test digits, {out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
