"""A large image's feature map, computed a tile at a time.

Why: the encoder run once over a 4096 x 4096 picture took 25-38 s on this 2-core machine, with
gigabytes of temporaries, before anything of it could be shown. Cut into tiles of about
``TILE`` pixels a side, each encoded with ``CONTEXT`` pixels of the picture around it, the map
is written tile by tile into its full-size tensors: the serving paints each tile's prediction as
soon as the tile is done, nearest the view's centre first (``service/image_views.py``), and the
encoder's temporaries are those of one tile.

Every tile starts on the encoder's coarsest grid (a multiple of 32 pixels, as its context does),
so a tile's cells are the whole image's cells. A tile's features differ from those of the whole
picture only through what the encoder sees beyond the context (its receptive field is wider):
``tests/engine/test_feature_tiles.py`` measures how little that changes a model's answers.
Pictures of at most ``TILED_PIXELS`` are encoded whole, as always (the demo, ISBI, MoNuSeg).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from desktop.engine.learning.padding import padded_size

TILE = 1024  # about this many image pixels a side of a tile
CONTEXT = 128  # pixels of the picture encoded around a tile, each side (a multiple of 32)
ALIGN = 256  # tiles start on multiples of this: the encoder's grid (32), and the overview's strides up to 256
TILED_PIXELS = 2 * TILE * TILE  # larger pictures are encoded a tile at a time (a 1920 x 1080 frame is not)

Encode = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]
"""A picture crop -> its (values, fine) float16 maps, as ``FeatureExtractor.encode`` gives them."""


def is_tiled(height: int, width: int) -> bool:
    return height * width > TILED_PIXELS


def _edges(size: int, tile: int) -> list[int]:
    """Tile edges along one side: about ``size / tile`` tiles of equal length rounded up to
    ``ALIGN``; what is left after the last whole one joins it when shorter than ``ALIGN`` (a
    4097-pixel side is 4 tiles, not 4 and a sliver encoded with its context)."""
    count = -(-size // tile)
    step = -(-(-(-size // count)) // ALIGN) * ALIGN
    edges = list(range(0, size, step))
    if len(edges) > 1 and size - edges[-1] < ALIGN:
        edges.pop()
    return edges + [size]


class FeatureTiles:
    """A picture's map being written a tile at a time: ``values`` (h, w, C) on the stride-4 grid of
    the picture padded to a multiple of 32, and ``fine`` (H, W, F), both valid where ``done``."""

    def __init__(self, picture: np.ndarray, encode: Encode, channels: int, fine_channels: int, stride: int = 4,
                 tile: int = TILE, context: int = CONTEXT):
        self.picture, self.encode, self.stride, self.context = picture, encode, stride, context
        self.height, self.width = picture.shape[:2]
        self.rows, self.cols = _edges(self.height, tile), _edges(self.width, tile)
        padded_h, padded_w = padded_size(self.height, self.width)
        self.values = torch.empty(padded_h // stride, padded_w // stride, channels, dtype=torch.float16)
        self.fine = torch.empty(self.height, self.width, fine_channels, dtype=torch.float16)
        self.done = np.zeros((len(self.rows) - 1, len(self.cols) - 1), bool)

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.values, self.fine))

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def box(self, tile: tuple[int, int]) -> tuple[int, int, int, int]:
        """The tile's pixels ``(y0, x0, y1, x1)``."""
        r, c = tile
        return self.rows[r], self.cols[c], self.rows[r + 1], self.cols[c + 1]

    def cells(self, tile: tuple[int, int]) -> tuple[int, int, int, int]:
        """The tile's cells of ``values`` (rows and columns ``g0, h0, g1, h1``): the last tile of a
        row or column also owns the cells over the padding."""
        y0, x0, y1, x1 = self.box(tile)
        s = self.stride
        return (y0 // s, x0 // s, self.values.shape[0] if y1 == self.height else y1 // s,
                self.values.shape[1] if x1 == self.width else x1 // s)

    def missing(self, near: tuple[float, float] | None = None,
                within: tuple[int, int, int, int] | None = None) -> list[tuple[int, int]]:
        """Tiles not computed yet: those meeting ``within`` (a window ``y0, x0, y1, x1``) first,
        each group nearest the point ``near`` (y, x) first."""
        y, x = near if near is not None else (self.height / 2, self.width / 2)

        def order(tile):
            y0, x0, y1, x1 = self.box(tile)
            outside = within is not None and not (y0 < within[2] and within[0] < y1 and x0 < within[3] and within[1] < x1)
            return outside, (y - (y0 + y1) / 2) ** 2 + (x - (x0 + x1) / 2) ** 2
        return sorted(map(tuple, np.argwhere(~self.done).tolist()), key=order)

    def covering(self, yx: np.ndarray, margin: int) -> list[tuple[int, int]]:
        """The tiles that pixels within ``margin`` of the points ``yx`` (N, 2) lie in."""
        return sorted({tile for dy in (-margin, margin) for dx in (-margin, margin)
                       for tile in zip(*(a.tolist() for a in self._tile_of(yx + (dy, dx))))})

    def done_around(self, yx: np.ndarray, margin: int) -> np.ndarray:
        """Which of the points ``yx`` (N, 2) have every pixel within ``margin`` in a computed tile."""
        ok = np.ones(len(yx), bool)
        for dy in (-margin, margin):
            for dx in (-margin, margin):
                ok &= self.done[self._tile_of(yx + (dy, dx))]
        return ok

    def _tile_of(self, yx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tile rows and columns that the pixels ``yx`` (N, 2) lie in (clamped to the picture)."""
        rows = np.searchsorted(self.rows, np.clip(yx[:, 0], 0, self.height - 1), side="right") - 1
        cols = np.searchsorted(self.cols, np.clip(yx[:, 1], 0, self.width - 1), side="right") - 1
        return rows, cols

    def compute(self, tile: tuple[int, int]) -> None:
        """Encode one tile with its context and write its cells."""
        if self.done[tile]:
            return
        y0, x0, y1, x1 = self.box(tile)
        a0, b0 = max(0, y0 - self.context), max(0, x0 - self.context)
        a1, b1 = min(self.height, y1 + self.context), min(self.width, x1 + self.context)
        values, fine = self.encode(self.picture[a0:a1, b0:b1])
        g0, h0, g1, h1 = self.cells(tile)
        top, left = (y0 - a0) // self.stride, (x0 - b0) // self.stride
        self.values[g0:g1, h0:h1] = values[top:top + g1 - g0, left:left + h1 - h0]
        self.fine[y0:y1, x0:x1] = fine[y0 - a0:y1 - a0, x0 - b0:x1 - b0]
        self.done[tile] = True

    def finish(self) -> None:
        for tile in self.missing():
            self.compute(tile)
