"""The project's images: name, labels, open queries, uncertainty, and any problem with the file.

Unreadable, moved or changed images stay in the list with their reason, so nothing vanishes
silently. Sorting is by clicking a column header (uncertainty, most uncertain first, by default
once a ranking arrives).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from desktop.engine.project.store import Project

from .icons import error_colour

COLUMNS = ("Image", "Labels", "Queries", "Uncertainty", "Problem")


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
    imageChosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.setSortingEnabled(True)
        self.problems: dict[int, str] = {}
        self._uncertainty: dict[int, float] = {}  # kept, so that a refill shows each image its own
        self.cellActivated.connect(self._activated)
        self.cellClicked.connect(self._activated)

    def fill(self, project: Project, problems: dict[int, str]) -> None:
        self.problems = dict(problems)
        self.setSortingEnabled(False)
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
            self.setItem(row, 4, problem)
            self._fill_counts(row, project, info.id)
            self.setItem(row, 3, self._uncertainty_item(info.id))
        self.setSortingEnabled(True)
        if self._uncertainty:
            self.sortItems(3, Qt.DescendingOrder)

    def refresh_counts(self, project: Project, image_id: int) -> None:
        """Update one image's counts in place (called at every click: no rebuilding, no re-sort
        unless the table is sorted by a count)."""
        row = self.row_of(image_id)
        if row is not None:
            for column, value in ((1, project.label_count(image_id)), (2, project.query_count(image_id))):
                item = self.item(row, column)
                if item.value != value:
                    item.value = value
                    item.setText(str(value))

    def set_uncertainty(self, ranking: dict[int, float]) -> None:
        self._uncertainty = dict(ranking)
        self.setSortingEnabled(False)
        for row in range(self.rowCount()):
            self.setItem(row, 3, self._uncertainty_item(self.item(row, 0).data(Qt.UserRole)))
        self.setSortingEnabled(True)
        self.sortItems(3, Qt.DescendingOrder)

    def _uncertainty_item(self, image_id: int) -> QTableWidgetItem:
        value = self._uncertainty.get(image_id)
        return _Number(value, "" if value is None else f"{value:.3f}")

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
        labels = len(project.labels(image_id))
        queries = len(project.queries(image_id))
        self.setItem(row, 1, _Number(labels, str(labels)))
        self.setItem(row, 2, _Number(queries, str(queries)))

    def _activated(self, row: int, _column: int) -> None:
        image_id = self.item(row, 0).data(Qt.UserRole)
        if image_id not in self.problems:
            self.imageChosen.emit(image_id)
