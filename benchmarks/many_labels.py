"""Many labels (issue 19, item 5): the app's click path and the engine's round at 1,000, 10,000 and
100,000 labels, side by side in one run.

For each count it builds a project of 4 real 512 x 512 pictures (ISBI 2012 EM slices from the
shared data; scikit-image sample pictures where that is absent) through the real ``Project`` API,
the labels spread uniformly over the pictures, each of the class its ground truth gives (as a
consistent expert would), a few answer times among them. Then, on that project:

- the engine (a real ``SegmentationEngine``, one torch thread as in the app): a first round
  (features and a model from scratch, saved in the project as the app would have it), then
  after each of ``--rounds`` new labels a training round of the app's length (``loop.STEPS``),
  and the query proposal of an image with its prediction reused, as the app asks it;
- the window: ``desktop.gui.bench_ui.run(project_dir=..., clicks=...)``, the real window
  offscreen on a copy of the project (its saved model loaded, so a click trains a round).

Prints a table and the JSON of every figure (``--json`` writes it too). Not part of the test run:

    PYTHONPATH=. python benchmarks/many_labels.py --labels 1000 10000 100000 --clicks 8
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from desktop.engine.images.pictures import read_mask
from desktop.engine.project.store import Project

SHARED_ISBI = Path("/work/shared/data/isbi2012_em_membranes")
SIZE = 512
CLASSES = [("membrane", "#d62728", "1"), ("cell", "#f2e8c9", "2")]
"""Key 1 the dark membranes, key 2 the bright cells: ``bench ui`` presses 2 for a pixel brighter
than the median and 1 otherwise, so its clicks agree with the stored labels."""


def pictures(folder: Path, data: Path) -> list[tuple[Path, np.ndarray]]:
    """Four 512 x 512 pictures and their class per pixel (0 membrane or dark, 1 cell or bright)."""
    if all((data / "image" / f"{i}.png").is_file() for i in range(4)):
        return [(data / "image" / f"{i}.png", read_mask(data / "label" / f"{i}.png")) for i in range(4)]
    import cv2
    from skimage import data as samples
    from skimage.filters import threshold_otsu

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("camera", "coins", "moon", "page"):
        grey = cv2.resize(getattr(samples, name)(), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), grey)
        out.append((path, (grey > threshold_otsu(grey)).astype(np.int64)))
    return out


def build_project(folder: Path, count: int, source: list[tuple[Path, np.ndarray]], seed: int = 0) -> Path:
    """A project with ``count`` labels spread over the pictures of ``source``."""
    rng = np.random.default_rng(seed)
    with Project.create(folder, classes=CLASSES) as project:
        class_ids = [c.id for c in project.classes()]
        per_image = np.diff(np.linspace(0, count, len(source) + 1).round().astype(int))
        for (path, truth), n in zip(source, per_image):
            image_id = project.add_image(path, truth.shape[1], truth.shape[0])
            xy = rng.uniform(0, [truth.shape[1] - 1, truth.shape[0] - 1], (n, 2))
            cls = truth[np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)]
            answered = rng.random(n) < 0.5  # half answered queries (with the seconds it took), half free clicks
            seconds = [float(s) if a else None for s, a in zip(rng.gamma(2.0, 1.5, n), answered)]
            project.add_labels(image_id, [(x, y, class_ids[c]) for (x, y), c in zip(xy, cls)], seconds=seconds)
    return folder


def time_engine(folder: Path, source: list[tuple[Path, np.ndarray]], rounds: int, seed: int = 0) -> dict:
    """The engine's first round, then ``rounds`` rounds of the app's length after one new label
    each, and as many query proposals (the prediction reused, as the app does)."""
    import torch

    from desktop.engine.segmentation.engine import SegmentationEngine
    from desktop.engine.service.loop import STEPS
    from desktop.engine.service.segmentation import MIN_DISTANCE

    torch.set_num_threads(1)  # the app leaves the other core to the window (EngineService.torch_threads)
    rng = np.random.default_rng(seed + 1)
    with Project.open(folder) as project:
        engine = SegmentationEngine(project, seed=seed)
        start = time.perf_counter()
        first = engine.train()
        first_s = time.perf_counter() - start
        image_id = project.images()[0].id
        truth = source[0][1]
        class_ids = [c.id for c in project.classes()]
        train_s, propose_s, predict_s = [], [], []
        for _ in range(rounds):
            x, y = rng.uniform(8, SIZE - 8, 2)
            project.add_label(image_id, x, y, class_ids[truth[round(y), round(x)]])
            start = time.perf_counter()
            report = engine.train(STEPS["fast"])
            train_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            probs = engine.predict(image_id)
            predict_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.propose_queries(image_id, 8, "margin", min_distance=MIN_DISTANCE, probs=probs, store=False)
            propose_s.append(time.perf_counter() - start)
        return {"first_round_s": round(first_s, 2), "first_round_published": first.published,
                "train_round_s": round(float(np.median(train_s)), 3), "train_rounds_s": [round(s, 3) for s in train_s],
                "last_round_published": report.published, "predict_s": round(float(np.median(predict_s)), 3),
                "propose_s": round(float(np.median(propose_s)), 3), "propose_all_s": [round(s, 3) for s in propose_s]}


def time_window(folder: Path, clicks: int, seed: int = 0) -> dict:
    from desktop.gui.bench_ui import run

    return run(project_dir=folder, clicks=clicks, seed=seed)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--clicks", type=int, default=8, help="clicks of bench ui per project (0: no window)")
    parser.add_argument("--rounds", type=int, default=3, help="engine rounds (and proposals) timed per project")
    parser.add_argument("--data", type=Path, default=SHARED_ISBI, help="ISBI 2012 folder (image/, label/)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them (default: a temporary folder)")
    args = parser.parse_args(argv)
    results = {"load_before": _load(), "cpu_count": os.cpu_count(), "by_labels": {}}
    with tempfile.TemporaryDirectory(prefix="pointillist-many-labels-") as tmp:
        root = args.keep or Path(tmp)
        source = pictures(root / "pictures", args.data)
        results["pictures"] = [str(path) for path, _ in source]
        for count in args.labels:
            folder = root / f"labels-{count}"
            if folder.exists():
                shutil.rmtree(folder)
            entry = {"load": _load()}
            start = time.perf_counter()
            build_project(folder, count, source)
            entry["build_s"] = round(time.perf_counter() - start, 1)
            if args.rounds:
                entry["engine"] = time_engine(folder, source, args.rounds)
            if args.clicks:
                entry["window"] = time_window(folder, args.clicks)
            entry["load_after"] = _load()
            results["by_labels"][count] = entry
            print(f"{count} labels: {json.dumps(entry)}", flush=True)
    results["load_after"] = _load()
    print_table(results)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def print_table(results: dict) -> None:
    rows = [("labels", "store p50/p95 ms", "stall ms", "missed", "overlay p50 ms", "round s", "propose s", "load")]
    for count, entry in results["by_labels"].items():
        w, e = entry.get("window", {}), entry.get("engine", {})
        rows.append((f"{count:,}", f"{w.get('click_to_store_ms_p50')} / {w.get('click_to_store_ms_p95')}",
                     str(w.get("max_event_loop_stall_ms")), f"{w.get('overlay_missed')} of {w.get('clicks')}",
                     str(w.get("click_to_overlay_ms_p50")), str(e.get("train_round_s")), str(e.get("propose_s")),
                     f"{entry['load']} -> {entry['load_after']}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(r, widths)))


if __name__ == "__main__":
    main()
