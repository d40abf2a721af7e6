"""What a model costs per image and per pass (issue 15, the breaker's K3), checkouts side by side.

Not a test: ``nice -n 19 python benchmarks/model_cost.py [CHECKOUT ...]`` from the repository root; each CHECKOUT
(e.g. ``/tmp/before`` after ``git archive <commit> | tar -x -C /tmp/before``) is run beside this one. Keep the
machine's memory in mind: "before", one pass of the page's largest model over 1,000 digits held about 7 GB, so the
before run evaluates 300 digits in one pass (pass ``--digits``).

For each checkout, in a fresh process each:

* ``largest``: one of the Train page's largest architectures (``seed``, 128/128 filters, kernel 9, the breaker's case; kernel 7 holds a little more): ``evaluate`` on N random
  digits with ``batch_size=N`` (as the page asks for 1,000), seconds and peak resident memory (``ru_maxrss``);
* ``crafted``: the breaker's legal 20 MB spec (1x1 conv to 1024, 2x2 'same' conv to 1024, 1x1 conv to 740): whether
  ``ScratchCNN`` builds it (it is not evaluated: 21 MB per digit), and the message if refused.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CRAFTED = [
    {"type": "conv2d", "name": "conv1", "filters": 1024, "kernel_size": 1, "activation": "relu"},
    {"type": "conv2d", "name": "conv2", "filters": 1024, "kernel_size": 2, "padding": "same", "activation": "relu"},
    {"type": "conv2d", "name": "conv3", "filters": 740, "kernel_size": 1, "activation": "relu"},
    {"type": "maxpool2d", "name": "pool1", "pool_size": 27},
    {"type": "flatten", "name": "flatten"},
    {"type": "dense", "name": "dense", "units": 10},
]


def _one(code: str, case: str, digits: int) -> None:
    sys.path.insert(0, code)
    import numpy as np

    from convviz.model import ScratchCNN, make_spec
    from convviz.train import evaluate

    if case == "crafted":
        try:
            ScratchCNN(CRAFTED, seed=0)
            print(f"| {code} | crafted | built (not evaluated) | | |")
        except ValueError as exc:
            print(f"| {code} | crafted | refused: {str(exc)[:120]} | | |")
        return
    model = ScratchCNN(make_spec("seed", filters=(128, 128), kernel_size=9), seed=0)
    x = np.random.default_rng(0).random((digits, 28, 28)).astype("float32")
    y = np.arange(digits) % 10
    start = time.perf_counter()
    evaluate(model, x, y, batch_size=digits)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {code} | largest, {digits:,} digits | evaluated | {seconds:.1f} | {peak:,.0f} |")


def main(codes: list[str], digits: int) -> None:
    print("| checkout | case | result | seconds | peak MB |\n|---|---|---|---|---|")
    here = str(Path(__file__).resolve().parent.parent)
    for code in [here, *codes]:
        for case in ("largest", "crafted"):
            subprocess.run([sys.executable, __file__, "--one", code, case, str(digits if code == here else 300)],
                           check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        args = sys.argv[1:]
        count = 1000
        if "--digits" in args:
            at = args.index("--digits")
            count = int(args[at + 1])
            del args[at:at + 2]
        main(args, count)
