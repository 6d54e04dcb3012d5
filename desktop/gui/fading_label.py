"""A name shown over a viewer for a moment, then faded out: the move to another image is seen
even when the eyes are on the keyboard."""
from __future__ import annotations

from PySide6.QtCore import QPropertyAnimation, QSequentialAnimationGroup, Qt
from PySide6.QtWidgets import QGraphicsOpacityEffect, QLabel, QWidget

HOLD_MS = 900
FADE_MS = 600


class FadingLabel(QLabel):
    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)  # clicks go through to the image
        self.setStyleSheet("background: rgba(0, 0, 0, 170); color: white; padding: 6px 14px; "
                           "border-radius: 6px; font-size: 15pt;")
        self.effect = QGraphicsOpacityEffect(self)
        self.setGraphicsEffect(self.effect)
        fade = QPropertyAnimation(self.effect, b"opacity", self)
        fade.setDuration(FADE_MS)
        fade.setStartValue(1.0)
        fade.setEndValue(0.0)
        self.animation = QSequentialAnimationGroup(self)
        self.animation.addPause(HOLD_MS)
        self.animation.addAnimation(fade)
        self.animation.finished.connect(self.hide)
        self.hide()

    def flash(self, text: str) -> None:
        """Show ``text`` at the top middle of the parent, then fade it out."""
        self.setText(text)
        self.adjustSize()
        self.move(max(0, (self.parentWidget().width() - self.width()) // 2), 12)
        self.effect.setOpacity(1.0)
        self.raise_()
        self.show()
        self.animation.stop()
        self.animation.start()
