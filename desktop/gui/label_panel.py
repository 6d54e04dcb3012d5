"""The labelling side panel: what to do now, in one line; classes with their keys, the query being
asked with the model's three likeliest classes, the mode, the prediction opacity, the average
answer time and the keys. Every text wraps inside the panel's fixed width (the workspace's
``SIDE_WIDTH``), so no text change moves the viewer beside it."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QFormLayout, QLabel, QListWidget, QListWidgetItem, QSlider, QVBoxLayout, QWidget

from desktop.engine.project.records import ClassInfo
from desktop.engine.service.messages import QueryPoint


def swatch(colour: str, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


def key_of(info: ClassInfo) -> str:
    return info.key or str(info.index + 1)


KEY_HINT = ("1...9: answer or pick a class · U: unsure · S: skip · M: mode · N: next image (slide: region) · "
            "[ ]: opacity · F1: all keys")


class LabelPanel(QWidget):
    classChosen = Signal(object)  # ClassInfo
    opacityChanged = Signal(float)

    def __init__(self, classes: list[ClassInfo], parent=None):
        super().__init__(parent)
        self.classes = classes
        self.class_list = QListWidget()
        for info in classes:
            item = QListWidgetItem(swatch(info.colour), f"[{key_of(info)}]  {info.name}")
            item.setData(Qt.UserRole, info.index)
            self.class_list.addItem(item)
        self.class_list.setMaximumHeight(22 * max(3, len(classes)) + 8)
        self.todo = QLabel()
        self.todo.setWordWrap(True)
        self.todo.setStyleSheet("font-weight: bold")
        self.mode = QLabel()
        self.mode.setWordWrap(True)
        self.query = QLabel("no query")
        self.query.setWordWrap(True)
        self.candidates = QLabel()
        self.candidates.setTextFormat(Qt.RichText)
        self.candidates.setWordWrap(True)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.seconds = QLabel("-")

        form = QFormLayout()
        form.addRow("Mode", self.mode)
        form.addRow("Query", self.query)
        form.addRow("Likeliest", self.candidates)
        form.addRow("Overlay opacity", self.opacity)
        form.addRow("Mean answer time", self.seconds)
        hint = QLabel(KEY_HINT)
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.todo)
        layout.addWidget(QLabel("Classes (key, name)"))
        layout.addWidget(self.class_list)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addStretch(1)
        self._mode, self._asking = "query", False

        self.class_list.currentRowChanged.connect(lambda row: row >= 0 and self.classChosen.emit(classes[row]))
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100))

    def show_active_class(self, info: ClassInfo) -> None:
        self.class_list.blockSignals(True)
        self.class_list.setCurrentRow(info.index)
        self.class_list.blockSignals(False)

    def show_mode(self, mode: str) -> None:
        self.mode.setText({"query": "answering queries (M: free clicking)",
                           "free": "free clicking (M: answer queries)"}[mode])
        self._mode = mode
        self._show_todo()

    def _show_todo(self) -> None:
        """The one line that says what to do now."""
        if self._mode == "free":
            self.todo.setText("Click a point of the class chosen below; right-click deletes one.")
        elif self._asking:
            self.todo.setText("Press the number of the class under the ring.")
        else:
            self.todo.setText("Waiting for the next question; or press M and click points yourself.")

    def show_query(self, query: QueryPoint | None, remaining: int, no_guess: str = "(no model yet)") -> None:
        """``no_guess``: what "Likeliest" says when the query has no classes from the model."""
        self._asking = query is not None
        self._show_todo()
        if query is None:
            self.query.setText("no open query")
            self.candidates.setText("")
            return
        self.query.setText(f"at x={query.x:.0f}, y={query.y:.0f} ({remaining} open)")
        parts = []
        for index, probability in query.candidates:
            info = self.classes[index]
            parts.append(f"<span style='color:{info.colour}'>&#9632;</span> <b>{key_of(info)}</b> "
                         f"{info.name} {probability:.0%}")
        self.candidates.setText("<br>".join(parts) if parts else no_guess)

    def show_mean_seconds(self, seconds: float | None) -> None:
        self.seconds.setText("-" if seconds is None else f"{seconds:.1f} s")
