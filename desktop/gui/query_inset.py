"""The magnified inset of the query being asked: ``SPAN`` x ``SPAN`` image pixels around it,
each drawn ``SCALE`` screen pixels wide, with a crosshair that stops short of the asked pixel so
that its colour is never covered. At a zoom that shows the whole image, one pixel is smaller
than the ring around it; the inset shows it and its surroundings as they are."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel

from desktop.resources import ui_colour

SPAN = 24  # image pixels across
SCALE = 4  # screen pixels per image pixel
OUTSIDE = 40  # grey of the places beyond the image's edge


def around(pixels: np.ndarray, x: float, y: float, span: int = SPAN) -> np.ndarray:
    """(span, span, 3) uint8: the pixels around image position (x, y), the asked pixel at
    (span // 2, span // 2), grey beyond the image's edges."""
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    col, row = int(round(x)), int(round(y))
    top, left = row - span // 2, col - span // 2
    out = np.full((span, span, 3), OUTSIDE, np.uint8)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + span, rgb.shape[0]), min(left + span, rgb.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = rgb[r0:r1, c0:c1, :3]
    return out


class QueryInset(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedSize(SPAN * SCALE + 2, SPAN * SCALE + 2)
        self.setStyleSheet("border: 1px solid white; background: black")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)  # clicks reach the image under it
        self.shown: np.ndarray | None = None  # the pixels on show, for whoever checks them
        self.hide()

    def show_around(self, pixels: np.ndarray, x: float, y: float) -> None:
        self.shown = around(pixels, x, y)
        image = QImage(self.shown.data, SPAN, SPAN, 3 * SPAN, QImage.Format_RGB888)
        pixmap = QPixmap.fromImage(image.scaled(SPAN * SCALE, SPAN * SCALE))  # nearest: pixels stay square
        painter = QPainter(pixmap)
        painter.setPen(QPen(QColor(*ui_colour("current_query")), 1))
        lo, hi, mid = (SPAN // 2) * SCALE - 1, (SPAN // 2 + 1) * SCALE, (SPAN // 2) * SCALE + SCALE // 2
        end = SPAN * SCALE - 1
        painter.drawLine(0, mid, lo - 2, mid)
        painter.drawLine(hi + 2, mid, end, mid)
        painter.drawLine(mid, 0, mid, lo - 2)
        painter.drawLine(mid, hi + 2, mid, end)
        painter.drawRect(lo, lo, SCALE + 1, SCALE + 1)  # a frame just outside the asked pixel
        painter.end()
        self.setPixmap(pixmap)
        self.raise_()  # the viewer shows it, unless the queries layer is hidden

    def clear_query(self) -> None:
        self.shown = None
        self.clear()
        self.hide()
