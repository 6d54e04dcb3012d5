"""What the window shows with no project open: New, Open, Import, Demo and the recent projects.

The recent-projects list is a file in the app's data folder (``desktop.paths``), not Qt's
settings: one place for it whatever the platform, which ``POINTILLIST_HOME`` moves as a whole.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from desktop.paths import recent_projects


class StartScreen(QWidget):
    newRequested = Signal()
    openRequested = Signal()
    importRequested = Signal()
    demoRequested = Signal()
    recentChosen = Signal(Path)

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("<h1>Pointillist</h1><p>Teach a segmentation or keypoint model by answering its "
                       "questions with one key press or one click. Everything stays on this computer.</p>")
        title.setAlignment(Qt.AlignCenter)
        self.new_button = QPushButton("New project...")
        self.open_button = QPushButton("Open project...")
        self.import_button = QPushButton("Import DeepLabCut or COCO...")
        self.demo_button = QPushButton("Try the demo")
        buttons = QHBoxLayout()
        for button in (self.new_button, self.open_button, self.import_button, self.demo_button):
            button.setMinimumHeight(40)
            buttons.addWidget(button)
        self.recent = QListWidget()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Recent projects (double-click to open)"))
        layout.addWidget(self.recent)
        layout.addStretch(1)
        layout.setContentsMargins(120, 40, 120, 40)
        self.new_button.clicked.connect(self.newRequested)
        self.open_button.clicked.connect(self.openRequested)
        self.import_button.clicked.connect(self.importRequested)
        self.demo_button.clicked.connect(self.demoRequested)
        self.recent.itemActivated.connect(lambda item: self.recentChosen.emit(Path(item.text())))
        self.refresh()

    def refresh(self) -> None:
        self.recent.clear()
        for folder in recent_projects():
            self.recent.addItem(str(folder))
