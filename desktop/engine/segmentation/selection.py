"""Choosing where to ask, given per-pixel uncertainty scores.

Scores come from ``uncertainty.py``; nothing here knows how they were made. The rules follow
PixelPick (keep the most uncertain few per cent, draw at random among them, so queries are
uncertain *and* diverse), plus what an interactive tool needs: no query on a pixel that is
already labelled, asked or marked to ignore, and a minimum distance between queries so the
expert is not asked the same thing twice in neighbouring pixels.

``select_diverse`` replaces PixelPick's uniform draw from the pool with k-means++ seeding in
the model's own embedding (as BADGE does), measured from the pixels already labelled: the top
few per cent of a pixel-wise score are mostly thin bands along predicted borders, and the
embedding spreads the questions over the different kinds of uncertain pixel instead of asking
about one kind again and again. Pixels drawn from the whole image join the pool
(``COVERAGE_SHARE``), so that what the model is sure of, and wrong about, can be asked too.
``choose_queries`` is the whole choice, for images and slide tiles alike. What it gains and
what it does not is measured with ``pointillist bench segmentation`` (figures in the closing
notes of issues 2 and 18, and docs/architecture.md).
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from desktop.engine.learning.clustering import kmeans

_TOP_UP_CANDIDATES = 200_000  # pixels looked at, best first, to fill a short diverse pick
COVERAGE_SHARE = 3
"""``choose_queries`` draws a third as many pixels over the whole image as its uncertain pool
holds (1,000 beside 3,000 on an ordinary image), and lets the embedding choose among them all.
Why: the model's confident mistakes (a pale nucleus it calls background with certainty) are
never in the uncertain pool, and asking only there left margin behind random on MoNuSeg; a
confident pixel unlike every labelled one is now a candidate too, and wins a pick when the
embedding finds it far from what is known (figures in docs/architecture.md, issue 18)."""
KNOWN_LIMIT = 500
"""Labelled pixels of an image that the picks are kept apart from (``choose_queries``), at most:
with 25,000 on an image, embedding them all and measuring to each made a proposal cost 13 s
(issue 19); 500 spread over them stand for what is known, at a fixed cost (with 2000 a proposal
still took 0.27 s against 0.04 s at 250 an image). The benchmarks' 100 labels an image never
reach it."""


def _allowed_pixels(shape: tuple[int, int], exclude: np.ndarray | None) -> np.ndarray:
    """Flat indices of the pixels of a map of ``shape`` that ``exclude`` leaves open."""
    return np.flatnonzero(np.ones(shape, bool) if exclude is None else ~exclude.astype(bool))


def _as_yx(flat: np.ndarray, width: int) -> np.ndarray:
    """Flat indices of a map ``width`` wide as (n, 2) int64 rows ``(y, x)``."""
    return np.stack([flat // width, flat % width], axis=1).astype(np.int64)


def _accept_spaced(candidates: np.ndarray, k: int, min_distance: float,
                   taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Walk ``candidates`` (N, 2) in order, keeping those at least ``min_distance`` from all kept."""
    chosen: list[tuple[int, int]] = []
    kept = np.asarray(taken, dtype=np.float64).reshape(-1, 2)
    limit = float(min_distance) ** 2
    for y, x in candidates:
        if len(chosen) >= k:
            break
        if min_distance > 0 and len(kept):
            d2 = (kept[:, 0] - y) ** 2 + (kept[:, 1] - x) ** 2
            if d2.min() < limit:
                continue
        chosen.append((int(y), int(x)))
        kept = np.vstack([kept, [y, x]])
    return chosen


def select_pixels(scores: np.ndarray, k: int, rng: np.random.Generator,
                  exclude: np.ndarray | None = None, top_fraction: float = 0.05,
                  min_distance: float = 0.0) -> np.ndarray:
    """PixelPick selection: take the top ``top_fraction`` of allowed pixels, draw ``k`` at random.

    ``exclude`` is a boolean (H, W) mask of pixels that may not be chosen (labelled, already
    asked, ignored). If the spacing rule leaves fewer than ``k`` in the top pool, the rest are
    filled from the remaining allowed pixels in order of decreasing score. Returns an int array
    of shape (n, 2) with rows ``(y, x)``, ``n <= k`` (fewer only if too few pixels are allowed).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (H, W), got shape {scores.shape}")
    if k <= 0:
        return np.zeros((0, 2), np.int64)
    flat_idx = _allowed_pixels(scores.shape, exclude)
    if flat_idx.size == 0:
        return np.zeros((0, 2), np.int64)
    values = scores.ravel()[flat_idx]
    pool_size = max(k, int(np.ceil(top_fraction * flat_idx.size)))
    pool_size = min(pool_size, flat_idx.size)
    order = np.argsort(-values, kind="stable")
    top = order[:pool_size]
    top = top[rng.permutation(top.size)]
    rest = order[pool_size:]
    w = scores.shape[1]
    chosen = _accept_spaced(_as_yx(flat_idx[top], w), k, min_distance, [])
    if len(chosen) < k and rest.size:
        chosen += _accept_spaced(_as_yx(flat_idx[rest], w), k - len(chosen), min_distance, chosen)
    return np.asarray(chosen, np.int64).reshape(-1, 2)


def uncertain_pool(scores: np.ndarray, rng: np.random.Generator, exclude: np.ndarray | None = None,
                   top_fraction: float = 0.05, limit: int = 3000) -> np.ndarray:
    """Up to ``limit`` pixels drawn at random from the top ``top_fraction`` of allowed pixels.

    Returns (n, 2) rows ``(y, x)``; the candidates that ``select_diverse`` chooses among.
    """
    flat_idx = _allowed_pixels(scores.shape, exclude)
    if flat_idx.size == 0:
        return np.zeros((0, 2), np.int64)
    pool_size = min(flat_idx.size, max(1, int(np.ceil(top_fraction * flat_idx.size))))
    values = scores.ravel()[flat_idx]
    top = np.argpartition(-values, pool_size - 1)[:pool_size] if pool_size < flat_idx.size else np.arange(flat_idx.size)
    pick = flat_idx[top[rng.permutation(top.size)[:limit]]]
    return _as_yx(pick, scores.shape[1])


def coverage_pool(shape: tuple[int, int], size: int, rng: np.random.Generator,
                  exclude: np.ndarray | None = None) -> np.ndarray:
    """``size`` distinct allowed pixels (n, 2) ``yx`` drawn uniformly over a map of ``shape``,
    whatever their score: the candidates beside the uncertain pool (``choose_queries``)."""
    flat = _allowed_pixels(shape, exclude)
    return _as_yx(flat[rng.choice(flat.size, min(size, flat.size), replace=False)], shape[1])


def select_diverse(candidates: np.ndarray, embeddings: np.ndarray, k: int, rng: np.random.Generator,
                   labelled: np.ndarray | None = None, min_distance: float = 0.0) -> np.ndarray:
    """Choose ``k`` of ``candidates`` (n, 2) by k-means++ seeding on their ``embeddings`` (n, D).

    Each pick is drawn with probability proportional to the squared embedding distance to the
    nearest already-labelled pixel (``labelled``, (m, D)) or earlier pick, so the chosen pixels
    differ from what is known and from each other, while staying random like PixelPick's draw.
    Candidates closer than ``min_distance`` pixels to an earlier pick are skipped.
    Returns (n, 2) rows ``(y, x)`` with ``n <= k``.
    """
    candidates = np.asarray(candidates, np.int64).reshape(-1, 2)
    x = np.asarray(embeddings, np.float64)
    d2 = np.full(len(x), np.inf)
    if labelled is not None and len(labelled):
        d2 = nearest_squared_distance(x, np.asarray(labelled, np.float64))
    open_ = np.ones(len(x), bool)
    chosen: list[int] = []
    while len(chosen) < k and open_.any():
        weights = np.where(open_, d2, 0.0)
        if np.isinf(weights).any():
            weights = np.where(np.isinf(weights), 1.0, 0.0)
        total = weights.sum()
        p = weights / total if total > 0 else open_ / open_.sum()
        i = int(rng.choice(len(x), p=p))
        chosen.append(i)
        open_[i] = False
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
        if min_distance > 0:
            near = ((candidates - candidates[i]) ** 2).sum(1) < float(min_distance) ** 2
            open_ &= ~near
    return candidates[chosen].reshape(-1, 2)


def nearest_squared_distance(x: np.ndarray, known: np.ndarray, block: int = 2048) -> np.ndarray:
    """The squared distance from each row of ``x`` (n, D) to its nearest row of ``known`` (m, D),
    as ``|x|^2 + |k|^2 - 2 x.k`` by matrix products: the differences written out, (n, m, D) at
    once, took 12 s for 3000 candidates and 25,000 labelled pixels (issue 19)."""
    xx = (x ** 2).sum(1)
    out = np.full(len(x), np.inf)
    for start in range(0, len(known), block):  # bounded memory for images with many labels
        k = known[start:start + block]
        out = np.minimum(out, (xx[:, None] + (k ** 2).sum(1)[None] - 2 * (x @ k.T)).min(1))
    return np.maximum(out, 0.0)  # rounding can take an exact match a hair below zero


def spread_subset(points: np.ndarray, limit: int = KNOWN_LIMIT) -> np.ndarray:
    """At most ``limit`` of ``points`` (n, 2), evenly spaced in their order (the store's: oldest
    first), all of them when there are no more."""
    if len(points) <= limit:
        return points
    return points[np.linspace(0, len(points) - 1, limit).round().astype(np.int64)]


def choose_queries(scores: np.ndarray, k: int, rng: np.random.Generator,
                   embed: Callable[[np.ndarray], np.ndarray], exclude: np.ndarray | None = None,
                   labelled: np.ndarray | None = None, min_distance: float = 0.0) -> np.ndarray:
    """The query choice for a trained model: the uncertain pool and, beside it, a third as many
    pixels from anywhere (``COVERAGE_SHARE``), then ``k`` of them diverse in the model's embedding.

    ``embed`` maps pixels (n, 2) ``yx`` of this score map to the model's embedding (n, D);
    ``labelled`` are the pixels of this map already labelled (their embedding is what the
    picks should differ from; ``KNOWN_LIMIT`` of them at most, ``spread_subset``). Falls back
    to ``select_pixels`` when the pool is too small, and fills up with the next most uncertain
    pixels when the spacing leaves fewer than ``k``.
    """
    candidates = uncertain_pool(scores, rng, exclude=exclude)
    if len(candidates) < k:
        return select_pixels(scores, k, rng, exclude=exclude, min_distance=min_distance)
    candidates = np.concatenate([candidates, coverage_pool(scores.shape, len(candidates) // COVERAGE_SHARE, rng,
                                                           exclude)])
    labelled = np.zeros((0, 2), np.int64) if labelled is None else np.asarray(labelled).reshape(-1, 2)
    labelled = spread_subset(labelled)
    embedded = embed(np.concatenate([candidates, labelled]))  # one call: a deep learner runs its network once
    known = embedded[len(candidates):] if len(labelled) else None
    picks = select_diverse(candidates, embedded[:len(candidates)], k, rng, labelled=known, min_distance=min_distance)
    if len(picks) < k:  # the spacing closed off a compact pool: the next most uncertain, spaced
        flat = np.setdiff1d(_allowed_pixels(scores.shape, exclude), picks[:, 0] * scores.shape[1] + picks[:, 1])
        flat = flat[np.argsort(-scores.ravel()[flat], kind="stable")[:_TOP_UP_CANDIDATES]]
        more = _accept_spaced(_as_yx(flat, scores.shape[1]), k - len(picks), min_distance, [tuple(p) for p in picks])
        picks = np.vstack([picks, np.asarray(more, np.int64).reshape(-1, 2)])
    return picks


def cold_start(features: np.ndarray, image_shape: tuple[int, int], k: int, rng: np.random.Generator,
               exclude: np.ndarray | None = None, min_distance: float = 0.0,
               max_samples: int = 4000) -> np.ndarray:
    """Queries with no model yet: spread-out, typical pixels found in encoder feature space.

    ``features`` is a (C, h, w) map covering an image of ``image_shape`` (H, W). The feature
    vectors are clustered into ``k`` groups; for each group the member nearest its centre is the
    "typical" pixel. Groups are visited largest first, so the commonest appearances are asked
    about first. Returns (n, 2) rows ``(y, x)`` in image pixels.
    """
    if k <= 0:
        return np.zeros((0, 2), np.int64)
    c, h, w = features.shape
    height, width = image_shape
    cell_y = (np.arange(h) + 0.5) * height / h
    cell_x = (np.arange(w) + 0.5) * width / w
    yy, xx = np.meshgrid(np.clip(cell_y.astype(np.int64), 0, height - 1),
                         np.clip(cell_x.astype(np.int64), 0, width - 1), indexing="ij")
    coords = np.stack([yy.ravel(), xx.ravel()], 1)
    allowed = np.ones(len(coords), bool)
    if exclude is not None:
        allowed = ~exclude.astype(bool)[coords[:, 0], coords[:, 1]]
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return np.zeros((0, 2), np.int64)
    if idx.size > max_samples:
        idx = rng.choice(idx, max_samples, replace=False)
    x = features.reshape(c, -1).T[idx].astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    n_clusters = min(k, len(idx))
    centres, assign = kmeans(x, n_clusters, rng)
    sizes = np.bincount(assign, minlength=n_clusters)
    nearest_first = []
    for j in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(assign == j)
        d = ((x[members] - centres[j]) ** 2).sum(1)
        nearest_first.append(members[np.argsort(d)][:8])
    # Round-robin over clusters: every cluster's most typical pixel before any second choice,
    # so the spacing rule can skip one member without losing the whole cluster.
    order = [int(m) for depth in itertools.zip_longest(*nearest_first) for m in depth if m is not None]
    candidates = coords[idx[np.asarray(order, np.int64)]]
    chosen = _accept_spaced(candidates, k, min_distance, [])
    return np.asarray(chosen, np.int64).reshape(-1, 2)


def image_uncertainty(scores: np.ndarray, top_fraction: float = 0.05,
                      exclude: np.ndarray | None = None) -> float:
    """Mean of an image's top ``top_fraction`` scores: how weak the model is where it is weakest."""
    values = scores[~exclude] if exclude is not None else scores.ravel()
    if values.size == 0:
        return 0.0
    n = max(1, int(np.ceil(top_fraction * values.size)))
    return float(np.partition(values, values.size - n)[-n:].mean())


def rank_images(uncertainty_by_image: dict[int, float]) -> list[int]:
    """Image ids, most uncertain first (ties keep insertion order)."""
    return sorted(uncertainty_by_image, key=lambda i: -uncertainty_by_image[i])
