"""The methods of ``Project`` (``store.py``) for labels: adding, deleting and restoring them, and
reading them for the learners, kept in a module of their own; they use the project's connection
and its transactions as the class's own methods do."""
from __future__ import annotations

import time

import numpy as np

from desktop.engine.errors import ProjectError
from desktop.engine.project.records import Label


class LabelStore:
    def add_label(self, image_id: int, x: float, y: float, class_id: int, *, author: str = "user",
                  query_id: int | None = None, seconds: float | None = None) -> int:
        """Store one label in its own committed transaction; answering a query closes it."""
        return self.add_labels(image_id, [(x, y, class_id)], author=author,
                               query_ids=[query_id], seconds=[seconds])[0]

    def add_labels(self, image_id: int, points: list[tuple[float, float, int]], *, author: str = "user",
                   query_ids: list[int | None] | None = None,
                   seconds: list[float | None] | None = None) -> list[int]:
        """Store several labels of one image in one transaction (for importers and simulations)."""
        now = time.time()
        n = len(points)
        query_ids = query_ids or [None] * n
        seconds = seconds or [None] * n
        ids = []
        with self._transaction():
            for (x, y, class_id), query_id, secs in zip(points, query_ids, seconds):
                cur = self._conn.execute(
                    "INSERT INTO labels(image_id, x, y, class_id, author, created_at, query_id, seconds) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (image_id, float(x), float(y), int(class_id), author, now, query_id, secs))
                ids.append(cur.lastrowid)
                self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, 'add', ?)",
                                   (cur.lastrowid, now))
                if query_id is not None:
                    self._conn.execute("UPDATE queries SET status = 'answered' WHERE id = ?", (query_id,))
        return ids

    def delete_label(self, label_id: int) -> None:
        self._set_deleted(label_id, True)

    def restore_label(self, label_id: int) -> None:
        self._set_deleted(label_id, False)

    def _set_deleted(self, label_id: int, deleted: bool) -> None:
        with self._transaction():
            cur = self._conn.execute("UPDATE labels SET deleted = ? WHERE id = ?", (int(deleted), label_id))
            if cur.rowcount == 0:
                raise ProjectError(f"No label with id {label_id}.")
            self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, ?, ?)",
                               (label_id, "delete" if deleted else "restore", time.time()))

    def labels(self, image_id: int | None = None, include_deleted: bool = False) -> list[Label]:
        sql = ("SELECT id, image_id, x, y, class_id, author, created_at, query_id, seconds, deleted "
               "FROM labels WHERE (? IS NULL OR image_id = ?)")
        if not include_deleted:
            sql += " AND deleted = 0"
        rows = self._conn.execute(sql + " ORDER BY id", (image_id, image_id)).fetchall()
        return [Label(*r[:9], bool(r[9])) for r in rows]

    def label_arrays(self, image_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live labels of one image as ``(ids, yx float (N, 2), class index (N,))`` for learners."""
        index_of = {c.id: c.index for c in self.classes()}
        rows = self._conn.execute(
            "SELECT id, y, x, class_id FROM labels WHERE image_id = ? AND deleted = 0 "
            "AND class_id IS NOT NULL ORDER BY id", (image_id,)).fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        yx = np.array([(r[1], r[2]) for r in rows], np.float64).reshape(-1, 2)
        unknown = sorted({r[3] for r in rows} - index_of.keys())
        if unknown:
            name = self.image(image_id).name
            raise ProjectError(
                f"The project database is damaged: labels on the image '{name}' belong to a class (id "
                f"{', '.join(map(str, unknown))}) that the project no longer has; was project.sqlite edited "
                "by hand? Restore it from a backup. Nothing was changed.")
        cls = np.array([index_of[r[3]] for r in rows], np.int64)
        return ids, yx, cls

    def label_count(self, image_id: int | None = None) -> int:
        """Live labels, of one image or of all (counted by SQLite through its index)."""
        return self._conn.execute("SELECT COUNT(*) FROM labels WHERE (? IS NULL OR image_id = ?) AND deleted = 0",
                                  (image_id, image_id)).fetchone()[0]

    def label_changes(self, image_id: int, since_op: int) -> list[tuple[int, int, bool, float, float, int | None]]:
        """``(operation id, label id, deleted now, x, y, class id)`` for each label of the image
        touched by an operation newer than ``since_op``: what a drawing needs to catch up,
        without reading every label again."""
        rows = self._conn.execute(
            "SELECT o.id, l.id, l.deleted, l.x, l.y, l.class_id FROM label_ops o JOIN labels l ON l.id = o.label_id "
            "WHERE o.id > ? AND l.image_id = ? ORDER BY o.id", (since_op, image_id)).fetchall()
        return [(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def live_labels(self) -> tuple[int, np.ndarray]:
        """Every live label as rows ``(id, image id, class id or -1, answer seconds or NaN)``
        (float64 (N, 4)), and the label revision they are as of, read in one snapshot: where a
        tally kept up to date by ``labels_touched`` starts."""
        self._conn.execute("BEGIN")  # a read snapshot: another window's write is before or after both
        try:
            revision = self.label_revision()
            rows = self._conn.execute("SELECT id, image_id, COALESCE(class_id, -1), COALESCE(seconds, 'nan') "
                                      "FROM labels WHERE deleted = 0").fetchall()
        finally:
            self._conn.execute("COMMIT")
        return revision, np.array(rows, np.float64).reshape(-1, 4)

    def labels_touched(self, since_op: int) -> list[tuple]:
        """``(newest operation id, label id, deleted now, image id, class id, answer seconds, x, y)``
        of each label touched by an operation newer than ``since_op``, once each."""
        rows = self._conn.execute(
            "SELECT MAX(o.id), l.id, l.deleted, l.image_id, l.class_id, l.seconds, l.x, l.y FROM label_ops o "
            "JOIN labels l ON l.id = o.label_id WHERE o.id > ? GROUP BY l.id", (since_op,)).fetchall()
        return [(r[0], r[1], bool(r[2]), *r[3:]) for r in rows]

    def nearest_label(self, image_id: int, x: float, y: float, within: float) -> int | None:
        """The live label of the image nearest to (x, y) within ``within`` pixels, or None."""
        row = self._conn.execute(
            "SELECT id FROM labels WHERE image_id = ? AND deleted = 0 AND x BETWEEN ? AND ? AND y BETWEEN ? AND ? "
            "AND (x - ?) * (x - ?) + (y - ?) * (y - ?) <= ? ORDER BY (x - ?) * (x - ?) + (y - ?) * (y - ?), id "
            "LIMIT 1", (image_id, x - within, x + within, y - within, y + within, x, x, y, y, within * within,
                        x, x, y, y)).fetchone()
        return None if row is None else row[0]

    def label_revision(self) -> int:
        """Grows with every label operation: a cheap way for readers to notice changes."""
        return self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM label_ops").fetchone()[0]

    def mean_answer_seconds(self) -> float | None:
        return self._conn.execute("SELECT AVG(seconds) FROM labels WHERE deleted = 0 AND seconds IS NOT NULL"
                                  ).fetchone()[0]
