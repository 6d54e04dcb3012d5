"""The headless segmentation engine: the one API that the GUI's engine thread and the
benchmarks both drive.

It reads labels from the project, trains the chosen learner, keeps back a share of labels to
validate on (and refuses to publish a model that validates worse), predicts, scores
uncertainty and proposes queries. It owns no thread and knows nothing of Qt.
"""
from __future__ import annotations

import copy
import io
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from . import selection, uncertainty
from .atomic import atomic_write_bytes
from .errors import ProjectError
from .features import FeatureCache, FeatureExtractor
from .imageio import read_image
from .learners.base import ImageRef, PointLabels, pick_device
from .learners.fast import FastLearner
from .store import Project

LEARNERS = ("fast", "deep")


@dataclass(frozen=True)
class TrainReport:
    version: int | None  # model version published by this round, None when refused or skipped
    loss: float
    train_labels: int
    validation_labels: int
    validation_accuracy: float | None
    published: bool
    seconds: float


def is_validation(label_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Deterministic hold-out: a label is for validation by a hash of its id, so it stays so."""
    if fraction <= 0:
        return np.zeros(len(label_ids), bool)
    h = (np.asarray(label_ids, np.uint64) * np.uint64(2654435761)) % np.uint64(1000)
    return h < np.uint64(int(round(fraction * 1000)))


class SegmentationEngine:
    def __init__(self, project: Project, learner: str = "fast", device: str = "auto", seed: int = 0,
                 feature_budget_bytes: int = 2 << 30, validation_fraction: float = 0.1,
                 save_models: bool = True, image_cache_items: int = 8):
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
        self.project = project
        self.device = pick_device(device)
        self.seed = seed
        self.validation_fraction = validation_fraction
        self.save_models = save_models
        self.rng = np.random.default_rng(seed)
        self.cache = FeatureCache(FeatureExtractor("cpu" if learner == "fast" else self.device),
                                  feature_budget_bytes)
        num_classes = max(1, len(project.classes()))
        self.learner_name = learner
        if learner == "fast":
            self.learner = FastLearner(num_classes, self.cache, seed=seed)
        else:
            from .learners.deep import DeepLearner
            self.learner = DeepLearner(num_classes, device=self.device, seed=seed)
        self.version: int | None = None
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._image_cache_items = image_cache_items
        self._best_validation: float | None = None

    # ----- images ----------------------------------------------------------------------------
    def image(self, image_id: int) -> np.ndarray:
        """uint8 RGB pixels of a project image (small LRU cache); raises ImageReadError."""
        if image_id in self._images:
            self._images.move_to_end(image_id)
            return self._images[image_id]
        pixels = read_image(self.project.image(image_id).path)
        self._images[image_id] = pixels
        while len(self._images) > self._image_cache_items:
            self._images.popitem(last=False)
        return pixels

    def ref(self, image_id: int) -> ImageRef:
        return ImageRef(f"image-{image_id}", lambda: self.image(image_id))

    # ----- training --------------------------------------------------------------------------
    def labelled_sets(self) -> tuple[list[PointLabels], list[PointLabels]]:
        """(training, validation) labels of every image, split by ``is_validation``."""
        train, val = [], []
        for info in self.project.images():
            ids, yx, cls = self.project.label_arrays(info.id)
            if len(ids) == 0:
                continue
            held = is_validation(ids, self.validation_fraction)
            ref = self.ref(info.id)
            if (~held).any():
                train.append(PointLabels(ref, yx[~held], cls[~held]))
            if held.any():
                val.append(PointLabels(ref, yx[held], cls[held]))
        return train, val

    def train(self, steps: int = 300) -> TrainReport:
        """One training round on the current labels; publish if validation did not get worse."""
        start = time.perf_counter()
        train, val = self.labelled_sets()
        n_train = sum(len(p.classes) for p in train)
        n_val = sum(len(p.classes) for p in val)
        if n_train == 0:
            return TrainReport(None, float("nan"), 0, n_val, None, False, 0.0)
        before = copy.deepcopy(self.learner.state_dict()) if self.learner.trained else None
        report = self.learner.fit(train, steps)
        accuracy = self.validation_accuracy(val) if n_val else None
        worse = (accuracy is not None and self._best_validation is not None
                 and accuracy < self._best_validation - 0.02)
        if worse and before is not None:
            self.learner.load_state_dict(before)
            self.project.add_model_version(self.learner_name, n_train, None, n_val, accuracy, published=False)
            return TrainReport(None, report.loss, n_train, n_val, accuracy, False, time.perf_counter() - start)
        if accuracy is not None:
            self._best_validation = accuracy if self._best_validation is None else max(self._best_validation,
                                                                                      accuracy)
        path = None
        if self.save_models:
            path = self._save_weights()
        self.version = self.project.add_model_version(self.learner_name, n_train, path, n_val, accuracy)
        return TrainReport(self.version, report.loss, n_train, n_val, accuracy, True,
                           time.perf_counter() - start)

    def validation_accuracy(self, val: list[PointLabels]) -> float:
        correct = total = 0
        for labels in val:
            predicted = self.learner.predict_points(labels.image, labels.yx).argmax(1)
            correct += int((predicted == labels.classes).sum())
            total += len(labels.classes)
        return correct / total if total else float("nan")

    def _save_weights(self) -> str:
        """Write the learner's weights atomically (see ``atomic.py``)."""
        name = f"{self.learner_name}-latest.pt"
        buffer = io.BytesIO()
        torch.save(self.learner.state_dict(), buffer)
        atomic_write_bytes(self.project.models_dir / name, buffer.getvalue())
        return name

    def load_latest_weights(self) -> bool:
        """Restore the last published model of this learner, if its file is sound."""
        latest = self.project.latest_published_model()
        if latest is None or latest.path is None or latest.learner != self.learner_name:
            return False
        path = self.project.models_dir / latest.path
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.learner.load_state_dict(state)
        except Exception as e:  # a damaged file must not take the project down
            raise ProjectError(f"The saved model '{path.name}' cannot be loaded ({e}); "
                               "it will be retrained from your labels.") from e
        self.version = latest.version
        return True

    # ----- prediction and queries -----------------------------------------------------------
    def predict(self, image_id: int) -> np.ndarray:
        """Class probabilities (C, H, W) float32 for a project image."""
        return self.learner.predict_proba(self.ref(image_id))

    def scores(self, image_id: int, strategy: str, probs: np.ndarray | None = None,
               mc_samples: int = 8) -> np.ndarray:
        """Uncertainty map (H, W) of an image under ``strategy``."""
        if strategy == "random":
            info = self.project.image(image_id)
            return uncertainty.random_scores((info.height, info.width), self.rng)
        if strategy == "bald":
            return uncertainty.bald(self.learner.predict_mc(self.ref(image_id), mc_samples))
        if probs is None:
            probs = self.predict(image_id)
        return uncertainty.score(strategy, probs)

    def excluded_pixels(self, image_id: int, extra: np.ndarray | None = None) -> np.ndarray:
        """Pixels no query may land on: labelled and already-asked ones, plus ``extra``."""
        info = self.project.image(image_id)
        mask = np.zeros((info.height, info.width), bool) if extra is None else extra.astype(bool).copy()
        _, yx, _ = self.project.label_arrays(image_id)
        points = np.concatenate([yx, self.project.asked_points(image_id)])
        if len(points):
            yy = np.clip(np.round(points[:, 0]).astype(np.int64), 0, info.height - 1)
            xx = np.clip(np.round(points[:, 1]).astype(np.int64), 0, info.width - 1)
            mask[yy, xx] = True
        return mask

    def propose_queries(self, image_id: int, k: int, strategy: str = "margin", min_distance: float = 0.0,
                        ignore: np.ndarray | None = None, store: bool = True) -> tuple[np.ndarray, list[int]]:
        """Choose ``k`` pixels to ask about; with no model yet, a cold start from features.

        Returns the points ``(n, 2)`` as ``yx`` and, when ``store`` is set, their query ids.
        """
        exclude = self.excluded_pixels(image_id, ignore)
        info = self.project.image(image_id)
        if not self.learner.trained and strategy != "random":
            fmap = self.cache.get(f"image-{image_id}", lambda: self.image(image_id))
            features = fmap.values.permute(2, 0, 1).float().numpy()
            points = selection.cold_start(features, (features.shape[1] * 4, features.shape[2] * 4), k, self.rng,
                                          exclude=_pad(exclude, fmap), min_distance=min_distance)
            points = points[(points[:, 0] < info.height) & (points[:, 1] < info.width)]
            point_scores = None
            used = "cold_start"
        else:
            score_map = self.scores(image_id, strategy)
            points = selection.select_pixels(score_map, k, self.rng, exclude=exclude, min_distance=min_distance)
            point_scores = score_map[points[:, 0], points[:, 1]] if len(points) else None
            used = strategy
        ids = []
        if store and len(points):
            ids = self.project.add_queries(image_id, points, used, point_scores, self.version)
        return points, ids

    def image_uncertainties(self, strategy: str = "margin") -> dict[int, float]:
        """Each readable image's uncertainty (mean of its top 5 % scores)."""
        out = {}
        for info in self.project.images():
            out[info.id] = selection.image_uncertainty(self.scores(info.id, strategy))
        return out


def _pad(mask: np.ndarray, fmap) -> np.ndarray:
    """Extend an image-sized mask to the padded size that the feature map covers."""
    ph, pw = fmap.values.shape[0] * 4, fmap.values.shape[1] * 4
    out = np.ones((ph, pw), bool)
    out[:mask.shape[0], :mask.shape[1]] = mask
    return out
