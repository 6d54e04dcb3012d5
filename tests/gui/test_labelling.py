"""Labelling through real mouse clicks and key presses on the real window (engine thread off:
these tests are about what the GUI writes, not about training)."""
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from desktop.engine.project.store import Project
from desktop.engine.service.messages import QueryPoint
from desktop.gui.app import MainWindow

from .conftest import click


@pytest.fixture
def window(show, blob_project):
    win = MainWindow(blob_project, start_engine=False)
    show(win)
    yield win
    win.close()


def stored(folder):
    with Project.open(folder) as project:
        return project.labels(), project.queries(status=None), project.classes()


def test_clicks_store_labels_where_they_land_and_undo_redo(window, blob_project):
    ws = window.workspace
    QTest.keyClick(ws.viewer, "2")  # no query open: the key picks the active class
    assert ws.session.active_class.name == "blob"
    click(ws.viewer, 50, 70)
    QTest.keyClick(ws.viewer, "1")
    click(ws.viewer, 130.4, 12.6)
    labels, _, classes = stored(blob_project)
    names = {c.id: c.name for c in classes}
    assert [(names[lab.class_id]) for lab in labels] == ["blob", "background"]
    assert labels[0].x == pytest.approx(50, abs=1) and labels[0].y == pytest.approx(70, abs=1)
    assert labels[1].x == pytest.approx(130.4, abs=1) and labels[1].y == pytest.approx(12.6, abs=1)
    assert len(ws.viewer.items["labels"].data) == 2

    click(ws.viewer, 53, 66, Qt.RightButton)  # deletes the nearest label, the blob one
    labels, _, _ = stored(blob_project)
    assert [lab.id for lab in labels] == [labels[0].id] and names[labels[0].class_id] == "background"

    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # undo the delete
    assert len(stored(blob_project)[0]) == 2
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # undo the background point
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # undo the blob point
    assert stored(blob_project)[0] == []
    assert len(ws.viewer.items["labels"].data) == 0
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # redo the blob point
    labels, _, _ = stored(blob_project)
    assert len(labels) == 1 and labels[0].x == pytest.approx(50, abs=1)


def test_keys_answer_queries_one_after_another(qtbot, show, blob_project):
    with Project.open(blob_project) as project:
        image_id = project.images()[0].id
        asked = project.add_queries(image_id, np.array([[70, 70], [10, 150], [120, 20]]), "margin")
    win = MainWindow(blob_project, start_engine=False)
    show(win)
    ws = win.workspace
    assert ws.session.current.query_id == asked[0]
    assert list(ws.viewer.current_ring.data["x"]) == [70.5]

    QTest.keyClick(ws.viewer, "2")  # the blob
    assert ws.session.current.query_id == asked[1]
    assert list(ws.viewer.current_ring.data["x"]) == [150.5]
    QTest.keyClick(ws.viewer, "u")  # unsure: stored, never asked again
    assert ws.session.current.query_id == asked[2]
    QTest.keyClick(ws.viewer, "s")  # skipped
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # and asked again
    QTest.keyClick(ws.viewer, "1")
    labels, queries, classes = stored(blob_project)
    status = {q.id: q.status for q in queries}
    assert status == {asked[0]: "answered", asked[1]: "unsure", asked[2]: "answered"}
    assert [(lab.x, lab.y, lab.query_id) for lab in labels] == [(70, 70, asked[0]), (20, 120, asked[2])]
    assert all(lab.seconds is not None and 0 <= lab.seconds < 60 for lab in labels)
    qtbot.waitUntil(lambda: ws.label_panel.seconds.text().endswith(" s"))  # refreshed once the clicks pause

    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # the last answer is undone: asked again
    assert ws.session.current.query_id == asked[2]
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)  # 'unsure' is undone too
    assert {q.id: q.status for q in stored(blob_project)[1]}[asked[1]] == "open"
    win.close()


def test_layer_keys_and_next_image(window):
    ws = window.workspace
    first = ws.image_id
    for key, layer in [("p", "prediction"), ("l", "labels"), ("q", "queries"), ("i", "image")]:
        QTest.keyClick(ws.viewer, key)
        assert not ws.viewer.layer_visible(layer)
        QTest.keyClick(ws.viewer, key)
        assert ws.viewer.layer_visible(layer)
    assert not ws.viewer.layer_visible("uncertainty")
    QTest.keyClick(ws.viewer, "h")
    assert ws.viewer.layer_visible("uncertainty")
    opacity = ws.viewer.items["prediction"].opacity()
    QTest.keyClick(ws.viewer, "]")
    assert ws.viewer.items["prediction"].opacity() == pytest.approx(opacity + 0.1)
    QTest.keyClick(ws.viewer, "[")
    QTest.keyClick(ws.viewer, "[")
    assert ws.viewer.items["prediction"].opacity() == pytest.approx(opacity - 0.1)
    QTest.keyClick(ws.viewer, "n")
    assert ws.image_id != first and ws.image_list.selectedItems()[0].data(Qt.UserRole) == ws.image_id


def test_the_current_query_is_centred_as_far_as_the_image_reaches(window):
    viewer = window.workspace.viewer
    whole = viewer.view.viewRect()
    viewer.set_current_query(150, 10)  # the whole picture is on screen: nothing moves
    assert viewer.view.viewRect() == whole
    viewer.view.scaleBy((0.25, 0.25))  # zoom in to a 40-pixel-wide view
    half = viewer.view.viewRect().width() / 2
    viewer.set_current_query(100, 60)
    centre = viewer.view.viewRect().center()
    assert (centre.x(), centre.y()) == (pytest.approx(100.5), pytest.approx(60.5))
    viewer.set_current_query(158, 2)  # by the corner: the view stops at the image's edges
    rect = viewer.view.viewRect()
    assert rect.right() == pytest.approx(160) and rect.top() == pytest.approx(0)
    assert rect.width() / 2 == pytest.approx(half)


def test_the_same_query_sent_again_with_its_classes_leaves_the_view_where_the_expert_put_it(window):
    """A large image's open queries come at once, and again with the model's classes once its
    features are computed; only a new question is centred."""
    ws = window.workspace
    viewer = ws.viewer
    ids = ws.project.add_queries(ws.image_id, np.array([[60, 100], [20, 30]]), "margin")
    viewer.view.scaleBy((0.25, 0.25))
    ws.session.set_queries(ws.image_id, [QueryPoint(ids[0], 100, 60, ()), QueryPoint(ids[1], 30, 20, ())])
    centre = viewer.view.viewRect().center()
    assert (centre.x(), centre.y()) == (pytest.approx(100.5), pytest.approx(60.5))
    viewer.view.translateBy(x=-30)  # the expert looks elsewhere meanwhile
    moved = viewer.view.viewRect()
    ws.session.set_queries(ws.image_id, [QueryPoint(ids[0], 100, 60, ((0, 0.7), (1, 0.3))),
                                         QueryPoint(ids[1], 30, 20, ((1, 0.6), (0, 0.4)))])
    assert viewer.view.viewRect() == moved and ws.session.current.candidates == ((0, 0.7), (1, 0.3))
    QTest.keyClick(viewer, "1")  # answered: the next question is centred
    centre = viewer.view.viewRect().center()
    assert (centre.x(), centre.y()) == (pytest.approx(30.5), pytest.approx(20.5))


def test_a_click_the_full_disk_refuses_is_reported_and_not_stacked(window, blob_project):
    from desktop.engine.errors import ProjectError

    ws = window.workspace
    messages = []
    ws.message.connect(messages.append)
    QTest.keyClick(ws.viewer, "2")
    click(ws.viewer, 50, 70)
    conn = ws.project._conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    image_id = ws.image_id
    blob = ws.session.active_class.id
    with pytest.raises(ProjectError):  # fill what room is left, as a full disk would
        for i in range(100_000):
            ws.project.add_label(image_id, 1 + i % 100, 1, blob)
    before = len(ws.project.labels())
    steps = ws.session.undo_stack.count()
    click(ws.viewer, 60, 80)  # refused: said in words, no undo step for a label that is not on disk
    assert messages and "disk is full" in messages[-1]
    assert ws.session.undo_stack.count() == steps and len(ws.project.labels()) == before
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: labelling goes on
    click(ws.viewer, 60, 80)
    assert ws.session.undo_stack.count() == steps + 1 and len(ws.project.labels()) == before + 1


def test_many_labels_are_drawn_by_what_changed(qtbot, show, blob_project):
    """With thousands of labels on an image a click appends one point, a delete redraws from
    memory, an undo brings it back, and the drawing always matches the store."""
    with Project.open(blob_project) as project:
        image_id, class_id = project.images()[0].id, project.classes()[0].id
        rng = np.random.default_rng(0)
        project.add_labels(image_id, [(float(x), float(y), class_id) for x, y in rng.uniform(0, 159, (5000, 2))])
    win = show(MainWindow(blob_project, start_engine=False))
    ws = win.workspace
    assert len(ws.viewer.items["labels"].data) == 5000
    QTest.keyClick(ws.viewer, Qt.Key_M)
    QTest.keyClick(ws.viewer, "2")
    click(ws.viewer, 80.4, 80.6)
    assert len(ws.viewer.items["labels"].data) == 5001
    drawn = ws.viewer.items["labels"].data
    assert (drawn["x"][-1], drawn["y"][-1]) == pytest.approx((80.4 + 0.5, 80.6 + 0.5), abs=1)
    click(ws.viewer, 80.4, 80.6, Qt.RightButton)  # deletes the nearest: the one just made
    assert len(ws.viewer.items["labels"].data) == 5000
    QTest.keyClick(ws.viewer, Qt.Key_Z, Qt.ControlModifier)
    assert len(ws.viewer.items["labels"].data) == 5001
    with Project.open(blob_project) as project:
        assert project.label_count(image_id) == 5001
    assert ws.image_list.item(ws.image_list.row_of(image_id), 1).value == 5001
    win.close()
