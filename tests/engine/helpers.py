"""Small real pictures for engine tests, written to disk like a user's files."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def blob_image(path: Path, size: int = 128, seed: int = 0) -> np.ndarray:
    """A textured dark background with a few bright discs; returns the disc mask (0/1)."""
    rng = np.random.default_rng(seed)
    image = (rng.normal(40, 8, (size, size))).clip(0, 255)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(4):
        cy, cx = rng.integers(20, size - 20, 2)
        cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(8, 16)), 1, -1)
    image[mask == 1] = rng.normal(200, 10, int(mask.sum())).clip(0, 255)
    cv2.imwrite(str(path), image.astype(np.uint8))
    return mask


def clicks_from_mask(mask: np.ndarray, per_class: int, seed: int = 0) -> list[tuple[float, float, int]]:
    """``(x, y, class index)`` clicks drawn at random inside each class of a mask."""
    rng = np.random.default_rng(seed)
    clicks = []
    for c in np.unique(mask):
        ys, xs = np.nonzero(mask == c)
        for i in rng.choice(len(ys), min(per_class, len(ys)), replace=False):
            clicks.append((float(xs[i]), float(ys[i]), int(c)))
    return clicks
