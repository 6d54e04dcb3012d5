"""The minimap in the corner of the slide viewer: the whole slide's thumbnail, the rectangle in
view, where the labels are and, once the engine has scanned the tissue, where the model is
unsure (heat per working tile). A click centres the main view there; a legend under it says
what its colours mean.

Its view coordinates are level-0 pixels, like the main viewer's, so labels and rectangles are
drawn as they are stored. Everything stays on the slide's thumbnail: the heat of the edge tiles
(which reach past the slide) is cut at its edge, and so is the view's rectangle, which is never
drawn smaller than ``MIN_FRAME`` minimap pixels a side, so that it reads as a rectangle (not a
dot) at any zoom.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.resources import colour_map, ui_colour

SIZE = 200
MIN_FRAME = 10  # minimap pixels: the smallest side the view's rectangle is drawn with


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
        self._view_rect = QRectF()
        self.view.sigResized.connect(self._draw_frame)
        self.legend = MinimapLegend(self._lut, parent)

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
        self._view_rect = QRectF(rect)
        self._draw_frame()

    def _draw_frame(self) -> None:
        """The view's rectangle cut to the slide, at least ``MIN_FRAME`` minimap pixels a side."""
        width, height = self._size
        shown = self._view_rect.intersected(QRectF(0, 0, width, height))
        centre = shown.center() if not shown.isEmpty() else self._view_rect.center()
        px, py = self.view.viewPixelSize()  # level-0 pixels per minimap pixel
        w = min(width, max(shown.width(), MIN_FRAME * px))
        h = min(height, max(shown.height(), MIN_FRAME * py))
        x = min(max(centre.x() - w / 2, 0), width - w)
        y = min(max(centre.y() - h / 2, 0), height - h)
        self.frame.setRect(QRectF(x, y, w, h))

    def set_labels(self, xs: np.ndarray, ys: np.ndarray, brushes: list) -> None:
        self.labels.setData(x=xs + 0.5, y=ys + 0.5, brush=brushes)

    def add_labels(self, xs: np.ndarray, ys: np.ndarray, brushes: list) -> None:
        self.labels.addPoints(x=xs + 0.5, y=ys + 0.5, brush=brushes)

    def set_scores(self, scores: np.ndarray, span: float) -> None:
        """Uncertainty per working tile (NaN: not scored yet, left clear); tile (col, row) covers
        level-0 ``[col * span, (col + 1) * span)``. Drawn as an image of the slide's own extent
        (about ``SIZE`` pixels), each pixel showing the tile it falls in, so the edge tiles stop
        where the slide does."""
        shown = np.where(np.isnan(scores), 0, 1 + np.clip(np.nan_to_num(scores), 0, 1) * 254).astype(np.uint8)
        width, height = self._size
        step = max(width, height) / SIZE  # level-0 pixels per heat pixel
        cols = _tile_of(width, max(1, round(width / step)), span, scores.shape[1])
        rows = _tile_of(height, max(1, round(height / step)), span, scores.shape[0])
        self.heat.setImage(shown[np.ix_(rows, cols)], lut=self._lut, levels=(0, 255), autoLevels=False)
        self.heat.setRect(QRectF(0, 0, width, height))

    def mousePressEvent(self, event) -> None:
        point = self.view.mapSceneToView(self.mapToScene(event.position().toPoint()))
        self.jumpRequested.emit(point.x(), point.y())
        event.accept()

    def moveEvent(self, event) -> None:
        super().moveEvent(event)
        self.legend.move(self.x() + self.width() - self.legend.width(), self.y() + self.height() + 2)


def _tile_of(extent: float, pixels: int, span: float, tiles: int) -> np.ndarray:
    """For ``pixels`` spread over level-0 ``[0, extent)``: the index of the tile each centre is in."""
    centres = (np.arange(pixels) + 0.5) * extent / pixels
    return np.minimum((centres // span).astype(np.int64), tiles - 1)


class MinimapLegend(QWidget):
    """What the minimap's colours mean: the view's rectangle, the labels, the uncertainty heat."""

    def __init__(self, lut: np.ndarray, parent=None):
        super().__init__(parent)
        self.setAttribute(Qt.WA_StyledBackground)
        r, g, b, a = ui_colour("overview_background")
        self.setStyleSheet(f"MinimapLegend {{ background: rgba({r}, {g}, {b}, {a}); }} QLabel {{ color: white; }}")
        frame = QColor(*ui_colour("overview_frame")).name()
        self.frame = QLabel(f"<span style='color:{frame}'>\u25a1</span> the view", textFormat=Qt.RichText)
        self.labels = QLabel("\u25cf labels (class colours)")
        ramp = np.ascontiguousarray(np.repeat(lut[1:, :3][None], 8, 0))  # opaque: a legend on any background
        self._ramp = QImage(ramp.data, ramp.shape[1], ramp.shape[0], ramp.strides[0], QImage.Format_RGB888).copy()
        gradient = QLabel()
        gradient.setPixmap(QPixmap.fromImage(self._ramp).scaled(80, 8))
        heat = QHBoxLayout()
        heat.setContentsMargins(0, 0, 0, 0)
        for widget in (QLabel("model sure"), gradient, QLabel("unsure")):
            heat.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.setSpacing(1)
        layout.addWidget(self.frame)
        layout.addWidget(self.labels)
        layout.addLayout(heat)
        self.setFixedWidth(SIZE)
        self.adjustSize()
