"""Upload preparation: time and peak memory to accept a large legal image, main's code beside this checkout's.

Not a test: run from the repository root (needs git and the ``main`` branch)::

    python benchmarks/upload_prep.py              # 5 repeats per image, page and version
    python benchmarks/upload_prep.py --repeats 9

For each image kind (built here, in memory) and each upload path it runs what the page runs on an upload:

* ``stacked``: Stacked Channels (``convviz.ui.stacked.real_input_picker``, grayscale): ``decode_upload(data, "L",
  max_side=280)``, then ``fit_image(image, 28, min_side=3)`` and ``prepare_photo(image)``.
* ``draw``: the Draw page's uploader (``convviz.ui.drawing.uploaded_stages``): ``decode_upload(data, "L",
  max_side=560)`` then ``prepare_photo``.

"main" is ``convviz/images.py`` and ``convviz/preprocess.py`` as ``git show main:…`` prints them, loaded as
modules from a temporary folder; "now" is this checkout's. Each (kind, path, version) runs in its own Python
process, so the peak resident memory it reports (``VmHWM`` of ``/proc/self/status`` after the runs minus before
them, MB) is its own.
Times are the median of ``--repeats`` runs: wall clock and CPU (``process_time``, steadier on a busy machine),
seconds. The two versions run interleaved, kind by kind:
timings on this shared machine drift, so compare the two columns of one row. An image over the documented pixel
limit (:data:`convviz.images.MAX_PIXELS`) is refused before decoding; its row shows how long the refusal took.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def make_images() -> dict[str, bytes]:
    """The image kinds measured, name -> file bytes (each under the 5 MB upload limit)."""
    rgba = np.zeros((5000, 5000, 4), np.uint8)
    rgba[1000:4000, 2200:2800] = (255, 255, 255, 255)  # a white bar on a transparent sheet
    strip = (np.arange(5_000_000) % 65536).astype("<u2")
    square = np.zeros((8000, 8000, 3), np.uint8)
    square[2000:6000, 3500:4500] = 230
    phone = np.full((3000, 4000, 3), (225, 215, 200), np.uint8)
    phone[600:2400, 1900:2100] = 25  # a dark stroke on paper, stored sideways
    photo = Image.fromarray(phone)
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": a phone held upright
    palette = np.zeros((3000, 3000), np.uint8)
    palette[500:2500, 1300:1700] = 255
    return {
        "5000x5000 RGBA PNG": _png(Image.fromarray(rgba, "RGBA")),
        "1x5,000,000 16-bit PNG": _png(Image.frombytes("I;16", (strip.size, 1), strip.tobytes())),
        "8000x8000 JPEG": _jpeg(Image.fromarray(square), quality=60),
        "4000x3000 phone JPEG, EXIF 6": _jpeg(photo, exif=exif, quality=85),
        "3000x3000 palette PNG": _png(Image.fromarray(palette).convert("P")),
    }


CHILD = r"""
import importlib.util, json, statistics, sys, time
version, folder, kind, page, repeats = sys.argv[1:6]
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # a dataclass looks its module up
    spec.loader.exec_module(module)
    return module
images = load("images_" + version, f"{folder}/images.py")
preprocess = load("preprocess_" + version, f"{folder}/preprocess.py")
data = sys.stdin.buffer.read()
def once():
    side = 280 if page == "stacked" else 560
    image = images.decode_upload(data, "L", max_side=side)
    if page == "stacked":
        images.fit_image(image, 28, min_side=3)
    return preprocess.prepare_photo(image)[0].image
def high_water_kb():  # VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
before = high_water_kb()
times, cpu, outcome = [], [], "accepted"
for _ in range(int(repeats)):
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        digit = once()
    except ValueError as exc:
        outcome = "refused"
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
peak = high_water_kb() - before
print(json.dumps({"s": statistics.median(times), "cpu": statistics.median(cpu), "mb": peak / 1024,
                  "outcome": outcome}))
"""


def measure(version: str, folder: str, kind: str, page: str, data: bytes, repeats: int) -> dict:
    """One (version, kind, page) in a fresh Python: median seconds, peak MB over the imports, accepted/refused."""
    out = subprocess.run([sys.executable, "-c", CHILD, version, folder, kind, page, str(repeats)], input=data,
                         capture_output=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("images.py", "preprocess.py"):
            text = subprocess.run(["git", "show", f"main:convviz/{name}"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout
            Path(tmp, name).write_text(text)
        folders = {"main": tmp, "now": str(ROOT / "convviz")}
        print(f"{'image':30} {'page':8} {'main s':>7} {'now s':>7} {'main CPU':>8} {'now CPU':>7} {'main MB':>8} "
              f"{'now MB':>7}  outcome")
        for kind, data in make_images().items():
            for page in ("stacked", "draw"):
                got = {v: measure(v, folder, kind, page, data, args.repeats) for v, folder in folders.items()}
                outcome = got["now"]["outcome"] + ("" if got["now"]["outcome"] == got["main"]["outcome"]
                                                   else f" (main: {got['main']['outcome']})")
                print(f"{kind:30} {page:8} {got['main']['s']:7.3f} {got['now']['s']:7.3f} {got['main']['cpu']:8.3f} "
                      f"{got['now']['cpu']:7.3f} {got['main']['mb']:8.0f} {got['now']['mb']:7.0f}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
