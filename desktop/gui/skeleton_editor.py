"""The skeleton editor of the New-project dialog: keypoints (add, rename by double-click,
remove, reorder), edges between them and left/right symmetric pairs.

Pairs hold the keypoints' list items, not their names or rows, so renaming or reordering a
keypoint keeps its edges and partner; removing it removes them.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from desktop.engine.project.skeleton import Skeleton


class PairEditor(QWidget):
    """A list of keypoint pairs, with two pickers to add one and a button to remove one."""

    def __init__(self, title: str, joiner: str, keypoints: QListWidget, parent=None):
        super().__init__(parent)
        self.keypoints, self.joiner = keypoints, joiner
        self.pairs: list[tuple[QListWidgetItem, QListWidgetItem]] = []
        self.first, self.second = QComboBox(), QComboBox()
        self.add_button, self.remove_button = QPushButton("Add"), QPushButton("Remove")
        self.list = QListWidget()
        self.list.setMaximumHeight(90)
        pick = QHBoxLayout()
        for widget in (self.first, QLabel(joiner), self.second, self.add_button, self.remove_button):
            pick.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(title))
        layout.addWidget(self.list)
        layout.addLayout(pick)
        self.add_button.clicked.connect(lambda: self.add(self.first.currentIndex(), self.second.currentIndex()))
        self.remove_button.clicked.connect(self.remove_selected)

    def add(self, a: int, b: int) -> None:
        """Join the keypoints in rows ``a`` and ``b`` (ignored when equal or already joined)."""
        items = (self.keypoints.item(a), self.keypoints.item(b))
        if a == b or None in items or any(items in (p, p[::-1]) for p in self.pairs):  # items are not hashable
            return
        self.pairs.append(items)
        self.refresh()

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            del self.pairs[row]
            self.refresh()

    def forget(self, item: QListWidgetItem) -> None:
        self.pairs = [p for p in self.pairs if item not in p]

    def rows(self) -> list[tuple[int, int]]:
        return [(self.keypoints.row(a), self.keypoints.row(b)) for a, b in self.pairs]

    def refresh(self) -> None:
        names = [self.keypoints.item(i).text() for i in range(self.keypoints.count())]
        for combo in (self.first, self.second):
            index = combo.currentIndex()
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(min(max(index, 0), len(names) - 1))
        self.list.clear()
        self.list.addItems([f"{a.text()} {self.joiner} {b.text()}" for a, b in self.pairs])


class SkeletonEditor(QWidget):
    def __init__(self, names: tuple[str, ...] = (), parent=None):
        super().__init__(parent)
        self.keypoints = QListWidget()
        self.edges = PairEditor("Edges (drawn between keypoints)", "-", self.keypoints)
        self.symmetry = PairEditor("Left/right pairs (swapped when an image is mirrored)", "<->", self.keypoints)
        buttons = QGridLayout()
        self.buttons = {}
        for i, (name, action) in enumerate([("Add keypoint", self.add_keypoint), ("Remove", self.remove_keypoint),
                                            ("Up", lambda: self.move(-1)), ("Down", lambda: self.move(1))]):
            self.buttons[name] = button = QPushButton(name)
            button.clicked.connect(lambda _=False, act=action: act())
            buttons.addWidget(button, 0, i)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Keypoints, in order (double-click to rename):"))
        layout.addWidget(self.keypoints)
        layout.addLayout(buttons)
        layout.addWidget(self.edges)
        layout.addWidget(self.symmetry)
        self.keypoints.itemChanged.connect(lambda _item: self._refresh())
        for name in names:
            self.add_keypoint(name)

    def add_keypoint(self, name: str | None = None) -> None:
        item = QListWidgetItem(name or f"keypoint {self.keypoints.count() + 1}")
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        self.keypoints.addItem(item)
        self.keypoints.setCurrentItem(item)
        self._refresh()

    def remove_keypoint(self) -> None:
        row = self.keypoints.currentRow()
        if row >= 0:
            item = self.keypoints.takeItem(row)
            self.edges.forget(item)
            self.symmetry.forget(item)
            self._refresh()

    def move(self, step: int) -> None:
        row = self.keypoints.currentRow()
        if row >= 0 and 0 <= row + step < self.keypoints.count():
            item = self.keypoints.takeItem(row)
            self.keypoints.insertItem(row + step, item)
            self.keypoints.setCurrentItem(item)
            self._refresh()

    def rename(self, row: int, name: str) -> None:
        self.keypoints.item(row).setText(name)  # itemChanged refreshes the pairs

    def skeleton(self) -> Skeleton:
        """The skeleton as drawn; raises SkeletonError (empty or repeated names, two partners)."""
        names = tuple(self.keypoints.item(i).text() for i in range(self.keypoints.count()))
        return Skeleton(names, tuple(self.edges.rows()), tuple(self.symmetry.rows()))

    def _refresh(self) -> None:
        self.edges.refresh()
        self.symmetry.refresh()
