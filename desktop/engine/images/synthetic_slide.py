"""A synthetic pyramidal OME-TIFF of any size, for the slide benchmark and tests.

The content is H&E-like texture: an elliptical tissue area made of a few pre-drawn 2048-pixel
blocks, white glass around it. Tiles are written one by one from a generator, and every level
is drawn from pre-shrunk copies of the blocks, so the pyramid is consistent (each level is the
one above it, shrunk) and memory stays near the blocks' own size (about 70 MB) whatever the
slide's size.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import tifffile

from desktop.engine.images.tiles import TILE_SIZE

_BLOCK = 2048  # level-0 size of one texture block
_VARIANTS = 4
_MPP = 0.5  # as a 20x scan
MAX_SIZE = _BLOCK * TILE_SIZE  # beyond this a block would shrink below one pixel


def generate_ome_tiff(path: Path, size: int, seed: int = 0, tile: int = TILE_SIZE) -> int:
    """Write a ``size`` x ``size`` pyramidal OME-TIFF (levels halving until one fits a tile, as
    SubIFDs, JPEG tiles); return the level count. See the module docstring for the content."""
    rng = np.random.default_rng(seed)
    pyramids = [_block_pyramid(_texture_block(rng)) for _ in range(_VARIANTS)]
    levels = max(1, math.ceil(math.log2(size / tile)) + 1)
    options = {"tile": (tile, tile), "dtype": np.uint8, "photometric": "rgb",
               "compression": "jpeg", "compressionargs": {"level": 85},
               "maxworkers": 1}  # more threads make tifffile buffer up to 256 MB of tiles
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for level in range(levels):
            side = -(-size // 2 ** level)
            extra = ({"subifds": levels - 1, "metadata": {"axes": "YXS", "PhysicalSizeX": _MPP,
                      "PhysicalSizeY": _MPP}} if level == 0 else {"subfiletype": 1})
            tif.write(_tiles(pyramids, size, level, tile), shape=(side, side, 3), **options, **extra)
    return levels


def _tiles(pyramids: list[list[np.ndarray]], size: int, level: int, tile: int):
    """The tiles of one level in row-major order, each pasted from the blocks it overlaps."""
    block = _BLOCK >> level
    side = -(-size // 2 ** level)
    n = -(-side // tile)
    for ty in range(n):
        for tx in range(n):
            out = np.full((tile, tile, 3), 255, np.uint8)
            for by in range(ty * tile // block, ((ty + 1) * tile - 1) // block + 1):
                for bx in range(tx * tile // block, ((tx + 1) * tile - 1) // block + 1):
                    variant = _variant(bx, by, size)
                    if variant is None:
                        continue
                    src = pyramids[variant][level]
                    y0, x0 = max(by * block, ty * tile), max(bx * block, tx * tile)
                    y1, x1 = min((by + 1) * block, (ty + 1) * tile), min((bx + 1) * block, (tx + 1) * tile)
                    out[y0 - ty * tile:y1 - ty * tile, x0 - tx * tile:x1 - tx * tile] = \
                        src[y0 - by * block:y1 - by * block, x0 - bx * block:x1 - bx * block]
            yield out


def _variant(bx: int, by: int, size: int) -> int | None:
    """Which texture block sits at block (bx, by): None (glass) outside an ellipse of tissue."""
    cx = ((bx + 0.5) * _BLOCK - size / 2) / (0.45 * size)
    cy = ((by + 0.5) * _BLOCK - size / 2) / (0.35 * size)
    if cx * cx + cy * cy > 1:
        return None
    return (bx * 7 + by * 13) % _VARIANTS


def _texture_block(rng: np.random.Generator) -> np.ndarray:
    """A 2048 x 2048 H&E-like block: pink, noisy stroma with purple nuclei and pale gaps."""
    stroma = np.array([235, 170, 200], np.float32)
    low = cv2.resize(rng.normal(0, 1, (32, 32)).astype(np.float32), (_BLOCK, _BLOCK),
                     interpolation=cv2.INTER_CUBIC)
    block = stroma + low[..., None] * np.array([10, 30, 20], np.float32)
    block += rng.normal(0, 8, (_BLOCK, _BLOCK, 1)).astype(np.float32)
    block[low > 1.2] = (245, 235, 240)  # pale gaps between tissue
    block = np.clip(block, 0, 255).astype(np.uint8)
    nuclei = zip(rng.integers(0, _BLOCK, (6000, 2)).tolist(), rng.integers(3, 9, 6000).tolist(),
                 rng.integers(70, 120, 6000).tolist())
    for centre, radius, red in nuclei:
        cv2.circle(block, centre, radius, (red, 50, 140), -1)
    return block


def _block_pyramid(block: np.ndarray) -> list[np.ndarray]:
    levels = [block]
    while levels[-1].shape[0] > 1:
        half = levels[-1].shape[0] // 2
        levels.append(cv2.resize(levels[-1], (half, half), interpolation=cv2.INTER_AREA))
    return levels
