"""Uncertainty scores for segmentation: probability maps in, one score per pixel out.

Every function here only *scores*; choosing which pixels to ask about lives in
``selection.py``, and the strategies' names and needs in ``strategies.py``. Higher score always
means "less sure". Inputs are class probabilities of
shape ``(C, H, W)`` (or MC-dropout samples ``(T, C, H, W)`` for ``bald``), float32, summing to
one over ``C``.
"""
from __future__ import annotations

import numpy as np

from desktop.engine.segmentation.strategies import MC_SAMPLES, NOTHING, strategy

_EPS = 1e-12


def _entropy(probs: np.ndarray, axis: int) -> np.ndarray:
    return -(probs * np.log(np.clip(probs, _EPS, 1.0))).sum(axis=axis)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution (nats)."""
    return _entropy(probs, axis=0).astype(np.float32)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """One minus the probability of the most likely class."""
    return (1.0 - probs.max(axis=0)).astype(np.float32)


def margin(probs: np.ndarray) -> np.ndarray:
    """Negative gap between the two most likely classes (PixelPick's best strategy).

    Returned as ``1 - (p1 - p2)`` so that a small margin gives a high score.
    """
    if probs.shape[0] < 2:
        return np.zeros(probs.shape[1:], np.float32)
    top2 = np.partition(probs, probs.shape[0] - 2, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """Mutual information between prediction and model weights from MC-dropout samples.

    ``mc_probs`` has shape ``(T, C, H, W)``: entropy of the mean minus mean of the entropies.
    """
    mean = mc_probs.mean(axis=0)
    return np.maximum(_entropy(mean, axis=0) - _entropy(mc_probs, axis=1).mean(axis=0), 0.0).astype(np.float32)


def random_scores(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores: the baseline every other strategy must beat."""
    return rng.random(shape, dtype=np.float32)


def score(name: str, probs: np.ndarray | None = None, mc_probs: np.ndarray | None = None,
          rng: np.random.Generator | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The uncertainty map of a registered strategy (``strategies.py``) from what it needs:
    ``probs`` (C, H, W), ``mc_probs`` (T, C, H, W) for ``bald``, or ``rng`` and a shape for
    ``random``."""
    needs = strategy(name).needs
    if needs == NOTHING:
        if shape is None:
            shape = (probs if probs is not None else mc_probs[0]).shape[-2:]
        return random_scores(tuple(shape), rng or np.random.default_rng())
    if needs == MC_SAMPLES:
        if mc_probs is None:
            raise ValueError(f"{name} needs MC-dropout samples (mc_probs)")
        return bald(mc_probs)
    if probs is None:
        raise ValueError(f"{name} needs a probability map")
    return {"entropy": entropy, "least_confidence": least_confidence, "margin": margin}[name](probs)
