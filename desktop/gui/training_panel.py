"""Background training controls and curves: learner, device, run/pause, model version, loss and
held-out label accuracy per model version, and what the engine is busy with."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from desktop.resources import ui_colour

LEARNERS = ("fast", "deep")
DEVICES = ("auto", "cpu", "cuda", "mps")


class TrainingPanel(QWidget):
    learnerChanged = Signal(str, str)  # learner, device
    pausedChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.learner = QComboBox()
        self.learner.addItems(LEARNERS)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.run_button = QPushButton("Pause training")
        self.run_button.setCheckable(True)
        self.version = QLabel("no model yet")
        self.accuracy = QLabel("-")
        self.status = QLabel("engine not started")
        self.status.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(8)
        self.loss_plot = pg.PlotWidget(title="loss")
        self.accuracy_plot = pg.PlotWidget(title="held-out accuracy")
        self.accuracy_plot.setYRange(0, 1)
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.setMinimumHeight(110)
            plot.setLabel("bottom", "model version")
            plot.setMouseEnabled(False, False)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen(ui_colour("loss_curve"), width=2), symbol="o",
                                              symbolSize=4)
        self.accuracy_curve = self.accuracy_plot.plot(pen=pg.mkPen(ui_colour("accuracy_curve"), width=2), symbol="o",
                                                      symbolSize=4)
        self.history: list[tuple[int, float, float | None]] = []

        form = QFormLayout()
        form.addRow("Learner", self.learner)
        form.addRow("Device", self.device)
        form.addRow("Model version", self.version)
        form.addRow("Held-out accuracy", self.accuracy)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.accuracy_plot)

        self.learner.currentTextChanged.connect(self._learner_changed)
        self.device.currentTextChanged.connect(self._learner_changed)
        self.run_button.toggled.connect(self._toggled)

    def _learner_changed(self, _text: str) -> None:
        self.learnerChanged.emit(self.learner.currentText(), self.device.currentText())

    def _toggled(self, paused: bool) -> None:
        self.run_button.setText("Run training" if paused else "Pause training")
        self.pausedChanged.emit(paused)

    def add_model(self, version: int, loss: float, accuracy: float | None, label_count: int) -> None:
        """A model version to show; ``loss`` is NaN for versions read back from the project."""
        self.version.setText(f"{version}  ({label_count} labels)")
        self.accuracy.setText("-" if accuracy is None else f"{accuracy:.1%}")
        if any(h[0] == version for h in self.history):
            return  # the engine announces the restored version that the project already listed
        self.history.append((version, loss, accuracy))
        trained = [h for h in self.history if not math.isnan(h[1])]
        self.loss_curve.setData([h[0] for h in trained], [h[1] for h in trained])
        scored = [h for h in self.history if h[2] is not None]
        self.accuracy_curve.setData([h[0] for h in scored], [h[2] for h in scored])

    def show_progress(self, text: str, fraction: float | None) -> None:
        self.status.setText(text)
        if fraction is None:
            self.busy.setRange(0, 0)  # busy, end unknown
        else:
            self.busy.setRange(0, 100)
            self.busy.setValue(int(100 * fraction))
