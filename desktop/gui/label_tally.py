"""How many live labels each image and each class has, and the mean answer time, kept in step with
the store by the labels that changed, not counted again at every click.

With 100,000 labels the click path counted an image's labels twice (the image list), counted the
labelled classes over the whole table (what "Likeliest" says) and averaged every answer time:
30 ms a click, growing with the labels (issue 19). The tally reads the live labels once, then
at each ``catch_up`` only the labels touched by operations since (``Project.labels_touched``),
each by its state now, so a delete followed by its undo counts nothing twice.

A class merge re-points deleted labels without an operation; the window reopens the project
after one (``class_editor.edit_classes``), and with it the tally.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from desktop.engine.project.store import Project


class LabelTally:
    def __init__(self, project: Project):
        self.project = project
        self._seen, rows = project.live_labels()
        ids, images, classes, seconds = rows.T
        self._live = np.zeros(int(ids.max(initial=0)) + 1, bool)  # by label id
        self._live[ids.astype(np.int64)] = True
        self._by_image = Counter(images.astype(np.int64).tolist())
        self._by_class = Counter(classes[classes >= 0].astype(np.int64).tolist())
        timed = ~np.isnan(seconds)
        self._seconds_sum, self._seconds_count = float(seconds[timed].sum()), int(timed.sum())

    def catch_up(self) -> None:
        """Take in the label operations made since the last look."""
        for op_id, label_id, deleted, image_id, class_id, seconds, _x, _y in self.project.labels_touched(self._seen):
            self._seen = max(self._seen, op_id)
            if label_id >= len(self._live):
                self._live = np.concatenate([self._live, np.zeros(max(label_id + 1, 2 * len(self._live)), bool)])
            if self._live[label_id] != deleted:
                continue  # as it was: live and still live, or gone and still gone
            self._live[label_id] = not deleted
            step = -1 if deleted else 1
            self._by_image[image_id] += step
            if class_id is not None:
                self._by_class[class_id] += step
            if seconds is not None:
                self._seconds_sum += step * seconds
                self._seconds_count += step

    def count(self, image_id: int) -> int:
        """Live labels of an image (``Project.label_count``), as of the last ``catch_up``."""
        return self._by_image[image_id]

    def labelled_classes(self) -> int:
        """How many classes have a live label (``Project.class_label_counts``)."""
        return sum(1 for n in self._by_class.values() if n > 0)

    def mean_seconds(self) -> float | None:
        """The mean answer time over the live labels that have one (``Project.mean_answer_seconds``)."""
        return self._seconds_sum / self._seconds_count if self._seconds_count else None
