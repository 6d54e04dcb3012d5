"""The pools of random pixels that a training round draws anchors from, kept per labelled image
after its map has left the cache.

A round of the fast learner needs features at a few thousand pixels (the labels, and candidate
anchors), not whole maps: 367 labelled 360 x 480 images hold 5 GB of maps. The labels' features
are kept by ``LabelFeatures`` (exact, by label id); the anchors' candidates are kept here, a
pool of uniform random pixels per labelled image, so that a round's cost and memory do not
depend on the image size nor on the feature cache's budget. Before, a fit fetched every labelled
image's map: with more maps than the cache holds, least-recently-used eviction under cyclic
access recomputed every one of them every round, and the round held them all in memory at once.

Pools are kept as float16, the precision of the maps they are read from: about 1 KB a pixel.
What is kept is bounded by what training asks for: one pool per labelled image whose size the
learner chooses (``FastLearner`` keeps all pools together within twice its anchor candidates);
``retain`` forgets the images that have no labels left.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from desktop.engine.learning.base import ImageRef
from desktop.engine.learning.features import FeatureCache, FeatureMap, sample_points


@dataclass
class _Pool:
    yx: np.ndarray  # (N, 2) float64
    feats: torch.Tensor  # float16 (N, C)


class PointFeatures:
    """A pool of random pixels of each image with their features (float32 on the way out), read
    from ``cache`` the first time a pool of that size is asked for."""

    def __init__(self, cache: FeatureCache, seed: int = 0):
        self.cache = cache
        self._rng = np.random.default_rng(seed)
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()  # ``nbytes`` may be asked from another thread

    def has_pool(self, image: ImageRef, size: int) -> bool:
        with self._lock:
            kept = self._pools.get(image.key)
            return size <= 0 or (kept is not None and len(kept.yx) >= size)

    def keep(self, image: ImageRef, size: int, fmap: FeatureMap | None = None) -> None:
        """Make sure a pool of at least ``size`` pixels is kept, reading the image's map (``fmap``
        when the caller holds it already) only when it is not."""
        if self.has_pool(image, size):
            return
        fmap = fmap if fmap is not None else self.cache.get(image.key, image.load)
        flat = self._rng.integers(fmap.height * fmap.width, size=size)
        yx = np.stack([flat // fmap.width, flat % fmap.width], 1).astype(np.float64)
        feats = sample_points(fmap, yx).half()
        with self._lock:
            self._pools[image.key] = _Pool(yx, feats)

    def pool(self, image: ImageRef, size: int) -> tuple[np.ndarray, torch.Tensor]:
        """``size`` pixels drawn uniformly over ``image`` (with replacement: a repeat is harmless)
        and their features (size, C) float32. The same pixels every call: drawn once, and again
        only when a larger pool is asked for; a smaller one is a prefix of it, and what is
        beyond it is forgotten."""
        self.keep(image, size)
        with self._lock:
            kept = self._pools[image.key]
            if len(kept.yx) > size:  # fewer asked (more images labelled): give the rest back
                kept = self._pools[image.key] = _Pool(kept.yx[:size].copy(), kept.feats[:size].clone())
            return kept.yx.copy(), kept.feats.float()

    def retain(self, keys) -> None:
        """Forget every image but those of ``keys`` (the images that still have labels)."""
        keys = set(keys)
        with self._lock:
            for key in [k for k in self._pools if k not in keys]:
                del self._pools[key]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(p.feats.element_size() * p.feats.nelement() for p in self._pools.values())
