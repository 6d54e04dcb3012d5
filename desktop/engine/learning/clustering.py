"""k-means with k-means++ seeding, shared by the tasks that pick typical or spread-out examples.

Segmentation's cold start clusters encoder features to ask about typical pixels; keypoint
projects cluster pooled features of video frames to sample frames unlike each other. The
function lives below both tasks so that neither imports the other; it needs NumPy only.
"""
from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means of the rows of ``x`` (N, C) with k-means++ seeding; returns (centres, assignment)."""
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iterations):
        dist = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None]
        assign = dist.argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    dist = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None]
    return c, dist.argmin(1)
