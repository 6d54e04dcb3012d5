"""Starting the Qt application."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMainWindow


class MainWindow(QMainWindow):
    def __init__(self, project: Path | None = None):
        super().__init__()
        self.setWindowTitle("Pointillist" + (f" - {project.name}" if project else ""))
        self.resize(1280, 800)


def run_app(project: Path | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(project)
    window.show()
    return app.exec()
