"""The New-project dialog checks the files on a worker: the window keeps running, the progress
shows, Cancel stops the scan between files, and closing the dialog stops it cleanly."""
import io
import time

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox

from desktop.gui.new_project import NewProjectDialog

SLOW = 2500  # pixels each way: a picture this large takes about 0.2 s to check


def pictures(folder, count, size=48, prefix="p"):
    """``count`` real PNG files, all with the same pixels (written once, copied: fast to make)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(data, format="PNG")
    for i in range(count):
        (folder / f"{prefix}{i:03d}.png").write_bytes(data.getvalue())
    return folder


def dialog_for(qtbot, show=True):
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    if show:
        dialog.show()
    return dialog


def test_the_window_keeps_running_and_shows_progress_while_the_files_are_checked(qtbot, tmp_path):
    folder = pictures(tmp_path / "pictures", 300)
    pictures(folder, 2, SLOW, prefix="big")
    dialog = dialog_for(qtbot)
    create = dialog.buttons.button(QDialogButtonBox.Ok)
    seen = []  # what the window showed at each tick of a timer on the GUI thread
    timer = QTimer()
    timer.timeout.connect(lambda: seen.append((dialog.scanning, dialog.found.text())))
    timer.start(5)
    started = time.perf_counter()
    dialog.set_sources([folder])
    assert time.perf_counter() - started < 0.5  # back at once: nothing is decoded here
    assert dialog.scanning and not create.isEnabled() and not dialog.folder_button.isEnabled()
    assert dialog.progress.isVisible() and dialog.cancel_scan_button.isVisible()
    qtbot.waitUntil(lambda: not dialog.scanning, timeout=60_000)
    timer.stop()
    during = [text for scanning, text in seen if scanning]
    assert len(during) >= 10  # the event loop ran all along, big pictures or not
    checking = {text for text in during if text.startswith("Checking ")}
    assert len(checking) >= 3 and all(" of 302: " in text and text.endswith(".png") for text in checking)
    assert dialog.found.text() == "302 readable images found, 0 unreadable."
    assert create.isEnabled() and dialog.folder_button.isEnabled()
    assert not dialog.progress.isVisible() and not dialog.cancel_scan_button.isVisible()


def test_cancel_stops_between_files_and_leaves_the_dialog_usable(qtbot, tmp_path):
    slow = pictures(tmp_path / "slow", 30, SLOW)
    dialog = dialog_for(qtbot)
    dialog.set_sources([slow])
    thread = dialog.scan_thread
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1)  # the second file is being checked
    QTest.mouseClick(dialog.cancel_scan_button, Qt.LeftButton)
    assert dialog.cancel_scan_button.text() == "Cancelling..." and not dialog.cancel_scan_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.scanning, timeout=10_000)
    assert thread.isFinished() and thread.scan.cancelled and len(thread.scan.readable) < 30
    assert dialog.found.text() == "Scan cancelled: no images chosen."
    assert dialog.sources == [] and dialog.unreadable.count() == 0
    assert dialog.buttons.button(QDialogButtonBox.Ok).isEnabled() and dialog.files_button.isEnabled()
    # Choosing again works, and a choice made during a scan replaces it.
    dialog.set_sources([slow])
    dialog.set_sources([pictures(tmp_path / "few", 3)])
    qtbot.waitUntil(lambda: not dialog.scanning, timeout=10_000)
    qtbot.wait(50)  # any signal left over from the replaced scan arrives, and is ignored
    assert dialog.found.text() == "3 readable images found, 0 unreadable."
    assert dialog.sources == [tmp_path / "few"] and len(dialog.scan.readable) == 3


def test_closing_the_dialog_during_a_scan_stops_the_worker(qtbot, tmp_path):
    slow = pictures(tmp_path / "slow", 30, SLOW)
    for shown in (True, False):  # Escape / the Cancel button, and closing one never shown
        dialog = dialog_for(qtbot, show=shown)
        dialog.set_sources([slow])
        thread = dialog.scan_thread
        qtbot.waitUntil(lambda: dialog.progress.value() >= 1)
        started = time.perf_counter()
        if shown:
            QTest.keyClick(dialog, Qt.Key_Escape)
        else:
            dialog.close()
        assert thread.isFinished() and thread.scan.cancelled and not dialog.scanning
        assert time.perf_counter() - started < 5  # the file being checked, no more
        dialog.deleteLater()  # a QThread destroyed while running would abort the process here
        qtbot.wait(50)


def test_a_folder_chosen_with_the_button_is_scanned_with_its_sub_folders(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    top = pictures(tmp_path / "session", 2)
    pictures(top / "cam1", 3, prefix="c")
    pictures(top / "cam1" / "day2", 1, prefix="d")
    pictures(top / ".thumbnails", 4, prefix="t")  # hidden: not pictures of the project
    (top / "cam1" / "broken.png").write_bytes(b"")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(top))
    dialog = dialog_for(qtbot)
    QTest.mouseClick(dialog.folder_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.scanning, timeout=20_000)
    assert dialog.found.text() == "6 readable images found, 1 unreadable."
    assert dialog.unreadable.item(0).text() == "broken.png: the file is empty (0 bytes)"
