"""Ten expert-like clicks on a real H&E slide, for the slide tests: five on tissue, five on glass."""
import cv2
import numpy as np

from desktop.engine.images.slides import ImageSource
from desktop.engine.images.tiles import TissueMask

TISSUE, GLASS = 1, 0


def ten_clicks(source: ImageSource, seed: int = 0) -> list[tuple[float, float, int]]:
    """``(x, y, class)`` in level-0 pixels: class 1 on clearly stained tissue, 0 on clear glass,
    spread out (at least 150 level-0 pixels apart)."""
    thumb = source.thumbnail(512)
    ds = source.dimensions[0][0] / thumb.shape[1]
    tissue = TissueMask(thumb, ds).mask
    grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY)
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = ~cv2.dilate(tissue.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    rng = np.random.default_rng(seed)
    clicks = []
    for cls, where in ((TISSUE, inner & (grey < 200)), (GLASS, outer & (grey > 215))):
        taken = []
        for r, c in rng.permutation(np.argwhere(where)):
            x, y = (c + 0.5) * ds, (r + 0.5) * ds
            if all((x - a) ** 2 + (y - b) ** 2 > 150 ** 2 for a, b in taken):
                taken.append((x, y))
            if len(taken) == 5:
                break
        clicks += [(round(x), round(y), cls) for x, y in taken]
    return clicks
