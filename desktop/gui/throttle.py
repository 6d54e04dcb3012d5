"""Work that may run at most once per interval, the newest request winning."""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer


class Throttle(QObject):
    """``request()`` runs ``run`` at once, unless it ran under ``interval_ms`` ago; then once when
    that time is up, however often it was requested meanwhile (the overlays: a burst of
    predictions is painted at most ~30 times a second, the newest last)."""

    def __init__(self, interval_ms: int, run: Callable[[], None], parent: QObject | None = None):
        super().__init__(parent)
        self.interval_ms, self.run = interval_ms, run
        self._ran_at = 0.0
        self.timer = QTimer(self, singleShot=True)
        self.timer.timeout.connect(self._run)

    def request(self) -> None:
        if self.timer.isActive():
            return
        wait_ms = self.interval_ms - (time.monotonic() - self._ran_at) * 1000
        if wait_ms <= 0:
            self._run()
        else:
            self.timer.start(int(wait_ms) + 1)

    def stop(self) -> None:
        self.timer.stop()

    def _run(self) -> None:
        self._ran_at = time.monotonic()
        self.run()
