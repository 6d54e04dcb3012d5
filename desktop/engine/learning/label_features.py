"""The features at the labelled pixels, kept between training rounds by label id.

A training round of the fast learner fits its head to the features at every labelled pixel.
Gathering them (``sample_points``: four neighbours of the stride-4 map, interpolated) cost 1.25
of a round's 4.1 s at 100,000 labels (issue 19), every round, though a round after a click has
one new label. A label's place never changes (moving one deletes it and adds another), so
what was gathered for a label id is gathered once: a round gathers only the labels that are new
since the round before. The values are those ``sample_points`` gives, row for row, so a
learner trained from them is the same as one that gathered them afresh.

Labels without ids (``PointLabels.ids`` None: a benchmark's, a test's) are gathered each time.
"""
from __future__ import annotations

import numpy as np
import torch

from desktop.engine.learning.base import PointLabels
from desktop.engine.learning.features import FeatureMap, sample_points


class LabelFeatures:
    """Gathered features by image key and label id, holding those of the last ``gather`` only
    (a deleted label's features go with the round after)."""

    def __init__(self):
        self._kept: dict[str, tuple[np.ndarray, torch.Tensor]] = {}  # key -> (ids ascending, their features)
        self.gathered = np.zeros(0, np.int64)
        """The ids of the labels whose features the last ``gather`` computed; those of the other
        labels with ids were kept from the call before."""

    def gather(self, labels: list[PointLabels], maps: list[FeatureMap]) -> torch.Tensor:
        """Features (N, C) float32 of every label of ``labels`` in order, each list entry's
        pixels on its feature map in ``maps``."""
        kept, self._kept = self._kept, {}
        parts, gathered = [], []
        for lab, fmap in zip(labels, maps):
            yx = np.asarray(lab.yx, np.float64).reshape(-1, 2)
            key = lab.image.key
            if lab.ids is None or key in self._kept:  # nothing to know them by, or a second entry of an image
                parts.append(sample_points(fmap, yx))
            else:
                ids = np.asarray(lab.ids, np.int64)
                feats, new = self._reuse(kept.get(key), ids, yx, fmap)
                gathered.append(ids[new])
                order = np.argsort(ids, kind="stable")
                self._kept[key] = (ids[order], feats[torch.from_numpy(order)]) if (np.diff(ids) < 0).any() \
                    else (ids, feats)
                parts.append(feats)
        self.gathered = np.concatenate(gathered) if gathered else np.zeros(0, np.int64)
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    @staticmethod
    def _reuse(before: tuple[np.ndarray, torch.Tensor] | None, ids: np.ndarray, yx: np.ndarray,
               fmap: FeatureMap) -> tuple[torch.Tensor, np.ndarray]:
        """The features of ``ids`` (at ``yx``), those in ``before`` taken from it and the rest
        gathered, and which were gathered (a mask over ``ids``)."""
        if before is None or not len(before[0]):
            return sample_points(fmap, yx), np.ones(len(ids), bool)
        known_ids, known_feats = before
        if len(ids) == len(known_ids) and (ids == known_ids).all():
            return known_feats, np.zeros(len(ids), bool)  # nothing new, nothing gone
        rows = np.minimum(np.searchsorted(known_ids, ids), len(known_ids) - 1)
        new = known_ids[rows] != ids
        feats = torch.empty(len(ids), known_feats.shape[1])
        feats[torch.from_numpy(np.flatnonzero(~new))] = known_feats[torch.from_numpy(rows[~new])]
        if new.any():
            feats[torch.from_numpy(np.flatnonzero(new))] = sample_points(fmap, yx[new])
        return feats, new
