"""The headless keypoint engine: the task engine (``learning/task_engine.py``) for keypoint projects.

It reads keypoint labels from the project, trains the chosen learner (``fast`` or ``deep``),
keeps back a share of labels to validate on (and refuses to publish a model that validates
worse), predicts keypoints with a confidence each, scores their uncertainty and proposes
queries: ``(image, keypoint)`` pairs, one per keypoint not labelled yet, least certain first.

Validation is PCK: the share of held-back placed keypoints predicted within
``VALIDATION_PX`` pixels. Absent keypoints and unlabelled ones give no loss and no error.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from desktop.engine.errors import PointillistError, ProjectError
from desktop.engine.keypoints import strategies
from desktop.engine.keypoints import uncertainty as ku
from desktop.engine.keypoints.learners import DeepKeypointLearner, FastKeypointLearner, KeypointLabels, flipped, locate
from desktop.engine.learning.base import ImageRef
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.learning.task_engine import LabelledSets, TaskEngine, is_validation
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project

VALIDATION_PX = 5.0
COLD_START = "cold_start"  # the strategy of queries asked before there is a model


def keypoint_scores(strategy: str, learner, ref: ImageRef, width: int, skeleton: Skeleton,
                    reference: Callable[[], np.ndarray], rng: np.random.Generator,
                    heatmaps: np.ndarray | None = None) -> np.ndarray:
    """(K,) uncertainty of one image's keypoints under ``strategy`` (higher = less sure), for the
    engine and the benchmark alike. ``reference`` gives the labelled poses (N, K, 2) that
    skeleton plausibility compares with; it is called only for that strategy."""
    strategies.strategy(strategy, in_app=True)
    if strategy == "random":
        return rng.random(len(skeleton))
    heatmaps = learner.predict_heatmaps(ref) if heatmaps is None else heatmaps
    if strategy == "confidence":
        return ku.off_peak_mass(heatmaps)
    if strategy == "entropy":
        return ku.heatmap_entropy(heatmaps)
    xy, _ = locate(heatmaps)
    if strategy == "flip":
        return ku.flip_disagreement(xy, locate(learner.predict_heatmaps(flipped(ref)))[0], width, skeleton)
    if strategy == "plausibility":
        return ku.skeleton_plausibility(xy, reference(), ku.bone_pairs(skeleton))
    raise PointillistError(f"No keypoint score for the strategy '{strategy}'.")  # keypoint_scores checks first


class KeypointEngine(TaskEngine):
    def __init__(self, project: Project, learner: str = "fast", device: str = "auto", seed: int = 0,
                 feature_budget_bytes: int | None = None, validation_fraction: float = 0.1,
                 save_models: bool = True, image_cache_items: int = 8):
        super().__init__(project, learner, device, seed, validation_fraction, save_models, image_cache_items)
        self.skeleton = project.skeleton()
        if not len(self.skeleton):
            raise ProjectError("This keypoint project has no keypoints yet: define its skeleton first.")
        if learner == "fast":
            self.cache = FeatureCache(FeatureExtractor("cpu"), feature_budget_bytes)
            self.learner = FastKeypointLearner(self.skeleton, self.cache, seed=seed)
        else:
            self.learner = DeepKeypointLearner(self.skeleton, device=self.device, seed=seed)

    # ----- training --------------------------------------------------------------------------
    def labelled_sets(self) -> LabelledSets:
        """A label is held back by the hash of its id; its keypoint is NaN (no loss) in training.
        Counts include absent keypoints, so that together they are the project's label count."""
        train, val, n_train, n_val = [], [], 0, 0
        for info in self.project.images():
            labels = self.project.keypoint_labels(info.id)
            if not labels:
                continue
            held = is_validation(np.array([lab.id for lab in labels]), self.validation_fraction)
            xy_train = np.full((len(self.skeleton), 2), np.nan)
            xy_val = xy_train.copy()
            for lab, h in zip(labels, held):
                (xy_val if h else xy_train)[lab.keypoint] = (lab.x, lab.y)  # NaN when absent
            n_val += int(held.sum())
            n_train += int((~held).sum())
            ref = self.ref(info.id)
            if np.isfinite(xy_train).all(1).any():
                train.append(KeypointLabels(ref, xy_train))
            if np.isfinite(xy_val).all(1).any():
                val.append(KeypointLabels(ref, xy_val))
        return LabelledSets(train, val, n_train, n_val)

    def held_back(self, validation: list[KeypointLabels]):
        return ((p.image.key, p.xy) for p in validation)

    def validation_accuracy(self, val: list[KeypointLabels]) -> float:
        """PCK: the share of held-back placed keypoints predicted within ``VALIDATION_PX``."""
        hits = []
        for labels in val:
            predicted, _ = locate(self.learner.predict_heatmaps(labels.image))
            known = np.isfinite(labels.xy).all(1)
            hits.append(np.linalg.norm(predicted[known] - labels.xy[known], axis=1) <= VALIDATION_PX)
        hits = np.concatenate(hits) if hits else np.zeros(0, bool)
        return float(hits.mean()) if len(hits) else float("nan")

    # ----- prediction, uncertainty and queries ---------------------------------------------------
    def predict(self, image_id: int) -> np.ndarray:
        """(K, h, w) heatmaps on the image's stride-4 grid, each summing to one."""
        return self.learner.predict_heatmaps(self.ref(image_id))

    def keypoints(self, image_id: int, heatmaps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``(xy (K, 2) image pixels, confidence (K,) in [0, 1])``."""
        heatmaps = self.predict(image_id) if heatmaps is None else heatmaps
        xy, _ = locate(heatmaps)
        return xy, 1.0 - ku.off_peak_mass(heatmaps)

    def scores(self, image_id: int, strategy: str = "confidence", heatmaps: np.ndarray | None = None) -> np.ndarray:
        """(K,) uncertainty of an image's keypoints under ``strategy`` (higher = less sure)."""
        strategies.strategy(strategy, in_app=True)
        return keypoint_scores(
            strategy, self.learner, self.ref(image_id), self.project.image(image_id).width, self.skeleton,
            lambda: np.array([self.project.keypoint_arrays(info.id)[0] for info in self.project.images()]),
            self.rng, heatmaps)

    def unlabelled(self, image_id: int) -> np.ndarray:
        """Indices of the keypoints of an image that have no label yet."""
        _, visibility = self.project.keypoint_arrays(image_id)
        return np.flatnonzero(visibility == "")

    def propose_queries(self, image_id: int, strategy: str = "confidence", heatmaps: np.ndarray | None = None,
                        store: bool = True) -> tuple[list[tuple[int, float, float, float | None]], list[int]]:
        """One query per unlabelled keypoint, least certain first: ``[(keypoint, x, y, score)]``
        and, when ``store`` is set, their query ids. With no model yet, the keypoints in skeleton
        order at the image's centre (nothing is proposed: the expert clicks each)."""
        todo = self.unlabelled(image_id)
        if not self.learner.trained:
            info = self.project.image(image_id)
            entries = [(int(k), (info.width - 1) / 2, (info.height - 1) / 2, None) for k in todo]
            used = COLD_START
        else:
            heatmaps = self.predict(image_id) if heatmaps is None else heatmaps
            xy, _ = locate(heatmaps)
            score = self.scores(image_id, strategy, heatmaps)
            order = todo[np.argsort(-score[todo], kind="stable")]
            entries = [(int(k), float(xy[k, 0]), float(xy[k, 1]), float(score[k])) for k in order]
            used = strategy
        ids = self.project.add_keypoint_queries(image_id, entries, used, self.version) if store and entries else []
        return entries, ids

    def image_uncertainty(self, image_id: int, strategy: str = "confidence") -> float:
        """Mean uncertainty of the image's least certain unlabelled keypoints (0: all labelled)."""
        todo = self.unlabelled(image_id)
        if not len(todo):
            return 0.0
        return ku.rank_images({image_id: self.scores(image_id, strategy)[todo]})[0][1]

    def image_uncertainties(self, strategy: str = "confidence") -> dict[int, float]:
        return {info.id: self.image_uncertainty(info.id, strategy) for info in self.project.images()}
