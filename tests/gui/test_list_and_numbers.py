"""What the image list and the training numbers say (issue 17, items 8 and 12), through real
clicks on the real window; the engine's events are handed in as the bridge hands them on (the
engine thread is off: these tests are about what the window shows)."""
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.engine.project.store import Project
from desktop.engine.service.messages import ImageRanking, ModelPublished
from desktop.gui.app import MainWindow
from desktop.gui.image_list import COLUMNS, UNCERTAINTY
from desktop.gui.training_panel import wilson_interval

from .conftest import make_blob_project


def header_click(table, column):
    header = table.horizontalHeader()
    table.scrollTo(table.model().index(0, column))  # a column off to the right is scrolled to first
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    QTest.mouseClick(header.viewport(), Qt.LeftButton, Qt.NoModifier, QPoint(x, header.height() // 2))


def row_click(table, row):
    where = table.visualRect(table.model().index(row, 0)).center()
    QTest.mouseClick(table.viewport(), Qt.LeftButton, Qt.NoModifier, where)


def choose(combo, text):
    """Open a combo box's list with a click and click one of its entries."""
    QTest.mouseClick(combo, Qt.LeftButton)
    view = combo.view()
    QTest.qWait(QApplication.doubleClickInterval() + 50)  # a combo box ignores a release this soon after opening
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier,
                     view.visualRect(combo.model().index(combo.findText(text), 0)).center())


def selected_id(table):
    return table.selectedItems()[0].data(Qt.UserRole)


@pytest.fixture
def window(show, tmp_path):
    folder = make_blob_project(tmp_path / "data", images=4)
    win = show(MainWindow(folder, start_engine=False))
    yield win
    win.close()


def test_the_list_moves_only_when_asked_and_its_arrow_never_lies(window):
    ws = window.workspace
    table = ws.image_list
    assert table.sort_by.isVisible() and table.sort_by.currentText() == "Order added"
    assert not table.resort_button.isEnabled()
    added = table.image_ids()

    row_click(table, 2)  # work on the third image
    chosen = added[2]
    assert ws.image_id == chosen and selected_id(table) == chosen

    header_click(table, UNCERTAINTY)  # asked: by uncertainty, most uncertain first
    assert table.sort_by.currentText() == "Unsure"
    assert table.horizontalHeader().isSortIndicatorShown()
    assert table.horizontalHeader().sortIndicatorOrder() == Qt.DescendingOrder

    # a ranking arrives while the expert works (and another while idle): numbers change in place
    for ranking in ({added[0]: 0.1, added[1]: 0.9, added[2]: 0.5, added[3]: 0.7},
                    {added[0]: 0.2, added[1]: 0.8, added[2]: 0.4, added[3]: 0.95}):
        ws.bridge.ranking.emit(ImageRanking(1, ranking))
        assert table.image_ids() == added  # no row moved
        assert selected_id(table) == chosen and table.currentRow() == 2
        assert [table.item(r, UNCERTAINTY).text() for r in range(4)] == [f"{ranking[i]:.3f}" for i in added]
        assert not table.horizontalHeader().isSortIndicatorShown()  # the rows no longer follow it
        assert table.resort_button.isEnabled()

    QTest.mouseClick(table.resort_button, Qt.LeftButton)
    assert table.image_ids() == [added[3], added[1], added[2], added[0]]
    assert selected_id(table) == chosen  # the same image stays selected where it went
    assert table.horizontalHeader().isSortIndicatorShown() and not table.resort_button.isEnabled()

    header_click(table, UNCERTAINTY)  # again: the other way round, and the arrow says so
    assert table.image_ids() == [added[0], added[2], added[1], added[3]]
    assert table.horizontalHeader().sortIndicatorOrder() == Qt.AscendingOrder

    choose(table.sort_by, "Order added")  # back to the order the images were added in
    assert table.sort_by.currentText() == "Order added" and table.image_ids() == added
    assert selected_id(table) == chosen and not table.horizontalHeader().isSortIndicatorShown()

    # answers change the counts in place, and no row jumps either
    header_click(table, COLUMNS.index("Asked"))  # every column header sorts, and says so
    assert table.sort_by.currentText() == "Asked"
    assert table.isColumnHidden(COLUMNS.index("Problem"))  # no image has one: no column for it
    header_click(table, 1)  # by labels, fewest first
    before = table.image_ids()
    QTest.keyClick(ws.viewer, "2")
    for x in (60, 70, 80):
        QTest.mouseClick(ws.viewer.viewport(), Qt.LeftButton, Qt.NoModifier, ws.viewer.widget_point(x, x))
    assert table.image_ids() == before and selected_id(table) == chosen
    assert table.item(table.row_of(chosen), 1).text() == "3"
    assert table.resort_button.isEnabled() and not table.horizontalHeader().isSortIndicatorShown()


def test_the_wilson_interval():
    low, high = wilson_interval(24, 30)
    assert low == pytest.approx(0.6269, abs=1e-3) and high == pytest.approx(0.9050, abs=1e-3)
    assert wilson_interval(3, 3)[1] == 1.0 and wilson_interval(3, 3)[0] == pytest.approx(0.4385, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_held_out_accuracy_says_how_many_labels_and_how_sure(show, tmp_path):
    folder = make_blob_project(tmp_path / "data")
    with Project.open(folder) as project:  # a version trained before, as the project lists it
        project.add_model_version("fast", 10, None, 3, 1.0)
    win = show(MainWindow(folder, start_engine=False))
    ws = win.workspace
    tabs = ws.training_panel.parentWidget().parentWidget()
    bar = tabs.tabBar()
    QTest.mouseClick(bar, Qt.LeftButton, Qt.NoModifier, bar.tabRect(tabs.indexOf(ws.training_panel)).center())
    panel = ws.training_panel
    assert panel.isVisible()
    assert panel.accuracy.text().startswith("too few to judge (3 of 3 held-back labels right")
    assert "100" not in panel.accuracy.text()

    ws.bridge.published.emit(ModelPublished(2, 0.4, 0.5, 14, validation_count=4))
    assert panel.accuracy.text().startswith("too few to judge (2 of 4")
    assert len(panel.accuracy_curve.getData()[0] or []) == 0  # nothing judged: nothing plotted

    ws.bridge.published.emit(ModelPublished(3, 0.3, 0.8, 300, validation_count=30))
    assert panel.accuracy.text() == "80.0% on 30 held-back labels (95% interval 63% to 90%)"
    assert list(panel.accuracy_curve.getData()[0]) == [3]
    win.close()
