"""Whether Qt's window-system plugin can load on this Linux machine, and what to install if not.

Qt's wheels bring Qt itself but not the X11 libraries that its ``xcb`` platform plugin links
against. Where one is missing (often ``libxcb-cursor0`` or ``libxcb-icccm4``), creating the
QApplication aborts the process with "Could not load the Qt platform plugin 'xcb'", a message
that names neither the library nor the package. ``ldd`` on the plugin names the missing
libraries; Debian's naming rule for library packages turns each into the package to install.
``pointillist`` asks before it creates the QApplication, and ``--self-test`` too.

Qt itself is imported only to find the plugin folder (``QtCore``, no application is made).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

XCB_PLUGIN = "libqxcb.so"

# Libraries whose Debian/Ubuntu package does not follow the naming rule in ``debian_package``.
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0": "libglib2.0-0", "libgthread-2.0": "libglib2.0-0", "libgobject-2.0": "libglib2.0-0",
    "libgio-2.0": "libglib2.0-0", "libgldispatch": "libglvnd0", "libbrotlidec": "libbrotli1",
    "libbrotlicommon": "libbrotli1", "libz": "zlib1g", "libc": "libc6", "libm": "libc6", "libdl": "libc6",
    "libpthread": "libc6", "librt": "libc6", "libgcc_s": "libgcc-s1",
}
_NOT_FOUND = re.compile(r"^\s*(\S+\.so(?:\.[\w.]+)?)\s+=>\s+not found\s*$", re.MULTILINE)


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, in its order, each once."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def debian_package(library: str) -> str:
    """The Debian/Ubuntu package of a shared library, by Debian's rule for library packages: the
    name in lower case, then the major version, after a hyphen when the name ends in a digit
    (``libxcb-cursor.so.0`` -> ``libxcb-cursor0``, ``libX11.so.6`` -> ``libx11-6``)."""
    stem, _, version = library.partition(".so")
    stem, major = stem.lower(), version.lstrip(".").split(".")[0]
    if stem in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[stem]
    return f"{stem}-{major}" if stem[-1:].isdigit() and major else f"{stem}{major}"


def advice(libraries: list[str]) -> str:
    """What to tell the person at the screen, on one line: the libraries and the command."""
    packages = " ".join(dict.fromkeys(debian_package(lib) for lib in libraries))
    return (f"Qt cannot load its 'xcb' window-system plugin: this system lacks {', '.join(libraries)}. "
            f"On Debian or Ubuntu install them with: sudo apt-get install {packages} "
            "(elsewhere, install the packages that provide these files).")


def xcb_plugin() -> Path | None:
    """The installed (or bundled) PySide6's xcb plugin, or None where there is none."""
    from PySide6.QtCore import QLibraryInfo

    plugin = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / XCB_PLUGIN
    return plugin if plugin.is_file() else None


def uses_xcb(environ=os.environ) -> bool:
    """Whether Qt will open its windows with xcb: on Linux, when QT_QPA_PLATFORM names it, or is
    unset outside a Wayland session (there Qt may choose Wayland, which needs none of this)."""
    if not sys.platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM")
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return not environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") != "wayland"


def xcb_problem(environ=os.environ) -> str | None:
    """The advice when Qt will use xcb here and its plugin lacks system libraries; None when it
    will not, when nothing is missing, or when ``ldd`` cannot tell (then Qt has its say)."""
    if not uses_xcb(environ):
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    try:
        done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(done.stdout)
    return advice(missing) if missing else None
