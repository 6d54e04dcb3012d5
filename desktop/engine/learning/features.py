"""Frozen-encoder features for the fast learner, computed once per image and cached.

An image is padded (by reflection) to a multiple of 32 so that every encoder stage tiles it
exactly; the stride 8, 16 and 32 maps are resized onto the stride-4 grid and stacked, giving
one ``(H/4, W/4, C)`` float16 map per image, channels last so that gathering the features of
a few thousand labelled pixels reads whole rows. Beside it, ``fine`` holds a few fixed filters
at full resolution (``models.filters``) for detail finer than the 4-pixel grid. Pixel ``(y, x)`` of the image sits at
``((y + 0.5) / 4 - 0.5, (x + 0.5) / 4 - 0.5)`` on that grid, the same convention as
``F.interpolate(..., align_corners=False)``, so point sampling and dense prediction agree.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from models.encoder import Encoder, normalize
from models.filters import PixelFilters

PAD_MULTIPLE = 32
FEATURE_STRIDE = 4


@dataclass(frozen=True)
class FeatureMap:
    """Stacked multi-scale features of one image on the stride-4 grid."""

    values: torch.Tensor  # (h, w, C) float16, covering the padded image
    fine: torch.Tensor  # (H, W, F) float16, the image's own size
    height: int  # the image's own size, before padding
    width: int

    @property
    def channels(self) -> int:
        return self.values.shape[-1] + self.fine.shape[-1]

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.values, self.fine))


def sample_points(fmap: FeatureMap, yx: np.ndarray) -> torch.Tensor:
    """Features at image pixels ``yx`` (N, 2): returns (N, C + F) float32, the stride-4 features
    interpolated bilinearly and the fine filters at the nearest pixel.

    Written out by hand (gather of four neighbours) because ``grid_sample`` would need the whole
    float16 map converted to float32 first.
    """
    values = fmap.values
    h, w, c = values.shape
    fy = (torch.as_tensor(yx[:, 0], dtype=torch.float32) + 0.5) / FEATURE_STRIDE - 0.5
    fx = (torch.as_tensor(yx[:, 1], dtype=torch.float32) + 0.5) / FEATURE_STRIDE - 0.5
    fy = fy.clamp(0, h - 1)
    fx = fx.clamp(0, w - 1)
    y0 = fy.floor().long()
    x0 = fx.floor().long()
    y1 = (y0 + 1).clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    wy = (fy - y0).unsqueeze(1)
    wx = (fx - x0).unsqueeze(1)
    flat = values.reshape(h * w, c)

    def at(yy, xx):
        return flat[yy * w + xx].float()

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    py = torch.as_tensor(np.round(yx[:, 0]), dtype=torch.long).clamp(0, fmap.height - 1)
    px = torch.as_tensor(np.round(yx[:, 1]), dtype=torch.long).clamp(0, fmap.width - 1)
    return torch.cat([top * (1 - wy) + bottom * wy, fmap.fine[py, px].float()], dim=1)


def pad_to_multiple(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad a (1, 3, H, W) tensor on the bottom and right to a multiple of ``multiple``."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode)


class FeatureExtractor:
    """Runs the frozen pretrained encoder and stacks its scales."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.encoder = Encoder.pretrained().to(self.device).eval()
        self.filters = PixelFilters().to(self.device)
        self.coarse_channels = int(sum(self.encoder.channels))
        self.channels = self.coarse_channels + PixelFilters.channels

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> FeatureMap:
        height, width = image.shape[:2]
        x = normalize(image).to(self.device)
        fine = self.filters(x)[0].permute(1, 2, 0).to("cpu", torch.float16).contiguous()
        x = pad_to_multiple(x)
        maps = self.encoder(x)
        size = maps[0].shape[-2:]
        stacked = torch.cat([maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                         for m in maps[1:]], dim=1)
        return FeatureMap(stacked[0].permute(1, 2, 0).to("cpu", torch.float16).contiguous(), fine, height, width)


class FeatureCache:
    """Feature maps by key, least recently used evicted first once ``budget_bytes`` is exceeded.

    Thread-safe so the GUI can ask what is cached while the engine thread fills it.
    """

    def __init__(self, extractor: FeatureExtractor, budget_bytes: int = 2 << 30):
        self.extractor = extractor
        self.budget_bytes = budget_bytes
        self._maps: OrderedDict[str, FeatureMap] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, load_image: Callable[[], np.ndarray]) -> FeatureMap:
        with self._lock:
            fmap = self._maps.get(key)
            if fmap is not None:
                self._maps.move_to_end(key)
                return fmap
        fmap = self.extractor(load_image())
        with self._lock:
            self._maps[key] = fmap
            self._evict()
        return fmap

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._maps

    def discard(self, key: str) -> None:
        with self._lock:
            self._maps.pop(key, None)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(m.nbytes for m in self._maps.values())

    def _evict(self) -> None:
        total = sum(m.nbytes for m in self._maps.values())
        while total > self.budget_bytes and len(self._maps) > 1:
            _, old = self._maps.popitem(last=False)
            total -= old.nbytes
