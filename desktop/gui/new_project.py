"""The New-project dialog: choose images (a folder or files), choose the task, define the classes
(name, colour, key) or, for keypoints, the skeleton, see how many images were found and which
cannot be read and why, then create."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QColorDialog, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QPushButton, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from desktop.engine.errors import PointillistError
from desktop.engine.project_setup import PALETTE, ImageScan, create_project, default_classes, scan_images

from .skeleton_editor import SkeletonEditor

DEFAULT_CLASSES = ["background", "foreground"]
TASKS = {"segmentation": "Segmentation: a class for every pixel", "keypoints": "Keypoints: a skeleton per image"}


class NewProjectDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.sources: list[Path] = []
        self.scan = ImageScan()
        self.created: Path | None = None

        self.folder_button = QPushButton("Images from a folder...")
        self.files_button = QPushButton("Image files...")
        self.found = QLabel("No images chosen yet.")
        self.unreadable = QListWidget()
        self.unreadable.setMaximumHeight(90)
        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["Class", "Colour", "Key"])
        self.classes.cellDoubleClicked.connect(self._pick_colour)
        add, remove = QPushButton("Add class"), QPushButton("Remove class")
        add.clicked.connect(lambda: self.add_class(f"class {self.classes.rowCount() + 1}"))
        remove.clicked.connect(lambda: self.classes.removeRow(max(0, self.classes.currentRow())))
        self.task = QComboBox()
        for task, text in TASKS.items():
            self.task.addItem(text, task)
        self.skeleton_editor = SkeletonEditor()
        self.task_pages = QStackedWidget()
        class_page = QWidget()
        class_layout = QVBoxLayout(class_page)
        class_layout.setContentsMargins(0, 0, 0, 0)
        class_layout.addWidget(QLabel("Classes (double-click a colour to change it):"))
        class_layout.addWidget(self.classes)
        self.task_pages.addWidget(class_page)
        self.task_pages.addWidget(self.skeleton_editor)
        self.task.currentIndexChanged.connect(self.task_pages.setCurrentIndex)
        self.target = QLineEdit()
        self.target.setPlaceholderText("folder for the new project")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose_target)
        self.error = QLabel()
        self.error.setStyleSheet("color: #e57373")
        self.error.setWordWrap(True)
        self.buttons = buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Create")
        buttons.accepted.connect(self.create)
        buttons.rejected.connect(self.reject)

        pick = QHBoxLayout()
        pick.addWidget(self.folder_button)
        pick.addWidget(self.files_button)
        class_buttons = QHBoxLayout()
        class_buttons.addWidget(add)
        class_buttons.addWidget(remove)
        class_layout.addLayout(class_buttons)
        target = QHBoxLayout()
        target.addWidget(self.target)
        target.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addLayout(pick)
        layout.addWidget(self.found)
        layout.addWidget(QLabel("Unreadable (not added):"))
        layout.addWidget(self.unreadable)
        layout.addWidget(self.task)
        layout.addWidget(self.task_pages)
        layout.addLayout(target)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.folder_button.clicked.connect(self._choose_folder)
        self.files_button.clicked.connect(self._choose_files)
        for name, colour, key in default_classes(DEFAULT_CLASSES):
            self.add_class(name, colour, key)
        self.resize(560, 700)

    # ----- gather ------------------------------------------------------------------------------
    def set_sources(self, sources: list[Path]) -> None:
        """Scan the chosen folder or files and show what was found."""
        self.sources = [Path(s) for s in sources]
        self.scan = scan_images(self.sources)
        self.found.setText(f"{len(self.scan.readable)} readable images found, "
                           f"{len(self.scan.unreadable)} unreadable.")
        self.unreadable.clear()
        for path, reason in self.scan.unreadable:
            self.unreadable.addItem(f"{path.name}: {reason}")

    def add_class(self, name: str, colour: str | None = None, key: str | None = None) -> None:
        row = self.classes.rowCount()
        colour = colour or PALETTE[row % len(PALETTE)]
        if key is None and row < 9:
            key = str(row + 1)
        self.classes.insertRow(row)
        self.classes.setItem(row, 0, QTableWidgetItem(name))
        swatch = QTableWidgetItem(colour)
        swatch.setBackground(QColor(colour))
        swatch.setFlags(swatch.flags() & ~Qt.ItemIsEditable)
        self.classes.setItem(row, 1, swatch)
        self.classes.setItem(row, 2, QTableWidgetItem(key or ""))

    def class_rows(self) -> list[tuple[str, str, str | None]]:
        rows = []
        for row in range(self.classes.rowCount()):
            name = self.classes.item(row, 0).text().strip()
            key = self.classes.item(row, 2).text().strip() or None
            rows.append((name, self.classes.item(row, 1).text(), key))
        return rows

    # ----- do ----------------------------------------------------------------------------------
    def create(self) -> None:
        try:
            if not self.target.text().strip():
                raise PointillistError("Choose a folder for the new project.")
            if self.task.currentData() == "keypoints":
                project, _ = create_project(Path(self.target.text()), self.sources, [], "keypoints",
                                            self.skeleton_editor.skeleton())
            else:
                project, _ = create_project(Path(self.target.text()), self.sources, self.class_rows())
        except PointillistError as e:
            self.error.setText(str(e))
            return
        self.created = project.folder
        project.close()
        self.accept()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images")
        if folder:
            self.set_sources([Path(folder)])

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Image files")
        if files:
            self.set_sources([Path(f) for f in files])

    def _choose_target(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new project")
        if folder:
            self.target.setText(folder)

    def _pick_colour(self, row: int, column: int) -> None:
        if column != 1:
            return
        colour = QColorDialog.getColor(QColor(self.classes.item(row, 1).text()), self)
        if colour.isValid():
            self.classes.item(row, 1).setText(colour.name())
            self.classes.item(row, 1).setBackground(colour)
