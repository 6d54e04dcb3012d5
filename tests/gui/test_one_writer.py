"""A second window on a project is told of the first and opens it read-only, and a click that
meets another program's write lock neither freezes the window nor is lost (issue 14)."""
import sqlite3
import time

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

import desktop.gui.app
from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow

from .conftest import click


def test_a_second_window_is_told_and_opens_the_project_read_only(show, blob_project, monkeypatch):
    asked = []

    def answer(parent, title, text, buttons, default):
        asked.append(text)
        return QMessageBox.Open

    monkeypatch.setattr(desktop.gui.app.QMessageBox, "question", answer)
    first = show(MainWindow(blob_project, start_engine=False))
    second = show(MainWindow(start_engine=False))
    assert second.open_project(blob_project)
    assert len(asked) == 1 and "is open in a Pointillist window (process" in asked[0]
    assert second.workspace.read_only and second.windowTitle().endswith("[read-only]")
    assert "Read-only" in second.statusBar().currentMessage()

    messages = []
    second.workspace.message.connect(messages.append)
    QTest.keyClick(second.workspace.viewer, Qt.Key_M)  # free mode: a click adds a label...
    click(second.workspace.viewer, 50, 70)
    assert any("open read-only here" in m for m in messages)  # ...which is refused, and said
    click(first.workspace.viewer, 50, 70)  # the first window labels on
    with Project.open(blob_project) as project:
        assert len(project.labels()) == 1

    second.close()
    first.close()  # its lock is released: the next window opens the project for writing
    third = show(MainWindow(blob_project, start_engine=False))
    assert len(asked) == 1 and not third.workspace.read_only
    third.close()


def test_declining_read_only_leaves_the_second_window_on_its_start_screen(show, blob_project, monkeypatch):
    monkeypatch.setattr(desktop.gui.app.QMessageBox, "question", lambda *args: QMessageBox.Cancel)
    first = show(MainWindow(blob_project, start_engine=False))
    second = show(MainWindow(start_engine=False))
    assert not second.open_project(blob_project)
    assert second.workspace is None and second.stack.currentWidget() is second.start_screen
    second.close()
    first.close()


def test_a_busy_database_keeps_the_label_and_saves_it_when_free(qtbot, show, blob_project):
    win = show(MainWindow(blob_project, start_engine=False))
    ws = win.workspace
    QTest.keyClick(ws.viewer, Qt.Key_M)
    other = sqlite3.connect(blob_project / "project.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    start = time.monotonic()
    click(ws.viewer, 50, 70)
    assert time.monotonic() - start < 2.0  # not SQLite's 10 s
    assert [(round(c.x), round(c.y)) for c in ws.session.pending] == [(50, 70)]
    assert len(ws.viewer.items["labels"].data) == 1  # drawn, hollow, where it was made
    assert "kept (drawn hollow)" in win.statusBar().currentMessage()
    click(ws.viewer, 120, 20)  # a second click while it is still busy waits behind the first
    assert len(ws.session.pending) == 2
    other.execute("ROLLBACK")
    other.close()
    qtbot.waitUntil(lambda: not ws.session.pending, timeout=5000)
    with Project.open(blob_project) as project:
        labels = project.labels()
    assert [(round(lab.x), round(lab.y)) for lab in labels] == [(50, 70), (120, 20)]
    assert "2 waiting labels saved" in win.statusBar().currentMessage()
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # a saved label undoes as any other
    with Project.open(blob_project) as project:
        assert len(project.labels()) == 1
    win.close()
