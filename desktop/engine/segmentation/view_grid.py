"""How finely to predict an image: for the view, at the resolution the screen shows it; for
queries on a large image, on a coarse grid refined where the candidates are.

An image of at most ``LARGE_PIXELS`` (the demo, ISBI's 512 x 512, MoNuSeg's 1000 x 1000) is
predicted and scored at every pixel, as always. A larger one is served by its view: what is on
screen at one class per screen pixel or a little coarser, then the rest at the coarse stride, and
its queries are chosen on a grid of about as many encoder cells as a 1024 x 1024 image has, each
chosen cell then searched pixel by pixel. So a click on a 4096 x 4096 image costs about what it
costs on the demo, and proposing queries about what it costs at 1024 x 1024.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from desktop.engine.segmentation import selection, uncertainty

LARGE_PIXELS = 1024 * 1024  # larger images are predicted by view and asked on a coarse grid
QUERY_CELLS = 256 * 256  # encoder cells a query proposal evaluates: as many as 1024 x 1024 pixels have
OVERVIEW_SIDE = 512  # the whole-image prediction behind the view: at most this many cells a side


def is_large(height: int, width: int) -> bool:
    return height * width > LARGE_PIXELS


def power_of_two_at_least(value: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, value)) - 1e-9))


def view_stride(pixels_per_screen_pixel: float) -> int:
    """The grid a view is predicted on: one cell per screen pixel, rounded to the next power
    of two (at most twice as coarse as the screen; never finer)."""
    return power_of_two_at_least(pixels_per_screen_pixel)


def overview_stride(height: int, width: int) -> int:
    """The whole image's grid, shown where the view's prediction has not reached."""
    return power_of_two_at_least(max(height, width) / OVERVIEW_SIDE)


def query_stride(height: int, width: int) -> int:
    """1 up to ``LARGE_PIXELS``; beyond, the grid (4 or coarser: features averaged per cell)
    with at most ``QUERY_CELLS`` cells."""
    if not is_large(height, width):
        return 1
    return max(4, power_of_two_at_least(math.sqrt(height * width / QUERY_CELLS)))


def aligned_window(rect: tuple[float, float, float, float], stride: int, height: int, width: int
                   ) -> tuple[int, int, int, int]:
    """The view ``rect`` (x, y, w, h in image pixels) as a window ``(y0, x0, y1, x1)`` inside the
    image, widened to whole cells of ``stride``."""
    x, y, w, h = rect
    x0 = max(0, min(width - 1, int(math.floor(x)))) // stride * stride
    y0 = max(0, min(height - 1, int(math.floor(y)))) // stride * stride
    x1 = min(width, -(-max(x0 + 1, int(math.ceil(x + w))) // stride) * stride)
    y1 = min(height, -(-max(y0 + 1, int(math.ceil(y + h))) // stride) * stride)
    return y0, x0, y1, x1


def cells_touched(mask: np.ndarray, stride: int) -> np.ndarray:
    """A pixel mask as a mask of grid cells: a cell is set when any of its pixels is."""
    h, w = mask.shape
    rows, cols = -(-h // stride), -(-w // stride)
    padded = np.zeros((rows * stride, cols * stride), bool)
    padded[:h, :w] = mask
    return padded.reshape(rows, stride, cols, stride).any(axis=(1, 3))


def coarse_queries(score_grid: np.ndarray, stride: int, k: int, rng: np.random.Generator,
                   exclude: np.ndarray, labelled: np.ndarray, min_distance: float,
                   embed: Callable[[np.ndarray], np.ndarray],
                   point_probs: Callable[[np.ndarray], np.ndarray], strategy: str) -> np.ndarray:
    """``k`` queries (n, 2) ``yx`` from a score grid of ``stride``: cells chosen as
    ``selection.choose_queries`` chooses pixels (uncertain, diverse, spaced), then in each the
    pixel the model is least sure of at full resolution, never an ``exclude``d one (labelled or
    asked already)."""
    height, width = exclude.shape
    grid_exclude = cells_touched(exclude, stride)
    centre = stride // 2
    cells = selection.choose_queries(
        score_grid, k, rng, lambda cy: embed(np.minimum(cy * stride + centre, (height - 1, width - 1))),
        exclude=grid_exclude, labelled=np.asarray(labelled).reshape(-1, 2) // stride,
        min_distance=min_distance / stride)
    if len(cells) == 0:
        return np.zeros((0, 2), np.int64)
    dy, dx = np.divmod(np.arange(stride * stride), stride)
    yy = cells[:, :1] * stride + dy[None]  # (n, stride^2) pixels of each chosen cell
    xx = cells[:, 1:] * stride + dx[None]
    inside = (yy < height) & (xx < width)
    yy, xx = np.minimum(yy, height - 1), np.minimum(xx, width - 1)
    probs = point_probs(np.stack([yy.ravel(), xx.ravel()], 1))  # (n * stride^2, C)
    scores = uncertainty.score(strategy, probs.T.reshape(-1, *yy.shape))
    scores = np.where(inside & ~exclude[yy, xx], scores, -np.inf)
    best = scores.argmax(1)
    rows = np.arange(len(cells))
    return np.stack([yy[rows, best], xx[rows, best]], 1).astype(np.int64)
