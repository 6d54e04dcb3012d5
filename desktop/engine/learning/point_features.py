"""The features a training round reads, kept per image after its map has left the cache.

A round of the fast learner needs features at a few thousand pixels (the labels, and candidate
anchors), not whole maps: 367 labelled 360 x 480 images hold 5 GB of maps but their 100
labels each take 37 MB. Keeping only those rows makes a round's cost and memory independent of
the image size and of the feature cache's budget; a map is computed (through the cache) only
for points an image has not had before. Before this, a fit fetched every labelled image's map:
with more maps than the cache holds, least-recently-used eviction under cyclic access
recomputed every one of them every round, and the round held them all in memory at once.

Rows are kept as float16, the precision of the maps they are read from: about 1 KB a point.
What is kept is bounded by what training asks for, not by a budget: a row per labelled point,
and one pool per labelled image whose size the learner chooses (``FastLearner`` keeps all pools
together within twice its anchor candidates); ``retain`` forgets the images that have no
labels left.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from desktop.engine.learning.base import ImageRef
from desktop.engine.learning.features import FeatureCache, sample_points


@dataclass
class _ImagePoints:
    """One image's kept rows: labelled points by position, and a pool of uniform random pixels."""

    rows: dict[tuple[float, float], int] = field(default_factory=dict)  # (y, x) -> its row in feats
    feats: torch.Tensor | None = None  # float16 (N, C)
    pool_yx: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    pool_feats: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.feats, self.pool_feats) if t is not None)


class PointFeatures:
    """Features of chosen pixels of each image (float32 on the way out), read from ``cache``
    the first time a pixel is asked for."""

    def __init__(self, cache: FeatureCache, seed: int = 0):
        self.cache = cache
        self._rng = np.random.default_rng(seed)
        self._images: dict[str, _ImagePoints] = {}
        self._lock = threading.Lock()  # ``nbytes`` may be asked from another thread

    def keep(self, image: ImageRef, yx: np.ndarray, pool: int = 0) -> None:
        """Make sure the rows of pixels ``yx`` (N, 2) and a pool of at least ``pool`` pixels are
        kept, reading the image's map (once) only when something is missing."""
        keys = list(dict.fromkeys(map(tuple, np.asarray(yx, np.float64).reshape(-1, 2).tolist())))
        with self._lock:
            kept = self._entry(image.key)
            missing = [k for k in keys if k not in kept.rows]
            grow = len(kept.pool_yx) < pool
        if not missing and not grow:
            return
        fmap = self.cache.get(image.key, image.load)
        if missing:
            new = sample_points(fmap, np.array(missing)).half()
            with self._lock:
                kept.rows.update({k: len(kept.rows) + i for i, k in enumerate(missing)})
                kept.feats = new if kept.feats is None else torch.cat([kept.feats, new])
        if grow:
            flat = self._rng.integers(fmap.height * fmap.width, size=pool)  # a longer draw starts alike
            pool_yx = np.stack([flat // fmap.width, flat % fmap.width], 1).astype(np.float64)
            pool_feats = sample_points(fmap, pool_yx).half()
            with self._lock:
                kept.pool_yx, kept.pool_feats = pool_yx, pool_feats

    def at(self, image: ImageRef, yx: np.ndarray) -> torch.Tensor:
        """Features (N, C) float32 at pixels ``yx`` (N, 2), as ``sample_points`` gives them (to
        float16 precision); the rows are kept for the next time."""
        yx = np.asarray(yx, np.float64).reshape(-1, 2)
        self.keep(image, yx)
        with self._lock:
            kept = self._images[image.key]
            rows = torch.as_tensor([kept.rows[k] for k in map(tuple, yx.tolist())], dtype=torch.long)
            return kept.feats[rows].float() if len(rows) else torch.zeros(0, self.cache.extractor.channels)

    def pool(self, image: ImageRef, size: int) -> tuple[np.ndarray, torch.Tensor]:
        """``size`` pixels drawn uniformly over ``image`` (with replacement: a repeat is harmless)
        and their features (size, C) float32. The same pixels every call: drawn once, and again
        only when a larger pool is asked for; a smaller one is a prefix of it, and what is
        beyond it is forgotten."""
        self.keep(image, np.zeros((0, 2)), size)
        with self._lock:
            kept = self._images[image.key]
            if len(kept.pool_yx) > size:  # fewer asked (more images labelled): give the rest back
                kept.pool_yx, kept.pool_feats = kept.pool_yx[:size].copy(), kept.pool_feats[:size].clone()
            return kept.pool_yx.copy(), kept.pool_feats.float()

    def retain(self, keys) -> None:
        """Forget every image but those of ``keys`` (the images that still have labels)."""
        keys = set(keys)
        with self._lock:
            for key in [k for k in self._images if k not in keys]:
                del self._images[key]

    def discard(self, key: str) -> None:
        with self._lock:
            self._images.pop(key, None)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(p.nbytes for p in self._images.values())

    def _entry(self, key: str) -> _ImagePoints:
        kept = self._images.get(key)
        if kept is None:
            kept = self._images[key] = _ImagePoints()
        return kept
