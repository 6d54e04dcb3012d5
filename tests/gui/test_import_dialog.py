"""File > Import a DeepLabCut or COCO project: typed paths and real clicks on the dialog's buttons;
the import runs on a worker, the window opens the project made, a refusal is shown with file, row
and reason and leaves no folder, and Cancel stops an import and leaves nothing."""
import io

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.engine.keypoints.formats import write_coco
from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.import_dialog import ImportDialog
from desktop.gui.keypoint_workspace import KeypointWorkspace
from tests.engine.keypoint_data import synthetic_table
from tests.engine.test_dlc_import import make_dlc_project


@pytest.fixture
def dialog(qtbot):
    dialog = ImportDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def fill(dialog, source, target, images=None, coco=False):
    """Choose the kind with the keyboard and type the paths, as a user would."""
    dialog.kind.setFocus()
    QTest.keyClick(dialog.kind, Qt.Key_Down if coco else Qt.Key_Up)
    for edit, text in ((dialog.source, source), (dialog.images, images), (dialog.target, target)):
        if text is not None:
            edit.clear()
            QTest.keyClicks(edit, str(text))


@pytest.mark.parametrize("start", ["File menu", "start screen"])
def test_file_import_makes_the_dlc_project_and_the_window_opens_it(qtbot, show, tmp_path, start):
    make_dlc_project(tmp_path / "dlc")
    target = tmp_path / "mice"
    win = show(MainWindow(start_engine=False))

    def use_the_dialog():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ImportDialog)
        fill(dialog, tmp_path / "dlc" / "config.yaml", target)
        QTest.mouseClick(dialog.import_button, Qt.LeftButton)

    QTimer.singleShot(0, use_the_dialog)
    if start == "File menu":
        win.import_action.trigger()  # returns when the dialog closes, the import done
    else:
        QTest.mouseClick(win.start_screen.import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: isinstance(win.workspace, KeypointWorkspace), timeout=20_000)
    assert win.workspace.folder == target
    assert win.statusBar().currentMessage() == f"Created {target} with 7 image(s), 5 of them labelled."
    with Project.open(target, read_only=True) as project:
        assert project.skeleton().names == ("left", "right", "tail") and len(project.images()) == 7


def test_a_malformed_label_file_is_shown_with_file_row_and_reason_and_no_folder_is_made(qtbot, dialog, tmp_path):
    make_dlc_project(tmp_path / "dlc")
    (tmp_path / "dlc" / "labeled-data" / "mouse2" / "frame01.png").unlink()
    target = tmp_path / "out" / "mice"
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)  # nothing chosen yet: said, nothing started
    assert dialog.error.text() == "Choose the config.yaml and a folder for the new project." and not dialog.running
    fill(dialog, tmp_path / "dlc" / "config.yaml", target)
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)
    assert dialog.running and not dialog.import_button.isEnabled() and not dialog.source.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    assert dialog.error.text() == ("Cannot import 'CollectedData_me.csv', row 5: image "
                                   "'labeled-data/mouse2/frame01.png': file not found. Nothing was imported.")
    assert dialog.isVisible() and dialog.created is None and dialog.import_button.isEnabled()
    assert not target.exists() and list(target.parent.iterdir()) == []
    (tmp_path / "dlc" / "labeled-data" / "mouse2" / "frame00.png").rename(
        tmp_path / "dlc" / "labeled-data" / "mouse2" / "frame01.png")  # fixed (well, nearly): tried again
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    assert "row 4: image 'labeled-data/mouse2/frame00.png'" in dialog.error.text()


def test_a_coco_file_with_its_images_folder_is_imported(qtbot, dialog, tmp_path):
    images = tmp_path / "pictures"
    images.mkdir()
    table = synthetic_table(images, 3)
    write_coco(table, tmp_path / "keypoints.json")
    fill(dialog, tmp_path / "keypoints.json", tmp_path / "project", coco=True)
    assert dialog.kind.currentData() == "coco" and dialog.images.isEnabled()
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)
    assert dialog.error.text() == "Choose the images folder." and not dialog.running
    fill(dialog, tmp_path / "keypoints.json", tmp_path / "project", images=images, coco=True)
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    assert dialog.result() == ImportDialog.Accepted and not dialog.isVisible(), dialog.error.text()
    assert dialog.created == tmp_path / "project"
    with Project.open(dialog.created, read_only=True) as project:
        assert len(project.images()) == 3
        xy, visibility = project.keypoint_arrays(project.images()[1].id)
    np.testing.assert_array_equal(xy, table.xy[1])


def test_cancel_stops_the_import_and_leaves_nothing(qtbot, dialog, tmp_path):
    make_dlc_project(tmp_path / "dlc")
    big = io.BytesIO()  # unlabelled frames this large take about 0.2 s each to check
    Image.fromarray(np.full((2500, 2500), 90, np.uint8)).save(big, format="PNG")
    for i in range(20):
        (tmp_path / "dlc" / "labeled-data" / "mouse1" / f"big{i:02d}.png").write_bytes(big.getvalue())
    target = tmp_path / "out" / "mice"
    fill(dialog, tmp_path / "dlc" / "config.yaml", target)
    QTest.mouseClick(dialog.import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.progress.value() >= 3, timeout=20_000)  # the labels are in, frames checked
    QTest.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert dialog.status.text() == "Cancelling..." and dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    assert dialog.error.text() == "The import was cancelled. Nothing was imported."
    assert dialog.isVisible() and dialog.created is None
    assert not target.exists() and list(target.parent.iterdir()) == []
