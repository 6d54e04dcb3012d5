"""The fast learner's head evaluated on a grid of any power-of-two stride, over a window of the
image, a strip of rows at a time.

Why: what a prediction costs should follow the pixels it is for, not the image's. The window
in view is shown at one screen pixel per ``stride`` image pixels; a 4096 x 4096 image fitted to a
window of 700 pixels needs about one class per 8 x 8 pixels, and computing every pixel first cost
24 s and 12 GB there. Two regimes, both exact for the head they evaluate:

- ``stride`` 1 or 2, finer than the encoder's grid (``FEATURE_STRIDE`` = 4): the head's first
  layer is linear, so it is applied to the stride-4 features and the result resized bilinearly
  (as ``PixelHead.hidden_map`` does for the whole image), plus the fine filters (averaged over
  2 x 2 pixels at stride 2). Strips of rows bound the memory: 4096 x 4096 at stride 1 held four
  copies of a 4.3 GB hidden map before.
- ``stride`` 4 and coarser: the features averaged over each cell (``Levels``), then the head, so
  one cell costs one evaluation. Averaging before the ReLU is not averaging the answers: a cell
  across a border gets the answer of its mean feature (uncertain, as the border is), which is
  what a coarse view of the border should show.

Cells: row ``i`` of a grid of stride ``s`` covers image rows ``[i * s, (i + 1) * s)``; a window
is ``(y0, x0, y1, x1)`` in image pixels with ``y0`` and ``x0`` multiples of ``s``; the grid covers
it with ``ceil`` cells, the last ones reaching past the image edge (they average what is inside).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from desktop.engine.learning.features import FEATURE_STRIDE, FeatureMap

STRIP_PIXELS = 1 << 20  # output pixels per strip at stride 1 or 2: 64 hidden channels of float32 = 256 MB
CHUNK_ROWS = 8192  # feature rows converted from float16 at a time: converting all first took 1.5x as long


def first_layer(values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``values`` (N, C) float16 times ``weight.T`` (+ ``bias``) in float32, converted a chunk
    at a time while it is in the processor's cache."""
    out = torch.empty(values.shape[0], weight.shape[0])
    bias = torch.zeros(weight.shape[0]) if bias is None else bias
    for i in range(0, values.shape[0], CHUNK_ROWS):
        torch.addmm(bias, values[i:i + CHUNK_ROWS].float(), weight.T, out=out[i:i + CHUNK_ROWS])
    return out


def grid_shape(height: int, width: int, stride: int, window: tuple[int, int, int, int] | None = None
               ) -> tuple[int, int]:
    y0, x0, y1, x1 = window or (0, 0, height, width)
    y1, x1 = min(y1, height), min(x1, width)
    return -(-(y1 - y0) // stride), -(-(x1 - x0) // stride)


def pool_cells(values: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over ``factor`` x ``factor`` cells of a channels-last map, its dtype kept, edges
    replicated to a whole number of cells; computed a band of rows at a time in float32, as a
    sum of strided slices (a reshape and ``mean`` over two axes took five times as long: 4.2 s
    for a 4096 x 4096 image's map on one thread)."""
    if factor == 1:
        return values
    h, w, c = values.shape
    rows, cols = -(-h // factor), -(-w // factor)
    pad_h, pad_w = rows * factor - h, cols * factor - w
    out = torch.empty(rows, cols, c, dtype=values.dtype)
    band = max(1, (4 << 20) // max(1, w * c * factor))  # ~16 MB of float32 per band
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        block = values[r0 * factor:min(h, r1 * factor)].float()
        if pad_h and r1 == rows or pad_w:
            block = F.pad(block.permute(2, 0, 1)[None], (0, pad_w, 0, (r1 - r0) * factor - block.shape[0]),
                          mode="replicate")[0].permute(1, 2, 0)
        total = torch.zeros(r1 - r0, cols, c)
        for dy in range(factor):
            for dx in range(factor):
                total += block[dy::factor, dx::factor]
        out[r0:r1] = total.mul_(1 / (factor * factor))
    return out


class Levels:
    """Cell-averaged features of the last image asked for, at each stride of 4 or more (the
    image in view is asked again at every model version; pooling 4096 x 4096 once took 2 s).
    Each level is pooled from the next finer one, so only the first reads the whole feature map.
    Only one image's levels are held: together they cost a third of its feature map."""

    def __init__(self):
        self._key: str | None = None
        self._levels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, key: str, fmap: FeatureMap, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, fine)`` on the grid of ``stride`` (a power of two, 4 or more), the image's
        cells only."""
        if key != self._key:
            self._key, self._levels = key, {}
        if stride not in self._levels:
            rows, cols = grid_shape(fmap.height, fmap.width, stride)
            if stride == FEATURE_STRIDE:
                values, fine = fmap.values, pool_cells(fmap.fine, stride)
            else:
                finer_values, finer_fine = self.get(key, fmap, stride // 2)
                values, fine = pool_cells(finer_values, 2), pool_cells(finer_fine, 2)
            self._levels[stride] = (values[:rows, :cols], fine[:rows, :cols])
        return self._levels[stride]


def head_probabilities(head, fmap: FeatureMap, stride: int, window: tuple[int, int, int, int] | None,
                       levels: Levels, key: str) -> torch.Tensor:
    """Softmax of ``head`` (a ``PixelHead``) on the grid of ``stride`` over ``window``:
    (rows, cols, C) float32."""
    y0, x0, y1, x1 = window or (0, 0, fmap.height, fmap.width)
    if y0 % stride or x0 % stride:
        raise ValueError(f"the window {window} does not start on the grid of stride {stride}")
    rows, cols = grid_shape(fmap.height, fmap.width, stride, window)
    coarse = fmap.values.shape[-1]
    w = head.inp.weight / head.std
    b = head.inp.bias - w @ head.mean
    if stride >= FEATURE_STRIDE:
        values, fine = levels.get(key, fmap, stride)
        r0, c0 = y0 // stride, x0 // stride
        v = values[r0:r0 + rows, c0:c0 + cols].reshape(-1, coarse)
        f = fine[r0:r0 + rows, c0:c0 + cols].reshape(-1, fine.shape[-1]).float()
        hidden = first_layer(v, w[:, :coarse], b).addmm_(f, w[:, coarse:].T)
        return torch.softmax(head.classify(hidden), dim=-1).view(rows, cols, -1)
    out = torch.empty(rows, cols, head.out.out_features)
    strip = max(1, STRIP_PIXELS // cols)
    for r in range(0, rows, strip):
        out[r:r + strip] = _fine_strip(head, fmap, stride, y0 + r * stride, min(rows, r + strip) - r,
                                       x0, cols, w, b)
    return out


def _fine_strip(head, fmap: FeatureMap, stride: int, top: int, rows: int, left: int, cols: int,
                w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Probabilities (rows, cols, C) of grid rows from image row ``top``, columns from ``left``,
    at stride 1 or 2: the stride-4 hidden map of the strip (one grid row of margin each side,
    so the bilinear resize matches the whole image's) resized by ``4 / stride``."""
    up = FEATURE_STRIDE // stride
    grid_h, grid_w, coarse = fmap.values.shape
    a = max(0, top // FEATURE_STRIDE - 1)
    c = max(0, left // FEATURE_STRIDE - 1)
    a_end = min(grid_h, -(-(top + rows * stride) // FEATURE_STRIDE) + 1)
    c_end = min(grid_w, -(-(left + cols * stride) // FEATURE_STRIDE) + 1)
    block = fmap.values[a:a_end, c:c_end]
    h = first_layer(block.reshape(-1, coarse), w[:, :coarse])
    h = h.view(1, a_end - a, c_end - c, -1).permute(0, 3, 1, 2)
    h = F.interpolate(h, scale_factor=up, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    dy, dx = top // stride - a * up, left // stride - c * up
    h = h[dy:dy + rows, dx:dx + cols]
    fine = fmap.fine[top:top + rows * stride, left:left + cols * stride]
    if stride > 1:
        fine = pool_cells(fine, stride)
    fine = fine[:rows, :cols]
    if h.shape[:2] != fine.shape[:2]:  # the padded grid reaches past the image: cells past the edge
        fine = F.pad(fine.permute(2, 0, 1)[None].float(), (0, h.shape[1] - fine.shape[1], 0, h.shape[0] - fine.shape[0]),
                     mode="replicate")[0].permute(1, 2, 0)
    hidden = torch.addmm(b, fine.reshape(-1, fine.shape[-1]).float(), w[:, coarse:].T).view(h.shape).add_(h)
    return torch.softmax(head.classify(hidden), dim=-1)


def cells_of(probs: np.ndarray, stride: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A full-resolution prediction (C, H, W) on the grid of ``stride`` over ``window``, each
    cell the mean of its pixels: for a learner that predicts whole images only (the deep one)."""
    _, height, width = probs.shape
    y0, x0, y1, x1 = window or (0, 0, height, width)
    rows, cols = grid_shape(height, width, stride, window)
    cut = torch.from_numpy(np.ascontiguousarray(probs[:, y0:y0 + rows * stride, x0:x0 + cols * stride]))
    return pool_cells(cut.permute(1, 2, 0), stride).permute(2, 0, 1).contiguous().numpy()
