"""The labelling side panel of a keypoint project: every keypoint with its state, the keypoint
being asked and what the keys do with it, the mode, the proposal opacity, the mean answer time."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QListWidget, QListWidgetItem, QSlider, QVBoxLayout, QWidget

from desktop.engine.keypoints.strategies import describe_score
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.service.messages import KeypointQuery

from .keypoint_overlay import KeypointOverlay
from .label_panel import swatch


class KeypointPanel(QWidget):
    keypointChosen = Signal(int)  # the keypoint a free click places
    opacityChanged = Signal(float)

    def __init__(self, skeleton: Skeleton, parent=None):
        super().__init__(parent)
        self.skeleton = skeleton
        self.keypoint_list = QListWidget()
        colours = KeypointOverlay.palette(len(skeleton))
        for k, name in enumerate(skeleton.names):
            item = QListWidgetItem(swatch(colours[k].name()), name)
            item.setData(Qt.UserRole, k)
            self.keypoint_list.addItem(item)
        self.mode = QLabel()
        self.mode.setWordWrap(True)  # texts wrap inside the panel's fixed width: nothing beside it moves
        self.query = QLabel("no query")
        self.query.setWordWrap(True)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(100)
        self.seconds = QLabel("-")

        form = QFormLayout()
        form.addRow("Mode", self.mode)
        form.addRow("Asked", self.query)
        form.addRow("Proposal opacity", self.opacity)
        form.addRow("Mean answer time", self.seconds)
        layout = QVBoxLayout(self)
        title = QLabel("Keypoints (click one to place it in free mode)")
        hint = QLabel("Click: it is here · Enter: accept · V: occluded · A: absent · drag: move · "
                      "Shift+Enter: accept all · F1: all keys")
        for label in (title, hint):
            label.setWordWrap(True)
        layout.addWidget(title)
        layout.addWidget(self.keypoint_list)
        layout.addLayout(form)
        layout.addWidget(hint)
        self.keypoint_list.currentRowChanged.connect(lambda row: row >= 0 and self.keypointChosen.emit(row))
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100))

    def show_mode(self, mode: str) -> None:
        self.mode.setText({"query": "answering queries (M: free clicking)",
                           "free": "free clicking (M: answer queries)"}[mode])

    def show_active(self, keypoint: int) -> None:
        self.keypoint_list.blockSignals(True)
        self.keypoint_list.setCurrentRow(keypoint)
        self.keypoint_list.blockSignals(False)

    def show_state(self, visibility: np.ndarray, proposals: dict[int, tuple[float, float, float]]) -> None:
        """Each keypoint's row: its label's visibility, or how sure the proposal is."""
        for k, name in enumerate(self.skeleton.names):
            if visibility[k]:
                state = visibility[k]
            elif k in proposals:
                state = f"proposed, {proposals[k][2]:.0%} sure"
            else:
                state = "not labelled"
            self.keypoint_list.item(k).setText(f"{name}: {state}")

    def show_query(self, query: KeypointQuery | None, remaining: int) -> None:
        if query is None:
            self.query.setText("nothing to ask: every keypoint is labelled" if remaining == 0 else "no query")
            return
        name = self.skeleton.names[query.keypoint]
        if query.score is None:
            self.query.setText(f"Click where '{name}' is ({remaining} to go; A if it is not in the image)")
            return
        sure = "" if query.confidence is None else f"proposal {query.confidence:.0%} sure; "
        self.query.setText(f"'{name}': {sure}asked as {describe_score(query.strategy, query.score)} "
                           f"({remaining} to go)")

    def show_mean_seconds(self, seconds: float | None) -> None:
        self.seconds.setText("-" if seconds is None else f"{seconds:.1f} s")
