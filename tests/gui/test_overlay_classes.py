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



def test_a_query_asked_before_the_model_shows_the_overlays_class_once_it_is_painted(qtbot, show, blob_project):
    """The query on screen stays until answered, even when a new model asks afresh; its "Likeliest"
    then reads the overlay at its pixel, not "(waiting for the model)" beside a drawn overlay."""
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # cold-start queries
    published = []
    ws.bridge.published.connect(published.append)
    QTest.keyClick(ws.viewer, "m")  # a few free clicks of both classes, then back to the queries
    for key, points in (("2", [(50, 50), (90, 90)]), ("1", [(8, 8), (150, 150)])):
        QTest.keyClick(ws.viewer, key)
        for x, y in points:
            click(ws.viewer, x, y)
    QTest.keyClick(ws.viewer, "m")
    held = ws.session.current
    assert held is not None and not held.candidates  # asked before any model
    qtbot.waitUntil(painted_by(ws, published, ws.project.label_revision()), timeout=TIMEOUT)
    assert ws.session.current is held  # still the question on screen
    text = ws.label_panel.candidates.text()
    painted = ws.viewer.items["prediction"].image[int(round(held.y)), int(round(held.x))]
    assert ws.label_panel.classes[painted].name in text and "%" in text and "waiting" not in text, text
    win.close()
