"""The image viewer: one pyqtgraph view with stacked layers and clicks in image pixels.

Layers, bottom to top: the image, the prediction (class colours), the uncertainty map (heat
colours), the labels (dots in class colours), the open queries (rings) and the current query
(a bigger, brighter ring whose centre mark leaves the asked pixel visible; the image viewer also
shows it magnified in an inset, ``query_inset.py``). Images are handed to pyqtgraph the way its
performance notes ask: contiguous uint8 or float32, explicit ``levels``, ``autoLevels=False``,
lookup tables of at most 256 entries.

Coordinates: pixel ``(row r, column c)`` covers ``[c, c+1] x [r, r+1]`` in the view; a label at
image position ``(x, y)`` (pixel centres are whole numbers, as the engine counts them) is drawn
at ``(x + 0.5, y + 0.5)``.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath

from desktop.resources import colour_map, ui_colour

from .dots import Dots, LabelDots
from .query_inset import QueryInset
from .zoom import ZoomBox

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

LAYERS = ("image", "prediction", "uncertainty", "labels", "queries")
SETTLE_MS = 120  # the view is reported once it has stayed still this long (panning, zooming)
LABEL_PEN = pg.mkPen(ui_colour("label_ring"), width=1.2)  # the ring around a saved label's class colour


def _ring_with_centre_mark() -> QPainterPath:
    """The current query's marker (in pyqtgraph's unit symbol square): a ring and four ticks
    pointing at the asked pixel, stopping short of it, so that the pixel itself stays visible."""
    path = QPainterPath()
    path.addEllipse(-0.5, -0.5, 1.0, 1.0)
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        path.moveTo(0.5 * dx, 0.5 * dy)
        path.lineTo(0.18 * dx, 0.18 * dy)
    return path


CURRENT_QUERY_SYMBOL = _ring_with_centre_mark()


def class_lut(colours: list[str]) -> np.ndarray:
    """(256, 4) uint8 RGBA table: entry i is the colour of class i, unused entries transparent."""
    lut = np.zeros((256, 4), np.uint8)
    for i, colour in enumerate(colours[:256]):
        c = QColor(colour)
        lut[i] = (c.red(), c.green(), c.blue(), 255)
    return lut


class ViewerCommon:
    """What the image viewer and the slide viewer share: layer visibility (items in ``items``,
    the current query's ring in ``current_ring``) and clicks in image (level-0) pixels, whose
    centres are whole numbers (``view``, ``image_shape`` and the ``clicked`` signal)."""

    def _stack_layers(self, image_layers: dict) -> None:
        """Put ``image_layers`` (image, prediction, uncertainty) and the point layers (labels,
        queries, the current query's ring) into ``view``, bottom to top in ``LAYERS`` order."""
        self.items = {**image_layers,
                      "labels": LabelDots(size=9, pen=LABEL_PEN, pxMode=True),
                      "queries": Dots(size=20, pen=pg.mkPen(ui_colour("query_ring"), width=2), brush=None,
                                      pxMode=True)}
        self.current_ring = Dots(size=34, symbol=CURRENT_QUERY_SYMBOL, brush=None, pxMode=True,
                                 pen=pg.mkPen(ui_colour("current_query"), width=3))
        for z, name in enumerate(LAYERS):
            self.items[name].setZValue(z)
            self.view.addItem(self.items[name])
        self.current_ring.setZValue(len(LAYERS))
        self.view.addItem(self.current_ring)
        self.items["prediction"].setOpacity(0.45)

    def add_labels(self, xs: np.ndarray, ys: np.ndarray, class_indices: np.ndarray) -> None:
        """Append saved labels to those drawn (a click: no redraw of the thousands before it)."""
        self.items["labels"].addPoints(x=np.asarray(xs) + 0.5, y=np.asarray(ys) + 0.5,
                                       brush=[self._brushes[i] for i in class_indices])  # the item's pen: LABEL_PEN

    def _label_style(self, class_indices: np.ndarray, pending: np.ndarray | None) -> tuple[list, object]:
        """Brushes and pens of label points: filled with the class colour, or, while ``pending``
        (not saved yet), hollow and ringed in it."""
        brushes = [self._brushes[i] for i in class_indices]
        if pending is None or not pending.any():
            return brushes, LABEL_PEN
        pens = [pg.mkPen(brushes[n].color(), width=2) if wait else LABEL_PEN for n, wait in enumerate(pending)]
        return [pg.mkBrush(None) if wait else brush for brush, wait in zip(brushes, pending)], pens

    def toggle_layer(self, name: str) -> bool:
        item = self.items[name]
        item.setVisible(not item.isVisible())
        if name == "queries":
            self.current_ring.setVisible(item.isVisible())
        return item.isVisible()

    def layer_visible(self, name: str) -> bool:
        return self.items[name].isVisible()

    def set_prediction_opacity(self, opacity: float) -> None:
        self.items["prediction"].setOpacity(opacity)

    def widget_point(self, x: float, y: float) -> QPoint:
        """The widget pixel under image (level-0) position ``(x, y)``: what a test clicks to hit it."""
        scene = self.view.mapViewToScene(QPointF(x + 0.5, y + 0.5))
        return self.mapFromScene(scene)

    def _on_click(self, event) -> None:
        if self.image_shape is None or event.double():
            return
        pos = self.view.mapSceneToView(event.scenePos())
        x, y = pos.x() - 0.5, pos.y() - 0.5
        height, width = self.image_shape
        if -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5:
            event.accept()
            self.clicked.emit(x, y, event.button())


class ImageViewer(ViewerCommon, pg.GraphicsView):
    """Shows one image and its overlays; reports clicks as image coordinates, and the view once
    it settles.

    A large image's prediction comes in two parts (``service/image_views.py``): the whole image
    on a coarse grid (the base layers, ``items``) and the view at about screen resolution (the
    patch layers above them, ``_patch``). Where the patch reaches the base is left transparent,
    so that the half-transparent layers are not blended twice; a stale patch stays until a new one
    replaces it, so nothing goes blank while a new model version is predicted."""

    clicked = Signal(float, float, object)  # x, y in image pixels, Qt.MouseButton
    overlayShown = Signal(int)  # model version now drawn
    viewSettled = Signal(object, float)  # (x, y, w, h) in image pixels, image pixels per screen pixel

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.StrongFocus)
        self.view = ZoomBox()
        self.setCentralItem(self.view)
        self._stack_layers({name: pg.ImageItem() for name in ("image", "prediction", "uncertainty")})
        self._patch = {name: pg.ImageItem() for name in ("prediction", "uncertainty")}
        for name, item in self._patch.items():
            item.setZValue(self.items[name].zValue() + 0.5)
            item.setOpacity(self.items[name].opacity())
            self.view.addItem(item)
        self._base: tuple[np.ndarray, np.ndarray, int] | None = None  # class map, uncertainty, stride
        self.painted_stride = 1  # of the prediction painted last
        self._patch_window: tuple[int, int, int, int] | None = None  # y0, x0, y1, x1 the patch covers
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self._report_view)
        self.view.sigRangeChanged.connect(lambda *_: self._settle.start())
        self._heat = colour_map("uncertainty")
        self._class_lut = class_lut([])
        self.image_shape: tuple[int, int] | None = None
        self._pixels: np.ndarray | None = None  # for the inset
        self.inset = QueryInset(self)
        self.inset.move(8, 8)
        self.overlay_version: int | None = None
        self.scene().sigMouseClicked.connect(self._on_click)

    # ----- content ---------------------------------------------------------------------------
    def set_classes(self, colours: list[str]) -> None:
        self._class_lut = class_lut(colours)
        self._brushes = [pg.mkBrush(c) for c in colours]

    def set_image(self, pixels: np.ndarray) -> None:
        """Show new uint8 RGB pixels and forget the overlays of the previous image."""
        self.image_shape = pixels.shape[:2]
        self._pixels = pixels
        self.inset.clear_query()
        self.items["image"].setImage(np.ascontiguousarray(pixels, np.uint8), levels=(0, 255), autoLevels=False)
        for name in ("prediction", "uncertainty"):
            self.items[name].clear()
            self._patch[name].clear()
        self._base = self._patch_window = None
        self.items["labels"].clear()
        self.items["queries"].clear()
        self.current_ring.clear()
        self.overlay_version = None
        self.view.show_image(self.image_shape[1], self.image_shape[0])

    def set_prediction(self, class_map: np.ndarray, uncertainty: np.ndarray, version: int, stride: int = 1,
                       origin: tuple[int, int] = (0, 0)) -> None:
        """Paint a prediction whose cells cover ``stride`` x ``stride`` pixels from image pixel
        ``origin`` (y, x): the whole image (the base) or the view (the patch)."""
        rows, cols = class_map.shape
        height, width = self.image_shape
        self.painted_stride = stride
        if origin == (0, 0) and rows * stride >= height and cols * stride >= width:
            self._base = (np.ascontiguousarray(class_map, np.uint8), np.ascontiguousarray(uncertainty, np.float32),
                          stride)
            if stride == 1:  # nothing finer can come: the patch has had its day
                for item in self._patch.values():
                    item.clear()
                self._patch_window = None
        else:
            y0, x0 = origin
            self._patch_window = (y0, x0, y0 + rows * stride, x0 + cols * stride)
            rect = QRectF(x0, y0, cols * stride, rows * stride)
            self._patch["prediction"].setImage(np.ascontiguousarray(class_map, np.uint8), lut=self._class_lut,
                                               levels=(0, 255), autoLevels=False, rect=rect)
            self._patch["uncertainty"].setImage(np.ascontiguousarray(uncertainty, np.float32), lut=self._heat,
                                                levels=(0.0, 1.0), autoLevels=False, rect=rect)
        self._paint_base()
        self.overlay_version = version
        self.overlayShown.emit(version)

    def _paint_base(self) -> None:
        """The base layers, transparent in every cell the patch reaches into: a cell it covers
        only in part would tint that part twice (seen in the window as a darker band along the
        view's edges); what the patch leaves of such a cell lies outside the view it was made for."""
        if self._base is None:
            return
        class_map, uncertainty, stride = self._base
        if self._patch_window is not None:
            y0, x0, y1, x1 = self._patch_window
            rows = slice(y0 // stride, -(-y1 // stride))
            cols = slice(x0 // stride, -(-x1 // stride))
            class_map, uncertainty = class_map.copy(), uncertainty.copy()
            class_map[rows, cols] = 255  # no class: transparent in the table
            uncertainty[rows, cols] = np.nan
        rect = QRectF(0, 0, class_map.shape[1] * stride, class_map.shape[0] * stride)
        self.items["prediction"].setImage(class_map, lut=self._class_lut, levels=(0, 255), autoLevels=False, rect=rect)
        self.items["uncertainty"].setImage(uncertainty, lut=self._heat, levels=(0.0, 1.0), autoLevels=False, rect=rect)

    def set_prediction_opacity(self, opacity: float) -> None:
        super().set_prediction_opacity(opacity)
        self._patch["prediction"].setOpacity(opacity)

    def pixels_per_screen_pixel(self) -> float:
        """How many image pixels one screen pixel shows now (the larger of the two axes)."""
        return float(max(self.view.viewPixelSize()))

    def _report_view(self) -> None:
        if self.image_shape is not None:
            rect = self.view.viewRect()
            self.viewSettled.emit((rect.x(), rect.y(), rect.width(), rect.height()), self.pixels_per_screen_pixel())

    def set_labels(self, xs: np.ndarray, ys: np.ndarray, class_indices: np.ndarray,
                   pending: np.ndarray | None = None) -> None:
        brushes, pens = self._label_style(class_indices, pending)
        self.items["labels"].setData(x=np.asarray(xs) + 0.5, y=np.asarray(ys) + 0.5, brush=brushes, pen=pens)

    def toggle_layer(self, name: str) -> bool:
        """The view's patch belongs to its layer; the inset to the queries layer: Q hides it with
        the rings."""
        visible = super().toggle_layer(name)
        if name in self._patch:
            self._patch[name].setVisible(visible)
        if name == "queries":
            self.inset.setVisible(visible and self.inset.shown is not None)
        return visible

    def set_queries(self, xs: np.ndarray, ys: np.ndarray) -> None:
        self.items["queries"].setData(x=np.asarray(xs) + 0.5, y=np.asarray(ys) + 0.5)

    def set_current_query(self, x: float | None, y: float | None, centre: bool = True) -> None:
        """Highlight the query being asked. With ``centre``, pan (never zoom) to put it in the
        middle, as far as the image reaches: the view never scrolls past the image's edges, so a
        picture that fits on screen stays put."""
        if x is None:
            self.current_ring.clear()
            self.inset.clear_query()
            return
        self.current_ring.setData(x=[x + 0.5], y=[y + 0.5])
        if self._pixels is not None:
            self.inset.show_around(self._pixels, x, y)
            self.inset.setVisible(self.layer_visible("queries"))
        if centre and self.image_shape is not None:
            rect = self.view.viewRect()
            height, width = self.image_shape
            cx = _clamp_centre(x + 0.5, rect.width() / 2, width)
            cy = _clamp_centre(y + 0.5, rect.height() / 2, height)
            self.view.translateBy(x=cx - rect.center().x(), y=cy - rect.center().y())


def _clamp_centre(wanted: float, half_view: float, size: float) -> float:
    """The view centre nearest ``wanted`` that keeps the view inside ``[0, size]`` (or, for a view
    wider than the image, the image's middle)."""
    if 2 * half_view >= size:
        return size / 2
    return min(max(wanted, half_view), size - half_view)
