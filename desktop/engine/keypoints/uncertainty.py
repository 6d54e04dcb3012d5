"""Keypoint uncertainty: one score per (image, keypoint), higher = less sure.

Scoring and selection are separate, as for segmentation: the four scoring functions below each
return a ``(K,)`` array for one image; :func:`rank_images` and :func:`select_queries` turn the
scores of many images into an order of images and a list of ``(image, keypoint)`` queries, and
:func:`spread_images` picks a batch of images that are both unsure and unlike each other (the
``spread`` strategy: the off-peak mass, spread out). The strategies' names, needs and units are
in ``strategies.py``.
Heatmaps are ``(K, h, w)`` probability maps (each sums to one), as the learners give them.
"""
from __future__ import annotations

import itertools

import numpy as np

from desktop.engine.project.skeleton import Skeleton

_EPS = 1e-12
_MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


def off_peak_mass(heatmaps: np.ndarray, radius: int = 1) -> np.ndarray:
    """One minus the probability mass within ``radius`` cells of each heatmap's maximum: an
    uncertainty (the ``confidence`` strategy's score; the model's confidence is one minus it).

    Mass near the peak, not the peak value alone, so that a sharp peak whose centre falls
    between two cells is not taken for an unsure one.
    """
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    peak = flat.argmax(1)
    out = np.empty(k, np.float64)
    for i, (y, x) in enumerate(zip(peak // w, peak % w)):
        window = heatmaps[i, max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
        out[i] = 1.0 - window.sum() / max(flat[i].sum(), _EPS)
    return np.clip(out, 0.0, 1.0)


def heatmap_entropy(heatmaps: np.ndarray) -> np.ndarray:
    """Shannon entropy of each heatmap as a distribution over positions, divided by its maximum
    ``log(h * w)`` so that 0 is one certain cell and 1 is no idea at all."""
    k = heatmaps.shape[0]
    p = np.clip(heatmaps.reshape(k, -1).astype(np.float64), 0.0, None)
    p /= np.maximum(p.sum(1, keepdims=True), _EPS)
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(1) / np.log(p.shape[1])


def flip_disagreement(xy: np.ndarray, xy_on_flipped: np.ndarray, width: int, skeleton: Skeleton) -> np.ndarray:
    """Pixels between the prediction on the image and the one on its mirror image, mapped back.

    A left/right keypoint predicted on the mirrored image is its partner's channel there, so the
    flipped prediction is un-mirrored (``x -> width - 1 - x``) and its partners swapped first.
    """
    back = np.asarray(xy_on_flipped, np.float64)[skeleton.flip_permutation()].copy()
    back[:, 0] = width - 1 - back[:, 0]
    return np.linalg.norm(np.asarray(xy, np.float64) - back, axis=1)


def bone_pairs(skeleton: Skeleton) -> tuple[tuple[int, int], ...]:
    """The skeleton's edges, or every pair of keypoints when it has none (as a CSV import gives)."""
    return skeleton.edges or tuple(itertools.combinations(range(len(skeleton)), 2))


def skeleton_plausibility(xy: np.ndarray, reference_xy: np.ndarray, bones: tuple[tuple[int, int], ...],
                          min_reference: int = 3) -> np.ndarray:
    """How implausible each keypoint makes the skeleton: the largest robust z-score,
    ``|length - median| / (1.4826 MAD)``, of the bones it is on, bone lengths of ``xy`` (K, 2)
    against those in the labelled frames ``reference_xy`` (N, K, 2). Bones seen in fewer than
    ``min_reference`` frames, or with an unlabelled end, say nothing (0)."""
    xy = np.asarray(xy, np.float64)
    reference_xy = np.asarray(reference_xy, np.float64).reshape(-1, *xy.shape)
    out = np.zeros(len(xy))
    for a, b in bones:
        lengths = np.linalg.norm(reference_xy[:, a] - reference_xy[:, b], axis=1)
        lengths = lengths[np.isfinite(lengths)]
        length = np.linalg.norm(xy[a] - xy[b])
        if len(lengths) < min_reference or not np.isfinite(length):
            continue
        median = np.median(lengths)
        spread = max(_MAD_TO_SIGMA * np.median(np.abs(lengths - median)), 1.0)  # at least a pixel
        z = abs(length - median) / spread
        out[a] = max(out[a], z)
        out[b] = max(out[b], z)
    return out


def rank_images(scores: dict[int, np.ndarray], top: int = 3) -> list[tuple[int, float]]:
    """Images by the mean of their ``top`` least certain keypoints, least certain image first."""
    ranked = []
    for image_id, values in scores.items():
        values = np.sort(np.asarray(values, np.float64)[np.isfinite(values)])[::-1]
        ranked.append((image_id, float(values[:top].mean()) if len(values) else float("-inf")))
    return sorted(ranked, key=lambda item: (-item[1], item[0]))


def select_queries(scores: dict[int, np.ndarray], n: int) -> list[tuple[int, int, float]]:
    """The ``n`` least certain ``(image id, keypoint, score)`` pairs, least certain first."""
    pairs = [(image_id, k, float(v)) for image_id, values in scores.items()
             for k, v in enumerate(values) if np.isfinite(v)]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:n]


def spread_images(uncertainty: dict[int, float], descriptors: dict[int, np.ndarray],
                  labelled: list[np.ndarray], k: int) -> list[int]:
    """``k`` image ids, picked one at a time: each the one whose uncertainty times its distance
    (in ``descriptors`` space) to the nearest labelled or already picked image is largest.

    The least certain images are often alike: frames of one clip where the same keypoint is
    lost. A batch of them teaches the model one thing several times. Weighting by distance
    keeps the batch unsure, but spread over the kinds of frames not yet labelled (uncertainty
    weighted by novelty, as in core-set and diverse mini-batch active learning). With nothing
    labelled yet, the first pick is by uncertainty alone.
    """
    ids = list(uncertainty)
    if not ids or k <= 0:
        return []
    points = np.array([descriptors[i] for i in ids], np.float64)
    unsure = np.array([uncertainty[i] for i in ids], np.float64)
    nearest = np.ones(len(ids))  # distance to the nearest labelled or picked image
    if len(labelled):
        have = np.asarray(labelled, np.float64)
        nearest = np.linalg.norm(points[:, None] - have[None], axis=2).min(1)
    left = list(range(len(ids)))
    chosen: list[int] = []
    while left and len(chosen) < k:
        # Ties (a frame that looks exactly like a labelled one) go to the less sure, then the lower id.
        best = max(left, key=lambda j: (unsure[j] * nearest[j], unsure[j], -ids[j]))
        chosen.append(ids[best])
        left.remove(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return chosen
