"""Memory and round time with many labelled large images (issue 19, item 6): N labelled pictures
of 2048 x 2048, whose feature maps (319 MB each) far exceed the feature cache's budget.

The app's engine (a real ``SegmentationEngine`` in a real project, one torch thread as in the app):
MoNuSeg and ISBI pictures from the shared data resized to 2048 x 2048 (rotated and flipped beyond
the 44 there are), 10 clicks on each from their masks, a first round (every map computed once),
then ``--rounds`` - 1 rounds of the app's length (``loop.STEPS``) that each add 10 clicks on one
image. Each stage (``--images 50,200``) adds images to the same project. Prints each round's time
and the peak resident memory so far (and, with ``--trace-s``, what is resident every so often).
Not part of the test run; the pictures and the project are written to ``--dir`` (a new or empty
folder) and removed at the end:

    PYTHONPATH=. /usr/bin/time -v python benchmarks/large_images_memory.py --images 50 --rounds 4 --dir /tmp/big
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.service.loop import STEPS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIDE = 2048


def sources(data: Path) -> list[tuple[Path, Path]]:
    """(picture, mask) pairs: MoNuSeg's tiles and ISBI's slices."""
    monuseg = data / "monuseg2018_test"
    isbi = data / "isbi2012_em_membranes"
    pairs = [(p, monuseg / "masks_binary" / f"{p.stem}.png") for p in sorted((monuseg / "images").glob("*.tif"))]
    pairs += [(isbi / "image" / f"{i}.png", isbi / "label" / f"{i}.png") for i in range(30)]
    return [(p, m) for p, m in pairs if p.is_file() and m.is_file()]


def variant(array: np.ndarray, turn: int) -> np.ndarray:
    """The ``turn``-th of eight orientations (four rotations, then the same flipped)."""
    array = np.rot90(array, turn % 4)
    return np.ascontiguousarray(array[:, ::-1] if turn % 8 >= 4 else array)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def resident() -> str:
    """The process's resident memory now, anonymous and file-backed (Linux's ``/proc``)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    except OSError:
        return ""
    return " ".join(f"{name} {int(fields[name].split()[0]) / 2 ** 20:.2f}" for name in ("VmRSS", "RssAnon", "RssFile")
                    if name in fields) + " GiB"


def trace_memory(every_s: float, engine_of, stop: threading.Event) -> None:
    """Every ``every_s``: resident memory and what the engine holds, to find what grows."""
    start = time.perf_counter()
    while not stop.wait(every_s):
        engine = engine_of()
        held = "" if engine is None else (f", maps {engine.cache.nbytes / 2 ** 30:.2f} GiB, "
                                          f"pools {engine.learner.points.nbytes / 2 ** 20:.0f} MiB")
        print(f"  [{time.perf_counter() - start:.0f} s] {resident()}, peak {peak_gib():.2f} GiB{held}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="50", help="labelled images at each stage, e.g. 50,200")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--dir", type=Path, required=True, help="a folder for the pictures and the project")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--trace-s", type=float, default=0, help="print resident memory this often (0: never)")
    args = parser.parse_args()
    pairs = sources(args.data)
    if not pairs:
        raise SystemExit(f"No MoNuSeg or ISBI pictures under {args.data}.")
    if args.dir.exists() and any(args.dir.iterdir()):
        raise SystemExit(f"{args.dir} is not empty: give a new or empty folder (it is removed at the end).")
    torch.set_num_threads(1)
    (args.dir / "img").mkdir(parents=True)
    project = Project.create(args.dir / "project", classes=[("background", "#0000ff", "1"), ("object", "#ff0000", "2")])
    classes = [c.id for c in project.classes()]
    rng = np.random.default_rng(0)
    truths: dict[int, tuple[Path, int]] = {}  # image id -> (mask file, orientation)

    def add_image(i: int) -> int:
        picture, mask = pairs[i % len(pairs)]
        turn = i // len(pairs)
        pixels = variant(cv2.resize(cv2.imread(str(picture), cv2.IMREAD_COLOR), (SIDE, SIDE)), turn)
        path = args.dir / "img" / f"{i:03d}.png"
        cv2.imwrite(str(path), pixels)
        image_id = project.add_image(path, SIDE, SIDE)
        truths[image_id] = (mask, turn)
        return image_id

    def click(image_id: int, k: int = 10) -> None:
        """``k`` labels at random pixels, their classes from the mask, read again for each call:
        held for every image, 200 masks took 0.8 GiB of this process, counted as the app's."""
        mask, turn = truths[image_id]
        truth = (cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8)
        truth = variant(cv2.resize(truth, (SIDE, SIDE), interpolation=cv2.INTER_NEAREST), turn)
        yy, xx = rng.integers(SIDE, size=k), rng.integers(SIDE, size=k)
        project.add_labels(image_id, [(float(x), float(y), classes[truth[y, x]]) for y, x in zip(yy, xx)])

    ids: list[int] = []
    engine = None
    stop = threading.Event()
    if args.trace_s > 0:
        threading.Thread(target=trace_memory, args=(args.trace_s, lambda: engine, stop), daemon=True).start()
    try:
        for stage in (int(n) for n in args.images.split(",")):
            while len(ids) < stage:
                ids.append(add_image(len(ids)))
                click(ids[-1])
            engine = engine or SegmentationEngine(project, seed=0)
            for r in range(1, args.rounds + 1):
                if r > 1:
                    click(ids[(r * 7) % len(ids)])
                start = time.perf_counter()
                report = engine.train(STEPS["fast"])
                print(f"{len(ids)} images, round {r}: {time.perf_counter() - start:.1f} s, {report.train_labels} "
                      f"training labels, published {report.published}, maps in memory "
                      f"{engine.cache.nbytes / 2 ** 30:.2f} of {engine.cache.budget_bytes / 2 ** 30:.2f} GiB, "
                      f"peak RSS so far {peak_gib():.2f} GiB, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        stop.set()
        project.close()
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
