"""The window with the real engine thread and the fast learner: labels change the overlay,
training pauses and resumes, closing leaves no thread, reopening restores everything."""
import threading

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from desktop.gui.app import MainWindow

from .conftest import click

TIMEOUT = 90_000  # ms; the first model includes loading the encoder on a busy 2-core machine


def engine_threads():
    return [t for t in threading.enumerate() if t.name == "pointillist-engine"]


def label_blob(ws):
    QTest.keyClick(ws.viewer, "m")  # free clicking
    QTest.keyClick(ws.viewer, "1")
    for x, y in [(8, 8), (150, 12), (12, 150), (140, 140), (120, 70)]:
        click(ws.viewer, x, y)
    QTest.keyClick(ws.viewer, "2")
    for x, y in [(50, 50), (90, 90), (70, 55), (55, 85)]:
        click(ws.viewer, x, y)


def test_labels_train_and_the_overlay_follows(qtbot, show, blob_project, tmp_path):
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # cold-start queries
    assert ws.viewer.current_ring.data.size == 1 and ws.viewer.items["queries"].data.size == 8

    published = []
    ws.bridge.published.connect(published.append)
    label_blob(ws)
    everything = ws.project.label_revision()
    qtbot.waitUntil(lambda: any(e.version == ws.viewer.overlay_version and e.label_revision >= everything
                                for e in published), timeout=TIMEOUT)  # a model that saw every click
    version = ws.viewer.overlay_version
    prediction = ws.viewer.items["prediction"].image
    assert prediction[70, 70] == 1 and prediction[150, 10] == 0
    qtbot.waitUntil(lambda: ws.session.current is not None and bool(ws.session.current.candidates),
                    timeout=TIMEOUT)
    assert "%" in ws.label_panel.candidates.text()
    assert ws.training_panel.version.text().startswith(str(version))

    # answering a query by key makes a newer model whose overlay replaces the old one
    QTest.keyClick(ws.viewer, "m")  # back to answering queries
    with qtbot.waitSignal(ws.viewer.overlayShown, timeout=TIMEOUT,
                          check_params_cb=lambda v: v > version):
        QTest.keyClick(ws.viewer, "2" if ws.session.current.candidates[0][0] == 1 else "1")

    path = tmp_path / "window.png"
    assert win.grab().save(str(path))
    shot = QImage(str(path)).convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(shot.constBits(), np.uint8).reshape(shot.height(), shot.bytesPerLine())
    pixels = pixels[:, :shot.width() * 3].reshape(shot.height(), shot.width(), 3)
    assert pixels.std() > 20
    red, green, blue = (pixels[..., i].astype(int) for i in range(3))
    assert ((red > green + 60) & (red > blue + 60)).sum() > 5000  # the blob class, red
    assert ((blue > red + 40) & (blue > green + 40)).sum() > 5000  # the background class, blue

    win.close()
    assert engine_threads() == []


def test_pause_holds_training_and_reopening_restores_the_project(qtbot, show, blob_project):
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # the engine is up
    QTest.keyClick(ws.viewer, "t")  # pause
    assert ws.training_panel.run_button.isChecked()
    published = []
    ws.bridge.published.connect(published.append)
    label_blob(ws)
    qtbot.wait(1500)
    assert published == []
    with qtbot.waitSignal(ws.viewer.overlayShown, timeout=TIMEOUT):
        QTest.keyClick(ws.viewer, "t")  # run
    version = published[-1].version
    labels = len(ws.project.labels())
    win.close()
    assert engine_threads() == []

    again = show(MainWindow(blob_project, torch_threads=1))
    ws = again.workspace
    assert [c.name for c in ws.label_panel.classes] == ["background", "blob"]
    assert len(ws.viewer.items["labels"].data) == labels
    assert ws.training_panel.version.text().startswith(str(version))
    with qtbot.waitSignal(ws.viewer.overlayShown, timeout=TIMEOUT) as shown:
        pass  # the saved model predicts without any new training
    assert shown.args[0] == version and ws.viewer.items["prediction"].image[70, 70] == 1
    again.close()
    assert engine_threads() == []


def test_export_menu_writes_masks_that_match_the_overlay(qtbot, show, blob_project, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    published = []
    ws.bridge.published.connect(published.append)
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)
    label_blob(ws)
    everything = ws.project.label_revision()
    qtbot.waitUntil(lambda: any(e.version == ws.viewer.overlay_version and e.label_revision >= everything
                                for e in published), timeout=TIMEOUT)
    on_screen = np.array(ws.viewer.items["prediction"].image, copy=True)
    shown_name = ws.project.image(ws.image_id).name

    out = tmp_path / "masks"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(ws.bridge.exported, timeout=TIMEOUT):
        win.export_masks_action.trigger()
    exported = np.array(Image.open(out / shown_name))
    assert exported.shape == on_screen.shape[:2]
    assert (exported == on_screen).mean() > 0.999
    assert (out / shown_name.replace(".png", "_preview.png")).is_file()
    win.close()
    assert engine_threads() == []
