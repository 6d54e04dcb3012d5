"""Undoable label edits, each a small ``QUndoCommand`` that writes to the project at once.

The store never removes a label: deleting marks it deleted, so undo and redo of every edit are
just more committed operations (``delete_label`` / ``restore_label``), and what the user saw
acknowledged is on disk whatever happens next. ``after`` is called once each do or undo has
been written, so the session can redraw and tell the engine. Every command knows its image, so
undoing an edit made on another image can bring that image back first.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QUndoCommand

from desktop.engine.errors import ProjectBusy, ProjectError
from desktop.engine.project.store import Project


class StoreCommand(QUndoCommand):
    """An undoable edit whose do (``apply``) and undo (``revert``) write to the project.

    When the store refuses a write (a full disk, a folder that became read-only) the command
    makes itself obsolete, so Qt drops it from the undo stack instead of listing an edit that
    is not on disk, and hands the plain message to ``failed`` (set by the session before it
    pushes). An exception must not escape: Qt calls ``redo``/``undo`` from C++, which cannot
    carry it back to the click that caused it.
    """

    failed: Callable[[str], None] | None = None
    busy: Callable[["StoreCommand"], None] | None = None
    """Set for a new label: called instead of ``failed`` when another program holds the database's
    write lock, so that the session keeps the label and tries again (see ``ProjectBusy``)."""

    def redo(self) -> None:
        self._guarded(self.apply)

    def undo(self) -> None:
        self._guarded(self.revert)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except ProjectError as e:
            self.setObsolete(True)
            if isinstance(e, ProjectBusy) and self.busy is not None:
                self.busy(self)
            elif self.failed is not None:
                self.failed(str(e))

    def apply(self) -> None:
        raise NotImplementedError

    def revert(self) -> None:
        raise NotImplementedError


class AddLabel(StoreCommand):
    """Add a point of one class; when it answers a query, the query is closed with it."""

    def __init__(self, project: Project, image_id: int, x: float, y: float, class_id: int,
                 after: Callable[["AddLabel"], None], query_id: int | None = None,
                 seconds: float | None = None, text: str = "add label"):
        super().__init__(text)
        self.project, self.image_id, self.x, self.y = project, image_id, x, y
        self.class_id, self.query_id, self.seconds = class_id, query_id, seconds
        self.after = after
        self.label_id: int | None = None

    def apply(self) -> None:
        if self.label_id is None:
            self.label_id = self.project.add_label(self.image_id, self.x, self.y, self.class_id,
                                                   query_id=self.query_id, seconds=self.seconds)
        else:
            self.project.restore_label(self.label_id)
            if self.query_id is not None:
                self.project.set_query_status(self.query_id, "answered")
        self.after(self)

    def again(self) -> "AddLabel":
        """The same new label as a fresh command, to try once more after the store refused it."""
        return AddLabel(self.project, self.image_id, self.x, self.y, self.class_id, self.after,
                        query_id=self.query_id, seconds=self.seconds, text=self.text())

    def revert(self) -> None:
        self.project.delete_label(self.label_id)
        if self.query_id is not None:
            self.project.set_query_status(self.query_id, "open")
        self.after(self)


class DeleteLabel(StoreCommand):
    def __init__(self, project: Project, image_id: int, label_id: int, after: Callable[["DeleteLabel"], None]):
        super().__init__("delete label")
        self.project, self.image_id, self.label_id, self.after = project, image_id, label_id, after
        self.query_id = None

    def apply(self) -> None:
        self.project.delete_label(self.label_id)
        self.after(self)

    def revert(self) -> None:
        self.project.restore_label(self.label_id)
        self.after(self)


class CloseQuery(StoreCommand):
    """Mark a query ``unsure`` (never asked again) or ``skipped``; undo reopens it."""

    def __init__(self, project: Project, image_id: int, query_id: int, status: str,
                 after: Callable[["CloseQuery"], None]):
        super().__init__(f"mark query {status}")
        self.project, self.image_id, self.query_id, self.status = project, image_id, query_id, status
        self.after = after

    def apply(self) -> None:
        self.project.set_query_status(self.query_id, self.status)
        self.after(self)

    def revert(self) -> None:
        self.project.set_query_status(self.query_id, "open")
        self.after(self)
