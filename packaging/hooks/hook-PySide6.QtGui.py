# Replaces PyInstaller's own hook for PySide6.QtGui (hooks on the spec's hookspath win): the same
# collection, less the Qt plugins the app does not need. Trimming here, before PyInstaller follows
# each plugin's library dependencies, also keeps out what only those plugins pull in (QtQml and
# QtQuick for the virtual keyboard, QtPdf, QtWaylandClient, the system's GTK).
from pathlib import PurePath

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

# Plugin folders kept: windowing, image formats, SVG icons, input methods, desktop themes
# (file dialogs through the XDG portal), and xcb's OpenGL glue; macOS keeps platforms/darwin.
KEPT_FOLDERS = {"platforms", "darwin", "imageformats", "iconengines", "platforminputcontexts",
                "platformthemes", "xcbglintegrations"}
# Windowing systems kept: the desktop's own (xcb on Linux, also under XWayland; windows; cocoa),
# offscreen for the self-test and headless use, minimal for debugging.
KEPT_PLATFORMS = {"qxcb", "qwindows", "qcocoa", "qoffscreen", "qminimal"}
# Plugins dropped from kept folders, for what they would pull in.
DROPPED = ("virtualkeyboard", "qpdf", "qgtk3")


def _kept(source: str, folder: str) -> bool:
    name = PurePath(source).name
    if PurePath(folder).name not in KEPT_FOLDERS or any(word in name for word in DROPPED):
        return False
    stem = name.removeprefix("lib").split(".")[0]
    return PurePath(folder).name != "platforms" or stem in KEPT_PLATFORMS


hiddenimports, binaries, datas = add_qt6_dependencies(__file__)
binaries = [(source, folder) for source, folder in binaries
            if "plugins" not in PurePath(folder).parts or _kept(source, folder)]
