"""The labels drawn on the viewer for the image on screen, kept in step with the store by what
changed, not by reading every label again.

A click must cost the same with 100 labels on an image or 100,000 (issue 19): reading all of
them back and rebuilding the scatter plot took about a second at 25,000 labels an image. The
layer keeps the points it drew, asks the store only for the label operations made since
(``Project.label_changes``), appends new points to the plot, and redraws from memory when a
label went away (a delete or an undo).
"""
from __future__ import annotations

import numpy as np

from desktop.engine.project.records import ClassInfo
from desktop.engine.project.store import Project


class LabelLayer:
    def __init__(self, project: Project, classes: list[ClassInfo]):
        self.project = project
        self._index = {c.id: c.index for c in classes}
        self.image_id: int | None = None
        self._points: dict[int, tuple[float, float, int]] = {}  # label id -> (x, y, class index)
        self._seen_op = 0  # the newest label operation the points reflect

    def reload(self, viewer, image_id: int, pending: list) -> None:
        """Read the image's labels once (a new image, or waiting labels changed) and draw them
        with the ``pending`` ones (AddLabel commands not saved yet) hollow."""
        self.image_id = image_id
        self._seen_op = self.project.label_revision()
        ids, yx, classes = self.project.label_arrays(image_id)
        self._points = {int(i): (float(x), float(y), int(c)) for i, (y, x), c in zip(ids, yx, classes)}
        self._draw(viewer, pending)

    def redraw(self, viewer, pending: list) -> None:
        """Draw again from memory (the labels waiting to be saved changed), after catching up."""
        self.update(viewer, pending)
        self._draw(viewer, pending)

    def update(self, viewer, pending: list) -> None:
        """Catch up with the label operations made since the last look: new labels are added to
        the plot, anything else redraws it from memory."""
        redraw, added = False, []
        for op_id, label_id, deleted, x, y, class_id in self.project.label_changes(self.image_id, self._seen_op):
            self._seen_op = max(self._seen_op, op_id)
            if deleted or class_id is None:
                redraw |= self._points.pop(label_id, None) is not None
            elif label_id not in self._points:
                self._points[label_id] = point = (float(x), float(y), self._index[class_id])
                added.append(point)
        if redraw:
            self._draw(viewer, pending)
        elif added:
            xs, ys, classes = (np.array(column) for column in zip(*added))
            viewer.add_labels(xs, ys, classes.astype(np.int64))

    def _draw(self, viewer, pending: list) -> None:
        points = list(self._points.values()) + [(c.x, c.y, self._index[c.class_id]) for c in pending]
        xs, ys, classes = (np.array(column, np.float64) for column in zip(*points)) if points else ([], [], [])
        waiting = np.arange(len(points)) >= len(self._points)
        viewer.set_labels(np.asarray(xs), np.asarray(ys), np.asarray(classes, np.int64), pending=waiting)
