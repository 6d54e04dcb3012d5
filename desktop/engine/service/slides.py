"""What the engine thread does for slides: predicting the tiles of the view the expert looks at
(newest view first, nearest its centre first, each tile cached by model version and predicted
again when a new version lands), the slide's open queries with that model's likeliest classes,
scanning the tissue for uncertainty when nothing else is asked,
and, through ``segmentation/slide_regions.py``, going to the most uncertain region not yet seen
(``N``) and exporting for QuPath. ``SegmentationServing`` hands slide messages here.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from desktop.engine.segmentation import selection
from desktop.engine.segmentation.labelled_classes import likeliest
from desktop.engine.segmentation.slide_grid import CONTEXT, SlideGrid
from desktop.engine.segmentation.slide_learning import NOT_PREDICTED, TilePredictions, tile_probabilities
from desktop.engine.segmentation.slide_regions import export_slide, next_region
from desktop.engine.service.messages import (Exported, ExportSlide, NextRegion, PredictView, Progress, Queries,
                                             QueryPoint, RegionChosen, RegionScores, TilePrediction)

MAX_VIEW_TILES = 64  # tiles of one view predicted, nearest its centre: a zoomed-out view shows the scan
MAX_SCAN_TILES = 400  # tissue tiles scored in the background, spread evenly over the tissue
SERVE_SECONDS = 0.3  # work on the view for about this long before the loop looks at its inbox


class SlideServing:
    def __init__(self, engine, project, emit: Callable[[object], None], strategy: str):
        self.engine, self.project, self.emit, self.strategy = engine, project, emit, strategy
        self.view: PredictView | None = None
        self.pending: list[tuple[int, int]] = []  # tiles of the view still to send
        self.predictions = TilePredictions()
        self._candidates: dict[int, list[tuple[int, int]]] = {}
        self._queries_due = False  # the view's slide is to get its open queries with likeliest classes

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    # ----- what SegmentationServing calls ------------------------------------------------------
    def receive(self, message) -> None:
        if isinstance(message, PredictView):
            self._queries_due |= self.view is None or self.view.image_id != message.image_id
            self.view = message
            self.pending = self._view_tiles()
        elif isinstance(message, NextRegion):
            chosen = next_region(self.engine, self.predictions, self._scan_tiles_of(message.image_id),
                                 message.image_id, message.k, self.strategy, message.within)
            self.emit(RegionChosen(chosen.image_id, chosen.rect, chosen.score))
            self.emit(Queries(chosen.image_id, self.engine.version,
                              [QueryPoint(query_id, float(x), float(y), likeliest) for query_id, (y, x), likeliest
                               in zip(chosen.query_ids, chosen.yx, chosen.candidates)]))
        elif isinstance(message, ExportSlide):
            text = export_slide(self.engine, self.predictions, message.image_id, message.folder, self.strategy,
                                lambda words, fraction: self.emit(Progress(words, fraction)))
            self.emit(Exported(text))
            self.emit(Progress(f"Model version {self.engine.version}", 1.0))

    def model_changed(self) -> None:
        """A new model version: the view's tiles are predicted again, and its queries' likeliest."""
        self.pending = self._view_tiles()
        self._queries_due = True

    def owns(self, image_id: int) -> bool:
        return self.engine.slides.grid(image_id) is not None

    def ranking(self) -> dict[int, float]:
        """Each scanned slide's uncertainty: the mean of its most uncertain tiles' scores."""
        out = {}
        for image_id, scores in self.predictions.scores.items():
            values = np.array([s for _, s in scores.values()], np.float32)
            out[image_id] = selection.image_uncertainty(values) if len(values) else 0.0
        return out

    def leave(self) -> None:
        """No slide in view: stop predicting and scanning the one that was."""
        self.view = None
        self.pending = []

    def serve(self) -> None:
        """Send the view's tiles, cached ones at once, for about ``SERVE_SECONDS``."""
        engine, view = self.engine, self.view
        if view is None or not self.pending:
            return
        grid = engine.slides.grid(view.image_id)
        if grid is None:  # the slide cannot be opened any more (a share that went away)
            self.leave()
            return
        if not engine.model.ready:  # nothing to show until a model of two classes: model_changed asks again
            if engine.learner.trained:  # a model of one class: clear the tiles an earlier model painted
                for col, row in self.pending:
                    h, w = grid.size(col, row)
                    self.emit(TilePrediction(view.image_id, view.generation, engine.version, grid.rect(col, row),
                                             np.full((h, w), NOT_PREDICTED, np.uint8), np.zeros((h, w), np.uint8)))
            self.pending = []
            return
        start = time.perf_counter()
        while self.pending and (time.perf_counter() - start < SERVE_SECONDS or self._cached(grid)):
            col, row = self.pending.pop(0)
            result = self.predictions.predict(engine.model, grid, col, row, engine.version, self.strategy)
            self.emit(TilePrediction(view.image_id, view.generation, engine.version, grid.rect(col, row),
                                     result.class_map, result.uncertainty))
        if not self.pending:
            self._emit_scores(grid)
            if self._queries_due:
                self._queries_due = False
                self._emit_queries(grid)

    def scan(self) -> None:
        """Score one more tissue tile of the slide in view (when the engine has nothing else to do)."""
        engine, view = self.engine, self.view
        if view is None or not engine.model.ready:
            return
        grid = engine.slides.grid(view.image_id)
        if grid is None:
            self.leave()
            return
        scores = self.predictions.scores.get(grid.image_id, {})
        todo = [t for t in self.candidates(grid) if scores.get(t, (None,))[0] != engine.version]
        if todo:
            self.predictions.predict(engine.model, grid, *todo[0], engine.version, self.strategy)
            self._emit_scores(grid)

    def candidates(self, grid: SlideGrid) -> list[tuple[int, int]]:
        """Tissue tiles to scan, at most ``MAX_SCAN_TILES`` spread evenly over the tissue."""
        if grid.image_id not in self._candidates:
            tiles = grid.tissue_tiles()
            step = max(1, -(-len(tiles) // MAX_SCAN_TILES))
            self._candidates[grid.image_id] = tiles[::step]
        return self._candidates[grid.image_id]

    # ----- helpers ---------------------------------------------------------------------------
    def _scan_tiles_of(self, image_id: int) -> list[tuple[int, int]]:
        grid = self.engine.slides.grid(image_id)
        return self.candidates(grid) if grid is not None else []

    def _view_tiles(self) -> list[tuple[int, int]]:
        engine, view = self.engine, self.view
        if view is None or not self.owns(view.image_id):
            return []
        return engine.slides.grid(view.image_id).visible(*view.rect)[:MAX_VIEW_TILES]

    def _cached(self, grid: SlideGrid) -> bool:
        return bool(self.pending) and self.predictions.get(grid, *self.pending[0], self.engine.version) is not None

    def _emit_queries(self, grid: SlideGrid) -> None:
        """The slide's open queries, each with the model's likeliest classes at its pixel: asked
        before this model (or before any), they had none, and the panel's "Likeliest" must
        agree with the tiles painted."""
        queries = self.project.queries(grid.image_id)
        if not queries:
            return
        cols, rows, local = grid.locate(np.array([(q.y, q.x) for q in queries], np.float64))
        tiles: dict[tuple[int, int], np.ndarray] = {}
        points = []
        for q, col, row, (y, x) in zip(queries, cols.tolist(), rows.tolist(), local - CONTEXT):
            if (col, row) not in tiles:
                tiles[(col, row)] = tile_probabilities(self.engine.model, grid, col, row)
            probs = tiles[(col, row)]
            y = int(np.clip(round(y), 0, probs.shape[1] - 1))
            x = int(np.clip(round(x), 0, probs.shape[2] - 1))
            points.append(QueryPoint(q.id, q.x, q.y, likeliest(probs[:, y, x], self.engine.model.classes)))
        self.emit(Queries(grid.image_id, self.engine.version, points))

    def _emit_scores(self, grid: SlideGrid) -> None:
        scores = np.full((grid.grid.rows, grid.grid.columns), np.nan, np.float32)
        for (col, row), (_, score) in self.predictions.scores.get(grid.image_id, {}).items():
            scores[row, col] = score
        self.emit(RegionScores(grid.image_id, self.engine.version, grid.tile * grid.downsample, scores))
