"""Changing a project after creating it, and opening one that is gone, with real clicks on the real
window and dialogs (message boxes included: they are answered by clicking their buttons)."""
import shutil

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLineEdit, QMessageBox

from desktop import paths
from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.class_editor import COLOUR_COLUMN, KEY, NAME, ClassEditor, KeypointEditor

from .conftest import click
from .test_keypoints import SKELETON, make_keypoint_project
from .test_training import TIMEOUT, label_blob


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


def when_shown(kind, drive) -> list:
    """Run ``drive(dialog)`` once a modal dialog of ``kind`` is open (its ``exec`` blocks);
    returns a list that gets what ``drive`` returns, or the exception it raised."""
    done = []

    def attempt():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, kind):
            QTimer.singleShot(20, attempt)
            return
        try:
            done.append(drive(dialog))
        except BaseException as e:  # noqa: BLE001 - handed to the test, which re-raises it
            done.append(e)
            dialog.reject()

    QTimer.singleShot(0, attempt)
    return done


def open_edit_menu_entry(win, text):
    """Alt+E opens the Edit menu; the entry's underlined letter chooses it, as a user does."""
    QTest.keyClick(win, Qt.Key_E, Qt.AltModifier)
    menu = win.edit_menu
    letter = text[text.index("&") + 1]
    QTest.keyClick(menu, letter)


def type_over(view, text):
    """F2 on the view's current item, type over its text, Enter: as a user renames it."""
    view.setFocus()
    QTest.keyClick(view, Qt.Key_F2)
    editors = [e for e in view.viewport().findChildren(QLineEdit) if e.isVisible()]  # not those closed before
    assert len(editors) == 1, "F2 opened no editor"
    editor = editors[0]
    QTest.keyClick(editor, Qt.Key_A, Qt.ControlModifier)
    QTest.keyClicks(editor, text)
    QTest.keyClick(editor, Qt.Key_Return)
    QApplication.processEvents()  # the view takes the editor's text in a queued call


def type_into_cell(table, row, column, text):
    """Click a cell, then type over its text (F2, Ctrl+A, the text, Enter)."""
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier,
                     table.visualItemRect(table.item(row, column)).center())
    type_over(table, text)
    assert table.item(row, column).text() == text


def test_merging_a_class_moves_its_labels_once_confirmed(show, blob_project):
    with Project.open(blob_project) as project:
        image_id = project.images()[0].id
        nucleus = project.add_class("nucleus", "#00ff00", "n")
        project.add_labels(image_id, [(60.0, 60.0 + i, nucleus) for i in range(5)])
        blob = project.classes()[1].id
        project.add_labels(image_id, [(70.0, 70.0, blob)])
    win = show(MainWindow(blob_project, start_engine=False))

    def merge(dialog):
        table = dialog.table
        QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier,
                         table.visualItemRect(table.item(2, 0)).center())  # nucleus
        dialog.into.setFocus()
        QTest.keyClick(dialog.into, Qt.Key_Down)  # background -> blob
        assert dialog.into.currentText() == "blob"
        asked = answer_message_box(QMessageBox.Cancel)
        QTest.mouseClick(dialog.merge_button, Qt.LeftButton)
        assert "Merge 'nucleus' into 'blob'? Its 5 label(s) become 'blob' labels" in asked[0]
        assert table.rowCount() == 3  # cancelled: nothing merged
        asked = answer_message_box(QMessageBox.Yes)
        QTest.mouseClick(dialog.merge_button, Qt.LeftButton)
        assert asked and table.rowCount() == 2 and table.item(1, 3).text() == "6"
        assert dialog.merged.text() == "Merged: 'nucleus' into 'blob'"
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)

    done = when_shown(ClassEditor, merge)
    old = win.workspace
    open_edit_menu_entry(win, "&Classes...")
    assert done == [None]
    ws = win.workspace
    assert ws is not old and [c.name for c in ws.classes] == ["background", "blob"]
    assert ws.label_panel.class_list.count() == 2
    assert ws.project.class_label_counts() == {blob: 6}
    assert ws.session.undo_stack.count() == 0
    win.close()


def test_keypoints_are_renamed_and_a_used_one_is_not_removed(show, tmp_path):
    folder = make_keypoint_project(tmp_path / "data")
    with Project.open(folder) as project:
        first, second = [i.id for i in project.images()]
        project.set_keypoint_label(first, 2, 30.0, 40.0)  # tail
        project.set_keypoint_label(second, 2, 50.0, 60.0)
    win = show(MainWindow(folder, start_engine=False))

    def remove_tail(dialog):
        keypoints = dialog.editor.keypoints
        QTest.mouseClick(keypoints.viewport(), Qt.LeftButton, Qt.NoModifier,
                         keypoints.visualItemRect(keypoints.item(2)).center())
        QTest.mouseClick(dialog.editor.buttons["Remove"], Qt.LeftButton)
        assert keypoints.count() == 2
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
        assert dialog.isVisible()  # refused: the dialog stays, with what was typed
        assert dialog.error.text().startswith("Keypoints with labels cannot be removed: 'tail' (2 labels). "
                                              "Rename them instead")
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Cancel), Qt.LeftButton)

    done = when_shown(KeypointEditor, remove_tail)
    old = win.workspace
    open_edit_menu_entry(win, "&Keypoints...")
    assert done == [None] and win.workspace is old  # cancelled: the project was not opened again

    def rename_tail(dialog):
        keypoints = dialog.editor.keypoints
        QTest.mouseClick(keypoints.viewport(), Qt.LeftButton, Qt.NoModifier,
                         keypoints.visualItemRect(keypoints.item(2)).center())
        type_over(keypoints, "tail_base")
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)

    done = when_shown(KeypointEditor, rename_tail)
    open_edit_menu_entry(win, "&Keypoints...")
    assert done == [None]
    ws = win.workspace
    assert ws is not old and ws.session.skeleton.names == ("left", "right", "tail_base")
    assert ws.project.skeleton().edges == SKELETON.edges  # the edges follow the renamed keypoint
    xy, visibility = ws.project.keypoint_arrays(second)
    assert visibility[2] == "visible" and tuple(xy[2]) == (50.0, 60.0)
    win.close()


def test_classes_renamed_recoloured_rekeyed_and_added_reach_the_panel_the_overlay_and_the_engine(
        qtbot, show, blob_project):
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # the engine is up
    published = []
    ws.bridge.published.connect(published.append)
    label_blob(ws)
    qtbot.waitUntil(lambda: bool(published), timeout=TIMEOUT)  # a model of two classes is saved

    def edit(dialog):
        table = dialog.table
        type_into_cell(table, 0, NAME, "sky")
        type_into_cell(table, 1, COLOUR_COLUMN, "#00c000")
        type_into_cell(table, 1, KEY, "b")
        QTest.mouseClick(dialog.add_button, Qt.LeftButton)
        type_into_cell(table, 2, NAME, "edge")
        type_into_cell(table, 2, KEY, "B")  # taken
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
        assert dialog.isVisible() and table.rowCount() == 3  # refused, and nothing typed is lost
        assert dialog.error.text() == "'blob' and 'edge' would both have the key B: give one of them another key."
        type_into_cell(table, 2, KEY, "e")
        type_into_cell(table, 2, COLOUR_COLUMN, "#ffff00")
        QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)

    done = when_shown(ClassEditor, edit)
    open_edit_menu_entry(win, "&Classes...")
    assert done == [None]
    ws = win.workspace
    failed, published = [], []
    ws.bridge.failed.connect(failed.append)
    ws.bridge.published.connect(published.append)
    assert [(c.name, c.colour, c.key) for c in ws.classes] == [
        ("sky", "#3050f0", "1"), ("blob", "#00c000", "b"), ("edge", "#ffff00", "e")]
    panel = [ws.label_panel.class_list.item(i).text() for i in range(ws.label_panel.class_list.count())]
    assert [text.split()[-1] for text in panel] == ["sky", "blob", "edge"] and "[e]" in panel[2]
    assert tuple(ws.viewer._class_lut[2][:3]) == (255, 255, 0)  # the overlay's colour of class 2 (edge)

    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)  # the engine is up again
    QTest.keyClick(ws.viewer, "m")  # free clicking
    QTest.keyClick(ws.viewer, "e")  # the new class, by its new key
    for x, y in [(40, 70), (99, 70), (70, 40), (70, 99), (40, 40)]:
        click(ws.viewer, x, y)
    assert ws.project.class_label_counts()[ws.classes[2].id] == 5
    everything = ws.project.label_revision()
    qtbot.waitUntil(lambda: any(e.label_revision >= everything for e in published), timeout=TIMEOUT)
    assert min(e.version for e in published) >= ws.project.models_from_version()  # made for three classes
    assert ws.bridge.service.task.engine.learner.num_classes == 3
    assert failed == []
    win.close()
