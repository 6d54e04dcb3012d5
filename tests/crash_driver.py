"""Crash-test driver: the real Pointillist window, offscreen, on one project, clicked through real
Qt mouse and key events while its engine thread trains and File > Export masks runs again and
again, until whoever started it kills it (``tests/gui/test_crash_safety.py`` does, with SIGKILL).

    python -m tests.crash_driver PROJECT EXPORT_DIR SEED

Each line on stdout is flushed as it is written:

    READY                                  the window is up; clicking starts
    ACK <label> <image> <x> <y> <class>    a click's label, read back through the app's own
                                           connection after the click handler (which commits
                                           it) returned: the label is acknowledged
    BAD <what>                             a click that did not store the label it should have
    WRITE <path> <temporary> / WROTE <path>   an atomic write has its temporary / is renamed into place
    PUBLISHED <version>                    the window was told of a new model version
    EXPORT / EXPORTED                      Export masks was chosen / the engine finished it
    FAILED <message>                       the engine reported a problem (shown in the status bar)

Nothing here writes to the project: labels come only from clicks, exports only from the menu
action. The one thing patched is ``atomic.atomic_output``, wrapped to announce each write so a
test can aim its kill at model saves and export writes.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from tests.driver_output import say

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def announce_atomic_writes() -> None:
    from desktop.engine.project import atomic

    original = atomic.atomic_output

    @contextlib.contextmanager
    def announced(target):
        with original(target) as tmp:
            say("WRITE", target, tmp)  # the temporary exists, the new content is not yet in it
            yield tmp
        say("WROTE", target)

    atomic.atomic_output = announced  # atomic_write_bytes looks it up at each call


class Driver:
    """Every 20-120 ms: mostly a left click at a random pixel (its class chosen by its key
    first), sometimes N (next image) or File > Export masks, when no export is running."""

    def __init__(self, window, rng: np.random.Generator):
        from PySide6.QtCore import QTimer

        self.window, self.ws, self.rng = window, window.workspace, rng
        self.exporting = False
        self.ws.bridge.published.connect(lambda event: say("PUBLISHED", event.version))
        self.ws.bridge.exported.connect(lambda _text: self._export_ended())
        self.ws.bridge.failed.connect(self._failed)
        self.timer = QTimer(singleShot=True)
        self.timer.timeout.connect(self.step)

    def start(self) -> None:
        from PySide6.QtTest import QTest

        QTest.keyClick(self.ws.viewer, "m")  # free clicking: every left click is a label
        self.timer.start(0)

    def step(self) -> None:
        from PySide6.QtTest import QTest

        roll = self.rng.random()
        if roll < 0.03:
            QTest.keyClick(self.ws.viewer, "n")
        elif roll < 0.10 and not self.exporting:
            self.exporting = True
            say("EXPORT")
            self.window.export_masks_action.trigger()
        else:
            self.click()
        self.timer.start(int(self.rng.integers(20, 120)))

    def click(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        ws, viewer = self.ws, self.ws.viewer
        info = ws.project.image(ws.image_id)
        x, y = int(self.rng.integers(0, info.width)), int(self.rng.integers(0, info.height))
        index = self._class_for(x, y)
        QTest.keyClick(viewer, str(index + 1))
        before = {lab.id for lab in ws.project.labels(ws.image_id)}
        QTest.mouseClick(viewer.viewport(), Qt.LeftButton, Qt.NoModifier, viewer.widget_point(x, y))
        new = [lab for lab in ws.project.labels(ws.image_id) if lab.id not in before]
        if (len(new) != 1 or abs(new[0].x - x) > 1 or abs(new[0].y - y) > 1
                or new[0].class_id != ws.classes[index].id):
            say("BAD", f"click at ({x}, {y}) class {ws.classes[index].id} stored {new}")
            return
        lab = new[0]
        say("ACK", lab.id, lab.image_id, repr(lab.x), repr(lab.y), lab.class_id)

    def _class_for(self, x: int, y: int) -> int:
        """The class a consistent expert would give (of the first two: darker or brighter than the
        image's median, as in ``bench_ui``); which one is as random as the position. Not a
        random class: the engine refuses to publish a model that validates worse than the best
        so far, so noisy labels soon stop model saves, which the training kills aim at."""
        if len(self.ws.classes) < 2:
            return 0
        gray = self.ws.viewer.items["image"].image.mean(axis=2)
        return int(gray[y, x] > np.median(gray))

    def _failed(self, text: str) -> None:
        say("FAILED", " ".join(text.split()))
        self._export_ended()  # "no trained model yet" ends an export too

    def _export_ended(self) -> None:
        if self.exporting:
            say("EXPORTED")
        self.exporting = False


def main(argv: list[str]) -> int:
    project, export_dir, seed = Path(argv[0]), Path(argv[1]), int(argv[2])
    from PySide6.QtWidgets import QFileDialog

    from desktop.gui.app import MainWindow, make_application
    from desktop.paths import HOME_VARIABLE

    announce_atomic_writes()
    app = make_application()
    # Recent projects go to a folder beside the project, never to the user's.
    os.environ[HOME_VARIABLE] = str(project.parent / "home")
    QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: str(export_dir))  # the folder "chosen"
    window = MainWindow(project, torch_threads=1)
    window.show()
    driver = Driver(window, np.random.default_rng(seed))
    driver.start()
    say("READY")
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
