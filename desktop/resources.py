"""The app's look, read from the top-level ``resources/`` folder: the default class palette, the
UI colours, the colour maps and the icons.

One loader, so that the GUI and the engine (a new project's class colours, any export that draws
uncertainty) take every colour from the same data file, and a colour changes in one place
rather than in code. It is Qt-free: it returns paths, colour strings, RGBA tuples and arrays,
and the GUI makes its QColor and QIcon objects from them (``desktop/gui/icons.py``).

Where the folder is: in the frozen app, ``sys._MEIPASS/resources`` (``packaging/pointillist.spec``
copies it there); otherwise beside the ``desktop`` package, which holds in a source checkout, an
editable install and a wheel (``pip install .`` ships ``resources`` as a package of its own,
next to ``desktop``). The folder is found from this file rather than imported as ``resources``,
a name another distribution could also own.
"""
from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent)) / "resources"

UI_COLOURS = ("label_ring", "query_ring", "current_query", "bone", "error", "loss_curve", "accuracy_curve",
              "overview_frame", "overview_background")
COLOUR_MAPS = ("uncertainty", "confidence")
APP_ICON_SIZES = (16, 32, 48, 64, 128, 256)
TOOLBAR_ICONS = ("query_mode", "free_mode", "fit_window", "actual_size", "layers")

APP_ICON_SVG = ROOT / "icons" / "app" / "pointillist.svg"
APP_ICON_SMALL_SVG = ROOT / "icons" / "app" / "pointillist-small.svg"  # drawn for 16 px
APP_ICON_ICO = ROOT / "icons" / "app" / "pointillist.ico"  # Windows: the executable's icon
APP_ICON_ICNS = ROOT / "icons" / "app" / "pointillist.icns"  # macOS


@cache
def _colours() -> dict:
    return json.loads((ROOT / "colours.json").read_text(encoding="utf-8"))


def palette() -> tuple[str, ...]:
    """Default class colours ('#rrggbb'), in the order new classes and keypoints get them:
    Okabe-Ito's colour-blind-safe set first."""
    return tuple(_colours()["palette"])


def palette_colour(index: int) -> str:
    """The default colour of the ``index``-th class or keypoint (0-based), the palette repeating."""
    colours = palette()
    return colours[index % len(colours)]


def ui_colour(name: str) -> tuple[int, int, int, int]:
    """RGBA (0..255) of one of ``UI_COLOURS``."""
    return rgba(_colours()["ui"][name])


def rgba(colour: str) -> tuple[int, int, int, int]:
    """'#rrggbb' or '#rrggbbaa' as RGBA (0..255). Tuples, not strings, leave the GUI no chance to
    read '#rrggbbaa' the way QColor does ('#aarrggbb')."""
    digits = colour[1:] if colour.startswith("#") else ""
    if len(digits) not in (6, 8):
        raise ValueError(f"Not a colour '#rrggbb' or '#rrggbbaa': {colour!r}")
    values = tuple(int(digits[i:i + 2], 16) for i in range(0, len(digits), 2))
    return values if len(values) == 4 else (*values, 255)


@cache
def colour_map(name: str) -> np.ndarray:
    """(256, 4) uint8 RGBA table of one of ``COLOUR_MAPS``: row i is the colour for i/255
    (read-only, shared by every caller)."""
    if name not in COLOUR_MAPS:
        raise KeyError(f"No colour map {name!r}: choose one of {', '.join(COLOUR_MAPS)}.")
    table = np.loadtxt(ROOT / "colormaps" / f"{name}.csv", delimiter=",", comments="#", dtype=np.int64)
    if table.shape != (256, 4) or table.min() < 0 or table.max() > 255:
        raise ValueError(f"colormaps/{name}.csv must hold 256 rows r,g,b,a of 0..255, not {table.shape}")
    table = np.ascontiguousarray(table, np.uint8)
    table.flags.writeable = False
    return table


def app_icon_png(size: int) -> Path:
    """The application icon rendered at ``size`` pixels, one of ``APP_ICON_SIZES``."""
    if size not in APP_ICON_SIZES:
        raise KeyError(f"No {size} px application icon: sizes are {APP_ICON_SIZES}.")
    return ROOT / "icons" / "app" / f"pointillist-{size}.png"


def toolbar_icon(name: str) -> Path:
    """The SVG of one of ``TOOLBAR_ICONS``."""
    if name not in TOOLBAR_ICONS:
        raise KeyError(f"No toolbar icon {name!r}: choose one of {', '.join(TOOLBAR_ICONS)}.")
    return ROOT / "icons" / "toolbar" / f"{name}.svg"
