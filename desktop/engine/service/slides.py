"""What the engine thread does for slides, and the messages for it.

``EngineService`` hands slide work to a :class:`SlideServing`: predicting the tiles of the
view the expert looks at (newest view first, nearest its centre first, each tile cached by model
version and predicted again when a new version lands), scanning the tissue for uncertainty when
nothing else is asked, choosing the most uncertain region the expert has not seen (``N``) and
placing queries there, and exporting for QuPath. Like ``service.py``, importing this module
does not import torch (``slide_learning`` is imported on the engine thread).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from desktop.engine.segmentation import selection
from desktop.engine.errors import ProjectError
from desktop.engine.segmentation.slide_export import qupath_geojson, write_geojson, write_mask_ome_tiff
from desktop.engine.segmentation.slide_grid import CONTEXT, SlideGrid

MAX_VIEW_TILES = 64  # tiles of one view predicted, nearest its centre: a zoomed-out view shows the scan
MAX_SCAN_TILES = 400  # tissue tiles scored in the background, spread evenly over the tissue
SERVE_SECONDS = 0.3  # work on the view for about this long before the loop looks at its inbox
MIN_DISTANCE = 8.0  # working pixels between queries


# ----- messages in ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictView:
    """Predict the tiles of this level-0 view rectangle of a slide, for view generation N."""

    image_id: int
    generation: int
    rect: tuple[float, float, float, float]


@dataclass(frozen=True)
class NextRegion:
    """Go to the most uncertain region of a slide not yet seen, and ask ``k`` queries there."""

    image_id: int
    k: int = 8


@dataclass(frozen=True)
class ExportSlide:
    """QuPath GeoJSON (labels and predicted regions) and the OME-TIFF mask of one slide."""

    image_id: int
    folder: Path


MESSAGES = (PredictView, NextRegion, ExportSlide)


# ----- events out -----------------------------------------------------------------------------
class SlideEvent:
    """Base of the slide events, so a receiver can route them together."""


@dataclass(frozen=True)
class TilePrediction(SlideEvent):
    image_id: int
    generation: int
    version: int
    rect: tuple[float, float, float, float]  # level-0 rectangle the tile covers
    class_map: np.ndarray  # (h, w) uint8 class index, at the working resolution
    uncertainty: np.ndarray  # (h, w) uint8, 0 = sure .. 255 = least sure


@dataclass(frozen=True)
class RegionScores(SlideEvent):
    """The background scan so far: one uncertainty score (0..1) per working tile, NaN where
    none was computed; tile (col, row) covers level-0 ``[col * span, (col + 1) * span)``."""

    image_id: int
    version: int
    span: float
    scores: np.ndarray  # (rows, cols) float32


@dataclass(frozen=True)
class RegionChosen(SlideEvent):
    image_id: int
    rect: tuple[float, float, float, float]  # level-0
    score: float | None  # None: chosen with no model yet


# ----- the work, on the engine thread ---------------------------------------------------------
class SlideServing:
    def __init__(self, service):
        self.service = service
        self.view: PredictView | None = None
        self.pending: list[tuple[int, int]] = []  # tiles of the view still to send
        self._predictions = None
        self._candidates: dict[int, list[tuple[int, int]]] = {}

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    # ----- the service's hooks ---------------------------------------------------------------
    def receive(self, message) -> None:
        if isinstance(message, PredictView):
            self.view = message
            self.service._current = None  # the expert left any ordinary image
            self.pending = self._view_tiles()
        elif isinstance(message, NextRegion):
            self.service._guarded(self.next_region, message)
        elif isinstance(message, ExportSlide):
            self.service._guarded(self.export, message)

    def model_changed(self) -> None:
        """A new model version: the view's tiles are predicted again."""
        self.pending = self._view_tiles()

    def owns(self, image_id: int) -> bool:
        engine = self.service._engine
        return hasattr(engine, "slides") and engine.slides.grid(image_id) is not None

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
        engine, view = self.service._engine, self.view
        if view is None or not self.pending:
            return
        if not engine.learner.trained:
            self.pending = []  # nothing to show until the first model: model_changed asks again
            return
        grid = engine.slides.grid(view.image_id)
        if grid is None:  # the slide cannot be opened any more (a share that went away)
            self.leave()
            return
        start = time.perf_counter()
        while self.pending and (time.perf_counter() - start < SERVE_SECONDS or self._cached(grid)):
            col, row = self.pending.pop(0)
            result = self.predictions.predict(engine.learner, grid, col, row, engine.version, self.service.strategy)
            self.service._emit(TilePrediction(view.image_id, view.generation, engine.version, grid.rect(col, row),
                                              result.class_map, result.uncertainty))
        if not self.pending:
            self._emit_scores(grid)

    def scan(self) -> None:
        """Score one more tissue tile of the slide in view (when the engine has nothing else to do)."""
        engine, view = self.service._engine, self.view
        if view is None or not engine.learner.trained:
            return
        grid = engine.slides.grid(view.image_id)
        if grid is None:
            self.leave()
            return
        scores = self.predictions.scores.get(grid.image_id, {})
        todo = [t for t in self.candidates(grid) if scores.get(t, (None,))[0] != engine.version]
        if todo:
            self.predictions.predict(engine.learner, grid, *todo[0], engine.version, self.service.strategy)
            self._emit_scores(grid)

    # ----- where to look next ----------------------------------------------------------------
    def next_region(self, request: NextRegion) -> None:
        from desktop.engine.segmentation.slide_learning import scaled_uncertainty, tile_probabilities, tile_ref

        service, engine, project = self.service, self.service._engine, self.service._project
        grid = engine.slides.grid(request.image_id)
        if grid is None:
            raise ProjectError("Only slides have regions to go to; N on an image goes to the next image.")
        candidates = self.candidates(grid) or [(c, r) for r in range(grid.grid.rows)
                                                for c in range(grid.grid.columns)]
        seen = project.seen_regions(grid.image_id)
        unseen = [t for t in candidates if not _inside(grid.rect(*t), seen)] or candidates
        trained = engine.learner.trained
        if trained:
            scores = self.predictions.scores.get(grid.image_id, {})
            scored = [t for t in unseen if t in scores]
            if not scored:  # the scan has not reached these yet: score a few now
                scored = [unseen[i] for i in engine.rng.permutation(len(unseen))[:4]]
                for tile in scored:
                    self.predictions.predict(engine.learner, grid, *tile, engine.version, service.strategy)
                scores = self.predictions.scores[grid.image_id]
            col, row = max(scored, key=lambda t: scores[t][1])
            probs = tile_probabilities(engine.learner, grid, col, row)
            score_map, score = scaled_uncertainty(service.strategy, probs), scores[(col, row)][1]
        else:  # no model yet: an unseen stretch of tissue, queries spread at random over it
            col, row = unseen[int(engine.rng.integers(len(unseen)))]
            probs, score = None, None
            score_map = engine.rng.random(grid.size(col, row), dtype=np.float32)
        tissue = grid.tissue_in(col, row)
        labelled = project.label_arrays(grid.image_id)[1]
        exclude = _with_points(~tissue if tissue.any() else None, score_map.shape, grid, col, row,
                               np.concatenate([labelled, project.asked_points(grid.image_id)]))
        if trained:  # as on an image (selection.choose_queries), in tile pixels; tiles score random and bald by margin
            ref = tile_ref(grid, col, row)
            points = selection.choose_queries(
                score_map, request.k, engine.rng, lambda yx: engine.learner.embed_points(ref, yx + CONTEXT),
                exclude=exclude, labelled=_tile_pixels(grid, col, row, labelled, score_map.shape),
                min_distance=MIN_DISTANCE)
        else:
            points = selection.select_pixels(score_map, request.k, engine.rng, exclude=exclude,
                                             min_distance=MIN_DISTANCE)
        project.close_open_queries(grid.image_id)
        yx = grid.to_level0(col, row, points)
        ids = project.add_queries(grid.image_id, yx, service.strategy if trained else "random",
                                  score_map[points[:, 0], points[:, 1]] if len(points) else None, engine.version)
        service._emit(RegionChosen(grid.image_id, grid.rect(col, row), score))
        service._emit(_queries(grid.image_id, engine.version, ids, yx, points, probs))

    def candidates(self, grid: SlideGrid) -> list[tuple[int, int]]:
        """Tissue tiles to scan, at most ``MAX_SCAN_TILES`` spread evenly over the tissue."""
        if grid.image_id not in self._candidates:
            tiles = grid.tissue_tiles()
            step = max(1, -(-len(tiles) // MAX_SCAN_TILES))
            self._candidates[grid.image_id] = tiles[::step]
        return self._candidates[grid.image_id]

    # ----- export ----------------------------------------------------------------------------
    def export(self, request: ExportSlide) -> None:
        """Predict every tile with tissue (others are 255 in the mask: not predicted) and write
        ``NAME.geojson`` and ``NAME_mask.ome.tif`` (at the working resolution)."""
        from desktop.engine.service.loop import Exported, Progress

        service, engine, project = self.service, self.service._engine, self.service._project
        grid = engine.slides.grid(request.image_id)
        if grid is None:
            raise ProjectError("That image is not a slide; use File > Export masks for images.")
        if not engine.learner.trained:
            raise ProjectError("There is no trained model yet: label a few points first.")
        tiles = grid.tissue_tiles(min_fraction=1e-6)
        mask = np.full((grid.grid.height, grid.grid.width), 255, np.uint8)
        for i, (col, row) in enumerate(tiles):
            if i % 8 == 0:
                service._emit(Progress(f"Predicting the slide for export: tile {i + 1} of {len(tiles)}",
                                       i / max(1, len(tiles))))
            result = self.predictions.predict(engine.learner, grid, col, row, engine.version, service.strategy)
            h, w = result.class_map.shape
            mask[row * grid.tile:row * grid.tile + h, col * grid.tile:col * grid.tile + w] = result.class_map
        classes = project.classes()
        _, yx, cls = project.label_arrays(grid.image_id)
        collection = qupath_geojson([c.name for c in classes], [c.colour for c in classes], yx[:, ::-1], cls,
                                    mask=mask, mask_downsample=grid.downsample)
        stem = Path(project.image(grid.image_id).name).stem
        folder = Path(request.folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_geojson(folder / f"{stem}.geojson", collection)
        levels = write_mask_ome_tiff(folder / f"{stem}_mask.ome.tif", mask, mpp=grid.resolution.mpp)
        service._emit(Exported(f"Exported {stem}.geojson ({len(collection['features'])} objects) and "
                               f"{stem}_mask.ome.tif ({mask.shape[1]} x {mask.shape[0]}, {levels} levels) "
                               f"to {folder}."))
        service._emit(Progress(f"Model version {engine.version}", 1.0))

    # ----- helpers ---------------------------------------------------------------------------
    @property
    def predictions(self):
        if self._predictions is None:
            from desktop.engine.segmentation.slide_learning import TilePredictions

            self._predictions = TilePredictions()
        return self._predictions

    def _view_tiles(self) -> list[tuple[int, int]]:
        engine, view = self.service._engine, self.view
        if view is None or engine is None or not self.owns(view.image_id):
            return []
        return engine.slides.grid(view.image_id).visible(*view.rect)[:MAX_VIEW_TILES]

    def _cached(self, grid: SlideGrid) -> bool:
        engine = self.service._engine
        return bool(self.pending) and self.predictions.get(grid, *self.pending[0], engine.version) is not None

    def _emit_scores(self, grid: SlideGrid) -> None:
        scores = np.full((grid.grid.rows, grid.grid.columns), np.nan, np.float32)
        for (col, row), (_, score) in self.predictions.scores.get(grid.image_id, {}).items():
            scores[row, col] = score
        self.service._emit(RegionScores(grid.image_id, self.service._engine.version,
                                        grid.tile * grid.downsample, scores))


def _inside(rect: tuple[float, float, float, float], seen: np.ndarray) -> bool:
    """Whether the centre of a level-0 rectangle lies in any of the ``seen`` rectangles."""
    x, y, w, h = rect
    cx, cy = x + w / 2, y + h / 2
    return bool(((seen[:, 0] <= cx) & (cx <= seen[:, 0] + seen[:, 2])
                 & (seen[:, 1] <= cy) & (cy <= seen[:, 1] + seen[:, 3])).any())


def _tile_pixels(grid: SlideGrid, col: int, row: int, yx: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The level-0 points ``yx`` that fall in tile (col, row), as its pixels (context cut off)."""
    cols, rows, local = grid.locate(yx)
    pixels = np.round(local[(cols == col) & (rows == row)] - CONTEXT).astype(np.int64)
    return pixels[(pixels >= 0).all(1) & (pixels[:, 0] < shape[0]) & (pixels[:, 1] < shape[1])]


def _with_points(exclude: np.ndarray | None, shape: tuple[int, int], grid: SlideGrid, col: int, row: int,
                 yx: np.ndarray) -> np.ndarray:
    """``exclude`` plus the tile pixels of level-0 points (labelled or asked before)."""
    out = np.zeros(shape, bool) if exclude is None else exclude.copy()
    pixels = _tile_pixels(grid, col, row, yx, shape)
    out[pixels[:, 0], pixels[:, 1]] = True
    return out


def _queries(image_id: int, version: int | None, ids: list[int], yx: np.ndarray, points: np.ndarray,
             probs: np.ndarray | None):
    """The ``Queries`` event, each query with the model's three likeliest classes there."""
    from desktop.engine.service.loop import Queries, QueryPoint

    out = []
    for query_id, (y, x), (py, px) in zip(ids, yx, points):
        candidates: tuple = ()
        if probs is not None:
            column = probs[:, py, px]
            candidates = tuple((int(i), float(column[i])) for i in np.argsort(column)[::-1][:3])
        out.append(QueryPoint(query_id, float(x), float(y), candidates))
    return Queries(image_id, version, out)
