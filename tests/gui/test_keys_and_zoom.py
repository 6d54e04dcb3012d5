"""Keys and zoom on the real window (issue 17, items 1, 2, 9, 10): every shortcut bound once;
labelling keys that reach the labelling wherever the focus is, except in a text field; zoom to
fit, 1:1 and zoom bounds on images and slides; and a visible, key-safe move to the next image.

Keys go to the window as the platform sends them (``QTest.keyClick`` on its ``QWindow``): the
shortcut map first, then the focused widget, as a person's key press would."""
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit

from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.shortcuts import SHORTCUTS
from desktop.gui.zoom import MAX_SCREEN_PX, MIN_FITTED

from .conftest import SIZE, click, make_blob_project
from .test_keypoints import ask, make_keypoint_project
from .test_slides import slide_project, wait_for_tiles, wheel


def press(win, key, modifiers=Qt.NoModifier):
    QTest.keyClick(win.windowHandle(), key, modifiers)


def open_window(show, folder):
    return show(MainWindow(folder, start_engine=False))


def labels_of(folder, image_id):
    with Project.open(folder) as project:
        return project.labels(image_id)


def click_row(view, row):
    """A real click on a row of a list or table widget: it takes the keyboard focus."""
    where = view.visualRect(view.model().index(row, 0)).center()
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, where)


# ----- item 1: every shortcut bound once -------------------------------------------------------
def table_keys() -> set[str]:
    """The keys the F1 table names, one by one ('Ctrl+Shift+Z, Ctrl+Y' is two)."""
    return {part.strip() for key, _ in SHORTCUTS for group in key.split(" / ") for part in group.split(", ")}


@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_every_shortcut_is_bound_once_listed_in_the_f1_table_and_redo_works(show, tmp_path, task):
    make = make_blob_project if task == "segmentation" else make_keypoint_project
    win = open_window(show, make(tmp_path / "data"))
    assert win.workspace.project.task == task
    bound = Counter()
    for action in win.findChildren(QAction):
        if not action.associatedObjects():  # in no menu or toolbar: no key reaches it
            continue
        keys = [k.toString() for k in action.shortcuts()]
        shown = action.text().partition("\t")[2]  # a key handle_key decides, shown in the menu
        keys += [k.strip() for k in shown.split(",") if k.strip()]
        bound.update(keys)
    assert bound, "no shortcut found"
    assert [key for key, n in bound.items() if n > 1] == []
    assert set(bound) - table_keys() == set()  # F1 lists every bound key
    assert win.workspace.redo_action.shortcuts() == [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")]
    stack = win.workspace.session.undo_stack
    press(win, "m")  # free clicking
    click(win.workspace.viewer, 50, 60)
    for redo in ((Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier), (Qt.Key_Y, Qt.ControlModifier)):
        press(win, Qt.Key_Z, Qt.ControlModifier)
        assert stack.index() == 0
        press(win, *redo)
        assert stack.index() == 1
    win.close()


# ----- item 2: keys reach the labelling wherever the focus is ----------------------------------
def test_keys_answer_after_a_click_on_a_side_panel_but_are_text_in_a_text_field(show, tmp_path):
    folder = make_blob_project(tmp_path / "data", images=20)
    with Project.open(folder) as project:
        first = project.images()[0].id
        asked = project.add_queries(first, np.array([[70, 70], [10, 150], [120, 20]]), "margin")
    win = open_window(show, folder)
    win.resize(1200, 500)  # too short for 20 rows: the image list scrolls
    ws = win.workspace
    click_row(ws.label_panel.class_list, 0)
    assert QApplication.focusWidget() is ws.label_panel.class_list
    press(win, "2")  # answers the query, not a search in the list
    assert [(lab.query_id, lab.class_id) for lab in labels_of(folder, first)] == [(asked[0], ws.classes[1].id)]

    scrollbar = ws.image_list.verticalScrollBar()
    assert scrollbar.isVisible()
    QTest.mouseClick(scrollbar, Qt.LeftButton, Qt.NoModifier, QPoint(scrollbar.width() // 2, scrollbar.height() - 30))
    press(win, "1")
    assert [lab.query_id for lab in labels_of(folder, first)] == asked[:2]
    press(win, "n")  # the next image, not a jump in the list
    second = ws.image_id
    assert second != first and ws.image_list.selectedItems()[0].data(Qt.UserRole) == second

    field = QLineEdit()
    win.statusBar().addPermanentWidget(field)  # any text field of the window: keys are text there
    field.setFocus()
    for key in "2n":
        press(win, key)
    press(win, Qt.Key_Return)  # a line edit passes Enter on to its parents: still not a labelling key
    assert field.text() == "2n" and ws.image_id == second
    assert [lab.query_id for lab in labels_of(folder, first)] == asked[:2]
    win.close()


def test_keys_answer_after_a_menu_closed_with_escape(show, blob_project):
    with Project.open(blob_project) as project:
        first = project.images()[0].id
        asked = project.add_queries(first, np.array([[70, 70], [10, 150]]), "margin")
    win = open_window(show, blob_project)
    bar = win.menuBar()
    QTest.mouseClick(bar, Qt.LeftButton, Qt.NoModifier, bar.actionGeometry(win.view_menu.menuAction()).center())
    assert QApplication.activePopupWidget() is win.view_menu
    QTest.keyClick(win.view_menu, Qt.Key_Escape)
    assert QApplication.activePopupWidget() is None
    press(win, "2")
    assert [lab.query_id for lab in labels_of(blob_project, first)] == asked[:1]
    assert QApplication.focusWidget() is not bar  # the menu bar let go of the keyboard
    win.close()


def test_keypoint_keys_after_a_click_on_the_keypoint_list(show, tmp_path):
    folder = make_keypoint_project(tmp_path / "data")
    with Project.open(folder) as project:
        first = project.images()[0].id
    ask(folder, first, [(2, 50, 60, 0.9), (0, 30, 30, 0.5), (1, 100, 100, 0.2)])
    win = open_window(show, folder)
    ws = win.workspace
    click_row(ws.label_panel.keypoint_list, 1)
    assert QApplication.focusWidget() is ws.label_panel.keypoint_list
    press(win, Qt.Key_Return)  # accept the asked keypoint's proposal
    press(win, "v")  # the next one is occluded
    with Project.open(folder) as project:
        xy, visibility = project.keypoint_arrays(first)
    assert list(visibility) == ["occluded", "", "visible"] and xy[2] == pytest.approx([50, 60])
    win.close()


@pytest.fixture
def slide_window(show, tmp_path, qtbot):
    path = tmp_path / "slide.ome.tif"
    levels = generate_ome_tiff(path, 2048)
    win = open_window(show, slide_project(tmp_path / "p", (path, (2048, 2048, levels))))
    wait_for_tiles(qtbot, win.workspace.viewer)
    yield win
    win.close()


def test_slide_keys_after_a_click_on_the_class_list(slide_window):
    win, ws = slide_window, slide_window.workspace
    assert ws.viewer is ws.slides.viewer
    click_row(ws.label_panel.class_list, 0)
    assert ws.session.active_class.name == "glass"
    press(win, "2")  # no query open: the key picks the active class
    assert ws.session.active_class.name == "tissue"
    press(win, "q")
    assert not ws.viewer.layer_visible("queries")


# ----- item 9: fit, 1:1 and zoom bounds -------------------------------------------------------
def scale(viewer) -> float:
    """Screen pixels per image pixel."""
    return 1 / max(viewer.view.viewPixelSize())


def zoom_bounds_and_keys(win, viewer):
    """Fitted, then 25 wheel steps out, 40 in, then 0, Home and F, as a person would."""
    centre = viewer.viewport().rect().center()
    fitted = scale(viewer)
    wheel(viewer, centre, -25)
    assert scale(viewer) >= fitted * MIN_FITTED * 0.99  # the image is still there
    wheel(viewer, centre, 40)
    assert scale(viewer) <= MAX_SCREEN_PX * 1.01
    assert scale(viewer) > MAX_SCREEN_PX * 0.7  # zoomed in as far as allowed
    press(win, "0")
    assert scale(viewer) == pytest.approx(1.0)
    press(win, Qt.Key_Home)
    assert scale(viewer) == pytest.approx(fitted)
    wheel(viewer, centre, 3)
    press(win, "f")
    assert scale(viewer) == pytest.approx(fitted)
    view_menu = {a.text().partition("\t")[0]: a for a in win.view_menu.actions()}
    view_menu["&1:1 (one image pixel per screen pixel)"].trigger()
    assert scale(viewer) == pytest.approx(1.0)
    view_menu["&Fit the image"].trigger()
    assert scale(viewer) == pytest.approx(fitted)


def test_image_zoom_is_bounded_and_fit_and_one_to_one_keys(show, blob_project):
    win = open_window(show, blob_project)
    zoom_bounds_and_keys(win, win.workspace.viewer)
    win.close()


def test_slide_zoom_is_bounded_and_fit_and_one_to_one_keys(slide_window):
    zoom_bounds_and_keys(slide_window, slide_window.workspace.viewer)


def test_a_class_key_set_by_the_project_wins_over_a_view_key(show, tmp_path):
    """Only a class key the project set may take F or 0: the keys 1..9 classes get by position never do."""
    picture = tmp_path / "picture.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(picture)
    folder = tmp_path / "p"
    with Project.create(folder, classes=[("fat", "#ffcc00", "f"), ("cell", "#ff0000", None)]) as project:
        project.add_image(picture, SIZE, SIZE)
    win = open_window(show, folder)
    ws = win.workspace
    wheel(ws.viewer, ws.viewer.viewport().rect().center(), 3)
    zoomed = scale(ws.viewer)
    press(win, "2")
    assert ws.session.active_class.name == "cell"
    press(win, "f")  # the project's key for 'fat': chooses it, the zoom stays
    assert ws.session.active_class.name == "fat" and scale(ws.viewer) == zoomed
    press(win, "0")  # no class has it
    assert scale(ws.viewer) == pytest.approx(1.0)
    win.close()


# ----- item 10: a visible move to the next image; keys for the old one are not applied --------
def test_the_move_to_the_next_image_is_shown_and_a_key_just_after_it_is_not_applied(qtbot, show, blob_project):
    with Project.open(blob_project) as project:
        first, second = [i.id for i in project.images()]
        asked = project.add_queries(first, np.array([[70, 70], [10, 150]]), "margin")
        waiting = project.add_queries(second, np.array([[60, 60]]), "margin")
        names = {i.id: i.name for i in project.images()}
    win = open_window(show, blob_project)
    ws = win.workspace
    press(win, "2")
    press(win, "1")  # the last query of the first image: stored there, and the next image opens
    assert [lab.query_id for lab in labels_of(blob_project, first)] == asked
    assert ws.image_id == second and ws.image_list.selectedItems()[0].data(Qt.UserRole) == second
    press(win, "2")  # typed on, for the image just left: not an answer for this one
    assert labels_of(blob_project, second) == []
    assert "ignored" in win.statusBar().currentMessage()
    name, = [label for label in ws.viewer.findChildren(QLabel) if label.text() == names[second]]  # over the image
    assert name.isVisible()
    QTest.qWait(700)
    press(win, "2")  # once the new image has been seen, keys answer again
    assert [lab.query_id for lab in labels_of(blob_project, second)] == waiting
    qtbot.waitUntil(lambda: not name.isVisible(), timeout=3000)  # the name fades away
    win.close()
