"""Keypoints drawn on the viewer: labels, the model's proposals coloured by confidence, the
skeleton's bones between them, and dragging any of them.

Labelled keypoints are filled dots in their keypoint's colour (a ring of it when occluded;
absent ones are not drawn). Proposals are rings from red (unsure) through yellow to green
(sure). Bones join each keypoint's label, or its proposal when it has none. Coordinates follow
``viewer.py``: image position ``(x, y)`` is drawn at ``(x + 0.5, y + 0.5)``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor

from desktop import resources
from desktop.engine.project.skeleton import Skeleton

from .viewer import LABEL_PEN, ImageViewer


def confidence_colour(confidence: float) -> QColor:
    """Red at 0, yellow at 0.5, green at 1 (``resources/colormaps/confidence.csv``)."""
    return QColor(*resources.colour_map("confidence")[round(float(np.clip(confidence, 0.0, 1.0)) * 255)])


class DraggableScatter(pg.ScatterPlotItem):
    """Spots that can be dragged with the left button; each spot's ``data`` is its keypoint.

    Which spot a press takes is asked of ``pick(item, position)`` (the overlay's, which weighs
    every layer's spots under the press): the keypoint it names, or None when none of this item's
    spots wins. A drag that takes none of its spots is left to the items below (the other layer,
    then the view, which pans), as is any other button.
    """

    dragged = Signal(int, float, float)  # keypoint, x, y in image pixels (on release)

    def __init__(self, pick: Callable[["DraggableScatter", QPointF], int | None], **options):
        super().__init__(**options)
        self.pick = pick
        self._dragging: int | None = None  # the keypoint being dragged

    def mouseDragEvent(self, event) -> None:
        if event.button() != Qt.LeftButton:
            event.ignore()
            return
        if event.isStart():
            self._dragging = self.pick(self, event.buttonDownPos())
            if self._dragging is None:
                event.ignore()
                return
        elif self._dragging is None:
            event.ignore()
            return
        event.accept()
        pos = event.pos()
        spot = np.flatnonzero(self.data["data"] == self._dragging)  # found again: a redraw may reorder
        self.data["x"][spot], self.data["y"][spot] = pos.x(), pos.y()  # follow the mouse
        self.invalidate()
        if event.isFinish():
            keypoint, self._dragging = self._dragging, None
            self.dragged.emit(keypoint, pos.x() - 0.5, pos.y() - 0.5)


class KeypointOverlay(QObject):
    dragged = Signal(int, float, float)  # keypoint, x, y: a label or proposal was moved there

    LAYERS = {"prediction": ("proposals",), "labels": ("labels", "bones")}

    def __init__(self, viewer: ImageViewer, skeleton: Skeleton, parent: QObject | None = None):
        super().__init__(parent)
        self.viewer, self.skeleton = viewer, skeleton
        self.colours = self.palette(len(skeleton))
        self.items = {
            "bones": pg.PlotDataItem(connect="pairs", pen=pg.mkPen(resources.ui_colour("bone"), width=1.5)),
            "proposals": DraggableScatter(self._pick, size=16, pxMode=True, brush=None, hoverable=False),
            "labels": DraggableScatter(self._pick, size=11, pxMode=True),
        }
        self.asked: int | None = None  # the keypoint the model asks about: it wins a drag it is under
        base = max(item.zValue() for item in viewer.items.values()) + 1
        for z, item in enumerate(self.items.values()):
            item.setZValue(base + z)
            viewer.view.addItem(item)
        for name in ("proposals", "labels"):
            self.items[name].dragged.connect(self.dragged)

    @staticmethod
    def palette(n: int) -> list[QColor]:
        """The colour of each keypoint (the class palette, repeated)."""
        colours = resources.palette()
        return [QColor(colours[i % len(colours)]) for i in range(n)]

    def clear(self) -> None:
        for item in self.items.values():
            item.clear()

    def show(self, xy: np.ndarray, visibility: np.ndarray, proposals: dict[int, tuple[float, float, float]]) -> None:
        """Draw the labels ``xy`` (K, 2) with ``visibility`` (K,) and ``{keypoint: (x, y, confidence)}``."""
        placed = [k for k in range(len(visibility)) if visibility[k] in ("visible", "occluded")]
        self.items["labels"].setData(
            x=[xy[k, 0] + 0.5 for k in placed], y=[xy[k, 1] + 0.5 for k in placed], data=placed,
            brush=[None if visibility[k] == "occluded" else pg.mkBrush(self.colours[k]) for k in placed],
            pen=[pg.mkPen(self.colours[k], width=2.5) if visibility[k] == "occluded" else LABEL_PEN
                 for k in placed])
        keys = sorted(proposals)
        self.items["proposals"].setData(
            x=[proposals[k][0] + 0.5 for k in keys], y=[proposals[k][1] + 0.5 for k in keys], data=keys,
            pen=[pg.mkPen(confidence_colour(proposals[k][2]), width=2.5) for k in keys], brush=None)
        where = {k: (xy[k, 0], xy[k, 1]) for k in placed}
        where.update({k: proposals[k][:2] for k in keys})
        bones = [where[k] for a, b in self.skeleton.edges if a in where and b in where for k in (a, b)]
        points = np.array(bones, np.float64).reshape(-1, 2) + 0.5
        self.items["bones"].setData(x=points[:, 0], y=points[:, 1])

    def _pick(self, item: DraggableScatter, press: QPointF) -> int | None:
        """The keypoint of ``item`` that a drag pressed at ``press`` moves, or None when no spot
        of ``item`` wins. Of every visible spot under the press, on either layer, the asked
        keypoint wins, then the one nearest to the press: overlapping proposals must not hand
        the drag to whichever was drawn last."""
        under = [(int(spot.data()) != self.asked, np.hypot(spot.pos().x() - press.x(), spot.pos().y() - press.y()),
                  scatter is item, int(spot.data()))
                 for scatter in (self.items["labels"], self.items["proposals"]) if scatter.isVisible()
                 for spot in scatter.pointsAt(press)]
        if not under:
            return None
        _, _, mine, keypoint = min(under)
        return keypoint if mine else None

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        for name in self.LAYERS.get(layer, ()):
            self.items[name].setVisible(visible)

    def set_proposal_opacity(self, opacity: float) -> None:
        self.items["proposals"].setOpacity(max(0.15, opacity))
