"""A strip of news that stays until dismissed: files left out or unreadable, which a status-bar
message would take away after a few seconds, before anyone read which files they were."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from .icons import error_style


class Banner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)  # file names can be copied
        self.text.setStyleSheet(error_style())
        self.close_button = QToolButton(text="\u2715", toolTip="Dismiss", autoRaise=True)
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignTop)
        self.hide()

    def add(self, text: str) -> None:
        """Show ``text`` below what is already shown: nothing shown goes before it is dismissed."""
        shown = self.text.text()
        self.text.setText(f"{shown}\n{text}" if shown else text)
        self.show()

    def dismiss(self) -> None:
        self.text.clear()
        self.hide()
