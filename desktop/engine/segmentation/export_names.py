"""File names for what an export writes per image: unique within the export, stable, and safe.

Images are named by their file name, but two images of a project may share one (``a/slice.png``
and ``b/slice.png``, ``img.png`` and ``img.tif``, the frames of one video). Writing both to
``slice.png`` would silently keep only the last. So every image whose plain name would meet
another's (on a file system that ignores case, too) is named with its project image id added,
which no other image has and which never changes. The mapping back to the images goes into
the export's CSV beside the files.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Hashable, TypeVar

from desktop.engine.project.records import ImageInfo

MAX_STEM_BYTES = 120
"""Longest stem, in UTF-8 bytes. File names may hold 255 bytes; the stem is followed by a
suffix such as ``__id12345_preview.png``, and the temporary file written first adds a few more.
An image may have a name of any length (the tester's had 244 characters)."""

K = TypeVar("K", bound=Hashable)

_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')  # not allowed in names on Windows, or anywhere


def plain_stem(info: ImageInfo) -> str:
    """The image's name without its suffix, made safe for a file name on any system."""
    return safe_stem(f"{info.video.stem}_frame{info.frame:06d}" if info.video is not None and info.frame is not None
                     else Path(info.name).stem)


def safe_stem(stem: str) -> str:
    """``stem`` made safe for a file name on any system, and at most ``MAX_STEM_BYTES`` long."""
    stem = _UNSAFE.sub("_", unicodedata.normalize("NFC", stem)).strip(" .") or "image"
    encoded = stem.encode()
    if len(encoded) > MAX_STEM_BYTES:
        stem = encoded[:MAX_STEM_BYTES].decode(errors="ignore").rstrip(" .")
    return stem


def export_stems(images: list[ImageInfo], suffixes: tuple[str, ...] = ("",)) -> dict[int, str]:
    """Image id -> stem for each image, such that ``stem + suffix`` is unique for every image and
    every suffix in ``suffixes`` (e.g. ``("", "_preview")`` for a mask and its preview),
    whatever the case. Images whose stems clash get ``__id<image id>`` appended (see
    ``unique_stems``)."""
    return unique_stems({info.id: plain_stem(info) for info in images}, suffixes,
                        {info.id: f"__id{info.id}" for info in images})


def unique_stems(stems: dict[K, str], suffixes: tuple[str, ...], tags: dict[K, str]) -> dict[K, str]:
    """``stems`` made unique: ``stem + suffix`` differs, whatever the case, for every key and
    every suffix. Stems that clash get their key's tag appended (a tag that never changes, so the
    name is stable), again until none clash (a file may itself be called ``slice__id3.png``)."""
    stems = dict(stems)
    while True:
        names = Counter(f"{stem}{suffix}".casefold() for stem in stems.values() for suffix in suffixes)
        clashing = {key for key, stem in stems.items()
                    if any(names[f"{stem}{suffix}".casefold()] > 1 for suffix in suffixes)}
        if not clashing:
            return stems
        stems.update({key: f"{stems[key]}{tags[key]}" for key in clashing})
