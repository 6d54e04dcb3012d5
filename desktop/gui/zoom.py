"""The view box of both viewers: zoom to fit, zoom 1:1, and zoom kept within sensible bounds.

The wheel and the right-button drag zoom through ``scaleBy``; here its factor is cut so that
the image never shrinks below half its fitted size (25 steps out used to leave only the query
rings, with the image a speck) and never grows past ``MAX_SCREEN_PX`` screen pixels per image
pixel. Positions are image (level-0) pixels, as in the viewers.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF

MAX_SCREEN_PX = 32.0  # screen pixels per image pixel at the closest zoom
MIN_FITTED = 0.5  # the image is never drawn smaller than this part of its fitted size
FIT_PADDING = 0.02


class ZoomBox(pg.ViewBox):
    def __init__(self):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.image_size: tuple[float, float] | None = None  # (width, height)

    def show_image(self, width: float, height: float) -> None:
        """A new image (or slide) of this size: remember it for the bounds, and fit it."""
        self.image_size = (float(width), float(height))
        self.fit()

    def fit(self) -> None:
        """The whole image in view (Home, F)."""
        if self.image_size is not None:
            self.setRange(QRectF(0, 0, *self.image_size), padding=FIT_PADDING)

    def one_to_one(self) -> None:
        """One image pixel per screen pixel around the view's centre (0)."""
        if self.image_size is None:
            return
        centre = self.viewRect().center()
        width, height = self.width(), self.height()
        self.setRange(QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height), padding=0)

    def _image_px_bounds(self) -> tuple[float, float]:
        """The least and most image pixels per screen pixel the zoom may reach. A picture so
        small that fitting it exceeds the closest zoom may still be fitted."""
        fitted = max(self.image_size[0] / max(1.0, self.width()), self.image_size[1] / max(1.0, self.height()))
        least = min(1.0 / MAX_SCREEN_PX, fitted)
        return least, max(fitted / MIN_FITTED, least)

    def scaleBy(self, s=None, center=None, x=None, y=None):
        """pyqtgraph's zoom (factor > 1 zooms out), its factor cut at the bounds. A zoom never
        jumps the other way, even from a view that code placed beyond a bound."""
        factor = (s[1] if s is not None else (y if y is not None else x))
        if factor is None or self.image_size is None or self.width() <= 0:
            return super().scaleBy(s, center, x, y)
        least, most = self._image_px_bounds()
        now = max(self.viewPixelSize())
        if factor > 1:
            factor = min(factor, max(1.0, most / now))
        else:
            factor = max(factor, min(1.0, least / now))
        return super().scaleBy((factor, factor), center)
