"""Start screen, recent projects, the New-project dialog and projects with missing images."""
import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox

from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.new_project import NewProjectDialog
from desktop.gui.shortcuts import SHORTCUTS, ShortcutsDialog


def test_start_screen_then_open_then_recent(show, blob_project):
    win = show(MainWindow(start_engine=False))
    assert win.stack.currentWidget() is win.start_screen and win.workspace is None
    assert not win.export_masks_action.isEnabled()
    assert win.open_project(blob_project)
    assert win.stack.currentWidget() is win.workspace and "project" in win.windowTitle()
    assert [a.text() for a in win.edit_menu.actions()][:2] == ["Undo", "Redo"]
    win.close_project()
    assert win.stack.currentWidget() is win.start_screen
    assert win.start_screen.recent.item(0).text() == str(blob_project.resolve())
    item = win.start_screen.recent.item(0)
    win.start_screen.recent.itemActivated.emit(item)
    assert win.workspace is not None and win.workspace.folder == blob_project.resolve()
    win.close()


def test_new_project_dialog_counts_images_and_names_the_unreadable(qtbot, blob_project, tmp_path):
    pictures = blob_project.parent
    (pictures / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing useful")
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.set_sources([pictures])
    qtbot.waitUntil(lambda: not dialog.scanning)  # the files are checked on a worker
    assert dialog.found.text().startswith("2 readable images found, 1 unreadable")
    assert dialog.unreadable.count() == 1 and dialog.unreadable.item(0).text().startswith("broken.png: ")
    dialog.add_class("nucleus")
    dialog.classes.item(2, 0).setText("membrane")
    assert [(n, k) for n, _, k in dialog.class_rows()] == [("background", "1"), ("foreground", "2"),
                                                            ("membrane", "3")]
    dialog.create()
    assert "folder" in dialog.error.text() and dialog.created is None  # no target yet
    dialog.target.setText(str(tmp_path / "new"))
    QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert dialog.created == tmp_path / "new"
    with Project.open(dialog.created) as project:
        assert [c.name for c in project.classes()] == ["background", "foreground", "membrane"]
        assert sorted(i.name for i in project.images()) == ["picture0.png", "picture1.png"]


def test_a_project_that_cannot_be_opened_is_explained_and_left_closed(show, blob_project, monkeypatch):
    import desktop.gui.app

    warnings = []
    monkeypatch.setattr(desktop.gui.app.QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    win = show(MainWindow(start_engine=False))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # read-only, as root too
    assert not win.open_project(blob_project)
    assert len(warnings) == 1 and warnings[0].startswith("The project 'project' is read-only: this user may not ")
    assert win.workspace is None and win.stack.currentWidget() is win.start_screen
    monkeypatch.undo()
    assert win.open_project(blob_project)
    win.close()


def test_a_missing_image_is_listed_with_its_reason(show, blob_project):
    with Project.open(blob_project) as project:
        gone = project.images()[0]
    gone.path.unlink()
    win = show(MainWindow(blob_project, start_engine=False))
    ws = win.workspace
    row = ws.image_list.row_of(gone.id)
    assert "moved or deleted" in ws.image_list.item(row, 4).text()
    assert gone.name in win.banner.text.text()  # it stays until dismissed
    assert ws.image_id != gone.id and ws.image_id is not None  # the readable one is open
    ws.image_list.cellClicked.emit(row, 0)
    assert ws.image_id != gone.id
    win.close()


def test_help_lists_every_key(qtbot):
    dialog = ShortcutsDialog()
    qtbot.addWidget(dialog)
    shown = " ".join(dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount()))
    assert dialog.table.rowCount() == len(SHORTCUTS)
    for key in ["U", "N", "M", "I / P / H / L / Q", "Ctrl+Z", "Ctrl+Shift+Z", "1 ... 9", "Left click",
                "Right click", "F1"]:
        assert key in shown


def test_the_demo_button_creates_and_opens_the_demo_once(show, tmp_path):
    win = show(MainWindow(start_engine=False, demo_dir=tmp_path / "demo"))
    QTest.mouseClick(win.start_screen.demo_button, Qt.LeftButton)
    ws = win.workspace
    assert ws is not None and ws.folder == tmp_path / "demo"
    assert ws.image_list.rowCount() >= 4 and not ws.problems
    assert [c.name for c in ws.classes] == ["background", "coin"]
    win.close_project()
    win.start_screen.demo_button.click()  # the second time it opens the same project
    assert win.workspace.folder == tmp_path / "demo"
    win.close()


def test_the_command_and_the_window_use_the_same_demo(show, capsys):
    from desktop import paths
    from desktop.cli import main

    assert main(["demo", "--no-window"]) == 0
    made = capsys.readouterr().out.strip().removeprefix("Demo project: ")
    assert made == str(paths.demo_dir())
    assert paths.demo_dir().parent == Path(os.environ[paths.HOME_VARIABLE])  # the test's, not the user's
    win = show(MainWindow(start_engine=False))
    assert win.demo_dir == paths.demo_dir()
    win.start_screen.demo_button.click()
    assert str(win.workspace.folder) == made  # the project the command made, opened again
    win.close()


def test_a_damaged_or_unwritable_recent_list_never_stops_the_window(show, blob_project):
    from desktop import paths

    paths.recent_file().parent.mkdir(parents=True, exist_ok=True)
    paths.recent_file().write_bytes(b"\x00{ not json")
    win = show(MainWindow(start_engine=False))
    assert win.start_screen.recent.count() == 0
    assert win.open_project(blob_project)
    win.close_project()
    assert [win.start_screen.recent.item(i).text() for i in range(win.start_screen.recent.count())] == [
        str(blob_project.resolve())]
    paths.recent_file().unlink()
    paths.recent_file().mkdir()  # now it cannot be written at all
    assert win.open_project(blob_project)
    assert win.statusBar().currentMessage().startswith(
        "Not added to the recent projects: Cannot save 'recent-projects.json'")
    win.close()


def test_file_menu_adds_images_to_an_open_project_and_names_the_unreadable(qtbot, show, blob_project, monkeypatch):
    import numpy as np
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    folder = blob_project.parent
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(folder / "new.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # a header and nothing else
    chosen = [folder / "new.png", folder / "broken.png", folder / "picture0.png"]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(p) for p in chosen], ""))
    win = show(MainWindow(blob_project, torch_threads=1))
    ws = win.workspace
    assert win.add_images_action.isEnabled() and ws.image_list.rowCount() == 2
    win.add_images_action.trigger()
    qtbot.waitUntil(lambda: ws.image_list.rowCount() == 3, timeout=60_000)  # the engine thread adds it
    qtbot.waitUntil(lambda: "Added 1 image." in win.statusBar().currentMessage(), timeout=10_000)
    assert "1 was in the project already" in win.statusBar().currentMessage()
    assert win.banner.text.text().startswith("Left out 1 file that cannot be read (broken.png:")  # until dismissed
    with Project.open(blob_project) as project:
        added = [i for i in project.images() if i.name == "new.png"]
        assert len(added) == 1 and (added[0].width, added[0].height) == (70, 50) and len(project.images()) == 3
    ws.image_list.cellClicked.emit(ws.image_list.row_of(added[0].id), 0)
    assert ws.image_id == added[0].id and ws.viewer.image_shape == (50, 70)
    win.close()


def test_image_list_keeps_each_uncertainty_with_its_image_when_refilled(qtbot, blob_project):
    from desktop.gui.image_list import UNCERTAINTY, ImageList
    from desktop.gui.label_tally import LabelTally

    with Project.open(blob_project) as project:
        first, second = [i.id for i in project.images()]
        table = ImageList(LabelTally(project))
        qtbot.addWidget(table)
        table.fill(project, {})
        table.set_uncertainty({first: 0.1, second: 0.9})
        assert table.image_ids() == [first, second]  # a ranking changes the numbers in place: no row moves
        table.sort_by_column(UNCERTAINTY)  # asked for: most uncertain first
        assert table.image_ids() == [second, first]
        table.fill(project, {})  # as after adding images: rows rebuilt, in the order asked for
    shown = {table.item(r, 0).data(0x0100): table.item(r, 3).text() for r in range(table.rowCount())}
    assert shown == {first: "0.100", second: "0.900"} and table.image_ids() == [second, first]
