"""Points that are only drawn: labels, queries and the current query's ring.

pyqtgraph hands a click to every item under the mouse before the scene's own signal, and a
scatter plot's ``mouseClickEvent`` makes an object for each of its points to find those hit:
55 ms a click with 25,000 labels on the image, after every new label (issue 19). The viewer takes
clicks from the scene (``ViewerCommon._on_click``), so these points let them through untouched.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPixmapCache
from PySide6.QtWidgets import QGraphicsItem

CHUNK = 8192  # label points per scatter plot of ``LabelDots``


class Dots(pg.ScatterPlotItem):
    def mouseClickEvent(self, event) -> None:
        event.ignore()


CACHE_KB = 64 * 1024
"""Room for the plots' pictures (``QPixmapCache``, 10 MB by default): a full window's picture is
about 5 MB, and 100,000 labels on one image make 13 plots."""


class LabelDots(pg.ItemGroup):
    """The labels of an image as scatter plots of ``CHUNK`` points each, with the calls of one
    scatter plot (``setData``, ``addPoints``, ``clear``, ``data``). A scatter plot copies all of
    its points to add one (25 ms at 25,000), so a click adds to the last, small one only.

    Each plot keeps its picture (``DeviceCoordinateCache``) until its points or the view change:
    every repaint (a click, an overlay, up to 30 a second) drew all 25,000 labels of an image
    again, 30-45 ms of the GUI thread, the longest stall with 100,000 labels (issue 19); the
    full plots are now copied from their pictures and only the last, small one is drawn."""

    def __init__(self, **style):
        super().__init__()
        self._style = style
        self._chunks: list[Dots] = []

    @property
    def data(self) -> np.ndarray:
        """Every point's record, in the order drawn (pyqtgraph's fields: ``x``, ``y``, ...)."""
        if not self._chunks:
            return np.zeros(0, [("x", float), ("y", float)])
        return np.concatenate([chunk.data for chunk in self._chunks])

    def setData(self, x, y, brush, pen=None) -> None:
        self.clear()
        self.addPoints(x=x, y=y, brush=brush, pen=pen)

    def addPoints(self, x, y, brush, pen=None) -> None:
        """``brush`` a list, one per point; ``pen`` one for all, or a list (None: the style's)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        start = 0
        while start < len(x):
            if not self._chunks or len(self._chunks[-1].data) >= CHUNK:
                self._chunks.append(Dots(**self._style))
                self._chunks[-1].setCacheMode(QGraphicsItem.DeviceCoordinateCache)
                QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), CACHE_KB))
                self.addItem(self._chunks[-1])
            last = self._chunks[-1]
            part = slice(start, start + min(CHUNK - len(last.data), len(x) - start))
            pens = {} if pen is None else {"pen": pen[part] if isinstance(pen, list) else pen}
            last.addPoints(x=x[part], y=y[part], brush=list(brush[part]), **pens)
            start = part.stop

    def clear(self) -> None:
        for chunk in self._chunks:
            chunk.setParentItem(None)
            if chunk.scene() is not None:
                chunk.scene().removeItem(chunk)
        self._chunks = []
