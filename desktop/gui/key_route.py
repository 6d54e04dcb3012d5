"""Labelling keys reach the labelling wherever the focus is in the window.

Qt gives a key to the focused widget: after a click on the class list or a scrollbar, or after a
menu closed with Escape (which leaves the menu bar holding the keyboard), number keys and N went
there and were lost until the image was clicked again, and in query mode that click added a
label. ``KeyRoute`` looks at every key press of the application before any widget does and hands
those meant for a window's labelling to its handler, except while the person is typing in a text
field (a line edit, a spin box, a text edit, an editable combo box), where keys are text.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QMenuBar, QPlainTextEdit,
                               QTextEdit, QWidget)

TEXT_FIELDS = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)


def is_typing(widget: QWidget | None) -> bool:
    """Whether keys at ``widget`` are text: it, or a widget it is part of, is a text field."""
    while widget is not None:
        if isinstance(widget, TEXT_FIELDS) or (isinstance(widget, QComboBox) and widget.isEditable()):
            return True
        widget = widget.parentWidget()
    return False


class KeyRoute(QObject):
    """Key presses anywhere in ``widget``'s window go first to ``handle`` (True: used)."""

    def __init__(self, widget: QWidget, handle: Callable[[QKeyEvent], bool]):
        super().__init__(widget)
        self.widget, self.handle = widget, handle
        QApplication.instance().installEventFilter(self)

    def remove(self) -> None:
        QApplication.instance().removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.KeyPress or not watched.isWidgetType():
            return False
        if watched.window() is not self.widget.window():  # a dialog, a menu, another project's window
            return False
        # A key a text field leaves (Enter in a line edit) goes on to its parents: not for us either.
        if is_typing(watched) or is_typing(QApplication.focusWidget()) or not self.handle(event):
            return False
        if isinstance(watched, QMenuBar):  # it lets go of the keyboard, as after a click on the image
            watched.clearFocus()
        return True
