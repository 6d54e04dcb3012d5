"""Background training controls and curves: learner, device, run/pause, model version, loss and
held-out label accuracy per model version, and what the engine is busy with.

Accuracy on a handful of held-back labels jumps about (0, then 100 %, then 50 %) and says little,
so it is shown with how many labels it was measured on and a 95 % Wilson score interval, and as
"too few to judge" below ``JUDGE_FROM`` held-back labels; only judged versions are plotted.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from desktop.resources import ui_colour

LEARNERS = ("fast", "deep")
DEVICES = ("auto", "cpu", "cuda", "mps")
JUDGE_FROM = 20  # held-back labels below which an accuracy is "too few to judge"
Z_95 = 1.959964  # the standard normal quantile of a two-sided 95 % interval


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: unlike p +- z*sqrt(p(1-p)/n) it stays inside
    [0, 1] and is not of zero width at 0 or n successes."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_words(accuracy: float | None, held_back: int) -> str:
    """What the panel says of a held-out accuracy measured on ``held_back`` labels."""
    if accuracy is None or held_back <= 0:
        return "- (no labels held back yet)"
    right = round(accuracy * held_back)
    if held_back < JUDGE_FROM:
        return f"too few to judge ({right} of {held_back} held-back labels right; needs {JUDGE_FROM})"
    low, high = wilson_interval(right, held_back)
    return f"{accuracy:.1%} on {held_back} held-back labels (95% interval {low:.0%} to {high:.0%})"


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
        self.accuracy.setWordWrap(True)
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
        self.accuracy_bars = pg.ErrorBarItem(pen=pg.mkPen(ui_colour("accuracy_curve")), beam=0.2)
        self.accuracy_plot.addItem(self.accuracy_bars)
        self.history: list[tuple[int, float, float | None, int]] = []  # version, loss, accuracy, held back

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

    def add_model(self, version: int, loss: float, accuracy: float | None, label_count: int,
                  held_back: int) -> None:
        """A model version to show; ``loss`` is NaN for versions read back from the project.
        ``label_count`` counts every label, ``held_back`` those of them the accuracy is measured on."""
        self.version.setText(f"{version}  ({label_count} labels)")
        self.accuracy.setText(accuracy_words(accuracy, held_back))
        if any(h[0] == version for h in self.history):
            return  # the engine announces the restored version that the project already listed
        self.history.append((version, loss, accuracy, held_back))
        trained = [h for h in self.history if not math.isnan(h[1])]
        self.loss_curve.setData([h[0] for h in trained], [h[1] for h in trained])
        judged = [h for h in self.history if h[2] is not None and h[3] >= JUDGE_FROM]
        self.accuracy_curve.setData([h[0] for h in judged], [h[2] for h in judged])
        if judged:
            x, y = np.array([h[0] for h in judged], float), np.array([h[2] for h in judged])
            low, high = np.array([wilson_interval(round(h[2] * h[3]), h[3]) for h in judged]).T
            self.accuracy_bars.setData(x=x, y=y, top=high - y, bottom=y - low)

    def show_progress(self, text: str, fraction: float | None) -> None:
        self.status.setText(text)
        if fraction is None:
            self.busy.setRange(0, 0)  # busy, end unknown
        else:
            self.busy.setRange(0, 100)
            self.busy.setValue(int(100 * fraction))
