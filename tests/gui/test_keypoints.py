"""Keypoint labelling through real mouse and key events on the real window (engine thread off,
what the engine would send handed to the workspace as the bridge would, except where a test
starts it)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog, QInputDialog, QMessageBox

from desktop.engine.keypoints.formats import import_table, read_table
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project
from desktop.engine.service.messages import KeypointPrediction
from desktop.gui.app import MainWindow
from desktop.gui.keypoint_workspace import KeypointWorkspace
from desktop.gui.new_project import NewProjectDialog
from tests.engine.test_video import write_video

SIZE = 160
SKELETON = Skeleton(("left", "right", "tail"), edges=((0, 2), (1, 2)), symmetry=((0, 1),))


def make_keypoint_project(folder, images=2):
    folder.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "project", task="keypoints")
    project.set_skeleton(SKELETON)
    for i in range(images):
        pixels = np.full((SIZE, SIZE, 3), 40 + 20 * i, np.uint8)
        Image.fromarray(pixels).save(folder / f"frame{i}.png")
        project.add_image(folder / f"frame{i}.png", SIZE, SIZE)
    project.close()
    return folder / "project"


@pytest.fixture
def keypoint_project(tmp_path):
    return make_keypoint_project(tmp_path / "data")


def open_window(show, folder):
    win = show(MainWindow(folder, start_engine=False))
    assert isinstance(win.workspace, KeypointWorkspace)
    return win


def click(viewer, x, y, button=Qt.LeftButton):
    QTest.mouseClick(viewer.viewport(), button, Qt.NoModifier, viewer.widget_point(x, y))


def key(ws, k, modifiers=Qt.NoModifier):
    QTest.keyClick(ws.viewer, k, modifiers)


def stored(folder, image_id):
    with Project.open(folder) as project:
        return project.keypoint_arrays(image_id)


def ask(folder, image_id, entries):
    """Queries as the engine stores them: least certain first."""
    with Project.open(folder) as project:
        return project.add_keypoint_queries(image_id, entries, "confidence", 1)


def test_query_mode_click_enter_v_a_then_the_next_image_and_undo(show, keypoint_project):
    with Project.open(keypoint_project) as project:
        first, second = [i.id for i in project.images()]
    asked = ask(keypoint_project, first, [(2, 50, 60, 0.9), (0, 30, 30, 0.5), (1, 100, 100, 0.2)])
    win = open_window(show, keypoint_project)
    ws = win.workspace
    assert ws.image_id == first and ws.session.current.keypoint == 2
    assert list(ws.viewer.current_ring.data["x"]) == [50.5]
    assert len(ws.overlay.items["proposals"].data) == 3 and len(ws.overlay.items["bones"].xData) == 4

    click(ws.viewer, 55, 62)  # the tail is really here
    xy, vis = stored(keypoint_project, first)
    assert vis[2] == "visible" and xy[2] == pytest.approx([55, 62], abs=1)
    assert ws.session.current.keypoint == 0 and list(ws.viewer.current_ring.data["x"]) == [30.5]
    key(ws, Qt.Key_Return)  # accept the proposal
    assert stored(keypoint_project, first)[0][0] == pytest.approx([30, 30])
    key(ws, Qt.Key_Z, Qt.ControlModifier)  # undo: 'left' is asked again
    assert stored(keypoint_project, first)[1][0] == "" and ws.session.current.keypoint == 0
    key(ws, "v")  # occluded, at the proposal
    xy, vis = stored(keypoint_project, first)
    assert vis[0] == "occluded" and xy[0] == pytest.approx([30, 30])
    assert ws.session.current.keypoint == 1
    key(ws, "a")  # absent: the image is done, the next one opens
    assert list(stored(keypoint_project, first)[1]) == ["occluded", "absent", "visible"]
    assert ws.image_id == second
    with Project.open(keypoint_project) as project:
        assert {q.id: q.status for q in project.queries(first, status=None)} == dict.fromkeys(asked, "answered")
        labels = project.keypoint_labels(first)
        assert [lab.query_id for lab in labels] == asked[1:] + asked[:1]
        assert all(lab.seconds is not None for lab in labels)

    key(ws, Qt.Key_Z, Qt.ControlModifier)  # undo 'absent': back to the first image, asked again
    assert ws.image_id == first and ws.session.current.keypoint == 1
    assert stored(keypoint_project, first)[1][1] == ""
    key(ws, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # redo
    assert stored(keypoint_project, first)[1][1] == "absent"
    win.close()


def drag(viewer, start, end):
    """Press, move in steps (pyqtgraph starts a drag after a few pixels, and drops moves that
    come faster than its mouse rate limit) and release."""
    a, b = viewer.widget_point(*start), viewer.widget_point(*end)
    QTest.mousePress(viewer.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    for t in np.linspace(0.1, 1.0, 8):
        QTest.qWait(15)
        QTest.mouseMove(viewer.viewport(), QPoint(round(a.x() + t * (b.x() - a.x())),
                                                  round(a.y() + t * (b.y() - a.y()))))
    QTest.mouseRelease(viewer.viewport(), Qt.LeftButton, Qt.NoModifier, b)


def test_labels_and_proposals_can_be_dragged_and_shift_enter_accepts_the_rest(show, keypoint_project):
    with Project.open(keypoint_project) as project:
        image_id = project.images()[0].id
        project.set_keypoint_label(image_id, 0, 40.0, 40.0, "occluded")
    win = open_window(show, keypoint_project)
    ws = win.workspace
    view = ws.viewer.view.viewRect()
    drag(ws.viewer, (40, 40), (70, 90))  # a label: moved, still occluded
    xy, vis = stored(keypoint_project, image_id)
    assert vis[0] == "occluded" and xy[0] == pytest.approx([70, 90], abs=1.5)
    assert ws.viewer.view.viewRect() == view  # the drag moved the keypoint, not the view

    ws._prediction(KeypointPrediction(image_id, ws.bridge.generation, 1, np.array([[5., 5.], [120., 20.], [80., 140.]]),
                                      np.array([0.9, 0.2, 0.7]), np.array([0.1, 0.8, 0.3])))
    ws.painter.stop()
    ws._paint_prediction()
    QTest.qWait(50)  # painted, as a user would see it before dragging
    assert sorted(ws.overlay.items["proposals"].data["data"]) == [1, 2]  # the labelled one has no proposal
    drag(ws.viewer, (120, 20), (110, 30))  # a proposal: dragging it labels it where it is dropped
    xy, vis = stored(keypoint_project, image_id)
    assert vis[1] == "visible" and xy[1] == pytest.approx([110, 30], abs=1.5)

    key(ws, Qt.Key_Return, Qt.ShiftModifier)  # accept the remaining proposal(s)
    xy, vis = stored(keypoint_project, image_id)
    assert list(vis) == ["occluded", "visible", "visible"] and xy[2] == pytest.approx([80, 140])
    key(ws, Qt.Key_Z, Qt.ControlModifier)
    key(ws, Qt.Key_Z, Qt.ControlModifier)
    key(ws, Qt.Key_Z, Qt.ControlModifier)  # the first drag undone: back where it was
    xy, vis = stored(keypoint_project, image_id)
    assert list(vis) == ["occluded", "", ""] and xy[0] == pytest.approx([40, 40])
    win.close()


def test_free_mode_places_keypoints_in_order_and_layers_hide(show, keypoint_project):
    win = open_window(show, keypoint_project)
    ws = win.workspace
    image_id = ws.image_id
    key(ws, "m")
    assert ws.session.mode == "free" and ws.session.active == 0
    click(ws.viewer, 20, 25)
    click(ws.viewer, 100, 25)
    xy, vis = stored(keypoint_project, image_id)
    assert list(vis) == ["visible", "visible", ""] and xy[1] == pytest.approx([100, 25], abs=1)
    assert ws.session.active == 2 and ws.label_panel.keypoint_list.currentRow() == 2
    ws.label_panel.keypoint_list.setCurrentRow(0)  # choose 'left' again and put it elsewhere
    click(ws.viewer, 30, 35)
    assert stored(keypoint_project, image_id)[0][0] == pytest.approx([30, 35], abs=1)
    assert len(ws.overlay.items["labels"].data) == 2
    key(ws, "l")
    assert not ws.overlay.items["labels"].isVisible() and not ws.overlay.items["bones"].isVisible()
    key(ws, "p")
    assert not ws.overlay.items["proposals"].isVisible()
    win.close()


def test_new_project_dialog_builds_a_skeleton(qtbot, keypoint_project, tmp_path):
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.set_sources([keypoint_project.parent])
    qtbot.waitUntil(lambda: not dialog.scanning)  # the files are checked on a worker
    QTest.keyClick(dialog.task, Qt.Key_Down)  # Keypoints
    editor = dialog.skeleton_editor
    assert dialog.task_pages.currentWidget() is editor
    for _ in range(4):
        QTest.mouseClick(editor.buttons["Add keypoint"], Qt.LeftButton)
    for row, name in enumerate(["nose", "tail", "ear_l", "ear_r"]):
        editor.rename(row, name)
    editor.keypoints.setCurrentRow(1)
    QTest.mouseClick(editor.buttons["Down"], Qt.LeftButton)
    QTest.mouseClick(editor.buttons["Down"], Qt.LeftButton)  # tail goes last
    editor.edges.first.setCurrentIndex(0)
    editor.edges.second.setCurrentIndex(3)
    QTest.mouseClick(editor.edges.add_button, Qt.LeftButton)  # nose - tail
    editor.symmetry.first.setCurrentIndex(1)
    editor.symmetry.second.setCurrentIndex(2)
    QTest.mouseClick(editor.symmetry.add_button, Qt.LeftButton)  # ear_l <-> ear_r
    editor.rename(0, "snout")  # edges follow a renamed keypoint
    assert editor.edges.list.item(0).text() == "snout - tail"
    dialog.target.setText(str(tmp_path / "new"))
    QTest.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert dialog.created == tmp_path / "new"
    with Project.open(dialog.created) as project:
        assert project.task == "keypoints" and project.classes() == []
        assert project.skeleton() == Skeleton(("snout", "ear_l", "ear_r", "tail"), ((0, 3),), ((1, 2),))


@pytest.fixture
def warnings(monkeypatch):
    """The warning boxes the window would show, as (title, text), instead of showing them."""
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append((title, text)))
    return shown


def exported(qtbot, win, out: Path) -> None:
    """Wait for the export thread to write ``out`` and the status bar to say so."""
    qtbot.waitUntil(lambda: win.statusBar().currentMessage().startswith("Exported ")
                    and str(out) in win.statusBar().currentMessage(), timeout=60_000)


def test_file_menu_exports_dlc_csv_and_coco_that_import_back(qtbot, show, keypoint_project, monkeypatch, tmp_path):
    with Project.open(keypoint_project) as project:
        first, second = [i.id for i in project.images()]
        project.set_keypoint_labels([(first, 0, 10.25, 20.5, "visible"), (first, 2, 30.0, 40.0, "occluded"),
                                     (second, 1, 0.0, 0.0, "absent")])
    win = open_window(show, keypoint_project)
    assert win.export_dlc_action.isEnabled() and not win.export_masks_action.isEnabled()
    assert win.export_model_action.isEnabled()  # TorchScript and its card, as for segmentation
    for suffix, action in (("csv", win.export_dlc_action), ("json", win.export_coco_action)):
        out = keypoint_project.parent / f"labels.{suffix}"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, out=out, **k: (str(out), ""))
        action.trigger()
        exported(qtbot, win, out)
        table = read_table(out)
        assert table.images == ["frame0.png", "frame1.png"] and table.skeleton.names == SKELETON.names
        assert table.xy[0, 0] == pytest.approx([10.25, 20.5])
    assert list(table.visibility[0]) == ["visible", "", "occluded"] and table.visibility[1, 1] == "absent"
    assert table.skeleton == SKELETON  # COCO keeps edges and symmetric pairs
    lines = (keypoint_project.parent / "labels.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[:3]] == ["scorer", "bodyparts", "coords"]
    again = Project.create(tmp_path / "again", task="keypoints")
    import_table(again, read_table(keypoint_project.parent / "labels.csv"), keypoint_project.parent, "labels.csv")
    assert again.keypoint_arrays(again.images()[0].id)[0][0] == pytest.approx([10.25, 20.5])
    again.close()
    win.close()


def test_file_menu_adds_frames_of_a_video(qtbot, show, keypoint_project, monkeypatch, warnings):
    video = write_video(keypoint_project.parent / "clip.avi", [(200, 40 + 10 * i, 40) for i in range(12)])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(video), ""))
    monkeypatch.setattr(QInputDialog, "getInt", lambda *a, **k: (3, True))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("evenly", True))
    win = show(MainWindow(keypoint_project, torch_threads=1))
    ws = win.workspace
    win.add_video_action.trigger()
    qtbot.waitUntil(lambda: ws.image_list.rowCount() == 5, timeout=120_000)  # the engine thread adds them
    with Project.open(keypoint_project) as project:
        frames = [i for i in project.images() if i.video is not None]
    assert [f.frame for f in frames] == [2, 6, 10]
    ws.image_list.cellClicked.emit(ws.image_list.row_of(frames[1].id), 0)  # open a frame and label it
    assert ws.image_id == frames[1].id and ws.viewer.image_shape == (48, 64)
    key(ws, "m")
    click(ws.viewer, 20, 30)
    assert stored(keypoint_project, frames[1].id)[1][0] == "visible"
    out = keypoint_project.parent / "labels.csv"  # exported frames become files the CSV names
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    win.export_all_frames_action.trigger()  # every frame, also the unlabelled ones
    win.export_dlc_action.trigger()
    exported(qtbot, win, out)
    assert "1 labelled, 4 without labels. The 3 video frames are saved beside it" in win.statusBar().currentMessage()
    table = read_table(out)
    assert table.images[2:] == [f"labeled-data/clip/img{f:05d}.png" for f in (2, 6, 10)]
    assert (keypoint_project.parent / table.images[3]).is_file()
    shutil.rmtree(keypoint_project.parent / "labeled-data")  # frames nowhere to be read: refused, said
    video.unlink()
    refused = keypoint_project.parent / "again.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(refused), ""))
    win.export_dlc_action.trigger()
    qtbot.waitUntil(lambda: bool(warnings), timeout=60_000)
    assert warnings == [("Cannot export the keypoints", "Cannot read image 'clip.avi': the file does not exist")]
    assert not refused.exists()
    win.close()


def test_export_needs_no_engine_and_a_refused_folder_is_said(qtbot, show, keypoint_project, monkeypatch, warnings):
    with Project.open(keypoint_project) as project:
        project.set_keypoint_labels([(project.images()[0].id, 0, 10.0, 20.0, "visible")])
    win = open_window(show, keypoint_project)  # engine thread off: export does not wait for it
    out = keypoint_project.parent / "labels.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    win.export_dlc_action.trigger()
    exported(qtbot, win, out)
    assert read_table(out).xy[0, 0] == pytest.approx([10.0, 20.0]) and not warnings
    blocked = keypoint_project.parent / "blocked"
    blocked.write_text("a file where the export wants a folder")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(blocked / "labels.csv"), ""))
    win.export_dlc_action.trigger()
    qtbot.waitUntil(lambda: bool(warnings), timeout=60_000)
    assert warnings[0][0] == "Cannot export the keypoints" and "labels.csv" in warnings[0][1]
    win.close()



def test_export_runs_in_the_background_and_closing_waits_for_it(qtbot, show, keypoint_project, monkeypatch, warnings):
    import threading

    from desktop.gui import keypoint_workspace

    with Project.open(keypoint_project) as project:
        project.set_keypoint_labels([(project.images()[0].id, 0, 10.0, 20.0, "visible")])
    release = threading.Event()
    real = keypoint_workspace.export_project_file
    monkeypatch.setattr(keypoint_workspace, "export_project_file",
                        lambda folder, path, all_frames: release.wait(30) and real(folder, path, all_frames))
    win = open_window(show, keypoint_project)
    out = keypoint_project.parent / "labels.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    win.export_dlc_action.trigger()  # returns at once: the window stays responsive
    assert not out.exists() and win.statusBar().currentMessage() == "Exporting the keypoints to labels.csv..."
    win.export_dlc_action.trigger()  # a second one while the first is written is refused, said
    assert warnings == [("Cannot export the keypoints", "An export is still being written; try again when it is done.")]
    threading.Timer(0.3, release.set).start()
    win.close()  # waits for the export instead of losing it
    assert read_table(out).xy[0, 0] == pytest.approx([10.0, 20.0])


def test_the_panel_shows_the_models_confidence_and_the_strategys_score_apart(qtbot):
    from desktop.engine.service.messages import KeypointQuery
    from desktop.gui.keypoint_panel import KeypointPanel

    panel = KeypointPanel(Skeleton.from_names(["nose", "tail"], [], []))
    qtbot.addWidget(panel)
    panel.show_query(KeypointQuery(1, 0, 10.0, 20.0, 0.8, "flip", 12.4), remaining=2)
    assert panel.query.text() == "'nose': proposal 80% sure; asked as flip: 12 px apart (2 to go)"
    panel.show_query(KeypointQuery(2, 1, 10.0, 20.0, None), remaining=1)  # no model yet: nothing proposed
    assert panel.query.text().startswith("Click where 'tail' is")
