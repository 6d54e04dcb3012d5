"""The image viewer's overlays from the engine's ``Prediction`` events: the newest of each part
(the whole image; the view of a large image, ``service/image_views.py``) painted at most every
``REPAINT_MS``, older ones in between never drawn."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject

from desktop.engine.service.messages import Prediction

from .throttle import Throttle

REPAINT_MS = 33  # overlays repaint at most ~30 times a second


class PredictionPainter(QObject):
    def __init__(self, viewer, painted: Callable[[], None], parent: QObject | None = None):
        """``painted`` is called after each paint (the query panel's guess may change)."""
        super().__init__(parent)
        self.viewer, self._on_painted = viewer, painted
        self._pending: dict[bool, Prediction] = {}  # keyed by whether it covers the whole image
        self.shown: dict[bool, Prediction] = {}
        self.image_id: int | None = None
        self._throttle = Throttle(REPAINT_MS, self._paint, parent=self)

    def show_image(self, image_id: int | None) -> None:
        """A new image (or a slide: None): what was pending or painted belongs to the last one."""
        self.image_id, self._pending, self.shown = image_id, {}, {}

    def receive(self, event: Prediction) -> None:
        if event.image_id == self.image_id:
            self._pending[event.covers_image(*self.viewer.image_shape)] = event
            self._throttle.request()

    def stop(self) -> None:
        self._throttle.stop()

    def painted(self) -> list[Prediction]:
        """What is on screen, the view's part first: where a guess should read the overlay."""
        return [self.shown[whole] for whole in (False, True) if whole in self.shown]

    def _paint(self) -> None:
        pending, self._pending = self._pending, {}
        for whole in (True, False):  # the view's part last: it is drawn over the whole image's
            event = pending.get(whole)
            if event is None or event.image_id != self.image_id:
                continue
            self.viewer.set_prediction(event.class_map, event.uncertainty, event.version, event.stride, event.origin)
            self.shown[whole] = event
            if whole and event.stride == 1:
                self.shown.pop(False, None)  # a full-resolution whole replaces any view part
        if pending:
            self._on_painted()
