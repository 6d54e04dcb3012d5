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

from desktop.engine.segmentation import selection

from desktop.engine.segmentation import uncertainty
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.errors import ProjectError
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.learning.base import ImageRef, PointLabels, pick_device
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.publish_gate import PublishGate, held_back_signature
from desktop.engine.segmentation.slide_learning import SlideLibrary, point_labels
from desktop.engine.project.store import ModelVersion, Project
from desktop.engine.images.video import read_pixels

LEARNERS = ("fast", "deep")
KEPT_MODEL_FILES = 3
"""Model files kept per learner, the newest published versions: enough to fall back past a
damaged newest file, few enough not to fill the disk (a deep model with its optimizer state is
tens of megabytes)."""


@dataclass(frozen=True)
class TrainReport:
    version: int | None  # model version published by this round, None when refused or skipped
    loss: float
    train_labels: int
    validation_labels: int
    validation_accuracy: float | None
    published: bool
    seconds: float
    note: str | None = None  # what the learner gave up to keep training (FitReport.note)


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
            from desktop.engine.learning.deep import DeepLearner
            self.learner = DeepLearner(num_classes, device=self.device, seed=seed)
        self.version: int | None = None
        self.problems: list[str] = []
        """What went wrong without stopping the engine (a damaged model file passed over, a model
        that could not be saved), in words for the user; whoever drives the engine shows these
        and clears the list."""
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._image_cache_items = image_cache_items
        self._gate = PublishGate()
        self.slides = SlideLibrary(project)  # slides are learned from tile by tile

    # ----- images ----------------------------------------------------------------------------
    def image(self, image_id: int) -> np.ndarray:
        """uint8 RGB pixels of a project image or video frame (small LRU cache); raises
        ImageReadError."""
        if image_id in self._images:
            self._images.move_to_end(image_id)
            return self._images[image_id]
        info = self.project.image(image_id)
        pixels = read_pixels(info.source, info.frame)
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
            grid = self.slides.grid(info.id)
            for chosen, out in ((~held, train), (held, val)):
                if chosen.any():
                    out.extend(point_labels(grid, yx[chosen], cls[chosen]) if grid is not None
                               else [PointLabels(self.ref(info.id), yx[chosen], cls[chosen])])
        return train, val

    def train(self, steps: int = 300) -> TrainReport:
        """One training round on the current labels; publish if validation did not get worse."""
        start = time.perf_counter()
        train, val = self.labelled_sets()
        n_train = sum(len(p.classes) for p in train)
        n_val = sum(len(p.classes) for p in val)
        if n_train == 0:
            return TrainReport(None, float("nan"), 0, n_val, None, False, 0.0)
        signature = held_back_signature((p.image.key, np.column_stack([p.yx, p.classes])) for p in val)
        before = copy.deepcopy(self.learner.state_dict()) if self.learner.trained else None
        in_use = (self._gate.score_in_use(signature, lambda: self.validation_accuracy(val))
                  if before is not None and n_val else None)
        report = self.learner.fit(train, steps)
        accuracy = self.validation_accuracy(val) if n_val else None
        if before is not None and not self._gate.allows(accuracy, in_use):
            self.learner.load_state_dict(before)
            self.project.add_model_version(self.learner_name, n_train, None, n_val, accuracy, published=False)
            return TrainReport(None, report.loss, n_train, n_val, accuracy, False, time.perf_counter() - start,
                               report.note)
        self._gate.published(signature, accuracy)
        self._publish(n_train, n_val, accuracy)
        return TrainReport(self.version, report.loss, n_train, n_val, accuracy, True,
                           time.perf_counter() - start, report.note)

    def validation_accuracy(self, val: list[PointLabels]) -> float:
        correct = total = 0
        for labels in val:
            predicted = self.learner.predict_points(labels.image, labels.yx).argmax(1)
            correct += int((predicted == labels.classes).sum())
            total += len(labels.classes)
        return correct / total if total else float("nan")

    def _publish(self, n_train: int, n_val: int, accuracy: float | None) -> None:
        """Make the learner's weights the next model version: the version number and its file
        name are claimed together (see ``Project.reserve_model_version``), the file is written,
        then the version is published and old files are cleaned up."""
        if not self.save_models:
            self.version = self.project.add_model_version(self.learner_name, n_train, None, n_val, accuracy)
            return
        version, name = self.project.reserve_model_version(self.learner_name, n_train, n_val, accuracy)
        saved = self._save_weights(name)
        self.project.publish_model_version(version, saved)
        self.version = version
        if saved:
            self._delete_old_weights()

    def _save_weights(self, name: str) -> bool:
        """Write the weights to ``models/NAME`` atomically (see ``atomic.py``): one file per version,
        so that a damaged file leaves the one before it to fall back on. False when the disk
        refused it (said in ``problems``: the model stays in use, and training goes on)."""
        buffer = io.BytesIO()
        torch.save(self.learner.state_dict(), buffer)
        try:
            atomic_write_bytes(self.project.models_dir / name, buffer.getvalue())
        except ProjectError as e:
            self.problems.append(f"{e} The model in use is not affected; the next version will be saved "
                                 "again.")
            return False
        return True

    def _delete_old_weights(self) -> None:
        """Delete the files of this learner's published versions but the newest
        ``KEPT_MODEL_FILES``. Only files that the project records as written by the app are
        touched: anything else in ``models/`` (a user's ``fast-best-keep.pt``) is left alone.
        Best effort: a file that stays harms nothing."""
        ours = [m for m in self.project.model_versions()
                if m.learner == self.learner_name and m.path and m.published]
        removed = []
        for model in ours[:-KEPT_MODEL_FILES]:
            try:
                (self.project.models_dir / model.path).unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(model.version)
        if removed:
            self.project.forget_model_files(removed)

    def load_latest_weights(self) -> ModelVersion | None:
        """Restore this learner's newest published model whose file loads, and return its
        version; None when there is none, or when another learner published since (its labels
        are newer: better to train afresh). A newer file that is missing, damaged or made for other
        classes is passed over and said so in ``problems``. Files load with ``weights_only``, so a
        tampered one cannot run code."""
        passed_over = []
        for model in reversed(self.project.model_versions()):
            if not model.published or model.path is None:
                continue
            if model.learner != self.learner_name:
                break
            path = self.project.models_dir / model.path
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                passed_over.append(f"'{path.name}' is missing")
                continue
            except Exception:  # whatever a damaged file makes the unpickler raise
                passed_over.append(f"'{path.name}' is damaged or incomplete")
                continue
            try:
                self.learner.load_state_dict(state)
            except Exception:
                passed_over.append(f"'{path.name}' does not fit this project (made for other classes or "
                                   "keypoints, or by an older version)")
                continue
            self.version = model.version
            if passed_over:
                self.problems.append(f"A saved model cannot be used: {'; '.join(passed_over)}. Using the "
                                     f"saved version {model.version} instead; your labels are safe.")
            return model
        if passed_over:
            self.problems.append(f"A saved model cannot be used: {'; '.join(passed_over)}. The model will "
                                 "be retrained from your labels, which are safe.")
        return None

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
                        ignore: np.ndarray | None = None, store: bool = True,
                        probs: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
        """Choose ``k`` pixels to ask about; with no model yet, a cold start from features.

        ``probs``, the image's current prediction when the caller has it, saves predicting again.
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
            score_map = self.scores(image_id, strategy, probs)
            if strategy == "random":
                points = selection.select_pixels(score_map, k, self.rng, exclude=exclude, min_distance=min_distance)
            else:
                points = self._diverse_queries(image_id, score_map, k, exclude, min_distance)
            point_scores = score_map[points[:, 0], points[:, 1]] if len(points) else None
            used = strategy
        ids = []
        if store and len(points):
            ids = self.project.add_queries(image_id, points, used, point_scores, self.version)
        return points, ids

    def _diverse_queries(self, image_id: int, score_map: np.ndarray, k: int, exclude: np.ndarray,
                         min_distance: float) -> np.ndarray:
        ref = self.ref(image_id)
        _, labelled_yx, _ = self.project.label_arrays(image_id)
        return selection.choose_queries(score_map, k, self.rng, lambda yx: self.learner.embed_points(ref, yx),
                                        exclude=exclude, labelled=labelled_yx, min_distance=min_distance)

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
