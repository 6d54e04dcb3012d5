"""The project database schema and its migrations.

``PRAGMA user_version`` holds the schema version. Each entry of ``MIGRATIONS`` takes a database
from version ``n`` to ``n + 1``; a new project runs all of them in order, so the path an old
project takes is the same path every new project takes, and tests can stop at any version.
"""
from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    levels INTEGER NOT NULL DEFAULT 1,
    checksum TEXT NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE classes(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    colour TEXT NOT NULL,
    key TEXT,
    position INTEGER NOT NULL
);
CREATE TABLE queries(
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    x REAL NOT NULL,
    y REAL NOT NULL,
    strategy TEXT NOT NULL,
    score REAL,
    model_version INTEGER,
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'answered', 'unsure', 'skipped'))
);
CREATE INDEX queries_by_image ON queries(image_id, status);
CREATE TABLE labels(
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    x REAL NOT NULL,
    y REAL NOT NULL,
    class_id INTEGER REFERENCES classes(id),
    author TEXT NOT NULL,
    created_at REAL NOT NULL,
    query_id INTEGER REFERENCES queries(id),
    seconds REAL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX labels_by_image ON labels(image_id, deleted);
CREATE TABLE label_ops(
    id INTEGER PRIMARY KEY,
    label_id INTEGER NOT NULL REFERENCES labels(id),
    op TEXT NOT NULL CHECK (op IN ('add', 'delete', 'restore')),
    at REAL NOT NULL
);
CREATE TABLE model_versions(
    version INTEGER PRIMARY KEY,
    learner TEXT NOT NULL,
    path TEXT,
    created_at REAL NOT NULL,
    label_count INTEGER NOT NULL,
    validation_count INTEGER NOT NULL DEFAULT 0,
    validation_accuracy REAL,
    published INTEGER NOT NULL DEFAULT 1
);
"""

# Version 2 makes room for keypoint projects: a skeleton, and labels that name a keypoint and
# its visibility instead of a class.
_V2 = """
CREATE TABLE skeleton_keypoints(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL
);
CREATE TABLE skeleton_edges(
    a INTEGER NOT NULL REFERENCES skeleton_keypoints(id),
    b INTEGER NOT NULL REFERENCES skeleton_keypoints(id),
    PRIMARY KEY (a, b)
);
CREATE TABLE skeleton_symmetry(
    a INTEGER NOT NULL REFERENCES skeleton_keypoints(id),
    b INTEGER NOT NULL REFERENCES skeleton_keypoints(id),
    PRIMARY KEY (a, b)
);
ALTER TABLE labels ADD COLUMN keypoint_id INTEGER REFERENCES skeleton_keypoints(id);
ALTER TABLE labels ADD COLUMN visibility TEXT
    CHECK (visibility IS NULL OR visibility IN ('visible', 'occluded', 'absent'));
"""

# Version 3: a keypoint query names its keypoint, and an image can be one frame of a video
# (``images.path`` then holds a unique locator, ``video`` and ``frame`` say where the pixels are).
_V3 = """
ALTER TABLE queries ADD COLUMN keypoint_id INTEGER REFERENCES skeleton_keypoints(id);
ALTER TABLE images ADD COLUMN video TEXT;
ALTER TABLE images ADD COLUMN frame INTEGER;
"""

# Version 4: the parts of a slide the expert has looked at closely (level-0 rectangles), so that
# "where to look next" sends them elsewhere.
_V4 = """
CREATE TABLE seen_regions(
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    x REAL NOT NULL,
    y REAL NOT NULL,
    w REAL NOT NULL,
    h REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX seen_regions_by_image ON seen_regions(image_id);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Bring ``conn`` from its current version up to ``target``, one committed step at a time."""
    for version in range(schema_version(conn), target):
        _apply(conn, version)


def _apply(conn: sqlite3.Connection, version: int) -> None:
    """Run migration ``version -> version + 1`` atomically, the version bump included."""
    statements = [s.strip() for s in MIGRATIONS[version].split(";") if s.strip()]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
