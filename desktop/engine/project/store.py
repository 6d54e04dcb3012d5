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
from dataclasses import replace
from pathlib import Path

from desktop.engine.errors import ProjectError
from desktop.engine.project.atomic import remove_stale_temporaries
from desktop.engine.project.class_store import ClassStore
from desktop.engine.project.keypoint_store import KeypointStore
from desktop.engine.project.label_store import LabelStore
from desktop.engine.project.model_store import ModelStore
from desktop.engine.project.query_store import QueryStore
from desktop.engine.project.records import ClassInfo, ImageInfo
from desktop.engine.project.schema import SCHEMA_VERSION, migrate, schema_version
from desktop.engine.project.settings import ProjectSettings
from desktop.engine.project.transaction import Transaction

DB_NAME = "project.sqlite"
TASKS = ("segmentation", "keypoints")


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


def check_project_folder(folder: Path) -> None:
    """Raise a ProjectError that says what is wrong when ``folder`` holds no project: it does not
    exist (moved, renamed, deleted, or on a disk not connected now), it is a file, or it has no
    database. Said before anything is opened, for the window, the commands and the lock alike."""
    if not folder.exists():
        raise ProjectError(f"'{folder}' does not exist: it was moved, renamed or deleted, or its disk is not "
                           "connected.")
    if not folder.is_dir():
        raise ProjectError(f"'{folder}' is a file, not a project folder.")
    if not (folder / DB_NAME).is_file():
        raise ProjectError(f"'{folder}' is not a Pointillist project (no {DB_NAME} in it).")


class Project(LabelStore, ClassStore, QueryStore, ModelStore, KeypointStore):
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
        check_project_folder(folder)
        db = folder / DB_NAME
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
        return Transaction(self._conn)

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
        return self._reference(str(path), path.name, path, width, height, levels)

    def add_video_frame(self, video: str | os.PathLike, frame: int, width: int, height: int) -> int:
        """Reference frame ``frame`` of a video as an image; adding it twice returns its id."""
        video = Path(video).resolve()
        return self._reference(f"{video}#frame={int(frame)}", f"{video.name} #{int(frame)}", video, width, height,
                               video=str(video), frame=int(frame))

    def _reference(self, locator: str, name: str, file: Path, width: int, height: int, levels: int = 1,
                   video: str | None = None, frame: int | None = None) -> int:
        """The image row at ``locator`` (its path, or a video's path and frame), added when new
        with the checksum of ``file``."""
        existing = self._conn.execute("SELECT id FROM images WHERE path = ?", (locator,)).fetchone()
        if existing:
            return existing[0]
        checksum = file_checksum(file)
        with self._transaction():
            cur = self._conn.execute(
                "INSERT INTO images(path, name, width, height, levels, checksum, added_at, video, frame) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (locator, name, int(width), int(height), int(levels), checksum, time.time(), video, frame))
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

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
