import sqlite3

import numpy as np
import pytest

from desktop.engine.errors import ProjectError
from desktop.engine.project.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from desktop.engine.project.store import Project

CLASSES = [("background", "#000000", "1"), ("nucleus", "#ff0000", "2")]


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG not really, but the store only hashes it" * 10)
    return path


def test_create_reopen_keeps_everything(tmp_path, image_file):
    folder = tmp_path / "proj"
    with Project.create(folder, classes=CLASSES) as p:
        image_id = p.add_image(image_file, 40, 30)
        label_id = p.add_label(image_id, 12.5, 7.0, p.classes()[1].id, seconds=1.5)
        q = p.add_queries(image_id, np.array([[3, 4]]), "margin", np.array([0.9]), model_version=None)
        p.set_query_status(q[0], "unsure")
    assert (folder / "models").is_dir() and (folder / "cache").is_dir()
    with Project.open(folder) as p:
        assert [c.name for c in p.classes()] == ["background", "nucleus"]
        assert p.images()[0].width == 40 and p.images()[0].name == "picture.png"
        (label,) = p.labels()
        assert (label.id, label.x, label.y, label.seconds) == (label_id, 12.5, 7.0, 1.5)
        assert p.queries(status="unsure")[0].strategy == "margin"
        assert p.mean_answer_seconds() == 1.5
        assert p.integrity_ok()
        assert p._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_delete_is_recorded_and_reversible(tmp_path, image_file):
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        image_id = p.add_image(image_file, 10, 10)
        label_id = p.add_label(image_id, 1, 2, p.classes()[0].id)
        revision = p.label_revision()
        p.delete_label(label_id)
        assert p.labels() == [] and len(p.labels(include_deleted=True)) == 1
        assert p.label_revision() > revision
        p.restore_label(label_id)
        assert [lab.id for lab in p.labels()] == [label_id]
        ops = p._conn.execute("SELECT op FROM label_ops WHERE label_id = ? ORDER BY id", (label_id,)).fetchall()
        assert [o[0] for o in ops] == ["add", "delete", "restore"]
        with pytest.raises(ProjectError):
            p.delete_label(9999)


def test_label_arrays_give_class_indices_and_answer_closes_query(tmp_path, image_file):
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        image_id = p.add_image(image_file, 10, 10)
        (qid,) = p.add_queries(image_id, np.array([[5, 6]]), "entropy")
        p.add_label(image_id, 6, 5, p.classes()[1].id, query_id=qid)
        p.add_label(image_id, 1, 1, p.classes()[0].id)
        ids, yx, cls = p.label_arrays(image_id)
        assert yx.tolist() == [[5, 6], [1, 1]] and cls.tolist() == [1, 0]
        assert p.queries(status="open") == [] and p.queries(status="answered")[0].id == qid
        assert p.asked_points(image_id).tolist() == [[5, 6]]


def test_each_label_is_committed_at_once(tmp_path, image_file):
    """A second connection (another process, or the engine thread) sees a label immediately."""
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        image_id = p.add_image(image_file, 10, 10)
        p.add_label(image_id, 1, 1, p.classes()[0].id)
        other = sqlite3.connect(p.db_path)
        assert other.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 1
        other.close()


def test_migration_from_version_1_keeps_labels(tmp_path, image_file):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "project.sqlite", isolation_level=None)
    migrate(conn, target=1)
    conn.execute("INSERT INTO meta VALUES ('task', 'segmentation')")
    conn.execute("INSERT INTO images(path, name, width, height, checksum, added_at) VALUES (?, 'a', 5, 5, 'x', 0)",
                 (str(image_file),))
    conn.execute("INSERT INTO classes(name, colour, key, position) VALUES ('a', '#fff', '1', 0)")
    conn.execute("INSERT INTO labels(image_id, x, y, class_id, author, created_at) VALUES (1, 2, 3, 1, 'u', 0)")
    conn.close()
    with Project.open(folder) as p:
        assert schema_version(p._conn) == SCHEMA_VERSION == len(MIGRATIONS)
        assert p.labels()[0].x == 2
        columns = [r[1] for r in p._conn.execute("PRAGMA table_info(labels)")]
        assert "keypoint_id" in columns and "visibility" in columns


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("kind", ["bare database", "project in WAL mode"])
def test_newer_schema_is_refused_and_left_untouched(tmp_path, kind):
    folder = tmp_path / "future"
    db = folder / "project.sqlite"
    if kind == "bare database":
        folder.mkdir()
    else:
        Project.create(folder, classes=CLASSES).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = _files(folder)
    with pytest.raises(ProjectError) as caught:
        Project.open(folder)
    assert str(caught.value) == (
        f"The project 'future' was saved by a newer version of Pointillist (schema {SCHEMA_VERSION + 1}; "
        f"this version reads up to {SCHEMA_VERSION}). Please update Pointillist to open it. "
        "The project was not changed.")
    assert _files(folder) == before  # byte for byte, and no -wal or -shm left behind


def test_empty_database_is_refused_and_left_untouched(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.sqlite").touch()
    with pytest.raises(ProjectError, match="'p' holds no Pointillist project: its project.sqlite is empty"):
        Project.open(folder)
    assert _files(folder) == {"project.sqlite": b""}


def test_a_full_disk_refuses_the_label_and_keeps_the_others(tmp_path, image_file):
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        image_id = p.add_image(image_file, 10, 10)
        class_id = p.classes()[0].id
        # The database may not grow: SQLite then fails as on a full disk, 'database or disk is full'.
        p._conn.execute(f"PRAGMA max_page_count = {p._conn.execute('PRAGMA page_count').fetchone()[0]}")
        stored = []
        with pytest.raises(ProjectError) as caught:
            for i in range(100_000):
                stored.append(p.add_label(image_id, i % 10, i // 10 % 10, class_id))
        assert "database or disk is full" in str(caught.value.__cause__)
        assert str(caught.value) == ("The disk is full, so the last change was not saved; everything saved "
                                     "before it is safe. Free some space on the disk and try again.")
        assert stored and [lab.id for lab in p.labels()] == stored
        p._conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: labelling goes on
        stored.append(p.add_label(image_id, 1, 1, class_id))
    with Project.open(tmp_path / "p") as p:
        assert [lab.id for lab in p.labels()] == stored and p.integrity_ok()


def test_not_a_project_and_duplicate_class(tmp_path):
    with pytest.raises(ProjectError, match="not a Pointillist project"):
        Project.open(tmp_path)
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        with pytest.raises(ProjectError, match="already a class"):
            p.add_class("nucleus", "#00ff00")
    with pytest.raises(ProjectError, match="already a project"):
        Project.create(tmp_path / "p")


def test_moved_and_changed_images_are_reported(tmp_path, image_file):
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        p.add_image(image_file, 10, 10)
        info = p.images()[0]
        assert p.image_problem(info) is None
        image_file.write_bytes(b"different")
        assert "changed" in p.image_problem(info)
        image_file.unlink()
        assert "moved or deleted" in p.image_problem(info)


def test_model_versions_grow(tmp_path):
    with Project.create(tmp_path / "p", classes=CLASSES) as p:
        assert p.add_model_version("fast", 10) == 1
        assert p.add_model_version("fast", 12, validation_accuracy=0.5, published=False) == 2
        assert p.latest_published_model().version == 1
