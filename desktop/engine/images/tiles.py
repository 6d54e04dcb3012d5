"""Tiles of a slide: which ones a view needs, a memory-budgeted cache of them, and where the tissue is.

No Qt here: the viewer asks :class:`TileGrid` which tiles cover its view rectangle (nearest the
centre first, so the middle of the screen fills in first), reads them on worker threads into a
:class:`TileCache`, and skips background with a :class:`TissueMask`.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, NamedTuple

import cv2
import numpy as np

from desktop.engine.images.slides import ImageSource

TILE_SIZE = 256


class TileKey(NamedTuple):
    """A cached tile: of which source, level and grid cell, and for overlays which model version."""

    source: Hashable
    level: int
    col: int
    row: int
    model_version: int | None = None


@dataclass(frozen=True)
class TileGrid:
    """The grid of ``tile_size`` tiles over one level of a source.

    View rectangles and tile origins are in level-0 pixels, the coordinates labels use.
    """

    width: int  # of the level, in its own pixels
    height: int
    downsample: float
    level: int
    tile_size: int = TILE_SIZE

    @classmethod
    def for_level(cls, source: ImageSource, level: int, tile_size: int = TILE_SIZE) -> "TileGrid":
        width, height = source.dimensions[level]
        return cls(width, height, source.downsamples[level], level, tile_size)

    @property
    def columns(self) -> int:
        return -(-self.width // self.tile_size)

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile_size)

    def region(self, col: int, row: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` for ``ImageSource.read_region``: level-0 origin, size in level pixels
        (edge tiles are cut to the level)."""
        lx, ly = col * self.tile_size, row * self.tile_size
        w = min(self.tile_size, self.width - lx)
        h = min(self.tile_size, self.height - ly)
        return round(lx * self.downsample), round(ly * self.downsample), w, h

    def tiles_in_view(self, x: float, y: float, w: float, h: float) -> list[tuple[int, int]]:
        """(col, row) of the tiles that a level-0 rectangle touches, nearest its centre first."""
        span = self.tile_size * self.downsample
        c0, r0 = max(0, math.floor(x / span)), max(0, math.floor(y / span))
        c1 = min(self.columns - 1, math.ceil((x + w) / span) - 1)
        r1 = min(self.rows - 1, math.ceil((y + h) / span) - 1)
        cx, cy = (x + w / 2) / span - 0.5, (y + h / 2) / span - 0.5
        tiles = [(c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        return sorted(tiles, key=lambda t: ((t[0] - cx) ** 2 + (t[1] - cy) ** 2, t[1], t[0]))


def level_for_view(source: ImageSource, view_w: float, view_h: float, screen_w: int,
                   screen_h: int) -> int:
    """The level to show a level-0 view rectangle on a screen area: the coarsest with at least
    one level pixel per screen pixel."""
    return source.level_for_downsample(min(view_w / screen_w, view_h / screen_h))


class TileCache:
    """Tiles (numpy arrays) by :class:`TileKey`, least recently used dropped first once their
    bytes exceed ``budget_bytes``. Thread-safe: worker threads put, the GUI thread gets."""

    def __init__(self, budget_bytes: int = 512 << 20):
        self.budget_bytes = budget_bytes
        self._tiles: OrderedDict[TileKey, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def get(self, key: TileKey) -> np.ndarray | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: TileKey, tile: np.ndarray) -> None:
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._nbytes -= old.nbytes
            self._tiles[key] = tile
            self._nbytes += tile.nbytes
            while self._nbytes > self.budget_bytes and len(self._tiles) > 1:
                _, dropped = self._tiles.popitem(last=False)
                self._nbytes -= dropped.nbytes

    def __contains__(self, key: TileKey) -> bool:
        with self._lock:
            return key in self._tiles

    def __len__(self) -> int:
        with self._lock:
            return len(self._tiles)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._nbytes


class TissueMask:
    """Where the tissue is, from a thumbnail: True where a pixel is coloured or dark enough.

    Glass is bright and grey; stained tissue is coloured (H&E) or at least darker. A pixel is
    tissue when its chroma (max - min of R, G, B) is above an Otsu threshold of the thumbnail's
    chroma, or its brightness is below an Otsu threshold of the brightness. Each threshold has
    a floor and ceiling so that an all-glass or all-tissue thumbnail is not split in two.
    A small opening and closing removes dust and fills the gaps in the tissue.
    """

    MIN_CHROMA = 20  # never call fainter colour than this tissue
    MAX_GREY = 220  # never call brighter grey than this tissue

    def __init__(self, thumbnail: np.ndarray, downsample: float):
        self.downsample = downsample  # level-0 pixels per mask pixel
        rgb = thumbnail.astype(np.int16)
        chroma = (rgb.max(2) - rgb.min(2)).astype(np.uint8)
        grey = cv2.cvtColor(thumbnail, cv2.COLOR_RGB2GRAY)
        t_chroma = max(self.MIN_CHROMA, _otsu(chroma))
        t_grey = min(self.MAX_GREY, _otsu(grey))
        mask = ((chroma > t_chroma) | (grey < t_grey)).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        self.mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel).astype(bool)

    @classmethod
    def of(cls, source: ImageSource, max_size: int = 1024) -> "TissueMask":
        thumb = source.thumbnail(max_size)
        return cls(thumb, source.dimensions[0][0] / thumb.shape[1])

    def fraction(self, x: float, y: float, w: float, h: float) -> float:
        """Share of tissue in a level-0 rectangle (at least one mask pixel is looked at)."""
        d = self.downsample
        rows, cols = self.mask.shape
        c0 = min(cols - 1, max(0, int(x / d)))
        r0 = min(rows - 1, max(0, int(y / d)))
        c1 = max(c0 + 1, min(cols, math.ceil((x + w) / d)))
        r1 = max(r0 + 1, min(rows, math.ceil((y + h) / d)))
        return float(self.mask[r0:r1, c0:c1].mean())


def _otsu(values: np.ndarray) -> int:
    threshold, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(threshold)
