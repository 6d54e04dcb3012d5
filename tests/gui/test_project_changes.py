"""Changing a project after creating it, and opening one that is gone, with real clicks on the real
window and dialogs (message boxes included: they are answered by clicking their buttons)."""
import shutil

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop import paths
from desktop.gui.app import MainWindow


def answer_message_box(button=QMessageBox.Ok) -> list[str]:
    """Click ``button`` of the next message box that opens (it blocks in its own event loop);
    returns a list that gets the box's text."""
    seen = []

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        QTest.mouseClick(box.button(button), Qt.LeftButton)

    QTimer.singleShot(0, answer)
    return seen


def test_a_recent_project_that_is_gone_says_so_and_leaves_the_list(show, blob_project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(blob_project, copy)
    paths.remember_project(blob_project)
    paths.remember_project(copy)
    win = show(MainWindow(start_engine=False))
    recent = win.start_screen.recent
    assert [recent.item(i).text() for i in range(recent.count())] == [str(copy), str(blob_project.resolve())]
    shutil.rmtree(copy)  # deleted while the list is shown
    seen = answer_message_box()
    rect = recent.visualItemRect(recent.item(0))
    QTest.mouseClick(recent.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())  # a double click's first
    QTest.mouseDClick(recent.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    assert seen == [f"'{copy}' does not exist: it was moved, renamed or deleted, or its disk is not connected."]
    assert win.workspace is None
    assert [recent.item(i).text() for i in range(recent.count())] == [str(blob_project.resolve())]
    win.close()
