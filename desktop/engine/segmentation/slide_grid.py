"""A slide at its working resolution: the grid of tiles the model sees, their pixels with
context, and where labels and tissue fall on it. No torch and no Qt: the viewer uses it too.

The working resolution is where features are computed, for training and for prediction alike:
``ProjectSettings.slide_mpp`` micrometres per pixel (1 by default) when the slide knows its
pixel size, else the pyramid level ``ProjectSettings.slide_level`` (0 by default). It is never
finer than level 0, and a pyramid level within 10 % of it is used exactly, so its tiles read
without resampling.

Coordinates: level-0 pixel centres are whole numbers (as labels are stored); working pixel
``j`` covers level-0 ``[j * d, (j + 1) * d)``, so level-0 ``x`` is working ``(x + 0.5) / d - 0.5``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from desktop.engine.images.slides import ImageSource
from desktop.engine.images.tiles import TILE_SIZE, TileGrid, TissueMask
from desktop.engine.project.settings import ProjectSettings

CONTEXT = 16
"""Working pixels read around each tile, so that its border pixels see their neighbours; the
tile with its context (288) is a multiple of 32, as the encoder wants."""
MIN_TISSUE = 0.25  # a tile with less tissue than this is glass: never scanned, never asked about


@dataclass(frozen=True)
class WorkingResolution:
    downsample: float  # level-0 pixels per working pixel
    mpp: float | None  # micrometres per working pixel, when the slide says


def working_resolution(source: ImageSource, settings: ProjectSettings = ProjectSettings()) -> WorkingResolution:
    if source.mpp is not None:
        ds = max(1.0, settings.slide_mpp / source.mpp)
        near = min(source.downsamples, key=lambda d: abs(d - ds))
        if abs(near - ds) <= 0.1 * ds:
            ds = near
    else:
        level = min(settings.slide_level, source.levels - 1)
        ds = source.downsamples[level]
    return WorkingResolution(ds, source.mpp * ds if source.mpp is not None else None)


class SlideGrid:
    """The working-resolution tiles of one open slide."""

    def __init__(self, image_id: int, source: ImageSource, resolution: WorkingResolution,
                 tile: int = TILE_SIZE):
        self.image_id = image_id
        self.source = source
        self.resolution = resolution
        ds = resolution.downsample
        width, height = source.dimensions[0]
        self.grid = TileGrid(max(1, round(width / ds)), max(1, round(height / ds)), ds,
                             source.level_for_downsample(ds), tile)
        self._tissue: TissueMask | None = None

    @property
    def downsample(self) -> float:
        return self.grid.downsample

    @property
    def tile(self) -> int:
        return self.grid.tile_size

    def key(self, col: int, row: int) -> str:
        """Feature-cache key of a tile (the resolution is part of it)."""
        return f"slide-{self.image_id}@{self.downsample:.4f}:{col},{row}"

    def rect(self, col: int, row: int) -> tuple[float, float, float, float]:
        """Level-0 ``(x, y, w, h)`` that a tile (without its context) covers."""
        _, _, w, h = self.grid.region(col, row)
        ds = self.downsample
        return col * self.tile * ds, row * self.tile * ds, w * ds, h * ds

    def size(self, col: int, row: int) -> tuple[int, int]:
        """(height, width) of a tile in working pixels: edge tiles are cut to the slide."""
        _, _, w, h = self.grid.region(col, row)
        return h, w

    def read(self, col: int, row: int) -> np.ndarray:
        """uint8 RGB of a tile with ``CONTEXT`` pixels around it, ``(tile + 2 CONTEXT)`` square,
        white beyond the slide. Raises ImageReadError for a damaged part of the slide."""
        n = self.tile + 2 * CONTEXT
        ds = self.downsample
        level = self.grid.level
        size = math.ceil(n * ds / self.source.downsamples[level])
        pixels = self.source.read_region(level, round((col * self.tile - CONTEXT) * ds),
                                         round((row * self.tile - CONTEXT) * ds), size, size)
        if size != n:
            pixels = cv2.resize(pixels, (n, n), interpolation=cv2.INTER_AREA)
        return pixels

    def visible(self, x: float, y: float, w: float, h: float) -> list[tuple[int, int]]:
        """Tiles a level-0 rectangle touches, nearest its centre first."""
        return self.grid.tiles_in_view(x, y, w, h)

    def locate(self, yx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For level-0 points ``yx`` (N, 2): their tiles' ``(cols, rows)`` and their positions
        ``(N, 2)`` in the pixels that ``read`` returns for those tiles."""
        working = (np.asarray(yx, np.float64).reshape(-1, 2) + 0.5) / self.downsample - 0.5
        rows = np.clip(np.floor(working[:, 0] / self.tile), 0, self.grid.rows - 1).astype(np.int64)
        cols = np.clip(np.floor(working[:, 1] / self.tile), 0, self.grid.columns - 1).astype(np.int64)
        local = working - np.stack([rows, cols], 1) * self.tile + CONTEXT
        return cols, rows, local

    def to_level0(self, col: int, row: int, local_yx: np.ndarray) -> np.ndarray:
        """Positions in a tile (without context) back to level-0 ``yx``, rounded to pixels."""
        working = np.asarray(local_yx, np.float64).reshape(-1, 2) + np.array([row, col]) * self.tile
        return np.round((working + 0.5) * self.downsample - 0.5)

    @property
    def tissue(self) -> TissueMask:
        if self._tissue is None:
            self._tissue = TissueMask.of(self.source, 1024)
        return self._tissue

    def tissue_tiles(self, min_fraction: float = MIN_TISSUE) -> list[tuple[int, int]]:
        """Tiles with at least ``min_fraction`` tissue, in reading order."""
        return [(c, r) for r in range(self.grid.rows) for c in range(self.grid.columns)
                if self.tissue.fraction(*self.rect(c, r)) >= min_fraction]

    def tissue_in(self, col: int, row: int) -> np.ndarray:
        """Boolean (h, w) tissue mask of a tile, sampled from the thumbnail's mask."""
        h, w = self.size(col, row)
        x0, y0, _, _ = self.rect(col, row)
        ds, mask = self.downsample, self.tissue.mask
        ys = np.clip(((y0 + (np.arange(h) + 0.5) * ds) / self.tissue.downsample).astype(np.int64), 0,
                     mask.shape[0] - 1)
        xs = np.clip(((x0 + (np.arange(w) + 0.5) * ds) / self.tissue.downsample).astype(np.int64), 0,
                     mask.shape[1] - 1)
        return mask[np.ix_(ys, xs)]
