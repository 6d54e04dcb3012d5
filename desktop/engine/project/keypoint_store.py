"""The methods of ``Project`` (``store.py``) for the skeleton and keypoint labels, kept in a module
of their own; they use the project's connection and its transactions as the class's own methods
do."""
from __future__ import annotations

import sqlite3
import time

import numpy as np

from desktop.engine.errors import ProjectError
from desktop.engine.project.records import KeypointLabel
from desktop.engine.project.skeleton import UNLABELLED, VISIBILITIES, Skeleton


def removal_refusal(used: dict[str, int]) -> str:
    """Why these keypoints (name -> its label count) cannot be removed, and what to do instead."""
    named = ", ".join(f"'{name}' ({count} label{'s' if count != 1 else ''})" for name, count in used.items())
    return f"Keypoints with labels cannot be removed: {named}. Rename them instead, or keep them. Nothing was changed."


class KeypointStore:
    def set_skeleton(self, skeleton: Skeleton, renamed: dict[str, str] | None = None) -> None:
        """Make ``skeleton`` the project's: keypoints keep their id by name (so their labels
        stay theirs), or by ``renamed`` (old name -> its name in ``skeleton``); new names are
        added, and a keypoint that any label names, live or deleted (undo may bring it back),
        cannot be removed: rename it instead. A change of the keypoints or their order makes the
        saved models outdated (``ClassStore``): their heatmaps are per keypoint, in order."""
        with self._transaction():
            before = self._keypoint_ids()
            if renamed:  # in two steps, so that swapped names never meet the UNIQUE constraint
                by_name = dict(self._conn.execute("SELECT name, id FROM skeleton_keypoints").fetchall())
                moving = [(new, by_name[old]) for old, new in renamed.items() if old in by_name and old != new]
                self._conn.executemany("UPDATE skeleton_keypoints SET name = char(1) || id WHERE id = ?",
                                       [(kid,) for _, kid in moving])
                for new, kid in moving:
                    try:
                        self._conn.execute("UPDATE skeleton_keypoints SET name = ? WHERE id = ?", (new, kid))
                    except sqlite3.IntegrityError as e:
                        raise ProjectError(f"There is already a keypoint called '{new}'. Nothing was changed.") from e
            existing = dict(self._conn.execute("SELECT name, id FROM skeleton_keypoints").fetchall())
            dropped = [n for n in existing if n not in skeleton.names]
            used = self.keypoint_label_counts(dropped)
            if used:
                raise ProjectError(removal_refusal(used))
            self._conn.execute("DELETE FROM skeleton_edges")
            self._conn.execute("DELETE FROM skeleton_symmetry")
            for name in dropped:
                self._conn.execute("DELETE FROM queries WHERE keypoint_id = ?", (existing[name],))
                self._conn.execute("DELETE FROM skeleton_keypoints WHERE id = ?", (existing[name],))
            ids = []
            for position, name in enumerate(skeleton.names):
                if name in existing:
                    self._conn.execute("UPDATE skeleton_keypoints SET position = ? WHERE id = ?",
                                       (position, existing[name]))
                    ids.append(existing[name])
                else:
                    ids.append(self._conn.execute("INSERT INTO skeleton_keypoints(name, position) VALUES (?, ?)",
                                                  (name, position)).lastrowid)
            self._conn.executemany("INSERT INTO skeleton_edges(a, b) VALUES (?, ?)",
                                   [(ids[a], ids[b]) for a, b in skeleton.edges])
            self._conn.executemany("INSERT INTO skeleton_symmetry(a, b) VALUES (?, ?)",
                                   [(ids[a], ids[b]) for a, b in skeleton.symmetry])
            if before and ids != before:
                self._models_outdated()

    def keypoint_label_counts(self, names: list[str]) -> dict[str, int]:
        """How many labels, live or deleted, each of these keypoints has (those with none left out)."""
        counts = {name: self._conn.execute(
            "SELECT COUNT(*) FROM labels l JOIN skeleton_keypoints k ON k.id = l.keypoint_id WHERE k.name = ?",
            (name,)).fetchone()[0] for name in names}
        return {name: count for name, count in counts.items() if count}

    def rename_keypoint(self, old: str, new: str) -> None:
        new = new.strip()
        if not new:
            raise ProjectError("A keypoint needs a name.")
        with self._transaction():
            try:
                cur = self._conn.execute("UPDATE skeleton_keypoints SET name = ? WHERE name = ?", (new, old))
            except sqlite3.IntegrityError as e:
                raise ProjectError(f"There is already a keypoint called '{new}'.") from e
            if cur.rowcount == 0:
                raise ProjectError(f"No keypoint called '{old}'.")

    def _keypoint_ids(self) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT id FROM skeleton_keypoints ORDER BY position")]

    def skeleton(self) -> Skeleton:
        rows = self._conn.execute("SELECT id, name FROM skeleton_keypoints ORDER BY position").fetchall()
        index = {r[0]: i for i, r in enumerate(rows)}

        def pairs(table):
            return tuple((index[a], index[b]) for a, b in self._conn.execute(f"SELECT a, b FROM {table}"))

        return Skeleton(tuple(r[1] for r in rows), pairs("skeleton_edges"), pairs("skeleton_symmetry"))

    def set_keypoint_labels(self, entries: list[tuple[int, int, float, float, str]], *, author: str = "user",
                            query_ids: list[int | None] | None = None,
                            seconds: list[float | None] | None = None) -> tuple[list[int], list[int]]:
        """Label keypoints, all in one transaction: ``entries`` are ``(image_id, keypoint index,
        x, y, visibility)``; x and y are ignored for ``absent``. A live label of the same keypoint
        on the same image is deleted first, so moving is delete + add and undoing a move is
        ``delete_label(new)`` + ``restore_label(old)``. Returns ``(new ids, replaced ids)``."""
        ids = self._keypoint_ids()
        n = len(entries)
        query_ids = query_ids or [None] * n
        seconds = seconds or [None] * n
        now = time.time()
        new_ids, replaced = [], []
        with self._transaction():
            for (image_id, keypoint, x, y, visibility), query_id, secs in zip(entries, query_ids, seconds):
                if visibility not in VISIBILITIES:
                    raise ProjectError(f"Unknown visibility {visibility!r}: choose one of {', '.join(VISIBILITIES)}.")
                if not 0 <= keypoint < len(ids):
                    raise ProjectError(f"No keypoint {keypoint} in a skeleton of {len(ids)}.")
                if visibility == "absent":
                    x = y = 0.0  # the columns are NOT NULL; keypoint_arrays reports NaN
                elif not (np.isfinite(x) and np.isfinite(y)):
                    raise ProjectError(f"A {visibility} keypoint needs a position, got ({x}, {y}).")
                old = [r[0] for r in self._conn.execute(
                    "SELECT id FROM labels WHERE image_id = ? AND keypoint_id = ? AND deleted = 0",
                    (image_id, ids[keypoint]))]
                for label_id in old:
                    self._conn.execute("UPDATE labels SET deleted = 1 WHERE id = ?", (label_id,))
                    self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, 'delete', ?)",
                                       (label_id, now))
                cur = self._conn.execute(
                    "INSERT INTO labels(image_id, x, y, class_id, keypoint_id, visibility, author, created_at, "
                    "query_id, seconds) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                    (image_id, float(x), float(y), ids[keypoint], visibility, author, now, query_id, secs))
                self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, 'add', ?)",
                                   (cur.lastrowid, now))
                if query_id is not None:
                    self._conn.execute("UPDATE queries SET status = 'answered' WHERE id = ?", (query_id,))
                new_ids.append(cur.lastrowid)
                replaced += old
        return new_ids, replaced

    def set_keypoint_label(self, image_id: int, keypoint: int, x: float, y: float, visibility: str = "visible",
                           *, author: str = "user", query_id: int | None = None,
                           seconds: float | None = None) -> tuple[int, list[int]]:
        """One keypoint label (a click, a drag, a V or A key); see ``set_keypoint_labels``."""
        new, replaced = self.set_keypoint_labels([(image_id, keypoint, x, y, visibility)], author=author,
                                                 query_ids=[query_id], seconds=[seconds])
        return new[0], replaced

    def keypoint_labels(self, image_id: int | None = None) -> list[KeypointLabel]:
        """Live keypoint labels, of one image or all, by image then keypoint order."""
        position = {kid: i for i, kid in enumerate(self._keypoint_ids())}
        rows = self._conn.execute(
            "SELECT l.id, l.image_id, l.keypoint_id, l.x, l.y, l.visibility, l.author, l.created_at, "
            "l.query_id, l.seconds FROM labels l WHERE l.deleted = 0 AND l.keypoint_id IS NOT NULL "
            "AND (? IS NULL OR l.image_id = ?) ORDER BY l.image_id, l.id", (image_id, image_id)).fetchall()
        out = []
        for r in rows:
            x, y = (np.nan, np.nan) if r[5] == "absent" else (r[3], r[4])
            out.append(KeypointLabel(r[0], r[1], position[r[2]], x, y, *r[5:]))
        return sorted(out, key=lambda lab: (lab.image_id, lab.keypoint))

    def keypoint_arrays(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xy (K, 2) float64, visibility (K,) str)`` of one image; NaN and '' where unlabelled,
        NaN and 'absent' where absent."""
        k = len(self._keypoint_ids())
        xy = np.full((k, 2), np.nan)
        visibility = np.full(k, UNLABELLED, dtype=f"<U{max(map(len, VISIBILITIES))}")
        for lab in self.keypoint_labels(image_id):
            xy[lab.keypoint] = (lab.x, lab.y)
            visibility[lab.keypoint] = lab.visibility
        return xy, visibility
