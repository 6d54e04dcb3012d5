"""The New-project dialog: choose images (a folder, searched with its sub-folders, or files),
choose the task, define the classes (name, colour, key) or, for keypoints, the skeleton, see how
many images were found and which cannot be read and why, then create.

The files are checked on a worker thread, file by file with a progress bar and a Cancel button:
one huge or slow file (a network drive, a slide) must not freeze the window."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QColorDialog, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QProgressBar, QPushButton, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from desktop.engine.errors import PointillistError
from desktop.engine.project.setup import ImageScan, create_project, default_classes, scan_images
from desktop.plural import plural
from desktop.resources import palette_colour

from .file_filters import picture_filter
from .icons import error_style
from .skeleton_editor import SkeletonEditor

DEFAULT_CLASSES = ["background", "foreground"]
TASKS = {"segmentation": "Segmentation: a class for every pixel", "keypoints": "Keypoints: a skeleton per image"}


class ScanThread(QThread):
    """Runs :func:`scan_images` off the GUI thread. ``progress`` says which file is being checked
    (n of total, its name); a requested interruption stops the scan before the next file."""

    progress = Signal(int, int, str)

    def __init__(self, sources: list[Path], parent=None):
        super().__init__(parent)
        self.sources = sources
        self.scan: ImageScan | None = None
        self.failure = ""

    def run(self) -> None:
        try:
            self.scan = scan_images(self.sources, lambda n, total, path: self.progress.emit(n, total, path.name),
                                    self.isInterruptionRequested)
        except Exception as e:  # noqa: BLE001 - whatever it was, the user is told, not left waiting
            self.failure = str(e)


class NewProjectDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.sources: list[Path] = []
        self.scan = ImageScan()
        self.scan_thread: ScanThread | None = None
        self.created: Path | None = None

        self.folder_button = QPushButton("Images from a folder...")
        self.files_button = QPushButton("Image files...")
        self.found = QLabel("No images chosen yet.")
        self.found.setWordWrap(True)
        self.progress = QProgressBar()
        self.cancel_scan_button = QPushButton("Cancel scan")
        self.cancel_scan_button.clicked.connect(self.cancel_scan)
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
        self.error.setStyleSheet(error_style())
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
        scanning = QHBoxLayout()
        scanning.addWidget(self.progress)
        scanning.addWidget(self.cancel_scan_button)
        layout.addLayout(scanning)
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
        self._show_scanning(False)
        self.resize(560, 700)

    # ----- gather ------------------------------------------------------------------------------
    @property
    def scanning(self) -> bool:
        return self.scan_thread is not None

    def set_sources(self, sources: list[Path]) -> None:
        """Start checking the chosen folder or files on a worker; the list fills when it is done."""
        self.stop_scan()
        self.sources = [Path(s) for s in sources]
        self.scan = ImageScan()
        self.unreadable.clear()
        self.error.clear()
        self.found.setText("Looking for images...")
        self.progress.setRange(0, 0)  # busy until the first file is counted
        thread = self.scan_thread = ScanThread(self.sources, self)
        thread.progress.connect(lambda n, total, name: self._scan_progress(thread, n, total, name))
        thread.finished.connect(lambda: self._scan_finished(thread))
        self._show_scanning(True)
        thread.start()

    def cancel_scan(self) -> None:
        """Stop the scan after the file being checked; the dialog then shows no images (see
        ``_scan_finished``)."""
        if self.scan_thread is not None:
            self.scan_thread.requestInterruption()
            self.cancel_scan_button.setEnabled(False)
            self.cancel_scan_button.setText("Cancelling...")

    def stop_scan(self) -> None:
        """Cancel the scan and wait for the worker (the file being checked, at most): a QThread
        must not be destroyed while it runs. Its queued signals are ignored from now on."""
        thread, self.scan_thread = self.scan_thread, None
        if thread is not None:
            thread.requestInterruption()
            thread.wait()
            self._show_scanning(False)

    def _scan_progress(self, thread: ScanThread, n: int, total: int, name: str) -> None:
        if thread is self.scan_thread:
            self.progress.setRange(0, total)
            self.progress.setValue(n - 1)
            self.found.setText(f"Checking {n} of {total}: {name}")

    def _scan_finished(self, thread: ScanThread) -> None:
        """Show what was found. A cancelled scan shows nothing and forgets the sources: a project
        made of the first part of a folder, whichever files came first, is not what was asked
        for, and creating it would mean scanning the rest anyway."""
        if thread is not self.scan_thread:
            return
        self.scan_thread = None
        self._show_scanning(False)
        if thread.scan is None or thread.scan.cancelled:
            self.sources = []
            self.found.setText(f"The scan failed: {thread.failure}" if thread.scan is None
                               else "Scan cancelled: no images chosen.")
            return
        self.scan = thread.scan
        self.found.setText(f"{plural(len(self.scan.readable), 'readable image')} found, "
                           f"{len(self.scan.unreadable)} unreadable.")
        for path, reason in self.scan.unreadable:
            self.unreadable.addItem(f"{path.name}: {reason}")

    def _show_scanning(self, scanning: bool) -> None:
        """While scanning: the progress bar and Cancel show, and Create and the choosers wait."""
        self.progress.setVisible(scanning)
        self.cancel_scan_button.setVisible(scanning)
        self.cancel_scan_button.setEnabled(True)
        self.cancel_scan_button.setText("Cancel scan")
        for button in (self.buttons.button(QDialogButtonBox.Ok), self.folder_button, self.files_button):
            button.setEnabled(not scanning)

    def add_class(self, name: str, colour: str | None = None, key: str | None = None) -> None:
        row = self.classes.rowCount()
        colour = colour or palette_colour(row)
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
        """Create from the finished scan (the files are not decoded again)."""
        if self.scanning:
            self.error.setText("The images are still being checked: wait for the scan, or cancel it.")
            return
        try:
            if not self.target.text().strip():
                raise PointillistError("Choose a folder for the new project.")
            if self.task.currentData() == "keypoints":
                project, _ = create_project(Path(self.target.text()), self.sources, [], "keypoints",
                                            self.skeleton_editor.skeleton(), scan=self.scan)
            else:
                project, _ = create_project(Path(self.target.text()), self.sources, self.class_rows(),
                                            scan=self.scan)
        except PointillistError as e:
            self.error.setText(str(e))
            return
        self.created = project.folder
        project.close()
        self.accept()

    def done(self, result: int) -> None:
        """Closing (Create, Cancel, Escape) stops a running scan first."""
        self.stop_scan()
        super().done(result)

    def closeEvent(self, event) -> None:
        """Closing a dialog that was never shown skips ``done``: stop the scan here too."""
        self.stop_scan()
        super().closeEvent(event)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images (its sub-folders are searched too)")
        if folder:
            self.set_sources([Path(folder)])

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Image files", "", picture_filter())
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
