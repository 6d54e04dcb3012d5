"""The built-in demo project: microscopy-like pictures that scikit-image ships, two classes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from desktop.engine.project.setup import create_project, default_classes
from desktop.engine.project.store import DB_NAME, Project

DEMO_CLASSES = ["background", "object"]
_LONGEST_SIDE = 512  # keeps the demo snappy on a laptop CPU


def _demo_pictures() -> dict[str, np.ndarray]:
    from skimage import data

    return {"coins": data.coins(), "cell": data.cell(), "immunohistochemistry": data.immunohistochemistry(),
            "retina": data.retina()}


def _fit(image: np.ndarray) -> np.ndarray:
    scale = _LONGEST_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def create_demo_project(folder: Path) -> Path:
    """Create the demo project in ``folder`` once; later calls return the existing one."""
    folder = Path(folder)
    if (folder / DB_NAME).exists():
        Project.open(folder).close()  # proves it still opens
        return folder
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name, picture in _demo_pictures().items():
        picture = _fit(picture)
        if picture.ndim == 3:
            picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(images / f"{name}.png"), picture)
    project, _ = create_project(folder, [images], default_classes(DEMO_CLASSES))
    project.close()
    return folder
