"""``pointillist bench keypoints``: active learning of keypoints with a simulated annotator.

The labelled images (a DeepLabCut CSV or COCO JSON) are split once, seeded, into a pool and a
test set. Round 1 labels ``initial_images`` random pool images fully from the file (a click per
labelled keypoint; an empty cell is stored as ``absent`` at no cost: nothing was proposed
there). Each later round the strategy ranks the unlabelled pool images by their least certain
keypoints and takes ``images_per_round`` (``spread``: the batch is also spread out in feature
space, see :func:`keypoint_uncertainty.spread_images`); the annotator sees the model's proposals and, one
click each, moves every keypoint that is more than ``correct_threshold`` pixels off or marks
absent one the file leaves empty (the softmax heatmaps always propose a position), and accepts
the rest where they are. Labels go through a real project, as clicks would. After each round
the learner retrains (warm) and is scored on the test images: RMSE and PCK at 5 pixels over
the keypoints the file labels there.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from desktop.engine.errors import PointillistError
from desktop.engine.images.pictures import image_size, read_image
from desktop.engine.keypoints import strategies
from desktop.engine.keypoints import uncertainty as ku
from desktop.engine.keypoints.engine import KeypointEngine, keypoint_scores
from desktop.engine.keypoints.formats import read_table
from desktop.engine.keypoints.learners import locate
from desktop.engine.learning.base import ImageRef
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project

DEFAULT_STEPS = {"fast": 100, "deep": 40}
PCK_PIXELS = 5.0


def parse_pairs(text: str | None) -> list[tuple[str, str]]:
    """``"a:b,c:d"`` -> ``[("a", "b"), ("c", "d")]`` (empty for None or "")."""
    pairs = []
    for item in (text or "").split(","):
        if item.strip():
            a, sep, b = item.partition(":")
            if not sep or not a.strip() or not b.strip():
                raise PointillistError(f"'{item}' is not a pair: write keypoint names as a:b.")
            pairs.append((a.strip(), b.strip()))
    return pairs


def errors_px(learner, refs: list[ImageRef], truth: np.ndarray) -> np.ndarray:
    """Pixel distances between predictions and the labelled keypoints of ``truth`` (N, K, 2)."""
    out = []
    for ref, xy in zip(refs, truth):
        predicted, _ = locate(learner.predict_heatmaps(ref))
        known = np.isfinite(xy[:, 0])
        out.append(np.linalg.norm(predicted[known] - xy[known], axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def annotate(proposed: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[list, int]:
    """What the simulated annotator leaves: ``[(keypoint, x, y, visibility)]`` and its clicks."""
    entries, clicks = [], 0
    for k, ((px, py), (tx, ty)) in enumerate(zip(proposed, truth)):
        if not np.isfinite(tx):
            entries.append((k, 0.0, 0.0, "absent"))
            clicks += 1  # the proposal said visible
        elif np.hypot(px - tx, py - ty) > threshold:
            entries.append((k, tx, ty, "visible"))
            clicks += 1
        else:
            entries.append((k, px, py, "visible"))
    return entries, clicks


def run(labels_path: Path, images_root: Path, *, initial_images: int, images_per_round: int, rounds: int,
        strategy: str, learner: str = "fast", test_fraction: float = 0.2, correct_threshold: float = 3.0,
        seed: int = 0, steps: int | None = None, device: str = "auto", symmetric: str | None = None,
        edges: str | None = None, log: Callable[[str], None] = print) -> dict:
    strategies.strategy(strategy)
    if not 0 < test_fraction < 1:
        raise PointillistError("--test-fraction must be between 0 and 1.")
    table = read_table(labels_path)
    skeleton = Skeleton.from_names(table.skeleton.names, parse_pairs(edges), parse_pairs(symmetric))
    steps = steps or DEFAULT_STEPS[learner]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table.images))
    n_test = max(1, int(round(test_fraction * len(order))))
    test, pool = order[:n_test], order[n_test:]
    if initial_images > len(pool):
        raise PointillistError(f"--initial-images {initial_images} is more than the {len(pool)} pool images.")
    root = Path(images_root)
    refs = [ImageRef(str(root / name), lambda p=root / name: read_image(p)) for name in table.images]
    result = {"strategy": strategy, "learner": learner, "seed": seed, "steps": steps,
              "correct_threshold": correct_threshold, "pool_images": len(pool), "test_images": n_test,
              "rounds": []}
    with tempfile.TemporaryDirectory(prefix="pointillist-bench-kp-") as tmp:
        project = Project.create(Path(tmp) / "project", task="keypoints")
        project.set_skeleton(skeleton)
        ids = {}
        for i in pool:
            width, height = image_size(root / table.images[i])
            ids[i] = project.add_image(root / table.images[i], width, height)
        # The app's engine on the pool; as in the segmentation benchmark, no label is held back
        # (the test images measure) and no file is written.
        engine = KeypointEngine(project, learner=learner, device=device, seed=seed, validation_fraction=0.0,
                                save_models=False)
        model = engine.learner
        labelled: list[int] = []
        clicks = 0
        for round_index in range(1, rounds + 1):
            start = time.perf_counter()
            if round_index == 1:
                chosen = [int(i) for i in rng.choice(pool, initial_images, replace=False)]
                proposals = {i: table.xy[i] for i in chosen}  # nothing proposed: every labelled cell is a click
                round_clicks = int(np.isfinite(table.xy[chosen][..., 0]).sum())
            else:
                chosen, proposals = _choose(strategy, engine, pool, labelled, images_per_round, ids, rng)
                round_clicks = 0
            for i in chosen:
                entries, n = annotate(proposals[i], table.xy[i], correct_threshold)
                round_clicks += n if round_index > 1 else 0
                project.set_keypoint_labels([(ids[i], *e) for e in entries], author="simulated")
            labelled += chosen
            clicks += round_clicks
            query_seconds = time.perf_counter() - start
            report = engine.train(steps)
            d = errors_px(model, [refs[i] for i in test], table.xy[test])
            entry = {"round": round_index, "labelled_images": len(labelled), "clicks": clicks,
                     "round_clicks": round_clicks, "rmse_px": float(np.sqrt(np.mean(d ** 2))),
                     "pck_5px": float(np.mean(d <= PCK_PIXELS)), "train_seconds": report.seconds,
                     "query_seconds": query_seconds}
            result["rounds"].append(entry)
            log(f"round {round_index:2d}: {len(labelled)} images, {clicks} clicks, RMSE {entry['rmse_px']:.2f} px, "
                f"PCK@5 {entry['pck_5px']:.3f}, train {report.seconds:.1f} s, query {query_seconds:.1f} s")
        project.close()
    return result


def _choose(strategy, engine: KeypointEngine, pool, labelled, k, ids, rng):
    """The ``k`` pool images the strategy ranks least certain (``spread``: least certain and
    unlike each other), and the model's proposals for them."""
    model, project = engine.learner, engine.project
    candidates = [int(i) for i in pool if int(i) not in set(labelled)]
    reference = np.array([project.keypoint_arrays(ids[i])[0] for i in labelled])
    scoring = strategies.SPREAD_SCORE if strategy == "spread" else strategy
    scores = {}
    for i in candidates:
        width = project.image(ids[i]).width
        scores[i] = keypoint_scores(scoring, model, engine.ref(ids[i]), width, engine.skeleton, lambda: reference,
                                    rng)
    if strategy == "spread":
        uncertainty = dict(ku.rank_images(scores))
        chosen = ku.spread_images(uncertainty, {i: model.describe(engine.ref(ids[i])) for i in candidates},
                                  [model.describe(engine.ref(ids[i])) for i in labelled], k)
    else:
        chosen = [i for i, _ in ku.rank_images(scores)[:k]]
    proposals = {i: locate(model.predict_heatmaps(engine.ref(ids[i])))[0] for i in chosen}
    return chosen, proposals
