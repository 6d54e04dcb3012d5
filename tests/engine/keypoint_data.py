"""Keypoint test data: the real mirror-mouse labels when the shared data is there, else
synthetic pictures with discs where the keypoints are."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from desktop.engine.keypoints.formats import KeypointTable
from desktop.engine.project.skeleton import Skeleton

MIRROR_MOUSE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mirror_mouse_pose"
MIRROR_CSV = MIRROR_MOUSE / "CollectedData.csv"

_COLOURS = ((255, 60, 60), (60, 255, 60), (60, 60, 255))


def synthetic_table(folder: Path, n_images: int, size: int = 96, seed: int = 0) -> KeypointTable:
    """Pictures with a red, a green and a blue disc on textured grey; keypoints at the centres.
    Names ``left``/``right`` form a symmetric pair, as in a real skeleton."""
    rng = np.random.default_rng(seed)
    skeleton = Skeleton(("left", "right", "tail"), edges=((0, 2), (1, 2)), symmetry=((0, 1),))
    names, xy = [], []
    for i in range(n_images):
        image = rng.normal(90, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
        centres = rng.uniform(12, size - 12, (3, 2))
        for (x, y), colour in zip(centres, _COLOURS):
            cv2.circle(image, (int(round(x)), int(round(y))), 5, colour, -1)
        name = f"frame{i:02d}.png"
        cv2.imwrite(str(folder / name), image[:, :, ::-1])
        names.append(name)
        xy.append(np.round(centres))
    xy = np.array(xy, np.float64)
    return KeypointTable(skeleton, names, xy, np.full(xy.shape[:2], "visible"))
