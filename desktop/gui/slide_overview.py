"""The minimap in the corner of the slide viewer: the whole slide's thumbnail, the rectangle in
view, where the labels are and, once the engine has scanned the tissue, where the model is
unsure (heat per working tile). A click centres the main view there.

Its view coordinates are level-0 pixels, like the main viewer's, so labels and rectangles are
drawn as they are stored.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsRectItem

from desktop.resources import colour_map, ui_colour

SIZE = 200


class SlideOverview(pg.GraphicsView):
    jumpRequested = Signal(float, float)  # level-0 point to centre the main view on

    def __init__(self, parent=None):
        super().__init__(parent, background=ui_colour("overview_background"))
        self.setFixedSize(SIZE, SIZE)
        self.setFocusPolicy(Qt.NoFocus)
        self.view = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(False, False)
        self.setCentralItem(self.view)
        self.thumbnail = pg.ImageItem()
        self.heat = pg.ImageItem()
        self.heat.setOpacity(0.7)
        self.labels = pg.ScatterPlotItem(size=4, pen=None, pxMode=True)
        self.frame = QGraphicsRectItem()
        self.frame.setPen(pg.mkPen(ui_colour("overview_frame"), width=2, cosmetic=True))
        for z, item in enumerate((self.thumbnail, self.heat, self.labels, self.frame)):
            item.setZValue(z)
            self.view.addItem(item)
        self._lut = colour_map("uncertainty")
        self._size = (1, 1)

    def set_slide(self, width: int, height: int) -> None:
        self._size = (width, height)
        self.thumbnail.clear()
        self.heat.clear()
        self.labels.clear()
        self.view.setRange(QRectF(0, 0, width, height), padding=0.02)

    def set_thumbnail(self, pixels: np.ndarray) -> None:
        step = max(1, max(pixels.shape[:2]) // SIZE)  # no bigger than shown: it is painted at every pan
        self.thumbnail.setImage(np.ascontiguousarray(pixels[::step, ::step]), levels=(0, 255), autoLevels=False)
        self.thumbnail.setRect(QRectF(0, 0, *self._size))

    def set_view_rect(self, rect: QRectF) -> None:
        self.frame.setRect(rect)

    def set_labels(self, xs: np.ndarray, ys: np.ndarray, brushes: list) -> None:
        self.labels.setData(x=xs + 0.5, y=ys + 0.5, brush=brushes)

    def add_labels(self, xs: np.ndarray, ys: np.ndarray, brushes: list) -> None:
        self.labels.addPoints(x=xs + 0.5, y=ys + 0.5, brush=brushes)

    def set_scores(self, scores: np.ndarray, span: float) -> None:
        """Uncertainty per working tile (NaN: not scored yet, left clear)."""
        shown = np.where(np.isnan(scores), 0, 1 + np.clip(np.nan_to_num(scores), 0, 1) * 254).astype(np.uint8)
        self.heat.setImage(shown, lut=self._lut, levels=(0, 255), autoLevels=False)
        self.heat.setRect(QRectF(0, 0, scores.shape[1] * span, scores.shape[0] * span))

    @property
    def scored_tiles(self) -> int:
        image = self.heat.image
        return 0 if image is None else int((image > 0).sum())

    def mousePressEvent(self, event) -> None:
        point = self.view.mapSceneToView(self.mapToScene(event.position().toPoint()))
        self.jumpRequested.emit(point.x(), point.y())
        event.accept()
