"""Every image's live labels as arrays, kept in step with the store by the labels that changed.

The engine reads the labels at every training round and every query proposal. With 100,000
labels, reading them back (``Project.label_arrays``) made 200,000 Python objects a round: 0.1 to
0.3 s of the engine thread holding the interpreter, and, worse, garbage for the window's
collector, whose full collections on the GUI thread stalled it (issue 19). ``LiveLabels`` reads
them once, then only the labels touched since (``Project.labels_touched``): a round after a
click reads one row.

One per connection and thread, like the ``Project`` it reads (the engine's).
"""
from __future__ import annotations

import numpy as np

from desktop.engine.project.store import Project


class LiveLabels:
    def __init__(self, project: Project):
        self.project = project
        self._seen: int | None = None  # the newest label operation taken in; None: nothing read yet
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._index_of: dict[int, int] = {}  # class id -> index, as the arrays have them

    def arrays(self, image_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Project.label_arrays``: the image's live labels with a class, as ``(ids, yx float (N, 2),
        class index (N,))`` in id order, as of now. Read-only arrays: copy to change them."""
        index_of = {c.id: c.index for c in self.project.classes()}
        if self._seen is None or index_of != self._index_of:  # a merge moves the classes after it
            self._seen, self._arrays, self._index_of = self.project.label_revision(), {}, index_of
        self._catch_up()
        if image_id not in self._arrays:
            self._arrays[image_id] = _read_only(*self.project.label_arrays(image_id))
        return self._arrays[image_id]

    def _catch_up(self) -> None:
        touched = self.project.labels_touched(self._seen)
        if not touched:
            return
        self._seen = max(row[0] for row in touched)
        index_of = self._index_of
        for image_id in {row[3] for row in touched} & self._arrays.keys():
            rows = [row for row in touched if row[3] == image_id]
            ids, yx, cls = self._arrays[image_id]
            keep = ~np.isin(ids, [row[1] for row in rows])  # taken out, and put back if still live
            live = [row for row in rows if not row[2] and row[4] is not None]
            if any(row[4] not in index_of for row in live):  # as label_arrays says it
                self._arrays[image_id] = _read_only(*self.project.label_arrays(image_id))
                continue
            ids = np.concatenate([ids[keep], np.array([row[1] for row in live], np.int64)])
            yx = np.concatenate([yx[keep], np.array([(row[7], row[6]) for row in live], np.float64).reshape(-1, 2)])
            cls = np.concatenate([cls[keep], np.array([index_of[row[4]] for row in live], np.int64)])
            order = np.argsort(ids, kind="stable")
            self._arrays[image_id] = _read_only(ids[order], yx[order], cls[order])


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays

