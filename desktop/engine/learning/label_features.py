"""The features at the labelled pixels, kept between training rounds by label id.

A training round of the fast learner fits its head to the features at every labelled pixel.
Gathering them (``sample_points``: four neighbours of the stride-4 map, interpolated) cost 1.25
of a round's 4.1 s at 100,000 labels (issue 19), every round, though a round after a click has
one new label. A label's place never changes (moving one deletes it and adds another), so
what was gathered for a label id is gathered once: a round gathers only the labels that are new
since the round before, and appends them to one store, so that nothing already kept is copied
(joining the images' features into one tensor took another 0.5 s a round on a loaded machine).
The values are those ``sample_points`` gives, row for row, so a learner trained from them is the
same as one that gathered them afresh.

Labels without ids (``PointLabels.ids`` None: a benchmark's or a test's labels) are kept by
their position instead (a position seen again is the same pixel, so the same features), so that a
round on them reads no map either: the 600-image benchmark's labels have no ids. A second entry
of an image in one call, and the rows of ``add_unkept`` (the anchors' features, drawn from their
pools), are written each time into rows that the next call writes over.

Maps are asked for (``map_of``) only for an entry with something new to gather, so that a round
reads a map only for an image with new labels, never every labelled image's map at once.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.features import FeatureMap, sample_points

_GROWTH = 1.5  # the store's room grows by this factor when full


class LabelFeatures:
    """Gathered features in one store, found by image key and label id; holds those of the last
    ``gather`` only (the rows of a deleted label are reused once they make up half the store)."""

    def __init__(self):
        self._store = torch.zeros(0, 0)
        self._used = 0  # rows in use: kept labels' and, after them, the last call's unkept rows
        self._kept_end = 0  # rows of kept labels: the next ``gather`` writes over those after them
        self._kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (ids ascending, their rows)
        self._positions: dict[str, dict[tuple[float, float], int]] = {}  # key -> (y, x) -> its id (< 0)
        self._next_position_id = -1
        self.gathered = np.zeros(0, np.int64)
        """The ids of the labels with ids whose features the last ``gather`` computed; those of
        the other labels with ids were kept from the call before."""

    def gather(self, labels: list[PointLabels], map_of: Callable[[ImageRef, np.ndarray], FeatureMap]
               ) -> tuple[torch.Tensor, np.ndarray]:
        """``(store, rows)``: the features (float32) of the i-th label of ``labels``, in order,
        are ``store[rows[i]]``, each entry's pixels on its image's feature map ``map_of(image, yx)``
        (asked only for entries with labels not kept yet, with the pixels ``yx`` it is read at).
        Valid until the next call."""
        self._used = self._kept_end
        kept, self._kept = self._compacted(self._kept), {}
        positions, self._positions = self._positions, {}
        rows: list[np.ndarray | None] = [None] * len(labels)
        gathered, afresh = [], []
        for i, lab in enumerate(labels):
            key = lab.image.key
            if key in self._kept:  # a second entry of an image
                afresh.append(i)
                continue
            ids = np.asarray(lab.ids, np.int64) if lab.ids is not None else self._position_ids(positions, lab)
            rows[i], new = self._known_rows(kept.get(key), ids)
            if new.any():
                yx = np.asarray(lab.yx, np.float64).reshape(-1, 2)[new]
                rows[i][new] = self._append(sample_points(map_of(lab.image, yx), yx))
            if lab.ids is not None:
                gathered.append(ids[new])
            order = np.argsort(ids, kind="stable")
            self._kept[key] = (ids[order], rows[i][order])
        self._kept_end = self._used
        for i in afresh:
            yx = np.asarray(labels[i].yx, np.float64).reshape(-1, 2)
            rows[i] = self._append(sample_points(map_of(labels[i].image, yx), yx))
        self.gathered = np.concatenate(gathered) if gathered else np.zeros(0, np.int64)
        return self._store, np.concatenate(rows) if rows else np.zeros(0, np.int64)

    def add_unkept(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, np.ndarray]:
        """``(store, rows)`` with ``feats`` (tensors of rows) written after what ``gather`` gave,
        in order, into rows that the next call writes over. Valid until the next call."""
        rows = [self._append(f) for f in feats]
        return self._store, np.concatenate(rows) if rows else np.zeros(0, np.int64)

    def _position_ids(self, before: dict[str, dict[tuple[float, float], int]], lab: PointLabels) -> np.ndarray:
        """Ids (negative) for labels without ids, one per position: a position kept by the call
        before keeps its id; those no longer labelled are forgotten."""
        known = before.get(lab.image.key, {})
        mine = self._positions[lab.image.key] = {}
        out = np.empty(len(lab.yx), np.int64)
        for j, position in enumerate(map(tuple, np.asarray(lab.yx, np.float64).reshape(-1, 2).tolist())):
            found = mine.get(position, known.get(position))
            if found is None:
                found, self._next_position_id = self._next_position_id, self._next_position_id - 1
            out[j] = mine[position] = found
        return out

    @staticmethod
    def _known_rows(before: tuple[np.ndarray, np.ndarray] | None, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The store rows of ``ids`` kept in ``before`` (-1 where none), and which are new (a mask)."""
        if before is None or not len(before[0]):
            return np.full(len(ids), -1, np.int64), np.ones(len(ids), bool)
        known_ids, known_rows = before
        at = np.minimum(np.searchsorted(known_ids, ids), len(known_ids) - 1)
        new = known_ids[at] != ids
        return np.where(new, -1, known_rows[at]), new

    def _append(self, feats: torch.Tensor) -> np.ndarray:
        """Write ``feats`` after the rows in use; returns their rows."""
        n = len(feats)
        if self._used + n > len(self._store) or self._store.shape[1] != feats.shape[1]:
            room = max(self._used + n, int(_GROWTH * len(self._store)))
            grown = torch.empty(room, feats.shape[1])
            if self._used:
                grown[:self._used] = self._store[:self._used]
            self._store = grown
        self._store[self._used:self._used + n] = feats
        self._used += n
        return np.arange(self._used - n, self._used)

    def _compacted(self, kept: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``kept`` with its rows moved to the front of a store of their size, once deleted labels'
        rows make up half of those in use; else as it is."""
        live = sum(len(ids) for ids, _ in kept.values())
        if self._used <= 2 * live + 4096:
            return kept
        keys = list(kept)
        every = np.concatenate([kept[key][1] for key in keys]) if keys else np.zeros(0, np.int64)
        self._store = self._store[torch.from_numpy(every)] if len(every) else torch.zeros(0, 0)
        self._used, start, out = len(every), 0, {}
        for key in keys:
            ids = kept[key][0]
            out[key] = (ids, np.arange(start, start + len(ids)))
            start += len(ids)
        return out
