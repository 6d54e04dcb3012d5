"""File > Predict images or slides...: run the project's model over many images, slides or folders
with ``pointillist predict``, in a separate process, while labelling goes on.

The dialog only chooses, starts and reports: the inputs (files, folders, or the project's own
images), the output folder, the formats, the learner and the workers; then the progress, the
inputs that failed and why, and the summary. Choices the command would refuse are said here,
before anything starts. Closing the dialog while a run goes on asks first and never leaves the
process behind.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QMessageBox, QProgressBar, QPushButton, QSizePolicy,
                               QSpinBox, QVBoxLayout)

from .file_filters import picture_filter
from .icons import error_style
from .predict_command import FORMATS, Done, inputs_for_command, predict_arguments, predict_command
from .predict_run import Outcome, PredictRun
from .training_panel import LEARNERS

ERROR_LINES = 12  # of the command's standard error: the end of a traceback or a log says why


class PredictDialog(QDialog):
    def __init__(self, project: Path, images: list[Path], learner: str = "fast", parent=None,
                 command: Callable[[list[str]], list[str]] = predict_command):
        """``images`` are the project's own; ``command`` turns the arguments into the command line
        (tests start a stand-in script with it)."""
        super().__init__(parent)
        self.project = Path(project)
        self.images = list(images)
        self.command = command
        self.run: PredictRun | None = None
        self.list_folder: tempfile.TemporaryDirectory | None = None  # a run's list of inputs, when they are many
        self.setWindowTitle(f"Predict with the model of {self.project.name}")

        self.inputs = QListWidget()
        self.inputs.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.add_files_button = QPushButton("Add files...")
        self.add_folder_button = QPushButton("Add a folder...")
        self.project_images_button = QPushButton("The project's own images")
        self.remove_button = QPushButton("Remove")
        self.out = QLineEdit()
        self.out.setPlaceholderText("where the results go")
        self.out_button = QPushButton("Choose...")
        self.formats = {name: QCheckBox(text) for name, text in FORMATS.items()}
        for box in self.formats.values():
            box.setChecked(True)
        self.learner = QComboBox()
        self.learner.addItems(LEARNERS)
        self.learner.setCurrentText(learner)
        self.learner.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.workers = QSpinBox()
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.workers.setToolTip("How many inputs are predicted at once; each one needs its own memory.")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)  # an error can be copied into a report
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m")
        self.progress.hide()  # until a run starts
        self.current = QLabel()
        self.failures = QListWidget()
        self.failures_label = QLabel("Failed:")
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.open_button = QPushButton("Open folder")
        self.close_button = QPushButton("Close")
        self._build_layout()
        self._connect()
        self._set_running(False)
        self.open_button.setEnabled(False)
        self.failures.hide()
        self.failures_label.hide()

    def _build_layout(self) -> None:
        input_buttons = QVBoxLayout()
        for button in (self.add_files_button, self.add_folder_button, self.project_images_button,
                       self.remove_button):
            input_buttons.addWidget(button)
        input_buttons.addStretch()
        inputs = QHBoxLayout()
        inputs.addWidget(self.inputs, 1)
        inputs.addLayout(input_buttons)
        out = QHBoxLayout()
        out.addWidget(self.out, 1)
        out.addWidget(self.out_button)
        formats = QHBoxLayout()
        for box in self.formats.values():
            formats.addWidget(box)
        formats.addStretch()
        form = QFormLayout()
        form.addRow("Output folder", out)
        form.addRow("Formats", formats)
        form.addRow("Learner", self.learner)
        form.addRow("Workers", self.workers)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.open_button):
            buttons.addWidget(button)
        buttons.addStretch()
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Images, slides, folders (with their sub-folders) or .txt lists of them:"))
        layout.addLayout(inputs, 1)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.current)
        layout.addWidget(self.failures_label)
        layout.addWidget(self.failures, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.resize(720, 560)

    def _connect(self) -> None:
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.project_images_button.clicked.connect(self.use_project_images)
        self.remove_button.clicked.connect(self.remove_selected)
        self.out_button.clicked.connect(self.choose_out)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_folder)
        self.close_button.clicked.connect(self.close)

    # ----- choosing ----------------------------------------------------------------------------
    def input_paths(self) -> list[Path]:
        return [Path(self.inputs.item(row).text()) for row in range(self.inputs.count())]

    def add_inputs(self, paths: list[Path]) -> None:
        """Each path once, in the order chosen."""
        listed = set(self.input_paths())
        for path in paths:
            if path not in listed:
                self.inputs.addItem(str(path))
                listed.add(path)

    def use_project_images(self) -> None:
        """One click: the list becomes the project's own images."""
        self.inputs.clear()
        self.add_inputs(self.images)

    def remove_selected(self) -> None:
        for item in self.inputs.selectedItems():
            self.inputs.takeItem(self.inputs.row(item))

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Images or slides to predict", "",
                                                picture_filter(extra="Lists of paths (*.txt)"))
        self.add_inputs([Path(p) for p in paths])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder to predict (with its sub-folders)")
        if folder:
            self.add_inputs([Path(folder)])

    def choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the results", self.out.text())
        if folder:
            self.out.setText(folder)

    def out_folder(self) -> Path | None:
        text = self.out.text().strip()
        return Path(text).expanduser().absolute() if text else None

    def chosen_formats(self) -> list[str]:
        return [name for name, box in self.formats.items() if box.isChecked()]

    def problem(self) -> str | None:
        """What is wrong with the choices, in words, or None when the command can start."""
        inputs = self.input_paths()
        if not inputs:
            return "Add the images, slides or folders to predict, or choose the project's own images."
        out = self.out_folder()
        if out is None:
            return "Choose an output folder."
        if out.exists() and not out.is_dir():
            return f"The output folder {out} is a file: choose a folder."
        existing = next((p for p in (out, *out.parents) if p.exists()), None)
        if existing is None:
            return f"The output folder {out} cannot be made: its drive is not there."
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"This user may not write in {existing}: choose another output folder."
        if not self.chosen_formats():
            return "Tick at least one format."
        return None

    # ----- running -----------------------------------------------------------------------------
    def start(self) -> None:
        problem = self.problem()
        if problem is not None:
            self._say(problem, error=True)
            return
        self.list_folder = tempfile.TemporaryDirectory(prefix="pointillist-predict-")
        inputs = inputs_for_command(self.input_paths(), Path(self.list_folder.name))
        arguments = predict_arguments(self.project, inputs, self.out_folder(), self.chosen_formats(),
                                      self.learner.currentText(), self.workers.value())
        if self.run is not None:
            self.run.deleteLater()
        self.run = PredictRun(self.command(arguments), parent=self)
        self.run.total.connect(self._total)
        self.run.done.connect(self._done)
        self.run.finished.connect(self._finished)
        self.failures.clear()
        self.failures.hide()
        self.failures_label.hide()
        self.open_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the command says how many inputs it found
        self.progress.show()
        self.current.setText("Loading the model and listing the inputs...")
        self._say("")
        self._set_running(True)
        self.run.start()

    def running(self) -> bool:
        return self.run is not None and self.run.running()

    def cancel(self) -> None:
        if self.running():
            self.cancel_button.setEnabled(False)
            self.current.setText("Cancelling...")
            self.run.cancel()

    def _total(self, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.current.setText(f"{total} input(s) to predict.")

    def _done(self, done: Done) -> None:
        self.progress.setRange(0, done.total)
        self.progress.setValue(done.n)
        self.current.setText(f"{done.n} of {done.total}: {done.name}" + (" failed" if done.failure else ""))
        if done.failure is not None:
            self.failures.addItem(f"{done.name}: {done.failure}")
            self.failures.show()
            self.failures_label.show()

    def _finished(self, outcome: Outcome) -> None:
        self._set_running(False)
        self.list_folder.cleanup()
        if self.progress.maximum() == 0:  # it never said how many: no busy bar left turning
            self.progress.setRange(0, 1)
            self.progress.hide()
        errors = "\n".join(outcome.errors.splitlines()[-ERROR_LINES:]) or "no reason given"
        if outcome.cancelled:
            counted = "" if self.progress.isHidden() else f" after {self.progress.value()} of {self.progress.maximum()}"
            self.current.setText(f"Cancelled{counted}.")
            self._say("Cancelled. What was finished is kept: Start continues with the rest.")
        elif outcome.exit_code == 0 and outcome.summary is not None:  # this run or an earlier one did each
            self.progress.setValue(self.progress.maximum())
            self.current.setText(f"Done: all {self.progress.maximum()} predicted.")
            self._say(f"Summary: {outcome.summary}")
        elif outcome.exit_code == 1 and outcome.summary is not None:
            self.current.setText(f"Done: {self.failures.count()} of {self.progress.maximum()} failed (listed below); "
                                 "the others are predicted.")
            self._say(f"Summary: {outcome.summary}")
        elif outcome.exit_code == 2:
            self.current.setText("Not started.")
            self._say(f"The prediction could not start:\n{errors}", error=True)
        else:
            status = "" if outcome.exit_code is None else f" (exit status {outcome.exit_code})"
            self.current.setText("Stopped.")
            self._say(f"The prediction stopped before the end{status}:\n{errors}", error=True)
        self.open_button.setEnabled(self.out_folder() is not None and self.out_folder().is_dir())

    def open_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.out_folder())))

    def _set_running(self, running: bool) -> None:
        for widget in (self.inputs, self.add_files_button, self.add_folder_button, self.project_images_button,
                       self.remove_button, self.out, self.out_button, self.learner, self.workers,
                       self.start_button, *self.formats.values()):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(error_style() if error else "")
        self.message.setText(text)

    # ----- closing -----------------------------------------------------------------------------
    def _stopped_for_closing(self) -> bool:
        """A run goes on only with the dialog open: closing asks, then stops it and waits until the
        process is gone. False when the user keeps it running."""
        if not self.running():
            return True
        answer = QMessageBox.question(
            self, "A prediction is running",
            "Stop the prediction and close? What was finished is kept; Start continues later.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return False
        self.run.stop_now()
        return True

    def closeEvent(self, event) -> None:  # the title bar's close button, Close, the main window closing
        if not self._stopped_for_closing():
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:  # Escape hides a dialog without a close event
        if self._stopped_for_closing():
            super().reject()
