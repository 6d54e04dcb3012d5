"""File > Import a DeepLabCut or COCO project: a new keypoint project, with its labels, in one step.

Choose a DeepLabCut project's ``config.yaml``, or a COCO keypoints file and the folder of its
pictures, and a folder for the new project. The import runs on a worker thread, with a progress
bar and Cancel, because a project of thousands of frames takes a while to check; the window
opens the project when it is made. A refusal shows its file, row and reason, and the dialog stays
open so that the file can be fixed and the import tried again: nothing was made in between (see
``engine/keypoints/project_import.py``)."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from desktop.engine.errors import PointillistError

from .icons import error_style

if TYPE_CHECKING:
    from desktop.engine.keypoints.project_import import ImportResult

KINDS = {"dlc": "DeepLabCut project (its config.yaml)", "coco": "COCO keypoints file (.json) and its images"}


class ImportThread(QThread):
    """Runs one import off the GUI thread; ``progress`` says which file or frame is being read
    (n of total, its name), and a requested interruption cancels between files."""

    progress = Signal(int, int, str)

    def __init__(self, work, parent=None):
        super().__init__(parent)
        self.work = work
        self.result: ImportResult | None = None
        self.failure = ""

    def run(self) -> None:
        try:
            self.result = self.work(progress=lambda n, total, name: self.progress.emit(n, total, name),
                                    cancelled=self.isInterruptionRequested)
        except PointillistError as e:
            self.failure = str(e)
        except Exception as e:  # noqa: BLE001 - whatever it was, the user is told, not left waiting
            self.failure = f"The import failed: {e}"


class ImportDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Import a DeepLabCut or COCO project")
        self.worker: ImportThread | None = None
        self.created: Path | None = None
        self.summary = ""

        self.kind = QComboBox()
        for kind, text in KINDS.items():
            self.kind.addItem(text, kind)
        self.source = QLineEdit()
        self.images = QLineEdit()
        self.images.setPlaceholderText("the folder the COCO file's file_name entries are in")
        self.target = QLineEdit()
        self.target.setPlaceholderText("a new (or empty) folder for the project")
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet(error_style())
        self.error.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.import_button = self.buttons.button(QDialogButtonBox.Ok)
        self.import_button.setText("Import")
        self.cancel_button = self.buttons.button(QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Import:", self.kind)
        self.source_label = QLabel()
        form.addRow(self.source_label, self._with_browse(self.source, self._choose_source))
        self.images_row = self._with_browse(self.images, self._choose_images)
        form.addRow("Images folder:", self.images_row)
        form.addRow("New project:", self._with_browse(self.target, self._choose_target))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()
        self._show_running(False)
        self.resize(620, 260)

    @staticmethod
    def _with_browse(edit: QLineEdit, choose) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        button = QPushButton("Browse...")
        button.clicked.connect(choose)
        layout.addWidget(edit)
        layout.addWidget(button)
        return row

    def _kind_changed(self) -> None:
        dlc = self.kind.currentData() == "dlc"
        self.source_label.setText("config.yaml:" if dlc else "COCO file:")
        self.source.setPlaceholderText("the DeepLabCut project's config.yaml" if dlc else "a COCO keypoints .json")
        self.images_row.setEnabled(not dlc)
        self.error.clear()

    # ----- run ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        """Check that every field is filled, then import on a worker."""
        if self.running:
            return
        source, images, target = (edit.text().strip() for edit in (self.source, self.images, self.target))
        dlc = self.kind.currentData() == "dlc"
        missing = [what for what, text in (("the config.yaml" if dlc else "the COCO file", source),
                                           ("the images folder", images or dlc), ("a folder for the new project",
                                                                                  target)) if not text]
        if missing:
            self.error.setText(f"Choose {' and '.join(missing)}.")
            return
        # Imported here: YAML and the readers are not needed to open the window (~50 ms).
        from desktop.engine.keypoints.project_import import import_coco_project, import_dlc_project

        work = partial(import_dlc_project, source, target) if dlc else partial(import_coco_project, source, images,
                                                                                   target)
        self.error.clear()
        self.status.setText("Reading the labels...")
        self.progress.setRange(0, 0)  # busy until the first step is counted
        thread = self.worker = ImportThread(work, self)
        thread.progress.connect(lambda n, total, name: self._progress(thread, n, total, name))
        thread.finished.connect(lambda: self._finished(thread))
        self._show_running(True)
        thread.start()

    def reject(self) -> None:
        """Cancel (or Escape) during an import cancels the import and keeps the dialog open, to
        say so; otherwise it closes the dialog."""
        if self.worker is not None:
            self.worker.requestInterruption()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling...")
            return
        super().reject()

    def _progress(self, thread: ImportThread, n: int, total: int, name: str) -> None:
        if thread is self.worker:
            self.progress.setRange(0, total)
            self.progress.setValue(n - 1)
            self.status.setText(f"Reading {n} of {total}: {name}")

    def _finished(self, thread: ImportThread) -> None:
        if thread is not self.worker:
            return
        self.worker = None
        self._show_running(False)
        if thread.result is None:
            self.status.clear()
            self.error.setText(thread.failure)
            return
        self.created = thread.result.folder
        self.summary = thread.result.summary()
        self.accept()

    def _show_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setEnabled(True)
        self.import_button.setEnabled(not running)
        for widget in (self.kind, self.source, self.images, self.target):
            widget.setEnabled(not running)
        self.images_row.setEnabled(not running and self.kind.currentData() == "coco")

    def done(self, result: int) -> None:
        """Closing stops a running import first (it is cancelled: nothing is left of it)."""
        self.stop()
        super().done(result)

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)

    def stop(self) -> None:
        thread, self.worker = self.worker, None
        if thread is not None:
            thread.requestInterruption()
            thread.wait()

    # ----- choose ------------------------------------------------------------------------------
    def _choose_source(self) -> None:
        if self.kind.currentData() == "dlc":
            path, _ = QFileDialog.getOpenFileName(self, "The DeepLabCut project's config.yaml", "",
                                                  "DeepLabCut config (config.yaml *.yaml);;All files (*)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "A COCO keypoints file", "",
                                                  "COCO JSON (*.json);;All files (*)")
        if path:
            self.source.setText(path)

    def _choose_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The folder of the COCO file's pictures")
        if folder:
            self.images.setText(folder)

    def _choose_target(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A new (or empty) folder for the project")
        if folder:
            self.target.setText(folder)
