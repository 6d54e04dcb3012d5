"""The window puts the image first (issue 17, items 7, 18, 19): the viewer's share of the window,
nothing moving when a text changes, the toolbar, Help > About, counts in words, the query's
marker and magnified inset, the banner that stays, and a demo that says what to do. Real
windows, real clicks and key presses; the engine thread is off (what it would store, queries,
is put in the project first)."""
from importlib import metadata

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.engine.project.demo import DEMO_CLASSES, create_demo_project
from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.new_project import NewProjectDialog
from desktop.gui.query_inset import SCALE, SPAN
from desktop.gui.shortcuts import ShortcutsDialog
from desktop.plural import plural
from desktop.resources import ui_colour

from .test_keypoints import make_keypoint_project

WIDTH = 1400


def open_window(show, folder):
    win = show(MainWindow(folder, start_engine=False))
    win.resize(WIDTH, 860)
    QTest.qWait(20)  # the layout settles
    return win


def press(widget, position):
    """A real left click on a widget at a widget position."""
    QTest.mouseClick(widget, Qt.LeftButton, Qt.NoModifier, position)


def click_menu_item(menu_owner_click, text):
    """Click what opens a popup menu (its own event loop), then the item ``text`` in that menu,
    both with the mouse. Returns the item's text that was clicked, or None if none matched."""
    clicked = []

    def choose():
        menu = QApplication.activePopupWidget()
        if menu is None:
            QTimer.singleShot(10, choose)
            return
        for action in menu.actions():
            if action.text().replace("&", "").startswith(text):
                clicked.append(action.text())
                press(menu, menu.actionGeometry(action).center())
                return
        menu.close()

    QTimer.singleShot(0, choose)
    menu_owner_click()
    return clicked[0] if clicked else None


def noisy_project(folder, size=(120, 90)):
    """A picture of random pixels (every neighbourhood differs), with three queries asked."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[40:51, 55:66] = (255, 0, 255)  # a magenta patch around (60, 45): the marker's centre shows it
    Image.fromarray(pixels).save(folder / "noise.png")
    project = Project.create(folder / "project", classes=[("background", "#0072b2", "1"), ("thing", "#e69f00", "2")])
    image_id = project.add_image(folder / "noise.png", *size)
    project.add_queries(image_id, np.array([[45, 60], [3, 2], [80, 110]]), "margin")  # (row, column)
    project.close()
    return folder / "project", pixels


# ----- item 18: the image takes most of the window --------------------------------------------
@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_the_viewer_takes_most_of_the_window_in_both_workspaces(show, tmp_path, blob_project, task):
    folder = blob_project if task == "segmentation" else make_keypoint_project(tmp_path / "kp")
    win = open_window(show, folder)
    assert win.width() == WIDTH
    assert win.workspace.viewers.width() >= 0.6 * WIDTH
    win.close()


# ----- item 7: nothing moves when a text changes ---------------------------------------------
@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_nothing_moves_when_the_mode_text_changes(show, tmp_path, blob_project, task):
    folder = blob_project if task == "segmentation" else make_keypoint_project(tmp_path / "kp")
    win = open_window(show, folder)
    ws = win.workspace
    before, text = ws.viewers.geometry(), ws.label_panel.mode.text()
    view_before = ws.viewer.view.viewRect()
    QTest.keyClick(ws.viewer, Qt.Key_M)
    QTest.qWait(20)
    assert ws.session.mode == "free" and ws.label_panel.mode.text() != text
    assert ws.viewers.geometry() == before
    assert ws.viewer.view.viewRect() == view_before  # and the image is not rescaled under the cursor
    QTest.keyClick(ws.viewer, Qt.Key_M)
    QTest.qWait(20)
    assert ws.session.mode == "query" and ws.viewers.geometry() == before
    win.close()


# ----- item 18: the toolbar ----------------------------------------------------------------------
def test_toolbar_buttons_switch_the_mode_fit_the_image_and_show_the_layers(show, blob_project):
    win = open_window(show, blob_project)
    ws = win.workspace
    button = win.toolbar.widgetForAction

    press(button(win.mode_actions["free"]), QPoint(8, 8))
    assert ws.session.mode == "free" and win.mode_actions["free"].isChecked()
    assert ws.label_panel.mode.text().startswith("free clicking")
    press(button(win.mode_actions["query"]), QPoint(8, 8))
    assert ws.session.mode == "query" and win.mode_actions["query"].isChecked()
    QTest.keyClick(ws.viewer, Qt.Key_M)  # the key and the toolbar agree
    assert win.mode_actions["free"].isChecked() and not win.mode_actions["query"].isChecked()

    whole = ws.viewer.view.viewRect()
    ws.viewer.view.scaleBy((0.25, 0.25))  # zoomed in
    assert ws.viewer.view.viewRect().width() < whole.width() / 2
    press(button(win.fit_action), QPoint(8, 8))
    fitted = ws.viewer.view.viewRect()
    assert fitted.contains(whole.adjusted(4, 4, -4, -4)) and fitted.width() == pytest.approx(whole.width(), rel=0.05)

    assert not ws.viewer.layer_visible("uncertainty")
    chosen = click_menu_item(lambda: press(win.layers_button, QPoint(8, 8)), "Uncertainty")
    assert chosen is not None and ws.viewer.layer_visible("uncertainty")
    assert ws.layer_actions["uncertainty"].isChecked()  # the View menu shows the same state
    win.close()


def test_the_toolbar_waits_for_a_project(show):
    win = show(MainWindow(start_engine=False))
    assert not any(a.isEnabled() for a in (*win.mode_actions.values(), win.fit_action))
    assert not win.layers_button.isEnabled()
    win.close()


# ----- item 18: Help > About ------------------------------------------------------------------
def test_help_about_shows_the_version_the_model_and_the_licences(show, blob_project):
    with Project.open(blob_project) as project:
        project.add_model_version("fast", 40, "fast-v1.pt", validation_count=10, validation_accuracy=0.9)
    win = open_window(show, blob_project)
    seen = []

    def read_and_close():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, read_and_close)
            return
        seen.append(dialog.text.toPlainText())
        QTest.keyClick(dialog, Qt.Key_Escape)

    QTimer.singleShot(0, read_and_close)
    help_menu = next(a for a in win.menuBar().actions() if a.text() == "&Help")
    about = next(a for a in help_menu.menu().actions() if a.text().startswith("&About"))
    press(win.menuBar(), win.menuBar().actionGeometry(help_menu).center())  # opens the menu
    QTest.qWait(20)
    press(help_menu.menu(), help_menu.menu().actionGeometry(about).center())
    assert seen, "About did not open"
    text = seen[0]
    assert f"Pointillist {metadata.version('pointillist')}" in text
    assert "fast" in text and "40 labels" in text and "90.0% on 10 labels" in text and "background, blob" in text
    assert "PySide6" in text and "LGPL" in text and "numpy" in text  # from the installed metadata
    assert "pytest" not in text  # a test tool is not bundled
    win.close()


# ----- item 18: counts in words -------------------------------------------------------------
def test_counts_are_in_words():
    assert plural(1, "image") == "1 image"
    assert plural(2, "image") == "2 images"
    assert plural(0, "image") == "0 images"
    assert plural(1, "query", "queries") == "1 query" and plural(3, "query", "queries") == "3 queries"


def test_one_picture_is_one_image(qtbot, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "only.png")
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.set_sources([folder])
    qtbot.waitUntil(lambda: not dialog.scanning)  # the files are checked on a worker
    assert dialog.found.text() == "1 readable image found, 0 unreadable."


# ----- item 18: the query's marker and its inset --------------------------------------------
def test_the_marker_leaves_the_asked_pixel_visible_and_the_inset_shows_its_surroundings(show, tmp_path):
    folder, pixels = noisy_project(tmp_path / "data")
    win = open_window(show, folder)
    ws = win.workspace
    viewer = ws.viewer
    assert (ws.session.current.x, ws.session.current.y) == (60, 45)
    inset = viewer.inset
    assert inset.isVisible()
    np.testing.assert_array_equal(inset.shown, pixels[45 - SPAN // 2:45 + SPAN // 2, 60 - SPAN // 2:60 + SPAN // 2])
    drawn = inset.pixmap().toImage()
    centre = (SPAN // 2) * SCALE + SCALE // 2
    assert drawn.pixelColor(centre, centre).getRgb()[:3] == (255, 0, 255)  # the crosshair stops short of it

    screen = viewer.grab().toImage()
    at = viewer.widget_point(60, 45)
    assert screen.pixelColor(at).getRgb()[:3] == (255, 0, 255)  # the marker does not cover the asked pixel
    ring = ui_colour("current_query")[:3]
    ticks = [screen.pixelColor(at + QPoint(dx, dy)).getRgb()[:3] for dx, dy in ((11, 0), (-11, 0), (0, 11), (0, -11))]
    assert all(t == ring for t in ticks)  # ... and marks where it is

    QTest.keyClick(viewer, "q")  # the queries layer hidden: the rings and the inset
    assert not inset.isVisible() and not viewer.current_ring.isVisible()
    QTest.keyClick(viewer, "q")
    assert inset.isVisible()

    QTest.keyClick(viewer, "1")  # answered: the next query, by the picture's corner
    assert (ws.session.current.x, ws.session.current.y) == (2, 3)
    expected = np.full((SPAN, SPAN, 3), 40, np.uint8)  # grey beyond the edges
    expected[SPAN // 2 - 3:, SPAN // 2 - 2:] = pixels[:SPAN // 2 + 3, :SPAN // 2 + 2]
    np.testing.assert_array_equal(inset.shown, expected)
    win.close()


# ----- item 18: news about skipped files stays -----------------------------------------------
def test_the_banner_about_a_missing_image_stays_until_its_close_button_is_clicked(show, blob_project):
    with Project.open(blob_project) as project:
        gone = project.images()[0]
    gone.path.unlink()
    win = open_window(show, blob_project)
    assert win.banner.isVisible() and gone.name in win.banner.text.text()
    QTest.qWait(300)
    win.statusBar().showMessage("something else", 10)  # status-bar news comes and goes
    QTest.qWait(50)
    assert win.banner.isVisible() and gone.name in win.banner.text.text()
    press(win.banner.close_button, QPoint(4, 4))
    assert not win.banner.isVisible()
    win.close()


# ----- item 18: the shortcuts dialog fits its text ------------------------------------------
def test_the_shortcuts_dialog_shows_every_row_whole(qtbot):
    dialog = ShortcutsDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    QTest.qWait(20)
    table = dialog.table
    assert not table.horizontalScrollBar().isVisible() and not table.verticalScrollBar().isVisible()
    for row in range(table.rowCount()):
        assert table.rowHeight(row) >= table.sizeHintForRow(row)  # wrapped, not cut
    assert dialog.width() <= dialog.screen().availableGeometry().width()


# ----- item 19: a first screen that explains itself -----------------------------------------
def test_the_demo_says_what_to_do_and_its_classes_fit_every_picture(show, tmp_path):
    import cv2

    folder = create_demo_project(tmp_path / "demo")
    with Project.open(folder) as project:
        assert [c.name for c in project.classes()] == DEMO_CLASSES == ["background", "coin"]
        images = project.images()
        for info in images:  # coins on a dark background, on every picture
            grey = cv2.imread(str(info.path), cv2.IMREAD_GRAYSCALE)
            _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            assert 0.2 < (bright > 0).mean() < 0.6
        project.add_queries(images[0].id, np.array([[20, 20]]), "margin")  # as the engine asks at first
    win = open_window(show, folder)
    panel = win.workspace.label_panel
    assert panel.todo.text() == "Press the number of the class under the ring."
    QTest.keyClick(win.workspace.viewer, Qt.Key_M)
    assert panel.todo.text().startswith("Click a point")
    win.close()
