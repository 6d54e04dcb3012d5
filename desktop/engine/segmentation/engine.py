"""The headless segmentation engine: the one API that the GUI's engine thread and the
benchmarks both drive.

It reads labels from the project, trains the chosen learner, keeps back a share of labels to
validate on (and refuses to publish a model that validates worse), predicts, scores
uncertainty and proposes queries. It owns no thread and knows nothing of Qt.

Everything it predicts goes through ``model`` (``labelled_classes.LabelledModel``): only the
classes the model in use was trained on get any probability, and with one such class nothing
is predicted (``model.ready`` is False).
"""
from __future__ import annotations

import numpy as np

from desktop.engine.learning.base import Interrupted, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.feature_tiles import FeatureTiles, is_tiled
from desktop.engine.learning.features import FeatureCache, FeatureExtractor, tile_map
from desktop.engine.learning.grid_head import Levels, grid_shape
from desktop.engine.learning.task_engine import LabelledSets, TaskEngine, TrainReport, is_validation, validation_sample
from desktop.engine.project.live_labels import LiveLabels
from desktop.engine.project.records import ModelVersion
from desktop.engine.project.store import Project
from desktop.engine.segmentation import selection, strategies, uncertainty, view_grid
from desktop.engine.segmentation.labelled_classes import LabelledModel
from desktop.engine.segmentation.slide_learning import SlideLibrary, point_labels


class SegmentationEngine(TaskEngine):
    default_steps = 300

    def __init__(self, project: Project, learner: str = "fast", device: str = "auto", seed: int = 0,
                 feature_budget_bytes: int | None = None, validation_fraction: float = 0.1,
                 save_models: bool = True, image_cache_items: int = 8):
        super().__init__(project, learner, device, seed, validation_fraction, save_models, image_cache_items)
        # Maps beyond the memory budget (by default sized from the machine's memory) go to the
        # project's cache/ folder, to be read back rather than computed again.
        self.cache = FeatureCache(FeatureExtractor("cpu" if learner == "fast" else self.device),
                                  feature_budget_bytes, None if project.read_only else project.cache_dir / "features")
        num_classes = max(1, len(project.classes()))
        self.levels = Levels()  # a large image's cell-averaged features: its overview, queries and cold start
        if learner == "fast":
            self.learner = FastLearner(num_classes, self.cache, seed=seed, levels=self.levels)
        else:
            from desktop.engine.learning.deep import DeepLearner
            self.learner = DeepLearner(num_classes, device=self.device, seed=seed)
        self.model = LabelledModel(self.learner)
        self.slides = SlideLibrary(project)  # slides are learned from tile by tile
        self.labels = LiveLabels(project)  # every round and proposal reads them: read again by what changed

    def training_classes(self) -> tuple[int, ...]:
        """The classes of today's training labels; held-back labels teach the learner nothing."""
        found: set[int] = set()
        for *_, cls, held in self._split():
            found.update(cls[~held].tolist())
        return tuple(sorted(found))

    def _split(self) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """``(image_id, ids, yx, classes, held back)`` of every labelled image: held back by
        ``is_validation``, except the labels of a class that would otherwise have none to train
        on. Why: a new user's only label of a class was held back one time in ten, and the
        model of the other class alone painted nothing ("waiting for the model") until the
        next label of that class; the class is held back from once it has a training label."""
        labelled = [(info.id, *self.labels.arrays(info.id)) for info in self.project.images()]
        labelled = [(image_id, ids, yx, cls, is_validation(ids, self.validation_fraction))
                    for image_id, ids, yx, cls in labelled if len(ids)]
        trained = np.unique(np.concatenate([cls[~held] for *_, cls, held in labelled] or [np.zeros(0, np.int64)]))
        return [(image_id, ids, yx, cls, held & np.isin(cls, trained)) for image_id, ids, yx, cls, held in labelled]

    # ----- training --------------------------------------------------------------------------
    def train(self, steps: int | None = None, interrupted: Interrupted | None = None) -> TrainReport:
        """A training round (``TaskEngine.train``) that scores and publishes the model over the
        classes it is trained on; a refused model leaves the classes of the one in use."""
        in_use, published = self.model.classes, False
        try:
            report = super().train(steps, interrupted)
            published = report.published
            return report
        finally:
            if not published:
                self.model.classes = in_use

    def training_on(self, train: list[PointLabels]) -> None:
        """Scored and published over the classes of the round's training labels (``train``
        restores the classes in use when the model is refused)."""
        self.model.classes = tuple(sorted(set(np.concatenate([p.classes for p in train]).tolist())))

    def load_latest_weights(self) -> ModelVersion | None:
        """The newest saved model (``TaskEngine.load_latest_weights``), over the classes of today's
        training labels: what it was trained on when it is up to date, and else it trains again."""
        loaded = super().load_latest_weights()
        self.model.classes = self.training_classes()
        return loaded

    def labelled_sets(self) -> LabelledSets:
        """Every image's labels, split by ``_split`` (a slide's as tiles, ``point_labels``);
        the validation groups hold ``validation_sample`` of the held-back labels, the count all."""
        labelled = self._split()
        held_ids = np.concatenate([ids[held] for _, ids, _, _, held in labelled]) if labelled else np.zeros(0, int)
        scored = held_ids[validation_sample(held_ids)]
        train, val = [], []
        for image_id, ids, yx, cls, held in labelled:
            grid = self.slides.grid(image_id)
            for chosen, out in ((~held, train), (held & np.isin(ids, scored), val)):
                if chosen.any():
                    out.extend(point_labels(grid, yx[chosen], cls[chosen], ids[chosen]) if grid is not None
                               else [PointLabels(self.ref(image_id), yx[chosen], cls[chosen], ids[chosen])])
        return LabelledSets(train, val, sum(len(p.classes) for p in train), len(held_ids))

    def held_back(self, validation: list[PointLabels]):
        return ((p.image.key, np.column_stack([p.yx, p.classes])) for p in validation)

    def validation_accuracy(self, val: list[PointLabels]) -> float:
        correct = total = 0
        for labels, probs in zip(val, self.model.predict_labels(val)):
            correct += int((probs.argmax(1) == labels.classes).sum())
            total += len(labels.classes)
        return correct / total if total else float("nan")

    # ----- prediction and queries -----------------------------------------------------------
    def predict(self, image_id: int) -> np.ndarray:
        """Class probabilities (C, H, W) float32 for a project image, zero for the classes the
        model was not trained on."""
        return self.model.predict_proba(self.ref(image_id))

    def predict_grid(self, image_id: int, stride: int, window: tuple[int, int, int, int] | None = None
                     ) -> np.ndarray:
        """Class probabilities (C, rows, cols) on the grid of ``stride`` over ``window`` (image
        pixels ``y0, x0, y1, x1``): what a view shows (``view_grid.py``)."""
        return self.model.predict_grid(self.ref(image_id), stride, window)

    def feature_tiles(self, image_id: int) -> FeatureTiles | None:
        """A large image's features while they are computed a tile at a time, started if need be
        (``FeatureCache.building``); None once its map is whole, for a picture encoded whole, and
        for a learner that reads no features (deep)."""
        info = self.project.image(image_id)
        if not isinstance(self.learner, FastLearner) or not is_tiled(info.height, info.width):
            return None
        ref = self.ref(image_id)
        return self.cache.building(ref.key, ref.load)

    def predict_tile(self, tiles: FeatureTiles, tile: tuple[int, int], stride: int,
                     window: tuple[int, int, int, int]) -> np.ndarray:
        """Class probabilities (C, rows, cols) on the grid of ``stride`` over ``window`` of one
        computed tile (pixels from the tile's corner), before the other tiles are."""
        return self.model.predict_map(tile_map(tiles, tile), stride, window)

    def scores(self, image_id: int, strategy: str, probs: np.ndarray | None = None,
               mc_samples: int = 8) -> np.ndarray:
        """Uncertainty map of an image under ``strategy``, computed from what the strategy needs
        (see ``strategies.py``): (H, W), or for a large image (``view_grid.is_large``) on the
        grid of ``view_grid.query_stride`` (``probs``, when given, on that grid)."""
        needs = strategies.strategy(strategy).needs
        info = self.project.image(image_id)
        stride = view_grid.query_stride(info.height, info.width)
        if needs == strategies.NOTHING:
            return uncertainty.random_scores(grid_shape(info.height, info.width, stride), self.rng)
        if needs == strategies.MC_SAMPLES:
            return uncertainty.score(strategy, mc_probs=self.model.predict_mc(self.ref(image_id), mc_samples))
        if probs is None:
            probs = self.predict(image_id) if stride == 1 else self.predict_grid(image_id, stride)
        return uncertainty.score(strategy, probs)

    def excluded_pixels(self, image_id: int, extra: np.ndarray | None = None) -> np.ndarray:
        """Pixels no query may land on: labelled and already-asked ones, plus ``extra``."""
        info = self.project.image(image_id)
        mask = np.zeros((info.height, info.width), bool) if extra is None else extra.astype(bool).copy()
        _, yx, _ = self.labels.arrays(image_id)
        points = np.concatenate([yx, self.project.asked_points(image_id)])
        if len(points):
            yy = np.clip(np.round(points[:, 0]).astype(np.int64), 0, info.height - 1)
            xx = np.clip(np.round(points[:, 1]).astype(np.int64), 0, info.width - 1)
            mask[yy, xx] = True
        return mask

    def propose_queries(self, image_id: int, k: int, strategy: str = "margin", min_distance: float = 0.0,
                        ignore: np.ndarray | None = None, store: bool = True,
                        probs: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
        """Choose ``k`` pixels to ask about; with no model ready yet (``model.ready``), a cold
        start from features.

        ``probs``, the image's current prediction when the caller has it, saves predicting again.
        Returns the points ``(n, 2)`` as ``yx`` and, when ``store`` is set, their query ids.
        """
        exclude = self.excluded_pixels(image_id, ignore)
        info = self.project.image(image_id)
        stride = view_grid.query_stride(info.height, info.width)
        if not self.model.ready and strategies.strategy(strategy).needs != strategies.NOTHING:
            fmap = self.cache.get(f"image-{image_id}", lambda: self.image(image_id))
            if stride == 1:
                features = fmap.values.permute(2, 0, 1).float().numpy()
                shape, mask = (features.shape[1] * 4, features.shape[2] * 4), _pad(exclude, fmap)
            else:  # the cells of the query grid: a large image's whole map in float32 would be gigabytes
                rows, cols = grid_shape(info.height, info.width, stride)
                values, _ = self.levels.get(self.ref(image_id).key, fmap, stride)
                features = values.permute(2, 0, 1).float().numpy()
                shape, mask = (rows * stride, cols * stride), _pad_to(exclude, rows * stride, cols * stride)
            points = selection.cold_start(features, shape, k, self.rng, exclude=mask, min_distance=min_distance)
            points = points[(points[:, 0] < info.height) & (points[:, 1] < info.width)]
            point_scores = None
            used = "cold_start"
        else:
            score_map = self.scores(image_id, strategy, probs if stride == 1 else None)
            if strategies.strategy(strategy).needs == strategies.NOTHING:  # random: no embedding to spread in
                points = selection.select_pixels(score_map, k, self.rng, exclude=view_grid.cells_touched(exclude, stride),
                                                 min_distance=min_distance / stride)
                if stride > 1:  # a pixel of each drawn cell, at random too
                    points = np.minimum(points * stride + self.rng.integers(stride, size=points.shape),
                                        (info.height - 1, info.width - 1))
            elif stride > 1:
                points = self._coarse_queries(image_id, score_map, stride, k, strategy, exclude, min_distance)
            else:
                points = self._diverse_queries(image_id, score_map, k, exclude, min_distance)
            point_scores = score_map[points[:, 0] // stride, points[:, 1] // stride] if len(points) else None
            used = strategy
        ids = []
        if store and len(points):
            ids = self.project.add_queries(image_id, points, used, point_scores, self.version)
        return points, ids

    def _diverse_queries(self, image_id: int, score_map: np.ndarray, k: int, exclude: np.ndarray,
                         min_distance: float) -> np.ndarray:
        ref = self.ref(image_id)
        _, labelled_yx, _ = self.labels.arrays(image_id)
        return selection.choose_queries(score_map, k, self.rng, lambda yx: self.learner.embed_points(ref, yx),
                                        exclude=exclude, labelled=labelled_yx, min_distance=min_distance)

    def _coarse_queries(self, image_id: int, score_grid: np.ndarray, stride: int, k: int, strategy: str,
                        exclude: np.ndarray, min_distance: float) -> np.ndarray:
        ref = self.ref(image_id)
        _, labelled_yx, _ = self.labels.arrays(image_id)
        return view_grid.coarse_queries(score_grid, stride, k, self.rng, exclude, labelled_yx, min_distance,
                                        lambda yx: self.learner.embed_points(ref, yx),
                                        lambda yx: self.model.predict_points(ref, yx), strategy)

    def image_uncertainties(self, strategy: str = "margin") -> dict[int, float]:
        """Each readable image's uncertainty (mean of its top 5 % scores)."""
        out = {}
        for info in self.project.images():
            out[info.id] = selection.image_uncertainty(self.scores(info.id, strategy))
        return out


def _pad(mask: np.ndarray, fmap) -> np.ndarray:
    """Extend an image-sized mask to the padded size that the feature map covers."""
    return _pad_to(mask, fmap.values.shape[0] * 4, fmap.values.shape[1] * 4)


def _pad_to(mask: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """``mask`` within a (ph, pw) one, the rest excluded."""
    out = np.ones((ph, pw), bool)
    out[:mask.shape[0], :mask.shape[1]] = mask
    return out
