"""Fuzz the file loaders: random mutations of a valid model file, run file and MNIST file.

Run by ``tests/test_fuzz.py`` in a subprocess (``python tests/fuzz_files.py --seed N --seconds S``), so the
memory ceiling it sets with ``resource.setrlimit(RLIMIT_AS)`` never applies to pytest itself. It imports
TensorFlow and loads each valid file once (warming up TensorFlow's threads), then lowers its own address-space
limit to what it uses plus ``--headroom-mb``, then for each kind tries mutated files for ``--seconds`` / 3
seconds (at least ``--min-each``): bit flips, truncation, member swaps / drops / duplicates, tampered ``.npy``
headers and zip directories (ZIP64 end records among them), deeply nested and huge JSON, and JSON values of the wrong type or size.

Each input's result is one of: a valid load; a ``ValueError`` whose message names the file (answered); or
anything else — another exception, a ``ValueError`` that does not name the file, a ``MemoryError`` turned
into a message (the limits should have refused the file before it cost that memory), or a load slower than
``--per-input-s`` (failed). It prints one JSON object: counts per kind and the first failures.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import struct
import sys
import time
import traceback
import warnings
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN_ID = "20260101-000000-fast-abcdef"


# --------------------------------------------------------------------------- valid files
def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(members: list[tuple[str, bytes]], compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, payload in members:
            archive.writestr(name, payload)
    return buffer.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def valid_files(tmp: Path):
    """The three valid files as bytes: a small model, a run of it, a small MNIST copy."""
    from convviz.model import ScratchCNN, make_spec
    from convviz.runs import RunStore

    model = ScratchCNN(make_spec("fast", filters=(2, 4)), seed=0)
    model.save(tmp / "model.npz")
    history = {"batch_loss": [2.3, 2.1, 1.9], "batch_accuracy": [0.1, 0.2, 0.3], "epoch_test_loss": [1.5],
               "epoch_test_accuracy": [0.5], "epoch": 1, "batch": 3, "batches_per_epoch": 3, "epochs": 2,
               "samples_per_second": 100.0, "elapsed_s": 1.0, "eta_s": 1.0, "status": "running", "error": None}
    config = {"preset": "fast", "filters": [2, 4], "kernel_size": 3, "epochs": 2, "batch_size": 64,
              "learning_rate": 0.001, "seed": 0}
    RunStore(tmp / "store").save(RUN_ID, model, preset="fast", dataset="sample", config=config, history=history,
                                 name="Run 1")
    rng = np.random.default_rng(0)
    mnist = _npz_bytes({"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
                        "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
                        "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                        "y_test": rng.integers(0, 10, 5, dtype=np.uint8)})
    return {"model": (tmp / "model.npz").read_bytes(), "run": (tmp / "store" / f"{RUN_ID}.npz").read_bytes(),
            "mnist": mnist}


# --------------------------------------------------------------------------- mutations
def _nested(rng: random.Random) -> str:
    depth = rng.choice([5, 17, 100, 999, 1001, 5000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + "1" + closer * depth


def _huge(rng: random.Random) -> str:
    size = rng.choice([70_000, 1_000_000, 3_000_000])
    return rng.choice([json.dumps("x" * size), json.dumps([1.5] * (size // 5)),
                       json.dumps({f"k{i}": i for i in range(size // 12)})])


def _json_values(text: str, rng: random.Random) -> str:
    """Replace random values of a JSON document with values of the wrong type or size."""
    value = json.loads(text)
    wrong = [None, -1, 0, 10**30, 1e30, -1e308, "abc", "", [], {}, [[[[1]]]], True, 2**63, 0.5, "NaN",
             list(range(50)), "x" * 5000]

    def visit(node, budget):
        if isinstance(node, dict):
            for key in list(node):
                if rng.random() < 0.3 and budget[0] > 0:
                    budget[0] -= 1
                    node[key] = rng.choice(wrong)
                else:
                    visit(node[key], budget)
        elif isinstance(node, list):
            for index in range(len(node)):
                if rng.random() < 0.1 and budget[0] > 0:
                    budget[0] -= 1
                    node[index] = rng.choice(wrong)
                else:
                    visit(node[index], budget)
    visit(value, [rng.randint(1, 4)])
    out = json.dumps(value)
    return out.replace('"NaN"', "NaN") if rng.random() < 0.3 else out


def _header_tamper(payload: bytes, rng: random.Random) -> bytes:
    """A .npy member whose header claims another shape or dtype than its data."""
    try:
        array = np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
    except Exception:
        return payload
    shape = rng.choice([(10**6, 10**6), (2**31,), (10**9, 28, 28), (1,) * 40, (0,), (3, 3, 3, 3, 3)])
    dtype = rng.choice([array.dtype, np.dtype("<f8"), np.dtype("<U1000000"), np.dtype("|V8"), np.dtype("<c16")])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
    except Exception:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue() + array.tobytes()[: rng.choice([0, 16, 10**6])]


def _directory_tamper(data: bytes, rng: random.Random) -> bytes:
    """Patch the zip's end record (member count, directory size) or a central entry's declared sizes."""
    out = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    central = data.find(b"PK\x01\x02")
    choice = rng.randrange(5)
    if choice >= 3 and end >= 0:
        return _zip64_tamper(data, end, rng)
    if choice == 0 and end >= 0:
        struct.pack_into("<HH", out, end + 8, *(rng.choice([0, 1, 100, 65535]),) * 2)
    elif choice == 1 and end >= 0:
        struct.pack_into("<L", out, end + 12, rng.choice([0, 10**6, 0xFFFFFFFF]))
    elif central >= 0:
        struct.pack_into("<L", out, central + 24, rng.choice([0, 1, 2**31, 0xFFFFFFFE]))  # uncompressed size
    return bytes(out)


def _zip64_tamper(data: bytes, end: int, rng: random.Random) -> bytes:
    """Insert a ZIP64 end record and locator before the classic end record (``zipfile`` then trusts the ZIP64
    counts), with random member counts, directory size and offset, classic fields kept or set to the ZIP64
    placeholders, and sometimes a locator or signature that points nowhere."""
    fields = list(struct.unpack("<4s4H2LH", data[end:end + 22]))
    count = rng.choice([0, 1, fields[4], 65, 65535, 65536, 1_000_000, 2**32, 2**63])
    size = rng.choice([fields[5], 0, 10**6, 2**40, 2**64 - 1])
    offset = rng.choice([fields[6], 0, fields[6] + 1, 10**9, 2**64 - 1])
    record = struct.pack("<4sQ2H2L4Q", rng.choice([b"PK\x06\x06", b"PK\x06\x06", b"PK\x00\x00"]), 44, 45, 45,
                         0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, rng.choice([end, end, 0, 2**63]), rng.choice([1, 1, 2]))
    if rng.random() < 0.7:
        fields[3:7] = [0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF]
    return data[:end] + record + locator + struct.pack("<4s4H2LH", *fields)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of a valid .npz: ``(what was done, bytes)``."""
    members = list(_members(data).items())
    kind = rng.choice(["bitflip", "truncate", "swap", "drop", "duplicate", "header", "directory", "nested",
                       "huge", "values", "stored_flip"])
    if kind == "bitflip" or (kind in ("nested", "huge", "values") and not any(n.endswith(("spec.npy", "metadata.npy"))
                                                                          for n, _ in members)):
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
        return "bitflip", bytes(out)
    if kind == "truncate":
        return "truncate", data[: rng.randrange(len(data))]
    if kind == "swap" and len(members) > 1:
        i, j = rng.sample(range(len(members)), 2)
        (a, pa), (b, pb) = members[i], members[j]
        members[i], members[j] = (a, pb), (b, pa)
        return "swap", _zip(members)
    if kind == "drop":
        members.pop(rng.randrange(len(members)))
        return "drop", _zip(members)
    if kind == "duplicate":
        members.append(rng.choice(members))
        return "duplicate", _zip(members)
    if kind == "header":
        index = rng.randrange(len(members))
        members[index] = (members[index][0], _header_tamper(members[index][1], rng))
        return "header", _zip(members)
    if kind == "directory":
        return "directory", _directory_tamper(data, rng)
    if kind == "stored_flip":
        stored = bytearray(_zip(members, compress=False))
        for _ in range(rng.randint(1, 16)):
            position = rng.randrange(len(stored))
            stored[position] ^= 1 << rng.randrange(8)
        return "stored_flip", bytes(stored)
    # JSON members: spec / metadata
    text_members = [i for i, (n, _) in enumerate(members) if n.endswith(("spec.npy", "metadata.npy"))]
    index = rng.choice(text_members)
    name, payload = members[index]
    text = str(np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False))
    new = _nested(rng) if kind == "nested" else _huge(rng) if kind == "huge" else _json_values(text, rng)
    members[index] = (name, _npy(np.array(new)))
    return kind, _zip(members)


# --------------------------------------------------------------------------- loaders
def load(kind: str, path: Path):
    """Load ``path`` the way the app does for ``kind``; returns what was loaded."""
    if kind == "model":
        from convviz.model import load_checkpoint

        return load_checkpoint(path)
    if kind == "run":
        from convviz.runs import RunStore

        store = RunStore(path.parent)
        records, skipped = store.list_runs()
        if skipped and path.name not in skipped[0].name:
            raise AssertionError(f"skipped {skipped} does not name {path.name}")
        if not records and not skipped:
            raise AssertionError("the run file was neither listed nor skipped")
        return store.load(RUN_ID)
    from convviz.data import read_mnist_file

    return read_mnist_file(path, sizes=None)


def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--min-each", type=int, default=20)
    parser.add_argument("--headroom-mb", type=int, default=1024)
    parser.add_argument("--per-input-s", type=float, default=5.0)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", "Duplicate name")  # the "duplicate" mutation writes them on purpose
    tmp = Path(args.dir)
    files = valid_files(tmp)
    paths = {"model": tmp / "fuzz" / "model.npz", "run": tmp / "fuzz" / "runs" / f"{RUN_ID}.npz",
             "mnist": tmp / "fuzz" / "mnist.npz"}
    for kind, path in paths.items():  # the valid files load (and TensorFlow is warmed up) before the ceiling
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[kind])
        load(kind, path)
    ceiling = _vm_size_bytes() + args.headroom_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))

    rng = random.Random(args.seed)
    report = {"seed": args.seed, "ceiling_mb": ceiling // 2**20, "kinds": {}, "failures": []}
    for kind, path in paths.items():
        counts = {"tried": 0, "loaded": 0, "refused": 0, "failed": 0, "slowest_s": 0.0, "mutations": {}}
        deadline = time.monotonic() + args.seconds / len(paths)
        # past the time too while no mutation has loaded (a few in a hundred do: a loaded machine tried only 20 run
        # files once, none loaded), up to the cap below
        while counts["tried"] < args.min_each or time.monotonic() < deadline or counts["loaded"] == 0:
            if counts["tried"] >= 20 * args.min_each and time.monotonic() >= deadline:
                break
            what, data = mutate(files[kind], rng)
            path.write_bytes(data)
            counts["tried"] += 1
            counts["mutations"][what] = counts["mutations"].get(what, 0) + 1
            start = time.monotonic()
            outcome, problem = None, None
            try:
                load(kind, path)
                outcome = "loaded"
            except ValueError as exc:
                text = str(exc)
                if path.name not in text:
                    problem = f"ValueError without the file's name: {text[:300]}"
                elif "more memory than is available" in text:
                    problem = f"memory ran out before a limit refused it: {text[:300]}"
                else:
                    outcome = "refused"
            except BaseException as exc:  # noqa: BLE001 - everything else is what the fuzz looks for
                problem = f"{type(exc).__name__}: {str(exc)[:300]}\n{traceback.format_exc()[-1500:]}"
            elapsed = time.monotonic() - start
            counts["slowest_s"] = max(counts["slowest_s"], round(elapsed, 3))
            if problem is None and elapsed > args.per_input_s:
                problem = f"{outcome} in {elapsed:.1f} s, over the {args.per_input_s} s allowed"
            if problem is None:
                counts[outcome] += 1
            if problem is not None:
                counts["failed"] += 1
                if len(report["failures"]) < 10:
                    report["failures"].append({"kind": kind, "mutation": what, "problem": problem})
        report["kinds"][kind] = counts
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
