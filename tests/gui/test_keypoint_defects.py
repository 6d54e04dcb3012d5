"""Keypoint labelling defects of issue 17 (items 3, 4 and 15), driven by real mouse drags, key
presses and menu actions on the real window: which keypoint a drag takes, a proposal that stays
where it was shown, N and the automatic advance passing finished images over, and the exports."""
import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRectF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from desktop.engine.keypoints.formats import read_table
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project
from desktop.engine.service.messages import ImageRanking, KeypointPrediction
from desktop.gui.app import MainWindow
from tests.gui.test_keypoints import ask, drag, exported, key, open_window, stored

SIZE = 160
NAMES = ("nose", "paw1LH", "paw2RH", "tailBase")


def make_project(folder, images=3, names=NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "project", task="keypoints")
    project.set_skeleton(Skeleton(names))
    for i in range(images):
        pixels = np.full((SIZE, SIZE, 3), 40 + 30 * i, np.uint8)
        pixels[60:100, 50 + 10 * i:90 + 10 * i] = 220  # something for a model to see
        Image.fromarray(pixels).save(folder / f"frame{i}.png")
        project.add_image(folder / f"frame{i}.png", SIZE, SIZE)
    ids = [info.id for info in project.images()]
    project.close()
    return folder / "project", ids


def label_all(folder, image_id, k=len(NAMES)):
    with Project.open(folder) as project:
        project.set_keypoint_labels([(image_id, i, 20.0 + 25 * i, 30.0 + 20 * i, "visible") for i in range(k)])


def test_the_asked_keypoint_then_the_nearest_wins_a_drag(show, tmp_path):
    folder, (first, *_) = make_project(tmp_path)
    with Project.open(folder) as project:
        project.set_keypoint_label(first, 3, 40.0, 40.0, "visible")  # tailBase is labelled
    # paw1LH is asked; paw2RH's proposal lies one pixel beside it, drawn above it; nose's next to tailBase
    ask(folder, first, [(1, 80, 80, 0.9), (2, 81, 80, 0.5), (0, 41, 40, 0.2)])
    win = open_window(show, folder)
    ws = win.workspace
    assert ws.session.current.keypoint == 1
    drag(ws.viewer, (81, 80), (110, 120))  # pressed nearer paw2RH's ring: the asked paw1LH moves all the same
    xy, vis = stored(folder, first)
    assert list(vis) == ["", "visible", "", "visible"] and xy[1] == pytest.approx([110, 120], abs=1.5)
    assert ws.session.current.keypoint == 2 and ws.session.proposal(2)[:2] == (81, 80)  # untouched

    drag(ws.viewer, (40.8, 40), (20, 130))  # on tailBase's label and nose's proposal: the nearer, nose, moves
    xy, vis = stored(folder, first)
    assert list(vis) == ["visible", "visible", "", "visible"]
    assert xy[0] == pytest.approx([20, 130], abs=1.5) and xy[3] == pytest.approx([40, 40])
    win.close()


def test_enter_takes_the_place_the_ring_showed_while_a_new_model_asks_again(qtbot, show, tmp_path):
    """The engine trains on two labelled images and asks about the image in view afresh: the
    keypoint asked stays asked where it was shown, and Enter puts it there."""
    folder, (first, second, third) = make_project(tmp_path)
    for image_id in (second, third):
        label_all(folder, image_id)
    old = ask(folder, first, [(2, 7.25, 9.75, 0.9), (0, 30, 30, 0.5), (1, 50, 50, 0.4), (3, 70, 70, 0.3)])
    win = show(MainWindow(folder, torch_threads=1))
    ws = win.workspace
    assert ws.image_id == first and ws.session.current.keypoint == 2
    assert list(ws.viewer.current_ring.data["x"]) == [7.75]
    qtbot.waitUntil(lambda: any(q.query_id not in old for q in ws.session.queries), timeout=180_000)
    with Project.open(folder) as project:
        engine_query = next(q for q in project.queries(first) if q.keypoint == 2)
    assert engine_query.id not in old and (engine_query.x, engine_query.y) != (7.25, 9.75)  # asked elsewhere...
    assert ws.session.current.keypoint == 2 and list(ws.viewer.current_ring.data["x"]) == [7.75]  # ...shown here
    key(ws, Qt.Key_Return)
    xy, vis = stored(folder, first)
    assert vis[2] == "visible" and xy[2] == pytest.approx([7.25, 9.75])  # where the ring was
    with Project.open(folder) as project:
        assert project.keypoint_labels(first)[0].query_id == engine_query.id  # the open query is answered
    win.close()


def test_enter_takes_the_ring_when_the_prediction_of_the_image_arrives_after_it(show, tmp_path):
    """A query asked by a strategy whose score is no confidence (entropy) has none until the
    image's prediction comes; the proposal is still where the ring is, not where the prediction is."""
    folder, (first, *_) = make_project(tmp_path)
    with Project.open(folder) as project:
        project.add_keypoint_queries(first, [(1, 33.0, 44.0, 0.8)], "entropy", 1)
    win = open_window(show, folder)
    ws = win.workspace
    assert ws.session.current.keypoint == 1 and list(ws.viewer.current_ring.data["x"]) == [33.5]
    ws._prediction(KeypointPrediction(first, ws.bridge.generation, 1, np.array([[5., 5.], [120., 20.], [80., 140.],
                                                                                [60., 60.]]),
                                      np.full(4, 0.7), np.full(4, 0.3)))  # as the engine sends it
    ws.painter.stop()
    ws._paint_prediction()
    assert ws.session.proposal(1) == (33.0, 44.0, 0.7)  # drawn at the ring, coloured by the prediction
    key(ws, Qt.Key_Return)
    xy, vis = stored(folder, first)
    assert vis[1] == "visible" and xy[1] == pytest.approx([33, 44])
    win.close()


def test_n_and_the_advance_pass_finished_images_over(show, tmp_path):
    """A ranking made before two images were finished still puts them first: neither the
    advance after the last keypoint nor N goes to them, and a correction on a finished image
    stays on it."""
    folder, (first, second, third) = make_project(tmp_path)
    label_all(folder, second)
    ask(folder, first, [(k, 20.0 + 10 * k, 40.0, 0.5) for k in range(4)])
    win = open_window(show, folder)
    ws = win.workspace
    ws._ranking(ImageRanking(1, {first: 0.9, second: 0.8, third: 0.1}))  # as the engine sent it, earlier
    for _ in range(4):
        key(ws, Qt.Key_Return)  # accept each proposal: the last one finishes the image
    assert (stored(folder, first)[1] == "visible").all()
    assert ws.image_id == third  # not the finished second image, ranked above it
    QTest.qWait(700)  # keys are ignored for a moment after a move to another image
    key(ws, "n")
    assert ws.image_id == third and win.statusBar().currentMessage() == "No other image has a keypoint left to label."

    row = ws.image_list.row_of(second)
    QTest.mouseClick(ws.image_list.viewport(), Qt.LeftButton, Qt.NoModifier,
                     ws.image_list.visualItemRect(ws.image_list.item(row, 0)).center())
    assert ws.image_id == second
    drag(ws.viewer, (45, 50), (60, 65))  # a finished image's label corrected: the image stays in view
    assert stored(folder, second)[0][1] == pytest.approx([60, 65], abs=1.5) and ws.image_id == second
    QTest.qWait(700)
    key(ws, "n")
    assert ws.image_id == third
    win.close()


def test_file_menu_exports_the_labelled_frames_unless_all_are_ticked(qtbot, show, tmp_path, monkeypatch):
    folder, (first, second, third) = make_project(tmp_path)
    label_all(folder, second)
    win = open_window(show, folder)
    out = tmp_path / "labels.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    win.export_dlc_action.trigger()
    exported(qtbot, win, out)
    assert win.statusBar().currentMessage() == f"Exported the keypoints of 1 labelled image to {out}."
    assert read_table(out).images == ["frame1.png"]

    coco = tmp_path / "labels.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(coco), ""))
    win.export_all_frames_action.trigger()  # File > ...all frames, also unlabelled ones: ticked
    assert win.export_all_frames_action.isChecked()
    win.export_coco_action.trigger()
    exported(qtbot, win, coco)
    assert win.statusBar().currentMessage() == f"Exported 3 images to {coco}: 1 labelled, 2 without labels."
    data = json.loads(coco.read_text())
    assert len(data["images"]) == 3 and len(data["annotations"]) == 1
    win.close()


def test_file_menu_exports_the_keypoint_model_that_finds_the_apps_keypoints(qtbot, show, tmp_path, monkeypatch):
    from desktop.engine.images.pictures import read_image
    from desktop.engine.keypoints.export import exported_keypoints

    folder, (first, second, third) = make_project(tmp_path)
    for image_id in (second, third):
        label_all(folder, image_id)
    win = show(MainWindow(folder, torch_threads=1))
    ws = win.workspace
    assert win.export_model_action.isEnabled()
    with qtbot.waitSignal(ws.bridge.published, timeout=180_000):
        pass
    key(ws, "t")  # pause training: the model exported is the one whose keypoints are on screen
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "model"))
    win.export_model_action.trigger()
    qtbot.waitUntil(lambda: win.statusBar().currentMessage().startswith("Exported model version"), timeout=120_000)
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["bodyparts"] == list(NAMES) and card["task"] == "keypoints"
    qtbot.waitUntil(lambda: ws.viewer.overlay_version == card["model_version"], timeout=60_000)
    xy, _ = exported_keypoints(tmp_path / "model" / "model.pt", read_image(tmp_path / "frame0.png"))
    # what the app draws, to a hundredth of a pixel (the scripted model sums in another order)
    np.testing.assert_allclose(xy, ws.session.predicted[0], atol=1e-2)
    win.close()


def test_zooming_a_keypoint_image_tells_the_engine_nothing_it_does_not_know(qtbot, show, tmp_path):
    """The view of a segmentation image goes to the engine (a large image is predicted by it); a
    keypoint engine refused that message, and its refusal replaced the status bar's text."""
    folder, _ = make_project(tmp_path)
    win = show(MainWindow(folder, torch_threads=1))
    ws = win.workspace
    failed = []
    ws.bridge.failed.connect(failed.append)
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=120_000)
    ws.viewer.view.setRange(QRectF(10, 10, 40, 40), padding=0)
    qtbot.wait(1000)  # the view settles after 120 ms; the engine answers within its loop's 50 ms
    assert failed == []
    win.close()
