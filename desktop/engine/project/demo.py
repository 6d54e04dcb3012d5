"""The built-in demo project: scikit-image's photograph of Greek coins, cut into four pictures, and
two classes that are obvious on every one of them: the dark background and the bright coins.
(Pictures of different subjects, cells and retinas and coins, left "object" meaning something
else on each, and no one could say which class a point of a retina was.)"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from desktop.engine.project.setup import create_project, default_classes
from desktop.engine.project.store import DB_NAME, Project

DEMO_CLASSES = ["background", "coin"]
_CUT = (151, 185)  # row and column between the coins: no coin is cut in two


def _demo_pictures() -> dict[str, np.ndarray]:
    from skimage import data

    coins = data.coins()
    row, col = _CUT
    return {"coins-top-left": coins[:row, :col], "coins-top-right": coins[:row, col:],
            "coins-bottom-left": coins[row:, :col], "coins-bottom-right": coins[row:, col:]}


def create_demo_project(folder: Path) -> Path:
    """Create the demo project in ``folder`` once; later calls return the existing one."""
    folder = Path(folder)
    if (folder / DB_NAME).exists():
        Project.open(folder).close()  # proves it still opens
        return folder
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name, picture in _demo_pictures().items():  # small and grey: quick to learn on a laptop CPU
        cv2.imwrite(str(images / f"{name}.png"), picture)
    project, _ = create_project(folder, [images], default_classes(DEMO_CLASSES))
    project.close()
    return folder
