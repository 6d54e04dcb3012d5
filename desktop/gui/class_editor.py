"""Edit > Classes... (segmentation) and Edit > Keypoints... (keypoint projects): change a project
after creating it.

Classes can be added, renamed, recoloured (type #rrggbb, or Colour...) and re-keyed, and one can
be merged into another: its labels become the other's. The dialog checks the whole edit when OK
is pressed and stays open, saying what is wrong, until it is right (``check_classes``, the
store's own check). Keypoints are edited with the New-project dialog's skeleton editor; a renamed
keypoint keeps its labels, and one that labels use cannot be removed: the dialog says which and
how many labels use it.

Saving is the window's (``edit_classes``): it stops the engine first, so that no training slice
runs across the change, saves, and opens the project again, so that the label panel, the colours,
the overlay and the engine (a model for the new classes, trained from scratch) all start from
the new classes. A merge is therefore confirmed when it is chosen rather than made undoable: it
changes the model's classes, which Ctrl+Z on labels cannot give back, and the label undo
history starts afresh with the reopened project (the merged labels stay in the project's
history of label operations).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QColorDialog, QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QMessageBox,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from desktop.engine.errors import PointillistError
from desktop.engine.project.class_store import COLOUR, ClassRow, check_classes
from desktop.engine.project.keypoint_store import removal_refusal
from desktop.engine.project.skeleton import Skeleton
from desktop.resources import palette_colour

from .icons import error_style
from .label_panel import swatch
from .skeleton_editor import SkeletonEditor

NAME, KEY, COLOUR_COLUMN, LABELS = range(4)
REOPEN_NOTE = ("OK saves and opens the project again with the new classes: the model is trained afresh for "
               "them, and Ctrl+Z starts a new history.")


def _error_and_buttons(dialog: QDialog) -> tuple[QLabel, QDialogButtonBox]:
    """Where a refused edit is said (the dialog stays open), and OK / Cancel."""
    error = QLabel()
    error.setWordWrap(True)
    error.setStyleSheet(error_style())
    buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return error, buttons


class ClassEditor(QDialog):
    def __init__(self, project, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Classes")
        self.project = project
        self.current = project.classes()
        self.merges: dict[int, int] = {}
        counts = project.class_label_counts()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Name", "Key", "Colour", "Labels"])
        self.table.horizontalHeader().setStretchLastSection(True)
        for info in self.current:
            self._add_row(info.id, info.name, info.key or "", info.colour, counts.get(info.id, 0))
        self.table.itemChanged.connect(self._recolour)
        self.add_button, self.colour_button = QPushButton("Add class"), QPushButton("Colour...")
        self.merge_button, self.into = QPushButton("Merge the selected class into"), QComboBox()
        self.add_button.clicked.connect(self.add_class)
        self.colour_button.clicked.connect(self._pick_colour)
        self.merge_button.clicked.connect(self.merge_selected)
        self.merged = QLabel()
        self.merged.setWordWrap(True)
        self.error, self.buttons = _error_and_buttons(self)
        edit = QHBoxLayout()
        for widget in (self.add_button, self.colour_button):
            edit.addWidget(widget)
        merge = QHBoxLayout()
        merge.addWidget(self.merge_button)
        merge.addWidget(self.into, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Double-click a name, key or colour (#rrggbb) to change it. An empty key is the "
                                "class's position, 1 to 9."))
        for part in (self.table, edit, merge, self.merged, QLabel(REOPEN_NOTE), self.error, self.buttons):
            layout.addLayout(part) if isinstance(part, QHBoxLayout) else layout.addWidget(part)
        self._refresh_targets()
        self.resize(520, 460)

    # ----- the table ---------------------------------------------------------------------------
    def _add_row(self, class_id: int | None, name: str, key: str, colour: str, labels: int) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        name_item = QTableWidgetItem(name)
        name_item.setData(Qt.UserRole, class_id)
        count = QTableWidgetItem(str(labels))
        count.setFlags(count.flags() & ~Qt.ItemIsEditable)
        colour_item = QTableWidgetItem(colour)
        colour_item.setIcon(swatch(colour))
        for column, item in ((NAME, name_item), (KEY, QTableWidgetItem(key)), (COLOUR_COLUMN, colour_item),
                             (LABELS, count)):
            self.table.setItem(row, column, item)

    def add_class(self) -> None:
        row = self.table.rowCount()
        self._add_row(None, f"class {row + 1}", "", palette_colour(row), 0)
        self.table.setCurrentCell(row, NAME)
        self._refresh_targets()

    def rows(self) -> list[ClassRow]:
        """The classes as the table shows them: (id or None, name, colour, key)."""
        text = lambda row, column: self.table.item(row, column).text()  # noqa: E731
        return [(self.table.item(row, NAME).data(Qt.UserRole), text(row, NAME), text(row, COLOUR_COLUMN),
                 text(row, KEY) or None) for row in range(self.table.rowCount())]

    def _recolour(self, item: QTableWidgetItem) -> None:
        if item.column() == COLOUR_COLUMN and COLOUR.fullmatch(item.text().strip()):
            self.table.blockSignals(True)  # a new icon is a change too: it would come back here
            item.setIcon(swatch(item.text().strip()))
            self.table.blockSignals(False)

    def _pick_colour(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        colour = QColorDialog.getColor(QColor(self.table.item(row, COLOUR_COLUMN).text()), self)
        if colour.isValid():
            self.table.item(row, COLOUR_COLUMN).setText(colour.name())

    # ----- merging -----------------------------------------------------------------------------
    def _refresh_targets(self) -> None:
        """Classes already saved can take another's labels (a new one has no id to merge into yet)."""
        self.into.clear()
        for class_id, name, _, _ in self.rows():
            if class_id is not None:
                self.into.addItem(name, class_id)

    def merge_selected(self) -> None:
        """Merge the selected class into the class chosen beside the button, once confirmed."""
        row, target = self.table.currentRow(), self.into.currentData()
        if row < 0 or target is None:
            return
        source, name = self.table.item(row, NAME).data(Qt.UserRole), self.table.item(row, NAME).text()
        if source == target:
            self.error.setText(f"Choose another class than '{name}' to merge it into.")
            return
        labels = int(self.table.item(row, LABELS).text())
        if source is not None:
            answer = QMessageBox.question(
                self, "Merge classes",
                f"Merge '{name}' into '{self.into.currentText()}'? Its {labels} label(s) become "
                f"'{self.into.currentText()}' labels and '{name}' is removed from the project. A merge cannot be "
                "undone with Ctrl+Z: to part them again, label anew.", QMessageBox.Yes | QMessageBox.Cancel,
                QMessageBox.Cancel)
            if answer != QMessageBox.Yes:
                return
            self.merges[source] = target
            for merged, into in self.merges.items():  # what was merged into the class now merged follows it
                if into == source:
                    self.merges[merged] = target
        ids = [self.table.item(r, NAME).data(Qt.UserRole) for r in range(self.table.rowCount())]
        count = self.table.item(ids.index(target), LABELS)
        count.setText(str(int(count.text()) + labels))
        self.table.removeRow(row)
        self.merged.setText("Merged: " + "; ".join(f"{self._name(s)} into {self._name(t)}"
                                                   for s, t in self.merges.items()))
        self.error.clear()
        self._refresh_targets()

    def _name(self, class_id: int) -> str:
        return f"'{next(c.name for c in self.current if c.id == class_id)}'"

    # ----- OK --------------------------------------------------------------------------------------
    def accept(self) -> None:
        """Close only on an edit the store will take; else say what is wrong and keep everything."""
        try:
            check_classes(self.current, self.rows(), self.merges)
        except PointillistError as e:
            self.error.setText(str(e))
            return
        super().accept()

    def apply(self) -> None:
        self.project.edit_classes(self.rows(), self.merges)


class KeypointEditor(QDialog):
    """The project's skeleton in the skeleton editor; each keypoint's item remembers its saved name,
    so a renamed one keeps its labels."""

    def __init__(self, project, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keypoints")
        self.project = project
        skeleton = project.skeleton()
        self.editor = SkeletonEditor(skeleton.names)
        for row, name in enumerate(skeleton.names):
            self.editor.keypoints.item(row).setData(Qt.UserRole, name)
        for pairs, editor in ((skeleton.edges, self.editor.edges), (skeleton.symmetry, self.editor.symmetry)):
            for a, b in pairs:
                editor.add(a, b)
        self.error, self.buttons = _error_and_buttons(self)
        layout = QVBoxLayout(self)
        for widget in (self.editor, QLabel(REOPEN_NOTE.replace("classes", "keypoints")), self.error, self.buttons):
            layout.addWidget(widget)
        self.resize(520, 620)

    def skeleton(self) -> tuple[Skeleton, dict[str, str]]:
        """The skeleton as edited, and the saved keypoints renamed in it (old name -> new name)."""
        items = [self.editor.keypoints.item(row) for row in range(self.editor.keypoints.count())]
        renamed = {item.data(Qt.UserRole): item.text().strip() for item in items
                   if item.data(Qt.UserRole) and item.data(Qt.UserRole) != item.text().strip()}
        return self.editor.skeleton(), renamed

    def accept(self) -> None:
        try:
            skeleton, renamed = self.skeleton()
            kept = set(renamed) | {name for name in skeleton.names}
            dropped = [name for name in self.project.skeleton().names if name not in kept]
            used = self.project.keypoint_label_counts(dropped)
            if used:
                raise PointillistError(removal_refusal(used))
        except PointillistError as e:  # SkeletonError too: an empty or repeated name, two partners
            self.error.setText(str(e))
            return
        super().accept()

    def apply(self) -> None:
        skeleton, renamed = self.skeleton()
        self.project.set_skeleton(skeleton, renamed)


def edit_classes(window) -> None:
    """Edit > Classes... (or Keypoints...) of the window's project: on OK, stop the engine, save,
    and open the project again (see the module's docstring). A save the disk refuses is said,
    and the project opens as it was."""
    workspace = window.workspace
    if workspace is None or workspace.read_only:
        return
    dialog = (KeypointEditor if workspace.project.task == "keypoints" else ClassEditor)(workspace.project, window)
    if not dialog.exec():
        return
    workspace.bridge.stop()
    try:
        dialog.apply()
    except PointillistError as e:
        QMessageBox.warning(window, "Nothing was changed", str(e))
    window.open_project(workspace.folder)
