"""What the expert is doing right now, with no widget: the image, its open queries, the query
being asked, the active class and the undo stack.

Each user action is split as in SLEAP's commands: the session *gathers* what the action needs
(the current query, how long it was shown, the class a key stands for) and pushes a command
from ``commands.py`` that *does* it. Tests drive a session without any window.
"""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from desktop.engine.project.records import ClassInfo
from desktop.engine.project.store import Project
from desktop.engine.service.messages import QueryPoint
from desktop.plural import plural

from .commands import AddLabel, CloseQuery, DeleteLabel

MODES = ("query", "free")
RETRY_MS = 1000  # how often a label the busy database refused is tried again


class LabellingSession(QObject):
    labelsChanged = Signal(int)  # image id whose labels changed
    queryChanged = Signal(object)  # the QueryPoint now asked, or None
    imageDone = Signal(int)  # the image's batch of queries is answered: time to move on
    modeChanged = Signal(str)
    activeClassChanged = Signal(object)  # ClassInfo
    imageNeeded = Signal(int)  # an undo or redo touches another image: show it (calls set_image)
    storeFailed = Signal(str)  # an edit the project refused (disk full...), in words for the user
    notice = Signal(str)  # news for the status bar
    pendingChanged = Signal(int)  # image id whose labels waiting to be saved changed (see pending)

    def __init__(self, project: Project, batch: int = 8, clock: Callable[[], float] = time.monotonic,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.project = project
        self.classes = project.classes()
        self.batch = batch  # answers per visit of an image before moving to the next
        self.clock = clock
        self.undo_stack = QUndoStack(self)
        self.mode = "query"
        self.active_class: ClassInfo | None = self.classes[0] if self.classes else None
        self.image_id: int | None = None
        self.queries: list[QueryPoint] = []
        self.current: QueryPoint | None = None
        self.shown_at = 0.0
        self.answered_here = 0
        self._known: dict[int, QueryPoint] = {}  # query id -> its last known candidates
        self.pending: list[AddLabel] = []
        """New labels that the store could not take because another program held its write lock:
        drawn (hollow) where they were made, and tried again every ``RETRY_MS`` until saved."""
        self._retrying = False
        self._retry = QTimer(self, interval=RETRY_MS)
        self._retry.timeout.connect(self._save_pending)

    # ----- state -----------------------------------------------------------------------------
    def set_image(self, image_id: int) -> None:
        self.image_id = image_id
        self.answered_here = 0
        self._known.clear()
        self._sync_queries()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.modeChanged.emit(mode)

    def set_active_class(self, info: ClassInfo) -> None:
        self.active_class = info
        self.activeClassChanged.emit(info)

    def set_queries(self, image_id: int, points: list[QueryPoint]) -> None:
        """Fresh queries from the engine. In query mode the one being asked stays until the
        expert acts on it, even when the engine has replaced it: a key pressed a moment after new
        queries arrive must still answer the question that was on screen."""
        if image_id != self.image_id:
            return
        self._known.update({p.query_id: p for p in points})
        self._sync_queries(hold=self.mode == "query")

    def class_for_key(self, text: str) -> ClassInfo | None:
        """A class's own key first, then ``1``..``9`` by position."""
        text = text.lower()
        for info in self.classes:
            if info.key and info.key.lower() == text:
                return info
        if text.isdigit() and 1 <= int(text) <= len(self.classes):
            return self.classes[int(text) - 1]
        return None

    # ----- actions ---------------------------------------------------------------------------
    def answer(self, info: ClassInfo) -> int | None:
        """Answer the current query with a class; returns the new label id."""
        q = self.current
        if q is None:
            return None
        command = AddLabel(self.project, self.image_id, q.x, q.y, info.id, self._after, query_id=q.query_id,
                           seconds=self.clock() - self.shown_at, text=f"answer {info.name}")
        self._push(command)
        self.answered_here += 1
        self._check_done()
        return command.label_id

    def mark_current(self, status: str = "unsure") -> None:
        if self.current is not None:
            self._push(CloseQuery(self.project, self.image_id, self.current.query_id, status, self._after))
            self.answered_here += 1
            self._check_done()

    def add_point(self, x: float, y: float) -> int | None:
        if self.image_id is None or self.active_class is None:
            return None
        command = AddLabel(self.project, self.image_id, x, y, self.active_class.id, self._after)
        self._push(command)
        return command.label_id

    def delete_nearest(self, x: float, y: float, within: float = 20.0) -> int | None:
        """Delete the label nearest to ``(x, y)`` if one lies within ``within`` pixels."""
        label_id = self.project.nearest_label(self.image_id, x, y, within) if self.image_id is not None else None
        if label_id is not None:
            self._push(DeleteLabel(self.project, self.image_id, label_id, self._after))
        return label_id

    def _push(self, command) -> None:
        """Do an edit as an undo step; a write the project refuses is reported, not stacked, and a
        new label refused only because the database is busy is kept to be saved later."""
        command.failed = self.storeFailed.emit
        if isinstance(command, AddLabel) and command.label_id is None:
            command.busy = self._keep_pending
        self.undo_stack.push(command)

    def pending_labels(self, image_id: int) -> list[AddLabel]:
        return [command for command in self.pending if command.image_id == image_id]

    def _keep_pending(self, command: AddLabel) -> None:
        if not self.pending and not self._retrying:
            self.storeFailed.emit("The project is busy in another program (a backup or a database tool?). The "
                                  "label is kept (drawn hollow) and saved as soon as the project is free.")
        self.pending.append(command.again())  # the refused one is Qt's to delete, being obsolete
        self._retry.start()
        if not self._retrying:  # a retry says what changed once, when it is over
            self.pendingChanged.emit(command.image_id)

    def _save_pending(self) -> None:
        """Try the waiting labels in order; the first refused again keeps its place and the rest
        wait behind it (each try may wait a moment for the lock: one try per turn is enough)."""
        waiting, self.pending = self.pending, []
        self._retrying = True
        try:
            for i, command in enumerate(waiting):
                self._push(command)
                if self.pending:
                    self.pending += waiting[i + 1:]
                    break
        finally:
            self._retrying = False
        for image_id in {command.image_id for command in waiting}:
            self.pendingChanged.emit(image_id)
        if not self.pending:
            self._retry.stop()
            self.notice.emit(f"The project is free again: {plural(len(waiting), 'waiting label')} saved.")

    # ----- keeping in step with the database -------------------------------------------------
    def _after(self, command) -> None:
        if command.image_id != self.image_id:
            self.imageNeeded.emit(command.image_id)
        self.labelsChanged.emit(command.image_id)
        self._sync_queries(prefer=command.query_id)

    def _sync_queries(self, prefer: int | None = None, hold: bool = False) -> None:
        """Open queries from the project (with any candidates the engine sent for them); with
        ``hold``, the query on screen stays first even if the engine closed it."""
        if self.image_id is None:
            return
        self.queries = [self._known.get(q.id) or QueryPoint(q.id, q.x, q.y, ())
                        for q in self.project.queries(self.image_id)]
        if hold and self.current is not None and self.current.query_id not in {q.query_id for q in self.queries}:
            self.queries.insert(0, self.current)
        by_id = {q.query_id: q for q in self.queries}
        keep = self.current.query_id if self.current is not None else None
        chosen = by_id.get(prefer) or by_id.get(keep) or (self.queries[0] if self.queries else None)
        changed = chosen is None or self.current is None or chosen.query_id != self.current.query_id
        if changed:
            self.shown_at = self.clock()
        self.current = chosen
        self.queryChanged.emit(chosen)

    def _check_done(self) -> None:
        if self.mode == "query" and (self.current is None or self.answered_here >= self.batch):
            self.imageDone.emit(self.image_id)
