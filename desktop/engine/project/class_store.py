"""The methods of ``Project`` (``store.py``) for changing a project's classes after it was made:
add, rename, recolour, re-key, and merge one class into another. Kept in a module of their own;
they use the project's connection and its transactions as the class's own methods do.

All changes of one edit are checked together and made in one transaction: a swap of two names
or keys is fine, and a refused edit changes nothing.

A merge moves the merged class's labels as a move is stored everywhere (see
``KeypointStore.set_keypoint_labels``): each live label is deleted and added again with the
class it joins, so every reader of ``label_ops`` (another window's drawing, the engine's revision
check) sees it; its deleted labels are re-pointed too, so the class row can go.

A saved model predicts one channel per class, in order: after a class is added or merged, the
models saved before are not this project's any more. ``models_from_version`` says which
version numbers are; the engine loads none older and trains afresh (the fast learner takes
seconds), rather than extend or cut a head whose channels no longer mean the same classes.
"""
from __future__ import annotations

import re
import time

from desktop.engine.errors import ProjectError
from desktop.engine.project.records import ClassInfo

COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MODELS_FROM = "models_from_version"  # meta key: the oldest model version made for today's classes
ClassRow = tuple[int | None, str, str, str | None]  # (id, or None for a new class; name; '#rrggbb'; key)


def check_classes(current: list[ClassInfo], rows: list[ClassRow], merges: dict[int, int]) -> list[ClassRow]:
    """``rows`` tidied (names stripped, empty keys None), or a ProjectError that says what is wrong:
    a class without a name or with a name or key already taken, a colour that is not #rrggbb, a
    class neither kept nor merged, a merge into a class that is not kept."""
    tidy = [(cid, name.strip(), colour.strip(), (key or "").strip() or None) for cid, name, colour, key in rows]
    if not tidy:
        raise ProjectError("A project needs at least one class.")
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for position, (_, name, colour, key) in enumerate(tidy):
        if not name:
            raise ProjectError(f"Class {position + 1} has no name: give it one.")
        if name.casefold() in names:
            raise ProjectError(f"Two classes are called '{name}': give each its own name.")
        names[name.casefold()] = name
        if not COLOUR.fullmatch(colour):
            raise ProjectError(f"The colour of '{name}' is '{colour}': give it as #rrggbb, e.g. #ff8800.")
        if key is not None and len(key) != 1:
            raise ProjectError(f"The key of '{name}' is '{key}': a class's key is one character.")
        effective = key.lower() if key else (str(position + 1) if position < 9 else None)
        if effective is not None and effective in keys:
            raise ProjectError(f"'{keys[effective]}' and '{name}' would both have the key {effective.upper()}: "
                               "give one of them another key.")
        if effective is not None:
            keys[effective] = name
    known = {c.id: c.name for c in current}
    kept = [cid for cid, *_ in tidy if cid is not None]
    if len(set(kept)) != len(kept) or not set(kept) <= known.keys():
        raise ProjectError("The class list names a class twice, or one this project does not have.")
    for source, target in merges.items():
        if source not in known or source in kept:
            raise ProjectError("Only a class of this project that is not kept can be merged into another.")
        if target not in kept:
            raise ProjectError(f"'{known[source]}' is merged into a class that is not kept: choose a kept one.")
    left = [name for cid, name in known.items() if cid not in kept and cid not in merges]
    if left:
        raise ProjectError(f"'{left[0]}' is neither kept nor merged: a class with labels cannot just vanish.")
    return tidy


class ClassStore:
    def edit_classes(self, rows: list[ClassRow], merges: dict[int, int] | None = None) -> None:
        """Make the project's classes ``rows``, in that order: kept classes by id (renamed,
        recoloured, re-keyed as given), new ones with id None. Each class in ``merges`` (its id ->
        the id of the kept class it joins) has its labels moved there and is removed. Checked by
        ``check_classes`` first; all or nothing."""
        merges = dict(merges or {})
        with self._transaction():
            rows = check_classes(self.classes(), rows, merges)
            now = time.time()
            for source, target in merges.items():
                self._move_labels(source, target, now)
                self._conn.execute("DELETE FROM classes WHERE id = ?", (source,))
            # two steps, so that swapped names never meet the UNIQUE constraint half-way
            self._conn.execute("UPDATE classes SET name = char(1) || id")
            for position, (cid, name, colour, key) in enumerate(rows):
                if cid is None:
                    self._conn.execute("INSERT INTO classes(name, colour, key, position) VALUES (?, ?, ?, ?)",
                                       (name, colour, key, position))
                else:
                    self._conn.execute("UPDATE classes SET name = ?, colour = ?, key = ?, position = ? WHERE id = ?",
                                       (name, colour, key, position, cid))
            if merges or any(cid is None for cid, *_ in rows):
                self._models_outdated()

    def _move_labels(self, source: int, target: int, now: float) -> None:
        live = self._conn.execute(
            "SELECT id, image_id, x, y, author, created_at, query_id, seconds FROM labels "
            "WHERE class_id = ? AND deleted = 0", (source,)).fetchall()
        for label_id, image_id, x, y, author, created_at, query_id, seconds in live:
            self._conn.execute("UPDATE labels SET deleted = 1 WHERE id = ?", (label_id,))
            self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, 'delete', ?)", (label_id, now))
            cur = self._conn.execute(
                "INSERT INTO labels(image_id, x, y, class_id, author, created_at, query_id, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (image_id, x, y, target, author, created_at, query_id, seconds))
            self._conn.execute("INSERT INTO label_ops(label_id, op, at) VALUES (?, 'add', ?)", (cur.lastrowid, now))
        self._conn.execute("UPDATE labels SET class_id = ? WHERE class_id = ?", (target, source))

    def class_label_counts(self) -> dict[int, int]:
        """Live labels per class id (classes without labels are left out)."""
        return dict(self._conn.execute(
            "SELECT class_id, COUNT(*) FROM labels WHERE deleted = 0 AND class_id IS NOT NULL GROUP BY class_id"))

    # ----- which saved models fit -------------------------------------------------------------
    def _models_outdated(self) -> None:
        """Record that the models saved so far were made for other classes or keypoints (a part
        of the caller's transaction)."""
        following = self._conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions").fetchone()[0]
        self._conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                           "DO UPDATE SET value = excluded.value", (MODELS_FROM, str(following)))

    def models_from_version(self) -> int:
        """The oldest model version made for the project's classes (or keypoints) as they are."""
        return int(self.meta(MODELS_FROM, "0"))
