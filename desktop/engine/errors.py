"""Errors the engine raises on purpose, with messages meant for the person at the screen.

The GUI shows ``str(error)`` as it is, so each message names the thing at fault and says what is
wrong in plain words; the technical detail, where there is any, goes in ``__cause__``.
"""
from __future__ import annotations

import errno
from pathlib import Path


class PointillistError(Exception):
    """Base of every error the engine raises on purpose."""


class ImageReadError(PointillistError):
    """An image file cannot be read; ``reason`` says why in words a non-programmer understands."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot read image '{self.path.name}': {reason}")

    def __reduce__(self):
        # The default rebuilds from ``args`` (the message alone), which breaks pickling across
        # the engine's process boundary.
        return type(self), (self.path, self.reason)


class ProjectError(PointillistError):
    """A project folder or its database is missing, damaged, or cannot be used as asked."""


class ProjectBusy(ProjectError):
    """Another program holds the project database's write lock: the same write may well succeed
    a moment later, so the GUI keeps the label and tries again."""


def write_refusal(error: OSError) -> str:
    """Why the file system refused a write, in plain words: what is wrong and what to do."""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # EDQUOT: over quota
        return "the disk is full. Free some space on it and try again"
    if error.errno == errno.EROFS:
        return "the disk is read-only. Choose a place on another disk"
    if isinstance(error, PermissionError):
        return "this user may not write there. Choose another folder, or ask for write permission"
    return error.strerror or str(error)


class FormatError(PointillistError):
    """A label file (CSV, JSON) is malformed; ``row`` names where (None: the file as a whole)."""

    def __init__(self, path: str | Path, row: int | str | None, reason: str):
        self.path = Path(path)
        self.row = row
        self.reason = reason
        where = "" if row is None else f", row {row}"
        super().__init__(f"Cannot import '{self.path.name}'{where}: {reason}. Nothing was imported.")

    def __reduce__(self):
        return type(self), (self.path, self.row, self.reason)
