"""``pointillist bench slides``: how fast a slide opens, shows, reads and is predicted on.

Figures (JSON): ``open_ms`` (open_image_source), ``first_view_ms`` (every tile of the first
1920 x 1080 view, the whole slide fitted at the level a viewer would pick, read and decoded on
``READ_THREADS`` worker threads), ``tiles_per_s`` (random 256 x 256 regions at level 0, one
thread), ``predict_tiles_per_s`` (feature extraction + fast-learner prediction of 256 x 256
tiles at the working resolution, read with their context as the app does, after training on
synthetic point labels).

``--generate-ome-tiff SIZE`` first writes a SIZE x SIZE pyramidal OME-TIFF
(:mod:`desktop.engine.images.synthetic_slide`) to a temporary folder and measures that.
"""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from desktop.engine.images.slides import ImageSource, open_image_source
from desktop.engine.images.synthetic_slide import MAX_SIZE, generate_ome_tiff
from desktop.engine.images.tiles import TILE_SIZE, TileGrid, level_for_view
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.segmentation.slide_grid import SlideGrid, working_resolution
from desktop.engine.segmentation.slide_learning import tile_probabilities

READ_THREADS = 4
SCREEN = (1920, 1080)


def run(slide: Path | None = None, generate_size: int | None = None, seed: int = 0,
        read_seconds: float = 3.0, predict_tiles: int = 12) -> dict:
    """Measure one slide, or one generated OME-TIFF of ``generate_size`` pixels a side."""
    if generate_size is None:
        return measure(Path(slide), seed, read_seconds, predict_tiles)
    if not TILE_SIZE <= generate_size <= MAX_SIZE:
        raise SystemExit(f"The generated slide's size must be {TILE_SIZE} to {MAX_SIZE} pixels.")
    with tempfile.TemporaryDirectory(prefix="pointillist-bench-") as folder:
        path = Path(folder) / f"synthetic_{generate_size}.ome.tif"
        start = time.perf_counter()
        generate_ome_tiff(path, generate_size, seed)
        generated = {"generate_s": round(time.perf_counter() - start, 1),
                     "file_mb": round(path.stat().st_size / 1e6, 1)}
        return {**measure(path, seed, read_seconds, predict_tiles), **generated}


def measure(path: Path, seed: int = 0, read_seconds: float = 3.0, predict_tiles: int = 12) -> dict:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    source = open_image_source(path)
    open_ms = (time.perf_counter() - start) * 1e3
    with source:
        view_level, view_tiles, first_view_ms = _first_view(source)
        return {"slide": str(path), "backend": source.backend, "width": source.dimensions[0][0],
                "height": source.dimensions[0][1], "levels": source.levels, "mpp": source.mpp,
                "open_ms": round(open_ms, 1), "first_view_ms": round(first_view_ms, 1),
                "first_view_level": view_level, "first_view_tiles": view_tiles,
                "tiles_per_s": round(_random_reads(source, rng, read_seconds), 1),
                **_prediction_figures(source, rng, predict_tiles), "read_threads": READ_THREADS}


def _prediction_figures(source: ImageSource, rng: np.random.Generator, tiles: int) -> dict:
    rate, grid = _predict_rate(source, rng, tiles)
    return {"predict_tiles_per_s": round(rate, 2), "working_downsample": round(grid.downsample, 3),
            "working_mpp": grid.resolution.mpp, "working_tile": grid.tile}


def _first_view(source: ImageSource) -> tuple[int, int, float]:
    """(level, tile count, milliseconds) to read every tile of the whole slide fitted on SCREEN."""
    width, height = source.dimensions[0]
    view_w = max(width, height * SCREEN[0] / SCREEN[1])
    view_h = view_w * SCREEN[1] / SCREEN[0]
    level = level_for_view(source, view_w, view_h, *SCREEN)
    grid = TileGrid.for_level(source, level)
    view = ((width - view_w) / 2, (height - view_h) / 2, view_w, view_h)
    tiles = grid.tiles_in_view(*view)
    start = time.perf_counter()
    with ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(lambda t: source.read_region(level, *grid.region(*t)), tiles))
    return level, len(tiles), (time.perf_counter() - start) * 1e3


def _random_reads(source: ImageSource, rng: np.random.Generator, seconds: float) -> float:
    width, height = source.dimensions[0]
    count, start = 0, time.perf_counter()
    while count < 20 or time.perf_counter() - start < seconds:
        x = int(rng.integers(0, max(1, width - TILE_SIZE)))
        y = int(rng.integers(0, max(1, height - TILE_SIZE)))
        source.read_region(0, x, y, TILE_SIZE, TILE_SIZE)
        count += 1
    return count / (time.perf_counter() - start)


def _predict_rate(source: ImageSource, rng: np.random.Generator, tiles: int) -> tuple[float, SlideGrid]:
    """Tiles per second read, featurised and predicted at the working resolution, as the app
    does for the view (``slide_learning.tile_probabilities``), after training a fast learner on
    20 synthetic labels per training tile: darker than the tiles' Otsu threshold (stain) is
    class 1, brighter (glass or pale tissue) class 0."""
    grid = SlideGrid(0, source, working_resolution(source))
    cells = grid.tissue_tiles() or [(c, r) for r in range(grid.grid.rows) for c in range(grid.grid.columns)]
    picks = [cells[i] for i in rng.permutation(len(cells))]
    read = [grid.read(*t) for t in picks[:4]]
    grey = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in read]
    threshold, _ = cv2.threshold(np.concatenate([g.ravel() for g in grey]), 0, 255,
                                 cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    learner = FastLearner(2, FeatureCache(FeatureExtractor("cpu")), seed=0)
    labels = []
    for i, (pixels, g) in enumerate(zip(read, grey)):
        yx, classes = [], []
        for cls, where in ((1, g < threshold), (0, g >= threshold)):
            found = np.argwhere(where)
            chosen = found[rng.choice(len(found), min(10, len(found)), replace=False)]
            yx.append(chosen)
            classes.append(np.full(len(chosen), cls))
        labels.append(PointLabels(ImageRef(f"train{i}", lambda p=pixels: p), np.concatenate(yx),
                                  np.concatenate(classes)))
    learner.fit(labels, steps=100)
    chosen = [picks[i % len(picks)] for i in range(4, 4 + tiles + 1)]
    tile_probabilities(learner, grid, *chosen[0])  # warm-up
    start = time.perf_counter()
    for t in chosen[1:]:
        tile_probabilities(learner, grid, *t)
    return tiles / (time.perf_counter() - start), grid
