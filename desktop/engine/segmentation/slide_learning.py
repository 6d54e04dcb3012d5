"""Learning on slides with the ordinary learners: labels become tile patches, and prediction is
made per tile, lazily, and kept by model version.

A learner sees a slide as many small images, one per working-resolution tile (with context,
``slide_grid.CONTEXT``): the labels of a slide are grouped by the tile they fall in, and each
group is one ``PointLabels`` whose image is that tile. Only labelled pixels supervise, as on
ordinary images, and the feature cache keeps the features of labelled and visible tiles, so a
tile is encoded once whether it was first needed to train or to predict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from desktop.engine.errors import ImageReadError
from desktop.engine.images.slides import is_slide_file, open_image_source
from desktop.engine.images.tiles import TileCache, TileKey
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.project.store import Project
from desktop.engine.segmentation import selection, strategies, uncertainty
from desktop.engine.segmentation.slide_grid import CONTEXT, SlideGrid, working_resolution

PREDICTION_BUDGET = 256 << 20  # bytes of tile predictions kept
NOT_PREDICTED = 255  # in a slide's mask: no tissue there, so no prediction


class SlideLibrary:
    """The project's slides, opened when first asked for; ``grid`` is None for ordinary images."""

    def __init__(self, project: Project):
        self.project = project
        self._grids: dict[int, SlideGrid | None] = {}

    def grid(self, image_id: int) -> SlideGrid | None:
        if image_id not in self._grids:
            info = self.project.image(image_id)
            try:
                slide = getattr(info, "video", None) is None and is_slide_file(info.path)
            except ImageReadError:
                return None  # missing or unreadable: reading it as an image says why
            if not slide:
                self._grids[image_id] = None
            else:
                source = open_image_source(info.path)
                self._grids[image_id] = SlideGrid(image_id, source,
                                                  working_resolution(source, self.project.settings()))
        return self._grids[image_id]

    def close(self) -> None:
        for grid in self._grids.values():
            if grid is not None:
                grid.source.close()
        self._grids.clear()


def tile_ref(grid: SlideGrid, col: int, row: int) -> ImageRef:
    return ImageRef(grid.key(col, row), lambda: grid.read(col, row))


def point_labels(grid: SlideGrid, yx: np.ndarray, classes: np.ndarray,
                 ids: np.ndarray | None = None) -> list[PointLabels]:
    """Level-0 labels of a slide (with their ``ids``, when known) as one ``PointLabels`` per tile
    they fall in."""
    cols, rows, local = grid.locate(yx)
    out = []
    for col, row in sorted(set(zip(cols.tolist(), rows.tolist()))):
        chosen = (cols == col) & (rows == row)
        out.append(PointLabels(tile_ref(grid, col, row), local[chosen], np.asarray(classes)[chosen],
                               None if ids is None else np.asarray(ids)[chosen]))
    return out


def tile_probabilities(learner, grid: SlideGrid, col: int, row: int) -> np.ndarray:
    """Class probabilities (C, h, w) of one tile, its context cut off."""
    h, w = grid.size(col, row)
    probs = learner.predict_proba(tile_ref(grid, col, row))
    return probs[:, CONTEXT:CONTEXT + h, CONTEXT:CONTEXT + w]


def class_map(probs: np.ndarray) -> np.ndarray:
    """The class index (h, w) uint8 of each pixel of a prediction (C, h, w)."""
    return probs.argmax(0).astype(np.uint8)


def mask_tiles(grid: SlideGrid) -> list[tuple[int, int]]:
    """The tiles a whole-slide mask is predicted on: every one with any tissue, in reading order.
    The rest stays ``NOT_PREDICTED``: glass, where a prediction would only be noise."""
    return grid.tissue_tiles(min_fraction=1e-6)


def paste_tile(mask: np.ndarray, tile: int, col: int, row: int, classes: np.ndarray) -> None:
    """Put a tile's class map (``class_map``, its context cut off) into a working-resolution mask."""
    h, w = classes.shape
    mask[row * tile:row * tile + h, col * tile:col * tile + w] = classes


def predict_mask(grid: SlideGrid, predict_tile: Callable[[int, int], np.ndarray | None],
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The slide's mask (working resolution, uint8): ``predict_tile(col, row)`` (a class map) on
    every tile of ``mask_tiles``, ``NOT_PREDICTED`` elsewhere and where it gives None. The app's
    slide export and ``pointillist predict`` both make their masks here, so they agree by
    construction. ``progress(done, total)`` is called before each tile."""
    tiles = mask_tiles(grid)
    mask = np.full((grid.grid.height, grid.grid.width), NOT_PREDICTED, np.uint8)
    for i, (col, row) in enumerate(tiles):
        if progress is not None:
            progress(i, len(tiles))
        classes = predict_tile(col, row)
        if classes is not None:
            paste_tile(mask, grid.tile, col, row, classes)
    return mask


def scaled_uncertainty(strategy: str, probs: np.ndarray) -> np.ndarray:
    """Uncertainty in [0, 1] (entropy divided by its maximum) of a strategy scored from one
    prediction; a tile has no other (``random`` and ``bald`` are refused, with the choices)."""
    strategies.strategy(strategy, needs=(strategies.PROBABILITIES,), where="a slide tile")
    scores = uncertainty.score(strategy, probs)
    if strategy == "entropy":
        scores = scores / max(math.log(probs.shape[0]), 1e-6)
    return np.clip(scores, 0.0, 1.0)


@dataclass(frozen=True)
class TileResult:
    col: int
    row: int
    version: int
    class_map: np.ndarray  # (h, w) uint8 class index
    uncertainty: np.ndarray  # (h, w) uint8, 0 = sure .. 255 = least sure
    score: float  # mean of the top 5 % uncertainties (0..1) over the tile's tissue


class TilePredictions:
    """Tile predictions by (image, tile, model version) in a memory budget, and the latest
    uncertainty score of every tile predicted so far (whatever its version: where to look next
    may be judged on a slightly older model)."""

    def __init__(self, budget_bytes: int = PREDICTION_BUDGET):
        self._cache = TileCache(budget_bytes)
        self.scores: dict[int, dict[tuple[int, int], tuple[int, float]]] = {}  # image -> tile -> (version, score)

    def get(self, grid: SlideGrid, col: int, row: int, version: int) -> TileResult | None:
        stacked = self._cache.get(TileKey(grid.image_id, 0, col, row, version))
        if stacked is None:
            return None
        score = self.scores.get(grid.image_id, {}).get((col, row), (version, 0.0))[1]
        return TileResult(col, row, version, stacked[..., 0], stacked[..., 1], score)

    def predict(self, learner, grid: SlideGrid, col: int, row: int, version: int,
                strategy: str = "margin") -> TileResult:
        cached = self.get(grid, col, row, version)
        if cached is not None:
            return cached
        probs = tile_probabilities(learner, grid, col, row)
        scores = scaled_uncertainty(strategy, probs)
        tissue = grid.tissue_in(col, row)
        score = selection.image_uncertainty(scores, exclude=~tissue) if tissue.any() else 0.0
        stacked = np.stack([class_map(probs), np.rint(scores * 255).astype(np.uint8)], -1)
        self._cache.put(TileKey(grid.image_id, 0, col, row, version), stacked)
        self.scores.setdefault(grid.image_id, {})[(col, row)] = (version, score)
        return TileResult(col, row, version, stacked[..., 0], stacked[..., 1], score)
