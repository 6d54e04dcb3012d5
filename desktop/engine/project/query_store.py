"""The methods of ``Project`` (``store.py``) for queries and the slide regions the expert has
looked at, kept in a module of their own; they use the project's connection and its transactions
as the class's own methods do."""
from __future__ import annotations

import time

import numpy as np

from desktop.engine.errors import ProjectError
from desktop.engine.project.records import Query

QUERY_STATUSES = ("open", "answered", "unsure", "skipped")


class QueryStore:
    def add_queries(self, image_id: int, points_yx: np.ndarray, strategy: str,
                    scores: np.ndarray | None = None, model_version: int | None = None) -> list[int]:
        now = time.time()
        ids = []
        with self._transaction():
            for i, (y, x) in enumerate(np.asarray(points_yx).reshape(-1, 2)):
                score = None if scores is None else float(scores[i])
                cur = self._conn.execute(
                    "INSERT INTO queries(image_id, x, y, strategy, score, model_version, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (image_id, float(x), float(y), strategy, score,
                                                     model_version, now))
                ids.append(cur.lastrowid)
        return ids

    def add_keypoint_queries(self, image_id: int, entries: list[tuple[int, float, float, float | None]],
                             strategy: str, model_version: int | None = None) -> list[int]:
        """Ask about keypoints: ``entries`` are ``(keypoint index, proposed x, y, score)``."""
        keypoint_ids = self._keypoint_ids()
        now = time.time()
        with self._transaction():
            return [self._conn.execute(
                "INSERT INTO queries(image_id, x, y, strategy, score, model_version, created_at, keypoint_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (image_id, float(x), float(y), strategy,
                                                    None if score is None else float(score), model_version, now,
                                                    keypoint_ids[keypoint])).lastrowid
                for keypoint, x, y, score in entries]

    def queries(self, image_id: int | None = None, status: str | None = "open") -> list[Query]:
        rows = self._conn.execute(
            "SELECT id, image_id, x, y, strategy, score, model_version, status, keypoint_id FROM queries "
            "WHERE (? IS NULL OR image_id = ?) AND (? IS NULL OR status = ?) ORDER BY id",
            (image_id, image_id, status, status)).fetchall()
        position = {kid: i for i, kid in enumerate(self._keypoint_ids())} if any(r[8] for r in rows) else {}
        return [Query(*r[:8], position.get(r[8])) for r in rows]

    def query_count(self, image_id: int, status: str = "open") -> int:
        return self._conn.execute("SELECT COUNT(*) FROM queries WHERE image_id = ? AND status = ?",
                                  (image_id, status)).fetchone()[0]

    def set_query_status(self, query_id: int, status: str) -> None:
        if status not in QUERY_STATUSES:
            raise ProjectError(f"Unknown query status {status!r}.")
        with self._transaction():
            self._conn.execute("UPDATE queries SET status = ? WHERE id = ?", (status, query_id))

    def close_open_queries(self, image_id: int) -> None:
        """Drop the still-open queries of an image (they are replaced by fresher ones)."""
        with self._transaction():
            self._conn.execute("UPDATE queries SET status = 'skipped' WHERE image_id = ? AND status = 'open'",
                               (image_id,))

    def asked_points(self, image_id: int) -> np.ndarray:
        """(N, 2) ``yx`` of every query ever made on the image, open or closed."""
        rows = self._conn.execute("SELECT y, x FROM queries WHERE image_id = ?", (image_id,)).fetchall()
        return np.array(rows, np.float64).reshape(-1, 2)

    # ----- seen slide regions ----------------------------------------------------------------
    def add_seen_region(self, image_id: int, x: float, y: float, w: float, h: float) -> None:
        """Record that the expert looked closely at a level-0 rectangle of a slide."""
        with self._transaction():
            self._conn.execute("INSERT INTO seen_regions(image_id, x, y, w, h, at) VALUES (?, ?, ?, ?, ?, ?)",
                               (image_id, float(x), float(y), float(w), float(h), time.time()))

    def seen_regions(self, image_id: int) -> np.ndarray:
        """(N, 4) ``x, y, w, h`` level-0 rectangles of a slide the expert has looked at."""
        rows = self._conn.execute("SELECT x, y, w, h FROM seen_regions WHERE image_id = ? ORDER BY id",
                                  (image_id,)).fetchall()
        return np.array(rows, np.float64).reshape(-1, 4)
