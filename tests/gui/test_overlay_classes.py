"""The window with the real engine thread: a class nobody has labelled is never painted, and the
panel's "Likeliest" agrees with the overlay (issue 17, item 6)."""
import numpy as np
from PySide6.QtTest import QTest

from desktop.gui.app import MainWindow

from .conftest import click

TIMEOUT = 90_000  # ms; the first model includes loading the encoder on a busy 2-core machine


def painted_by(ws, published, revision):
    """Wait until the overlay comes from a model that saw the labels up to ``revision``."""
    def ready():
        return any(e.version == ws.viewer.overlay_version and e.label_revision >= revision for e in published)
    return ready


def test_one_labelled_class_paints_nothing_and_asks_for_a_second(qtbot, show, blob_project):
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # cold-start queries
    published = []
    ws.bridge.published.connect(published.append)

    QTest.keyClick(ws.viewer, "m")  # free clicking
    QTest.keyClick(ws.viewer, "1")  # background only: 'blob' has no labels
    for x, y in [(8, 8), (150, 12), (12, 150), (140, 140), (120, 70), (20, 80)]:
        click(ws.viewer, x, y)
    qtbot.waitUntil(painted_by(ws, published, ws.project.label_revision()), timeout=TIMEOUT)
    assert np.all(ws.viewer.items["prediction"].image == 255)  # nothing painted, not 'blob', not all background
    assert "label a second class" in ws.label_panel.candidates.text()

    QTest.keyClick(ws.viewer, "2")
    for x, y in [(50, 50), (90, 90), (70, 55), (55, 85)]:
        click(ws.viewer, x, y)
    qtbot.waitUntil(painted_by(ws, published, ws.project.label_revision()), timeout=TIMEOUT)
    prediction = ws.viewer.items["prediction"].image
    assert prediction[70, 70] == 1 and prediction[150, 10] == 0
    qtbot.waitUntil(lambda: bool(ws.session.current.candidates), timeout=TIMEOUT)
    assert "%" in ws.label_panel.candidates.text() and "second class" not in ws.label_panel.candidates.text()
    win.close()
