"""Where on a slide to look next, and the whole slide predicted for export: the engine's slide
work that the service asks for (``N`` on a slide, File > Export the slide).

The scan's tile scores live in a ``TilePredictions`` cache kept by the caller, so that what the
background scan already scored is reused here.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from desktop.engine.errors import ImageReadError, ProjectError
from desktop.engine.segmentation import selection
from desktop.engine.segmentation.labelled_classes import no_model_words
from desktop.engine.segmentation.slide_export import qupath_geojson, write_geojson, write_mask_ome_tiff
from desktop.engine.segmentation.slide_grid import CONTEXT, MIN_TISSUE, SlideGrid
from desktop.engine.segmentation.slide_learning import (TilePredictions, mask_tiles, predict_mask, scaled_uncertainty,
                                                        tile_probabilities, tile_ref)

MIN_DISTANCE = 8.0  # working pixels between queries
EXPORT_SECONDS = 600.0
"""How long a slide export may spend predicting tiles: the engine thread does nothing else
meanwhile (no training, no view). Tiles predicted already for the model in use (in view, by
``N``, by an earlier export) cost nothing and are always in; the tissue left unpredicted after
that is reported, with what to do (File > Predict works a whole slide in the background)."""


@dataclass(frozen=True)
class RegionQueries:
    """A region chosen on a slide and the queries placed in it (stored already)."""

    image_id: int
    rect: tuple[float, float, float, float]  # level-0
    score: float | None  # None: chosen with no model yet
    query_ids: list[int]
    yx: np.ndarray  # (n, 2) level-0
    candidates: list[tuple]  # per query, the model's three likeliest classes ((index, probability), ...)


def next_region(engine, predictions: TilePredictions, candidates: list[tuple[int, int]], image_id: int, k: int,
                strategy: str, within: tuple[float, float, float, float] | None = None) -> RegionQueries:
    """The most uncertain tissue tile the expert has not looked at (any unseen one with no model
    yet), and ``k`` queries in it, chosen as on an image (``selection.choose_queries``) in tile
    pixels; the slide's other open queries are closed. With ``within`` (a level-0 rectangle: the
    view), only a tile whose centre lies in it, if one there has tissue."""
    project = engine.project
    grid = engine.slides.grid(image_id)
    if grid is None:
        raise ProjectError("Only slides have regions to go to; N on an image goes to the next image.")
    candidates = candidates or [(c, r) for r in range(grid.grid.rows) for c in range(grid.grid.columns)]
    if within is not None:
        candidates = _tissue_within(grid, candidates, within) or candidates
    seen = project.seen_regions(grid.image_id)
    unseen = [t for t in candidates if not _inside(grid.rect(*t), seen)] or candidates
    trained = engine.model.ready
    if trained:
        scores = predictions.scores.get(grid.image_id, {})
        scored = [t for t in unseen if t in scores]
        if not scored:  # the scan has not reached these yet: score a few now
            scored = [unseen[i] for i in engine.rng.permutation(len(unseen))[:4]]
            for tile in scored:
                predictions.predict(engine.model, grid, *tile, engine.version, strategy)
            scores = predictions.scores[grid.image_id]
        col, row = max(scored, key=lambda t: scores[t][1])
        probs = tile_probabilities(engine.model, grid, col, row)
        score_map, score = scaled_uncertainty(strategy, probs), scores[(col, row)][1]
    else:  # no model yet: an unseen stretch of tissue, queries spread at random over it
        col, row = unseen[int(engine.rng.integers(len(unseen)))]
        probs, score = None, None
        score_map = engine.rng.random(grid.size(col, row), dtype=np.float32)
    tissue = grid.tissue_in(col, row)
    labelled = project.label_arrays(grid.image_id)[1]
    exclude = _with_points(~tissue if tissue.any() else None, score_map.shape, grid, col, row,
                           np.concatenate([labelled, project.asked_points(grid.image_id)]))
    if trained:
        ref = tile_ref(grid, col, row)
        points = selection.choose_queries(
            score_map, k, engine.rng, lambda yx: engine.model.embed_points(ref, yx + CONTEXT),
            exclude=exclude, labelled=_tile_pixels(grid, col, row, labelled, score_map.shape),
            min_distance=MIN_DISTANCE)
    else:
        points = selection.select_pixels(score_map, k, engine.rng, exclude=exclude, min_distance=MIN_DISTANCE)
    project.close_open_queries(grid.image_id)
    yx = grid.to_level0(col, row, points)
    likeliest = _likeliest(probs, points, engine.model.classes)
    ids = project.add_queries(grid.image_id, yx, strategy if trained else "random",
                              score_map[points[:, 0], points[:, 1]] if len(points) else None, engine.version)
    return RegionQueries(grid.image_id, grid.rect(col, row), score, ids, yx, likeliest)


def export_slide(engine, predictions: TilePredictions, image_id: int, folder: Path, strategy: str,
                 progress: Callable[[str, float], None], seconds: float = EXPORT_SECONDS) -> str:
    """Predict every tile with tissue (others are 255 in the mask: not predicted) and write
    ``NAME.geojson`` and ``NAME_mask.ome.tif`` (at the working resolution); returns what was
    written and how much of the tissue is predicted, in words. Tiles not predicted yet once
    ``seconds`` have passed, and tiles that cannot be read (a damaged part), are left out."""
    project = engine.project
    grid = engine.slides.grid(image_id)
    if grid is None:
        raise ProjectError("That image is not a slide; use File > Export masks for images.")
    if not engine.model.ready:
        raise ProjectError(no_model_words(engine))

    def tile_classes(col: int, row: int) -> np.ndarray:
        return predictions.predict(engine.model, grid, col, row, engine.version, strategy).class_map

    def tell(done: int, total: int) -> None:
        if done % 8 == 0:
            progress(f"Predicting the slide for export: tile {done + 1} of {total}", done / max(1, total))

    deadline = time.monotonic() + seconds
    late: list[tuple[int, int]] = []
    unreadable: list[tuple[int, int]] = []

    def in_time(col: int, row: int) -> np.ndarray | None:
        if time.monotonic() > deadline and predictions.get(grid, col, row, engine.version) is None:
            late.append((col, row))
            return None
        try:
            return tile_classes(col, row)
        except ImageReadError:
            unreadable.append((col, row))
            return None

    mask = predict_mask(grid, in_time, tell)
    classes = project.classes()
    _, yx, cls = project.label_arrays(grid.image_id)
    collection = qupath_geojson([c.name for c in classes], [c.colour for c in classes], yx[:, ::-1], cls,
                                mask=mask, mask_downsample=grid.downsample)
    stem = Path(project.image(grid.image_id).name).stem
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_geojson(folder / f"{stem}.geojson", collection)
    levels = write_mask_ome_tiff(folder / f"{stem}_mask.ome.tif", mask, mpp=grid.resolution.mpp)
    return (f"Exported {stem}.geojson ({len(collection['features'])} objects) and {stem}_mask.ome.tif "
            f"({mask.shape[1]} x {mask.shape[0]}, {levels} levels) to {folder}. "
            + _coverage_words(grid, mask_tiles(grid), late, unreadable, seconds))


def _coverage_words(grid: SlideGrid, tiles: list[tuple[int, int]], late: list[tuple[int, int]],
                    unreadable: list[tuple[int, int]], seconds: float) -> str:
    """How much of the tissue (by area, on the tissue mask) the export predicted and, when not
    all, why and what to do."""
    def tissue(tile: tuple[int, int]) -> float:
        x, y, w, h = grid.rect(*tile)
        return grid.tissue.fraction(x, y, w, h) * w * h

    if not late and not unreadable:
        return "100 % of the tissue predicted."
    total = sum(map(tissue, tiles))
    done = math.floor(100 * (1 - sum(map(tissue, late + unreadable)) / total)) if total > 0 else 0
    words = f"{done} % of the tissue predicted; {100 - done} % left unpredicted"
    if unreadable:
        words += f" ({len(unreadable)} tiles of a damaged part of the slide cannot be read)"
    if late:
        words += (f": an export predicts for {seconds / 60:g} minutes at most. Press N or pan there to predict "
                  "more, then export again, or predict the whole slide with File > Predict images or slides")
    return words + "."


def _likeliest(probs: np.ndarray | None, points: np.ndarray, labelled: tuple[int, ...]) -> list[tuple]:
    """Per point, the three likeliest of the ``labelled`` classes (the others have no probability)."""
    if probs is None:
        return [() for _ in points]
    return [tuple((int(i), float(probs[i, py, px])) for i in np.argsort(probs[:, py, px])[::-1] if i in labelled)[:3]
            for py, px in points]


def _tissue_within(grid: SlideGrid, candidates: list[tuple[int, int]],
                   within: tuple[float, float, float, float]) -> list[tuple[int, int]]:
    """The ``candidates`` whose centre lies in level-0 ``within``; when none does (the scan's
    candidates are spread thin), the tissue tiles there."""
    area = np.array([within], np.float64)
    inside = [t for t in candidates if _inside(grid.rect(*t), area)]
    return inside or [t for t in grid.visible(*within)
                      if _inside(grid.rect(*t), area) and grid.tissue.fraction(*grid.rect(*t)) >= MIN_TISSUE]


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
