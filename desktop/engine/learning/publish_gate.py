"""Whether a freshly trained model may replace the one in use.

The rule: publish unless the new model validates more than ``tolerance`` worse than the model
in use, both measured on the held-back labels as they are *now*. Comparing against the best
score ever seen instead (on an older, smaller held-back set) can refuse every later model once
a few hard labels join the held-back set, so that nothing is published or saved again.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable

import numpy as np


def held_back_signature(parts: Iterable[tuple[str, np.ndarray]]) -> str:
    """A fingerprint of the held-back labels: (image key, label array) pairs."""
    digest = hashlib.sha1()
    for key, values in parts:
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(values, np.float64).tobytes())
    return digest.hexdigest()


class PublishGate:
    def __init__(self, tolerance: float = 0.02):
        self.tolerance = tolerance
        self._in_use: tuple[str, float] | None = None  # (held-back signature, score of the model in use)

    def score_in_use(self, signature: str, measure: Callable[[], float]) -> float:
        """The model in use's score on these held-back labels (measured only when they changed)."""
        if self._in_use is None or self._in_use[0] != signature:
            self._in_use = (signature, measure())
        return self._in_use[1]

    def allows(self, new_score: float | None, score_in_use: float | None) -> bool:
        if new_score is None or score_in_use is None or np.isnan(score_in_use):
            return True
        return new_score >= score_in_use - self.tolerance

    def published(self, signature: str, score: float | None) -> None:
        self._in_use = None if score is None else (signature, score)
