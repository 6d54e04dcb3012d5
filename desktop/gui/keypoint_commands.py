"""The one undoable edit of keypoint labelling: set some keypoints of one image.

A click, a drag, Enter, V, A and Shift+Enter all come down to "these keypoints of this image are
now here, with this visibility", written at once in one transaction. The store replaces a live
label of the same keypoint by deleting it, so undo deletes the new labels and restores the ones
they replaced, and redo does the opposite: more committed operations, nothing removed.
"""
from __future__ import annotations

from typing import Callable

from desktop.engine.project.store import Project

from .commands import StoreCommand


class SetKeypoints(StoreCommand):
    def __init__(self, project: Project, image_id: int, entries: list[tuple[int, float, float, str]],
                 after: Callable[["SetKeypoints"], None], query_ids: list[int | None] | None = None,
                 seconds: list[float | None] | None = None, text: str = "set keypoint"):
        """``entries`` are ``(keypoint index, x, y, visibility)``; ``query_ids`` the queries they
        answer (closed with them, reopened by undo)."""
        super().__init__(text)
        self.project, self.image_id, self.entries, self.after = project, image_id, entries, after
        self.query_ids = query_ids or [None] * len(entries)
        self.seconds = seconds
        self.keypoints = [e[0] for e in entries]
        self.new_ids: list[int] | None = None
        self.replaced: list[int] = []

    def apply(self) -> None:
        if self.new_ids is None:
            self.new_ids, self.replaced = self.project.set_keypoint_labels(
                [(self.image_id, *e) for e in self.entries], query_ids=self.query_ids, seconds=self.seconds)
        else:
            for label_id in self.replaced:
                self.project.delete_label(label_id)
            for label_id in self.new_ids:
                self.project.restore_label(label_id)
            self._set_queries("answered")
        self.after(self)

    def revert(self) -> None:
        for label_id in self.new_ids:
            self.project.delete_label(label_id)
        for label_id in self.replaced:
            self.project.restore_label(label_id)
        self._set_queries("open")
        self.after(self)

    def _set_queries(self, status: str) -> None:
        for query_id in self.query_ids:
            if query_id is not None:
                self.project.set_query_status(query_id, status)
