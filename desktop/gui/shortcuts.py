"""Every key of the app in one table: the key handler and Help > Keyboard shortcuts both use it.

Labelling keys reach the labelling wherever the focus is in the window, except in a text field
(``key_route``). A class's own key, set in the project, wins over every other plain key here
(F, 0, N, the layer keys...); the keys 1..9 that classes get by position never clash with them.
Keys with Ctrl are bound once each, as menu shortcuts.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout

LAYER_KEYS = {"I": "image", "P": "prediction", "H": "uncertainty", "L": "labels", "Q": "queries"}

SHORTCUTS = [
    ("1 ... 9, or a class's own key", "answer the current query with that class (query mode); "
                                      "choose the active class (free mode). Just after the move to "
                                      "the next image, keys wait 0.6 s and are ignored meanwhile"),
    ("U", "mark the current query unsure: stored, never asked again"),
    ("S", "skip the current query"),
    ("M", "switch between answering queries and free clicking"),
    ("Left click", "free mode: add a point of the active class"),
    ("Right click", "free mode: delete the nearest label"),
    ("N", "go to the next most uncertain image; on a slide, to its most uncertain region not yet seen"),
    ("Enter / Shift+Enter", "keypoints: accept the asked keypoint's proposal / every remaining proposal"),
    ("V / A", "keypoints: the asked keypoint is occluded (at its proposal) / absent from the image"),
    ("Left drag on a keypoint", "keypoints: move a label or a proposal there"),
    ("I / P / H / L / Q", "show or hide the image, prediction, uncertainty (heat), labels, queries"),
    ("[ / ]", "prediction overlay less / more opaque"),
    ("T", "pause or run background training"),
    ("Ctrl+Z", "undo the last label edit"),
    ("Ctrl+Shift+Z, Ctrl+Y", "redo"),
    ("Home, F", "fit the whole image (or slide) in view"),
    ("0", "zoom 1:1: one image pixel per screen pixel"),
    ("Mouse wheel / drag", "zoom (from half the fitted size to 32 screen pixels per image pixel) / pan"),
    ("Ctrl+N / Ctrl+O / Ctrl+Q", "new project / open a project / quit"),
    ("F1", "this list"),
]


DOES_WIDTH = 440  # px of the "Does" column; its longer texts wrap


class ShortcutsDialog(QDialog):
    """The table at the size of its text: every row whole, nothing cut or scrolled sideways
    (the list only scrolls down on a screen too short for it)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = table = QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(["Key", "Does"])
        for row, (key, does) in enumerate(SHORTCUTS):
            table.setItem(row, 0, QTableWidgetItem(key))
            table.setItem(row, 1, QTableWidgetItem(does))
        table.verticalHeader().hide()
        table.setWordWrap(True)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        table.resizeColumnToContents(0)
        table.setColumnWidth(1, DOES_WIDTH)
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeRowsToContents()
        frame = 2 * table.frameWidth()
        width = table.columnWidth(0) + DOES_WIDTH + frame + table.verticalScrollBar().sizeHint().width()
        height = table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(table.rowCount())) + frame
        screen = self.screen().availableGeometry()
        table.setMinimumSize(min(width, screen.width() - 40), min(height, screen.height() - 120))
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
