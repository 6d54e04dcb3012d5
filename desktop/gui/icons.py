"""Qt icons and colours from what ``desktop.resources`` names (that module stays Qt-free)."""
from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon

from desktop import resources


def app_icon() -> QIcon:
    """The window icon with every PNG render, so that title bars, task bars and docks each take a
    crisp size instead of scaling one (the 16 px one is drawn for that size)."""
    icon = QIcon()
    for size in resources.APP_ICON_SIZES:
        icon.addFile(str(resources.app_icon_png(size)), QSize(size, size))
    return icon


def toolbar_icon(name: str) -> QIcon:
    """One of ``resources.TOOLBAR_ICONS``, drawn from its SVG at whatever size the toolbar asks."""
    return QIcon(str(resources.toolbar_icon(name)))


def error_colour() -> QColor:
    """The colour that marks a problem (an unreadable image, a refused choice) everywhere."""
    return QColor(*resources.ui_colour("error"))


def error_style() -> str:
    return f"color: {error_colour().name()}"
