"""A project on disk: ``project.sqlite`` (WAL) plus ``models/`` and ``cache/``.

Every label write is its own committed transaction, made at the moment of the click, so an
acknowledged label survives a crash of anything. Labels are never removed: deleting one marks
it deleted and records the operation, so undo and redo are just more operations.

One ``Project`` object belongs to one thread (SQLite connections are not shared); another
thread opens its own with ``Project.open(folder)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from desktop.engine.project.atomic import remove_stale_temporaries
from desktop.engine.errors import ProjectBusy, ProjectError
from desktop.engine.project.settings import ProjectSettings
from desktop.engine.project.schema import SCHEMA_VERSION, migrate, schema_version
from desktop.engine.project.skeleton import UNLABELLED, VISIBILITIES, Skeleton

DB_NAME = "project.sqlite"
TASKS = ("segmentation", "keypoints")
QUERY_STATUSES = ("open", "answered", "unsure", "skipped")


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    colour: str
    key: str | None
    index: int  # position among the project's classes: the model's output channel


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: Path
    name: str
    width: int
    height: int
    levels: int
    checksum: str
    video: Path | None = None  # for a video frame: the video file, and the frame's index in it
    frame: int | None = None

    @property
    def source(self) -> Path:
        """The file the pixels come from."""
        return self.video or self.path


@dataclass(frozen=True)
class Label:
    id: int
    image_id: int
    x: float
    y: float
    class_id: int | None
    author: str
    created_at: float
    query_id: int | None
    seconds: float | None
    deleted: bool


@dataclass(frozen=True)
class KeypointLabel:
    id: int
    image_id: int
    keypoint: int  # index in the skeleton (the heatmap channel)
    x: float  # NaN when absent
    y: float
    visibility: str
    author: str
    created_at: float
    query_id: int | None
    seconds: float | None


@dataclass(frozen=True)
class Query:
    id: int
    image_id: int
    x: float
    y: float
    strategy: str
    score: float | None
    model_version: int | None
    status: str
    keypoint: int | None = None  # a keypoint query: the keypoint's index in the skeleton


@dataclass(frozen=True)
class ModelVersion:
    version: int
    learner: str
    path: str | None
    created_at: float
    label_count: int
    validation_count: int
    validation_accuracy: float | None
    published: bool


def file_checksum(path: Path, chunk: int = 1 << 16) -> str:
    """Cheap identity of a file: its size plus the hash of its first and last 64 KiB.

    Whole-slide images are gigabytes, so hashing them whole at every open is not an option;
    this still notices a replaced, truncated or re-exported file.
    """
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(size - chunk, chunk))
            h.update(f.read(chunk))
    return f"{size}:{h.hexdigest()}"


class Project:
    """The project folder and its database connection."""

    def __init__(self, folder: Path, conn: sqlite3.Connection, read_only: bool = False):
        self.folder = folder
        self._conn = conn
        self.read_only = read_only
        self._in_batch = False

    # ----- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | os.PathLike, task: str = "segmentation",
               classes: list[tuple[str, str, str | None]] | None = None) -> "Project":
        """Make a new project folder. ``classes`` are ``(name, colour '#rrggbb', key)``."""
        if task not in TASKS:
            raise ProjectError(f"Unknown task {task!r}: choose one of {', '.join(TASKS)}.")
        folder = Path(folder)
        if (folder / DB_NAME).exists():
            raise ProjectError(f"There is already a project in '{folder}'.")
        try:
            for sub in ("", "models", "cache"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProjectError(f"Cannot create a project in '{folder}': {e.strerror or e}.") from e
        project = cls(folder, cls._connect(folder / DB_NAME))
        migrate(project._conn)
        with project._transaction():
            project._conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [
                ("task", task), ("created_at", repr(time.time())), ("created_by", "pointillist")])
        for name, colour, key in classes or []:
            project.add_class(name, colour, key)
        return project

    @classmethod
    def open(cls, folder: str | os.PathLike, *, read_only: bool = False, busy_timeout: float = 10.0) -> "Project":
        """Open an existing project, migrating an older schema; refuse a newer one, an empty
        database and a read-only project untouched.

        A project on a read-only disk or folder is refused rather than opened for viewing:
        labels are saved at the click, so a project that cannot take them would lose the
        expert's work silently. ``read_only`` is the user's choice instead, for a project open for
        writing in another window (see ``project_lock``): every write is then refused with a
        message that says so, and nothing on disk is touched.

        ``busy_timeout``: how long a write waits for another program's write lock before it is
        refused. The GUI thread uses a short one, so that a click never freezes the window.
        """
        folder = Path(folder)
        db = folder / DB_NAME
        if not db.is_file():
            raise ProjectError(f"'{folder}' is not a Pointillist project (no {DB_NAME} in it).")
        written = (folder, db, db.with_name(f"{DB_NAME}-wal"), db.with_name(f"{DB_NAME}-shm"), folder / "models",
                   folder / "cache")
        locked = [] if read_only else [p for p in written if p.exists() and not os.access(p, os.W_OK)]
        if locked:
            raise ProjectError(
                f"The project '{folder.name}' is read-only: this user may not write to {locked[0]}. "
                "Pointillist saves every label the moment you click, so it opens only projects it can "
                "write to. Copy the project folder to a place where you may write (or ask for write "
                "permission), then open it again. Nothing was changed.")
        conn = cls._connect(db, read_version_first=True, busy_timeout=busy_timeout)
        try:
            version = schema_version(conn)
            if version == 0:
                raise ProjectError(
                    f"'{folder.name}' holds no Pointillist project: its {DB_NAME} is empty or was not "
                    "written by Pointillist. Restore it from a backup, or delete it and create the project "
                    "again. Nothing was changed.")
            if version > SCHEMA_VERSION:
                raise ProjectError(
                    f"The project '{folder.name}' was saved by a newer version of Pointillist "
                    f"(schema {version}; this version reads up to {SCHEMA_VERSION}). "
                    "Please update Pointillist to open it. The project was not changed.")
            if version < SCHEMA_VERSION:
                if read_only:
                    raise ProjectError(
                        f"The project '{folder.name}' must be upgraded to this version of Pointillist before "
                        "it can be opened read-only. Open it for writing once. Nothing was changed.")
                migrate(conn)
            if read_only:
                conn.execute("PRAGMA query_only = ON")  # a second guard below the one in _Transaction
        except BaseException:
            conn.close()
            raise
        project = cls(folder, conn, read_only)
        if not read_only:
            for sub in (project.models_dir, project.cache_dir):  # what a crash mid-write left behind
                remove_stale_temporaries(sub)
        return project

    @staticmethod
    def _connect(db: Path, read_version_first: bool = False, busy_timeout: float = 10.0) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(db, isolation_level=None, timeout=busy_timeout)
            if read_version_first and not 0 < schema_version(conn) <= SCHEMA_VERSION:
                # Do not switch the journal mode of a database we are going to refuse.
                return conn
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed label is on disk before the click is acknowledged.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise ProjectError(f"Cannot open the project database '{db}': {e}.") from e
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self):
        """Several writes as one transaction (an import: the skeleton, each image, the labels):
        committed together at the end, or, when any of them fails, none of them."""
        with self._transaction():
            self._in_batch = True
            try:
                yield self
            finally:
                self._in_batch = False

    def _transaction(self):
        if self._in_batch:  # a part of the batch's transaction
            return contextlib.nullcontext(self._conn)
        if self.read_only:
            raise ProjectError(f"The project '{self.folder.name}' is open read-only here, so this change was not "
                               "saved. Close the window that has it open for writing, then open it again here.")
        return _Transaction(self._conn)

    @property
    def db_path(self) -> Path:
        return self.folder / DB_NAME

    @property
    def models_dir(self) -> Path:
        return self.folder / "models"

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache"

    # ----- meta ------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self._conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                               "DO UPDATE SET value = excluded.value", (key, value))

    @property
    def task(self) -> str:
        return self.meta("task", "segmentation")

    def settings(self) -> ProjectSettings:
        return ProjectSettings.from_json(self.meta("settings"))

    def update_settings(self, **changes) -> ProjectSettings:
        """Change the named settings and keep the others; a value out of range is refused with a
        ProjectError before anything is written. Read and written in one transaction, so a
        change made meanwhile by another program is not overwritten."""
        with self.batch():
            settings = replace(self.settings(), **changes)
            self.set_meta("settings", settings.to_json())
        return settings

    # ----- classes ---------------------------------------------------------------------------
    def add_class(self, name: str, colour: str, key: str | None = None) -> int:
        name = name.strip()
        if not name:
            raise ProjectError("A class needs a name.")
        with self._transaction():
            position = self._conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM classes").fetchone()[0]
            try:
                cur = self._conn.execute("INSERT INTO classes(name, colour, key, position) VALUES (?, ?, ?, ?)",
                                         (name, colour, key, position))
            except sqlite3.IntegrityError as e:
                raise ProjectError(f"There is already a class called '{name}'.") from e
        return cur.lastrowid

    def classes(self) -> list[ClassInfo]:
        rows = self._conn.execute("SELECT id, name, colour, key FROM classes ORDER BY position").fetchall()
        return [ClassInfo(r[0], r[1], r[2], r[3], i) for i, r in enumerate(rows)]

    # ----- images ----------------------------------------------------------------------------
    def add_image(self, path: str | os.PathLike, width: int, height: int, levels: int = 1) -> int:
        """Reference an image file (never copied). Adding the same path twice returns its id."""
        path = Path(path).resolve()
        existing = self._conn.execute("SELECT id FROM images WHERE path = ?", (str(path),)).fetchone()
        if existing:
            return existing[0]
        checksum = file_checksum(path)
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO images(path, name, width, height, levels, checksum, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(path), path.name, int(width), int(height), int(levels), checksum, time.time()))
        return cur.lastrowid

    def add_video_frame(self, video: str | os.PathLike, frame: int, width: int, height: int) -> int:
        """Reference frame ``frame`` of a video as an image; adding it twice returns its id."""
        video = Path(video).resolve()
        locator = f"{video}#frame={int(frame)}"
        existing = self._conn.execute("SELECT id FROM images WHERE path = ?", (locator,)).fetchone()
        if existing:
            return existing[0]
        checksum = file_checksum(video)
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO images(path, name, width, height, levels, checksum, added_at, video, frame) "
                "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (locator, f"{video.name} #{int(frame)}", int(width), int(height), checksum, time.time(),
                 str(video), int(frame)))
        return cur.lastrowid

    _IMAGE_COLUMNS = "id, path, name, width, height, levels, checksum, video, frame"

    @staticmethod
    def _image_info(r) -> ImageInfo:
        return ImageInfo(r[0], Path(r[1]), *r[2:7], Path(r[7]) if r[7] else None, r[8])

    def images(self) -> list[ImageInfo]:
        rows = self._conn.execute(f"SELECT {self._IMAGE_COLUMNS} FROM images ORDER BY id").fetchall()
        return [self._image_info(r) for r in rows]

    def image(self, image_id: int) -> ImageInfo:
        row = self._conn.execute(f"SELECT {self._IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"No image with id {image_id} in this project.")
        return self._image_info(row)

    def image_problem(self, image: ImageInfo) -> str | None:
        """Why an image file cannot be used as it was added, or None when it is fine."""
        source = image.source
        if not source.exists():
            return f"The file '{source}' was moved or deleted."
        try:
            if file_checksum(source) != image.checksum:
                return f"The file '{source}' changed since it was added to the project."
        except OSError as e:
            return f"The file '{source}' cannot be read: {e.strerror or e}."
        return None

    # ----- labels ----------------------------------------------------------------------------
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

    def label_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM labels WHERE deleted = 0").fetchone()[0]

    def label_revision(self) -> int:
        """Grows with every label operation: a cheap way for readers to notice changes."""
        return self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM label_ops").fetchone()[0]

    def mean_answer_seconds(self) -> float | None:
        return self._conn.execute("SELECT AVG(seconds) FROM labels WHERE deleted = 0 AND seconds IS NOT NULL"
                                  ).fetchone()[0]

    # ----- queries ---------------------------------------------------------------------------
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

    # ----- model versions --------------------------------------------------------------------
    def add_model_version(self, learner: str, label_count: int, path: str | None = None,
                          validation_count: int = 0, validation_accuracy: float | None = None,
                          published: bool = True) -> int:
        """Record a version whose file, if any, is already named (a refused round has none)."""
        with self._transaction():
            return self._insert_model_version(learner, label_count, lambda version: path, validation_count,
                                              validation_accuracy, published)

    def reserve_model_version(self, learner: str, label_count: int, validation_count: int = 0,
                              validation_accuracy: float | None = None) -> tuple[int, str]:
        """Claim the next version number and its file name, ``LEARNER-vN.pt``, in one transaction,
        unpublished until ``publish_model_version``. Two engines on one project (two windows)
        can never claim the same number, so a file always holds the weights of the version that
        names it. A crash before publishing leaves an unpublished row, which nothing loads."""
        with self._transaction():
            version = self._insert_model_version(learner, label_count, lambda v: f"{learner}-v{v}.pt",
                                                 validation_count, validation_accuracy, published=False)
            path = self._conn.execute("SELECT path FROM model_versions WHERE version = ?", (version,)).fetchone()[0]
        return version, path

    def publish_model_version(self, version: int, saved: bool) -> None:
        """Publish a reserved version; ``saved`` says whether its file was written (when the disk
        refused it, the version is still the one in use, but has no file to reload)."""
        with self._transaction():
            self._conn.execute("UPDATE model_versions SET published = 1, path = CASE WHEN ? THEN path END "
                               "WHERE version = ?", (int(saved), version))

    def forget_model_files(self, versions: list[int]) -> None:
        """Record that these versions' files were deleted (by the app's clean-up)."""
        with self._transaction():
            self._conn.executemany("UPDATE model_versions SET path = NULL WHERE version = ?",
                                   [(v,) for v in versions])

    def _insert_model_version(self, learner, label_count, path_of, validation_count, validation_accuracy,
                              published) -> int:
        version = self._conn.execute("SELECT COALESCE(MAX(version) + 1, 1) FROM model_versions").fetchone()[0]
        self._conn.execute(
            "INSERT INTO model_versions(version, learner, path, created_at, label_count, validation_count, "
            "validation_accuracy, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (version, learner, path_of(version), time.time(), label_count, validation_count,
             validation_accuracy, int(published)))
        return version

    _MODEL_COLUMNS = ("version, learner, path, created_at, label_count, validation_count, validation_accuracy, "
                      "published")

    def model_versions(self) -> list[ModelVersion]:
        rows = self._conn.execute(f"SELECT {self._MODEL_COLUMNS} FROM model_versions ORDER BY version").fetchall()
        return [ModelVersion(*r[:7], bool(r[7])) for r in rows]

    def model_version(self, version: int) -> ModelVersion:
        row = self._conn.execute(f"SELECT {self._MODEL_COLUMNS} FROM model_versions WHERE version = ?",
                                 (version,)).fetchone()
        if row is None:
            raise ProjectError(f"No model version {version} in this project.")
        return ModelVersion(*row[:7], bool(row[7]))

    def latest_published_model(self) -> ModelVersion | None:
        published = [m for m in self.model_versions() if m.published]
        return published[-1] if published else None

    # ----- skeleton and keypoint labels ------------------------------------------------------
    def set_skeleton(self, skeleton: Skeleton) -> None:
        """Make ``skeleton`` the project's: keypoints keep their id by name (so their labels
        stay theirs), new names are added, and a keypoint that any label names, live or
        deleted (undo may bring it back), cannot be removed: rename it instead."""
        with self._transaction():
            existing = dict(self._conn.execute("SELECT name, id FROM skeleton_keypoints").fetchall())
            dropped = [n for n in existing if n not in skeleton.names]
            used = [n for n in dropped if self._conn.execute(
                "SELECT 1 FROM labels WHERE keypoint_id = ? LIMIT 1", (existing[n],)).fetchone()]
            if used:
                raise ProjectError(f"Keypoints with labels cannot be removed: {', '.join(used)}.")
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

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class _Transaction:
    """``with``-block around BEGIN IMMEDIATE ... COMMIT / ROLLBACK on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __enter__(self):
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise _write_error(e) from e
        return self._conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
                return False
            except sqlite3.OperationalError as e:
                self._rollback()
                raise _write_error(e) from e
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):  # e.g. the disk filled up during an INSERT
            raise _write_error(exc) from exc
        return False

    def _rollback(self) -> None:
        # SQLite may have rolled back already (it does on a full disk); ROLLBACK would then fail.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _write_error(e: sqlite3.OperationalError) -> ProjectError:
    return (ProjectBusy if "locked" in str(e) else ProjectError)(_write_problem(e))


def _write_problem(e: sqlite3.OperationalError) -> str:
    text = str(e)
    if "readonly" in text:
        return ("The project is read-only, so the last change was not saved. Copy the project folder to a "
                "place where you may write, then open it again.")
    if "full" in text:
        return ("The disk is full, so the last change was not saved; everything saved before it is "
                "safe. Free some space on the disk and try again.")
    if "locked" in text:
        return "The project is busy in another program; the last change was not saved. Try again."
    return f"The project database could not be written: {text}."
