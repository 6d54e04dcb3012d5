"""The project's images: name, labels, open queries, uncertainty, and any problem with the file.

Unreadable, moved or changed images stay in the list with their reason, so nothing vanishes
silently.

The list moves only when the expert asks: a click on a column header (again: the other way
round), the "Sort by" choice, or "Re-sort". New counts and rankings change the numbers in place,
so the row being worked on never jumps away; once the numbers no longer follow the order, the
header's sort arrow goes and "Re-sort" is offered, so the arrow never contradicts the order.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from desktop.engine.project.store import Project

from .icons import error_colour
from .label_tally import LabelTally

COLUMNS = ("Image", "Labels", "Asked", "Unsure", "Problem")  # short: the list is narrow; HINTS say more
HINTS = ("The image's file name", "Labels on the image", "Open queries: points the model asks about",
         "How unsure the model is about the image (the mean of its most uncertain pixels)",
         "Why the image cannot be read")
UNCERTAINTY = COLUMNS.index("Unsure")
PROBLEM = COLUMNS.index("Problem")
ADDED = "Order added"  # the "Sort by" entry for the project's own order


def _uncertainty_text(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


class _Number(QTableWidgetItem):
    """A cell that sorts by its number, with blanks last."""

    def __init__(self, value: float | None, text: str):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other):
        mine = self.value if self.value is not None else float("-inf")
        theirs = getattr(other, "value", None)
        return mine < (theirs if theirs is not None else float("-inf"))


class ImageList(QTableWidget):
    """The table; ``sort_by`` and ``resort_button`` are its sort controls, which ``ImageListPanel``
    lays out above it. Label counts come from ``tally``, kept up to date by its owner."""

    imageChosen = Signal(int)

    def __init__(self, tally: LabelTally, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.tally = tally
        self.setHorizontalHeaderLabels(COLUMNS)
        for column, hint in enumerate(HINTS):
            self.horizontalHeaderItem(column).setToolTip(hint)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.verticalHeader().hide()
        # The numbers keep their width; a long name is cut in its middle (whole in its tooltip),
        # so that every column fits the narrow list without a horizontal scroll bar.
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.setTextElideMode(Qt.ElideMiddle)
        self.setWordWrap(False)
        self.problems: dict[int, str] = {}
        self._uncertainty: dict[int, float] = {}  # kept, so that a refill shows each image its own
        self.sort_column: int | None = None  # None: the order the images were added in
        self.sort_order = Qt.AscendingOrder
        header = self.horizontalHeader()
        header.setSectionsClickable(True)  # sorting is ours: Qt's own would re-sort at every change
        header.sectionClicked.connect(self._header_clicked)
        self.sort_by = QComboBox()
        self.sort_by.addItems([ADDED, *COLUMNS])
        self.sort_by.setToolTip("What the list is sorted by; a click on a column header sorts too")
        self.sort_by.activated.connect(self._sort_by_chosen)
        self.resort_button = QPushButton("Re-sort")
        self.resort_button.setToolTip("The numbers changed since the list was sorted: sort it again")
        self.resort_button.clicked.connect(self.resort)
        self._show_sort_state()
        self.cellActivated.connect(self._activated)
        self.cellClicked.connect(self._activated)

    def fill(self, project: Project, problems: dict[int, str]) -> None:
        """All rows afresh (images added, a file found missing), in the order asked for last."""
        self.problems = dict(problems)
        images = project.images()
        self.setRowCount(len(images))
        for row, info in enumerate(images):
            name = QTableWidgetItem(info.name)
            name.setData(Qt.UserRole, info.id)
            name.setToolTip(str(info.path))
            self.setItem(row, 0, name)
            problem = QTableWidgetItem(self.problems.get(info.id, ""))
            if info.id in self.problems:
                problem.setForeground(error_colour())
                name.setForeground(error_colour())
                problem.setToolTip(self.problems[info.id])
            self.setItem(row, PROBLEM, problem)
            self._fill_counts(row, project, info.id)
            self.setItem(row, UNCERTAINTY, self._uncertainty_item(info.id))
        self.setColumnHidden(PROBLEM, not self.problems)  # a column only when an image has one
        self.resort()

    def refresh_counts(self, project: Project, image_id: int) -> None:
        """Update one image's counts in place (called at every click: no rebuilding, no re-sort)."""
        row = self.row_of(image_id)
        if row is not None:
            for column, value in ((1, self.tally.count(image_id)), (2, project.query_count(image_id))):
                item = self.item(row, column)
                if item.value != value:
                    item.value = value
                    item.setText(str(value))
            self._show_sort_state()

    def set_uncertainty(self, ranking: dict[int, float]) -> None:
        """A new ranking: the numbers change in place; the rows stay where they are."""
        self._uncertainty = dict(ranking)
        for row in range(self.rowCount()):
            value = self._uncertainty.get(self.item(row, 0).data(Qt.UserRole))
            item = self.item(row, UNCERTAINTY)
            item.value = value
            item.setText(_uncertainty_text(value))
        self._show_sort_state()

    # ----- sorting, only when asked -------------------------------------------------------------
    def sort_by_column(self, column: int | None, order=None) -> None:
        """Sort by ``column`` (None: the order added); ``order`` defaults to most uncertain first
        for uncertainty, and A to Z, fewest first otherwise."""
        self.sort_column = column
        if order is None:
            order = Qt.DescendingOrder if column == UNCERTAINTY else Qt.AscendingOrder
        self.sort_order = order
        self.resort()

    def resort(self) -> None:
        """Sort the rows by the chosen column again, the selected image staying selected."""
        if self.sort_column is not None:
            self.sortItems(self.sort_column, self.sort_order)
        else:
            self._restore_added_order()
        chosen = self.selectedItems()
        if chosen:
            self.scrollToItem(chosen[0])
        self._show_sort_state()

    def in_order(self) -> bool:
        """Whether the rows follow the chosen sort (the numbers may have changed since)."""
        if self.sort_column is None:
            return True
        items = [self.item(row, self.sort_column) for row in range(self.rowCount())]
        if self.sort_order == Qt.DescendingOrder:
            items.reverse()
        return all(not (b < a) for a, b in zip(items, items[1:]))

    def _header_clicked(self, column: int) -> None:
        if column == self.sort_column:  # the same header again: the other way round
            flipped = Qt.AscendingOrder if self.sort_order == Qt.DescendingOrder else Qt.DescendingOrder
            self.sort_by_column(column, flipped)
        else:
            self.sort_by_column(column)

    def _sort_by_chosen(self, index: int) -> None:
        self.sort_by_column(None if index == 0 else index - 1)

    def _restore_added_order(self) -> None:
        """Rows by image id: the order they were added in (``fill``'s)."""
        rows = sorted(range(self.rowCount()), key=lambda r: self.item(r, 0).data(Qt.UserRole))
        if rows != list(range(self.rowCount())):
            chosen = self.selectedItems()[0].data(Qt.UserRole) if self.selectedItems() else None
            taken = [[self.takeItem(r, c) for c in range(self.columnCount())] for r in rows]
            for row, items in enumerate(taken):
                for column, item in enumerate(items):
                    self.setItem(row, column, item)
            if chosen is not None:
                self.select_image(chosen)

    def _show_sort_state(self) -> None:
        """The header's arrow only while the rows follow it; "Re-sort" only once they do not."""
        header, ordered = self.horizontalHeader(), self.in_order()
        header.setSortIndicatorShown(self.sort_column is not None and ordered)
        if self.sort_column is not None:
            header.setSortIndicator(self.sort_column, self.sort_order)
        self.sort_by.setCurrentIndex(0 if self.sort_column is None else self.sort_column + 1)
        self.resort_button.setEnabled(not ordered)

    def _uncertainty_item(self, image_id: int) -> QTableWidgetItem:
        value = self._uncertainty.get(image_id)
        return _Number(value, _uncertainty_text(value))

    def image_ids(self) -> list[int]:
        return [self.item(row, 0).data(Qt.UserRole) for row in range(self.rowCount())]

    def row_of(self, image_id: int) -> int | None:
        for row in range(self.rowCount()):
            if self.item(row, 0).data(Qt.UserRole) == image_id:
                return row
        return None

    def select_image(self, image_id: int) -> None:
        row = self.row_of(image_id)
        if row is not None:
            self.blockSignals(True)
            self.selectRow(row)
            self.blockSignals(False)

    def _fill_counts(self, row: int, project: Project, image_id: int) -> None:
        labels, queries = self.tally.count(image_id), project.query_count(image_id)
        self.setItem(row, 1, _Number(labels, str(labels)))
        self.setItem(row, 2, _Number(queries, str(queries)))

    def _activated(self, row: int, _column: int) -> None:
        image_id = self.item(row, 0).data(Qt.UserRole)
        if image_id not in self.problems:
            self.imageChosen.emit(image_id)


class ImageListPanel(QWidget):
    """The image list with its "Sort by" choice and "Re-sort" button above it."""

    def __init__(self, table: ImageList, parent=None):
        super().__init__(parent)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Sort by"))
        bar.addWidget(table.sort_by, 1)
        bar.addWidget(table.resort_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(table)
