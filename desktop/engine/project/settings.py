"""A project's settings: what the window reopens and the resolution slides are worked at.

They are stored as one JSON object in the project's ``meta`` table (key ``settings``), which
older versions read and wrote as a free dict. ``ProjectSettings`` gives every key a type, a
default and a range, so a value no version could have meant (a negative resolution, an image id
that is text) is refused when it is set, and never reaches the slide grid or the window.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

from desktop.engine.errors import ProjectError

MIN_SLIDE_MPP = 0.1
"""Finer than any scanner's pixels (an 80x objective gives about 0.12 µm): the working resolution
is never finer than a slide's level 0 anyway, so a smaller value could only be a mistake."""
MAX_SLIDE_MPP = 100.0
"""At 100 µm per pixel a 2 cm tissue section is 200 pixels wide, one tile: coarser sees nothing."""
MAX_SLIDE_LEVEL = 31
"""Each pyramid level halves the one below, so level 32 would need a slide over 2^32 pixels wide
at level 0, which no slide format stores. Levels past a slide's last are read as its last."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not an image id


@dataclass(frozen=True)
class ProjectSettings:
    """Every setting a project keeps, each checked when the object is made.

    ``unknown`` holds, as ``(key, JSON text)`` pairs, the keys this version does not know. They
    are kept rather than dropped because settings have no schema version: a newer Pointillist may
    add a key without changing the database schema, and a project it saved can then be opened
    here; saving it here must not throw that setting away.
    """

    last_image: int | None = None
    """The image the window showed last, reopened with the project (None: the first readable)."""
    slide_mpp: float = 1.0
    """Micrometres per pixel that slides are learnt and predicted at, when a slide knows its pixel
    size. Changing it changes the tiles, so the feature cache keys include it."""
    slide_level: int = 0
    """The pyramid level slides are worked at when they do not say their pixel size."""
    unknown: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.last_image is not None and not (_is_int(self.last_image) and self.last_image >= 1):
            raise ProjectError(f"The image to reopen must be given by its number in the project (a whole "
                               f"number from 1), not {self.last_image!r}.")
        mpp = self.slide_mpp
        if not (isinstance(mpp, (int, float)) and not isinstance(mpp, bool) and math.isfinite(mpp)
                and MIN_SLIDE_MPP <= mpp <= MAX_SLIDE_MPP):
            raise ProjectError(f"The working resolution of slides must be from {MIN_SLIDE_MPP:g} to "
                               f"{MAX_SLIDE_MPP:g} micrometres per pixel, not {mpp!r}.")
        object.__setattr__(self, "slide_mpp", float(mpp))  # 1 in JSON is 1.0 here
        if not (_is_int(self.slide_level) and 0 <= self.slide_level <= MAX_SLIDE_LEVEL):
            raise ProjectError(f"The pyramid level slides are worked at must be a whole number from 0 to "
                               f"{MAX_SLIDE_LEVEL}, not {self.slide_level!r}.")

    @classmethod
    def from_json(cls, text: str | None) -> "ProjectSettings":
        """Read the stored settings, from any version; this never fails.

        A value that older versions accepted is read as they read it (``"0.5"`` for the resolution
        and ``"2"`` or ``2.0`` for the level: they passed it through ``float``/``int``). A value that
        is malformed or out of range takes the default, as does the whole object when the text is
        not a JSON object: a damaged setting must not keep a project from opening, and the next
        save writes the value in use. In particular a resolution of 0 or less, which old versions
        took to mean "use the pyramid level", now gives the default resolution: set ``slide_level``
        and a slide without a pixel size uses it.
        """
        try:
            stored = json.loads(text or "{}")
        except (ValueError, RecursionError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        known = {f.name for f in fields(cls)} - {"unknown"}
        values = {}
        for key in known & stored.keys():
            try:
                values[key] = getattr(cls(**{key: _LEGACY_READERS.get(key, _as_is)(stored[key])}), key)
            except (ProjectError, ValueError, TypeError, OverflowError):
                pass  # the default stays
        unknown = tuple(sorted((key, json.dumps(value)) for key, value in stored.items() if key not in known))
        return cls(**values, unknown=unknown)

    def to_json(self) -> str:
        stored = {key: json.loads(value) for key, value in self.unknown}
        stored.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "unknown"})
        return json.dumps(stored, sort_keys=True)


def _as_is(value: Any) -> Any:
    return value


def _legacy_number(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def _legacy_whole_number(value: Any) -> Any:
    if isinstance(value, str):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_LEGACY_READERS = {"slide_mpp": _legacy_number, "slide_level": _legacy_whole_number}
