"""The resources as the GUI uses them: the window icon, the toolbar icons, and the viewers'
colours read from ``resources/`` rather than written in code."""
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QImage
from PySide6.QtSvg import QSvgRenderer

from desktop import resources
from desktop.gui.app import MainWindow, make_application
from desktop.gui.icons import toolbar_icon
from desktop.gui.keypoint_overlay import confidence_colour
from desktop.gui.new_project import NewProjectDialog
from desktop.gui.viewer import ImageViewer


def test_the_window_has_the_app_icon_at_every_size(show):
    app = make_application()
    icon = app.windowIcon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} == set(resources.APP_ICON_SIZES)
    win = show(MainWindow(start_engine=False))
    assert not win.windowIcon().isNull()
    assert win.windowIcon().cacheKey() == icon.cacheKey()
    win.close()


def test_toolbar_icons_draw_from_their_svgs():
    for name in resources.TOOLBAR_ICONS:
        assert QSvgRenderer(str(resources.toolbar_icon(name))).isValid(), name
        pixmap = toolbar_icon(name).pixmap(QSize(24, 24))
        assert not pixmap.isNull() and pixmap.width() == 24, name
        image = pixmap.toImage().convertToFormat(QImage.Format_ARGB32)
        blank = QImage(image.size(), QImage.Format_ARGB32)
        blank.fill(0)
        assert image != blank, name  # something was drawn


def test_the_app_icon_svgs_are_valid_for_qt():
    assert QSvgRenderer(str(resources.APP_ICON_SVG)).isValid()
    assert QSvgRenderer(str(resources.APP_ICON_SMALL_SVG)).isValid()


def test_the_viewer_draws_with_the_resource_colours(qtbot):
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    assert viewer._heat is resources.colour_map("uncertainty")
    assert viewer.items["queries"].opts["pen"].color().getRgb() == resources.ui_colour("query_ring")
    assert viewer.current_ring.opts["pen"].color().getRgb() == resources.ui_colour("current_query")


def test_keypoint_confidence_colours_come_from_the_table():
    table = resources.colour_map("confidence")
    assert confidence_colour(0.0).getRgb() == tuple(table[0])
    assert confidence_colour(1.0).getRgb() == tuple(table[255])
    assert confidence_colour(7.0) == confidence_colour(1.0)  # clipped
    red, green = confidence_colour(0.0), confidence_colour(1.0)
    assert red.red() > red.green() and green.green() > green.red()


def test_the_new_project_dialog_offers_the_palette(qtbot):
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.add_class("nucleus")
    colours = [colour for _, colour, _ in dialog.class_rows()]
    assert colours == list(resources.palette()[:len(colours)])
    assert dialog.classes.item(0, 1).background().color() == QColor(resources.palette()[0])
