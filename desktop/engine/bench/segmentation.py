"""``pointillist bench segmentation``: PixelPick's protocol, run through the real engine.

A temporary project holds the training images; a simulated annotator answers each query from
the ground-truth mask and stores the answer as a label, exactly as a click would. Round 1
labels K random pixels per training image; every later round asks K more per image with the
chosen strategy; after each round the learner retrains and the test images are scored.
``--dense`` instead trains once on every pixel of every mask: the ceiling to compare with.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from desktop.engine.images.pictures import list_images, read_image, read_mask
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.project.setup import default_classes
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.metrics import confusion, iou_per_class
from desktop.engine.segmentation.strategies import STRATEGIES

DEFAULT_STEPS = {"fast": 300, "deep": 60}


@dataclass(frozen=True)
class Pair:
    name: str
    image: Path
    mask: Path


def pair_by_stem(images_dir: Path, masks_dir: Path, max_images: int | None = None) -> list[Pair]:
    """Images and masks matched by file stem, sorted by name; unmatched images are an error."""
    masks = {p.stem: p for p in list_images(masks_dir)}
    pairs, missing = [], []
    for image in list_images(images_dir):
        if image.stem in masks:
            pairs.append(Pair(image.stem, image, masks[image.stem]))
        else:
            missing.append(image.name)
    if missing:
        raise SystemExit(f"No mask in '{masks_dir}' for: {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
    if not pairs:
        raise SystemExit(f"No images found in '{images_dir}'.")
    return pairs[:max_images] if max_images else pairs


def _random_pixels(allowed: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    flat = np.flatnonzero(allowed)
    pick = rng.choice(flat, min(k, flat.size), replace=False)
    return np.stack([pick // allowed.shape[1], pick % allowed.shape[1]], axis=1)


def _compact(mask: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """The mask in the smallest integer type that holds its classes and ``ignore_index``: read
    as int64, CamVid's 600 masks took 830 MB of a benchmark's memory; as uint8, 104 MB."""
    dtype = np.min_scalar_type(int(mask.max(initial=0)))
    if ignore_index is not None:
        dtype = np.promote_types(dtype, np.min_scalar_type(ignore_index))
    return mask.astype(dtype)


def run(train_images: Path, train_masks: Path, test_images: Path, test_masks: Path, *,
        pixels_per_round: int, rounds: int, strategy: str, learner: str = "fast", seed: int = 0,
        ignore_index: int | None = None, dense: bool = False, max_images: int | None = None,
        steps: int | None = None, device: str = "auto", log: Callable[[str], None] = print) -> dict:
    if strategy not in STRATEGIES:
        raise SystemExit(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    steps = steps or DEFAULT_STEPS[learner]
    rng = np.random.default_rng(seed)
    train = pair_by_stem(Path(train_images), Path(train_masks), max_images)
    test = pair_by_stem(Path(test_images), Path(test_masks))
    masks = {p.name: _compact(read_mask(p.mask), ignore_index) for p in train}
    test_masks_ = {p.name: _compact(read_mask(p.mask), ignore_index) for p in test}
    valid_values = [m[m != ignore_index] if ignore_index is not None else m
                    for m in list(masks.values()) + list(test_masks_.values())]
    num_classes = max(2, int(max(v.max() for v in valid_values if v.size)) + 1)
    result = {"strategy": strategy, "learner": learner, "seed": seed, "rounds": [], "dense_miou": None}

    with tempfile.TemporaryDirectory(prefix="pointillist-bench-") as tmp:
        classes = default_classes([f"class {i}" for i in range(num_classes)])
        project = Project.create(Path(tmp) / "project", classes=classes)
        engine = SegmentationEngine(project, learner=learner, device=device, seed=seed,
                                    validation_fraction=0.0, save_models=False)
        class_ids = [c.id for c in project.classes()]
        ids = {}
        for pair in train:
            h, w = masks[pair.name].shape
            ids[pair.name] = project.add_image(pair.image, w, h)
        ignore = {n: (m == ignore_index) if ignore_index is not None else np.zeros(m.shape, bool)
                  for n, m in masks.items()}

        def evaluate() -> tuple[float, list[float]]:
            matrix = np.zeros((num_classes, num_classes), np.int64)
            for pair in test:
                ref = ImageRef(f"test-{pair.name}", lambda p=pair.image: read_image(p))
                predicted = engine.learner.predict_proba(ref).argmax(0)
                matrix += confusion(test_masks_[pair.name], predicted, num_classes, ignore_index)
            ious = iou_per_class(matrix)
            return float(np.nanmean(ious)), [None if np.isnan(v) else float(v) for v in ious]

        if dense:
            labels = []
            for pair in train:
                m = masks[pair.name]
                yx = np.argwhere(~ignore[pair.name]).astype(np.float64)
                labels.append(PointLabels(engine.ref(ids[pair.name]), yx, m[~ignore[pair.name]].astype(np.int64)))
            start = time.perf_counter()
            engine.learner.fit(labels, steps * 5)
            train_seconds = time.perf_counter() - start
            miou, per_class = evaluate()
            result["dense_miou"] = miou
            result["dense_iou_per_class"] = per_class
            result["dense_train_seconds"] = train_seconds
            log(f"dense: {sum(len(l.classes) for l in labels)} labelled pixels, mIoU {miou:.4f}, "
                f"train {train_seconds:.1f} s")
            project.close()
            return result

        for round_index in range(1, rounds + 1):
            query_start = time.perf_counter()
            for pair in train:
                image_id = ids[pair.name]
                if round_index == 1:
                    allowed = ~ignore[pair.name] & ~engine.excluded_pixels(image_id)
                    points = _random_pixels(allowed, pixels_per_round, rng)
                    query_ids = [None] * len(points)
                else:
                    points, query_ids = engine.propose_queries(image_id, pixels_per_round, strategy,
                                                               ignore=ignore[pair.name])
                answers = masks[pair.name][points[:, 0], points[:, 1]]
                project.add_labels(image_id, [(float(x), float(y), class_ids[c]) for (y, x), c in zip(points, answers)],
                                   author="simulated", query_ids=query_ids)
            query_seconds = time.perf_counter() - query_start
            report = engine.train(steps)
            evaluate_start = time.perf_counter()
            miou, per_class = evaluate()
            evaluate_seconds = time.perf_counter() - evaluate_start
            labelled = project.label_count()
            entry = {"round": round_index, "pixels_per_image": labelled / len(train), "labelled_pixels": labelled,
                     "miou": miou, "iou_per_class": per_class, "train_seconds": report.seconds,
                     "query_seconds": query_seconds, "evaluate_seconds": evaluate_seconds,
                     "round_seconds": time.perf_counter() - query_start}
            result["rounds"].append(entry)
            log(f"round {round_index:2d}: {entry['pixels_per_image']:.0f} px/image, {labelled} labelled, "
                f"mIoU {miou:.4f}, train {report.seconds:.1f} s, query {query_seconds:.1f} s, "
                f"evaluate {evaluate_seconds:.1f} s, round {entry['round_seconds']:.1f} s")
        project.close()
    return result
