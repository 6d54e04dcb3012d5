"""The keypoint labels of several images, independent of any file format or project.

Readers and writers (``formats.py``) and the checks they run (``validation.py``) both speak of
a :class:`KeypointTable`; it lives apart from both so that neither imports the other's module
to name it (the checks come first, the formats use them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desktop.engine.project.skeleton import Skeleton

VIS_DTYPE = "<U8"  # fits every visibility word ('visible', 'occluded', 'absent', '')


@dataclass
class KeypointTable:
    """Keypoint labels of several images, one row per image."""

    skeleton: Skeleton
    images: list[str]  # as the file names them (relative paths, usually)
    xy: np.ndarray  # (N, K, 2) float64; NaN where unlabelled or absent
    visibility: np.ndarray  # (N, K) str: 'visible' / 'occluded' / 'absent' / '' (unlabelled)
    scorer: str = "pointillist"
    sizes: list[tuple[int, int]] | None = None  # (width, height) per image, when known
    records: list[int | str] | None = None  # where each image is in its file (CSV row...), for messages

    def __post_init__(self):
        n, k = len(self.images), len(self.skeleton)
        self.xy = np.asarray(self.xy, np.float64).reshape(n, k, 2)
        self.visibility = np.asarray(self.visibility, VIS_DTYPE).reshape(n, k)
