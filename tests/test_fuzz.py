"""Seeded, time-bounded fuzzing of every file loader and of the matrix editor (issue 15).

* Files: ``tests/fuzz_files.py`` runs in a subprocess under its own ``resource.setrlimit`` memory ceiling
  (what it uses after loading the valid files, plus 1 GiB) and mutates a valid model file, run file and MNIST
  file (bit flips, truncation, member swaps, drops and duplicates, tampered ``.npy`` headers and zip
  directories, nested and huge JSON, JSON values of the wrong type). Every result must be a valid load or a
  ``ValueError`` naming the file, within 5 s, without running out of memory.
* The matrix editor: random client messages (cell edits of every JSON type, rows and columns that do not
  exist, added and deleted rows, sizes out of range) to the Convolution page under AppTest. Every run must end
  without an exception, with a matrix inside the size limits and every cell finite.

The figures (inputs tried / answered / failed) are printed; run with ``-s`` to see them.
"""

import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from apptest_helpers import run_page

ROOT = Path(__file__).resolve().parents[1]
FUZZ = Path(__file__).resolve().parent / "fuzz_files.py"
CONV_PAGE = ROOT / "app_pages" / "1_Convolution.py"
SEED = 15


def test_fuzz_file_loaders_under_a_memory_ceiling(tmp_path):
    command = [sys.executable, str(FUZZ), "--seed", str(SEED), "--seconds", "12", "--min-each", "20",
               "--headroom-mb", "1024", "--per-input-s", "5", "--dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    report = json.loads(lines[-1])
    for kind, counts in report["kinds"].items():
        answered = counts["loaded"] + counts["refused"]
        print(f"fuzz {kind}: {counts['tried']} tried, {answered} answered ({counts['loaded']} loaded, "
              f"{counts['refused']} refused with a ValueError naming the file), {counts['failed']} failed; "
              f"slowest {counts['slowest_s']} s; under a {report['ceiling_mb']} MB address-space ceiling")
        assert counts["tried"] >= 20 and answered + counts["failed"] == counts["tried"]
        assert counts["loaded"] >= 1  # some mutations leave a valid file (e.g. a flip in unused bytes)
    assert report["failures"] == [], json.dumps(report["failures"], indent=1)


# --------------------------------------------------------------------------- the matrix editor
_VALUES = [None, "", " ", "abc", "1e400", "-1e400", "nan", "inf", "1e308", "1e-3", "-2.5", " 7 ", "0x10", "1_000",
           "−3", "3,5", "9" * 500, 5, -1, 0, 10**30, 1e308, 2.5, float("nan"), True, False, [], [1], {}, {"a": 1}]


def _random_state(rng: random.Random, rows: int, cols: int) -> dict:
    """A random ``st.data_editor`` client message: cell edits inside and outside the matrix, rows added or deleted."""
    edited = {}
    for _ in range(rng.randint(0, 6)):
        row = rng.choice([rng.randrange(rows), rng.randrange(rows), -1, rows, 999, 10**9])
        column = rng.choice([str(rng.randrange(cols) + 1), str(rng.randrange(cols) + 1), "0", str(cols + 1), "99",
                             "abc", "_index"])
        edited.setdefault(row, {})[column] = rng.choice(_VALUES)
    state = {"edited_rows": edited, "added_rows": [], "deleted_rows": []}
    if rng.random() < 0.2:
        state["added_rows"] = [{"1": 1}] * rng.choice([1, 50, 20_000])
    if rng.random() < 0.2:
        state["deleted_rows"] = rng.sample(range(rows), 1) + [999]
    if rng.random() < 0.05:
        state = rng.choice([[1, 2], "junk", {"edited_rows": [1, 2]}, {"edited_rows": {0: "x"}}])
    return state


def test_fuzz_matrix_editor_with_random_client_messages():
    rng = random.Random(SEED)
    at = run_page(CONV_PAGE)
    tried, answered, failures = 0, 0, []
    deadline = time.monotonic() + 15
    while tried < 12 or (time.monotonic() < deadline and tried < 200):
        prefix, limit = rng.choice([("conv_x", 28), ("conv_k", 7)])
        rows, cols = np.shape(at.session_state[f"{prefix}_current"])
        if rng.random() < 0.25:
            size = rng.choice([None, 0, -3, 1, 2, 3, limit, limit + 1, 99, 1000])
            at.number_input(key=f"{prefix}_{rng.choice(['rows', 'cols'])}").set_value(size)
            what = f"{prefix} size {size!r}"
        else:
            state = _random_state(rng, rows, cols)
            at.session_state[f"{prefix}_editor_{at.session_state[f'{prefix}_ver']}"] = state
            what = f"{prefix} edit {str(state)[:200]}"
        start = time.monotonic()
        at.run(timeout=60)
        tried += 1
        elapsed = time.monotonic() - start
        problems = [e.value for e in at.exception]
        for key, lim in (("conv_x", 28), ("conv_k", 7)):
            matrix = np.asarray(at.session_state[f"{key}_current"])
            if not (1 <= matrix.shape[0] <= lim and 1 <= matrix.shape[1] <= lim):
                problems.append(f"{key} has size {matrix.shape}, past {lim}x{lim}")
            if not np.all(np.isfinite(matrix)) or np.abs(matrix).max() > 1e9:
                problems.append(f"{key} holds a value that is not finite or past 1e9")
            if (at.session_state[f"{key}_rows"], at.session_state[f"{key}_cols"]) != matrix.shape:
                problems.append(f"{key}: the size fields say {at.session_state[f'{key}_rows']}×"
                                f"{at.session_state[f'{key}_cols']} but the matrix is {matrix.shape}")
        if elapsed > 30:
            problems.append(f"the run took {elapsed:.0f} s")
        if problems:
            failures.append((what, problems))
            at = run_page(CONV_PAGE)  # start over from a fresh page
        else:
            answered += 1
    print(f"fuzz matrix editor: {tried} tried, {answered} answered, {len(failures)} failed")
    assert not failures, failures[:5]
    assert math.isfinite(float(np.asarray(at.session_state["conv_x_current"]).sum()))
