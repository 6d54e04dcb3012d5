"""The file choosers' filters: the pictures (and slides) the app reads, then every file."""
from __future__ import annotations

from desktop.engine.images.pictures import IMAGE_SUFFIXES
from desktop.engine.images.slides import SLIDE_SUFFIXES


def picture_filter(slides: bool = True, extra: str = "") -> str:
    """``Images and slides (*.png ...)``, then ``extra`` filters (``;;``-separated), then all files."""
    kinds = "Images and slides" if slides else "Images"
    suffixes = " ".join(f"*{s}" for s in IMAGE_SUFFIXES + (SLIDE_SUFFIXES if slides else ()))
    return f"{kinds} ({suffixes});;" + (f"{extra};;" if extra else "") + "All files (*)"
