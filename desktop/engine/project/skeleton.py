"""The skeleton of a keypoint project: ordered keypoint names, edges and left/right pairs.

Edges and symmetric pairs are index pairs into ``names``; the index of a keypoint is its
heatmap channel. Visibility of a keypoint label is one of ``VISIBILITIES``; in arrays an
unlabelled keypoint is the empty string and has NaN coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desktop.engine.errors import PointillistError

VISIBILITIES = ("visible", "occluded", "absent")
UNLABELLED = ""


class SkeletonError(PointillistError):
    """A skeleton that cannot be used: duplicate or empty names, edges to unknown keypoints..."""


@dataclass(frozen=True)
class Skeleton:
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = ()
    symmetry: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        names = tuple(str(n).strip() for n in self.names)
        if any(not n for n in names):
            raise SkeletonError("Every keypoint needs a name.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SkeletonError(f"Keypoint names must differ; repeated: {', '.join(duplicates)}.")
        object.__setattr__(self, "names", names)
        for kind in ("edges", "symmetry"):
            pairs = tuple(sorted({tuple(sorted((int(a), int(b)))) for a, b in getattr(self, kind)}))
            for a, b in pairs:
                if a == b or not (0 <= a < len(names) and 0 <= b < len(names)):
                    raise SkeletonError(f"{'Edge' if kind == 'edges' else 'Symmetric pair'} ({a}, {b}) "
                                        f"does not join two different keypoints of {len(names)}.")
            object.__setattr__(self, kind, pairs)
        paired = [i for pair in self.symmetry for i in pair]
        if len(paired) != len(set(paired)):
            raise SkeletonError("A keypoint can have only one symmetric partner.")

    @classmethod
    def from_names(cls, names, edges=(), symmetry=()) -> "Skeleton":
        """Build from name pairs, e.g. ``edges=[("nose", "tail")]``."""
        names = tuple(names)
        index = {n: i for i, n in enumerate(names)}

        def indices(pairs, kind):
            out = []
            for a, b in pairs:
                missing = [n for n in (a, b) if n not in index]
                if missing:
                    raise SkeletonError(f"The {kind} ({a}, {b}) names an unknown keypoint: {', '.join(missing)}.")
                out.append((index[a], index[b]))
            return out

        return cls(names, tuple(indices(edges, "edge")), tuple(indices(symmetry, "symmetric pair")))

    def __len__(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> np.ndarray:
        """Channel order after a horizontal flip: each keypoint takes its partner's place."""
        perm = np.arange(len(self.names))
        for a, b in self.symmetry:
            perm[a], perm[b] = b, a
        return perm


def parse_skeleton(keypoints: str, edges: str | None = None, symmetric: str | None = None) -> Skeleton:
    """A skeleton from command-line text: keypoints ``"a,b,c"``, edges ``"a-b,b-c"`` and
    symmetric pairs ``"a:c"`` (a pair takes ``:`` or, when it has no ``:``, ``-``)."""
    def pairs(text):
        out = []
        for item in (text or "").split(","):
            if item.strip():
                a, sep, b = item.partition(":" if ":" in item else "-")
                if not sep or not a.strip() or not b.strip():
                    raise SkeletonError(f"'{item}' is not a pair of keypoints: write a-b or a:b.")
                out.append((a.strip(), b.strip()))
        return out

    return Skeleton.from_names([n for n in keypoints.split(",") if n.strip()], pairs(edges), pairs(symmetric))
