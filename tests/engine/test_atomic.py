"""Atomic writes: what a crash mid-write leaves behind, and opening a project clearing it away."""
import os
import time

from desktop.engine.project.atomic import STALE_AFTER_S, atomic_write_bytes, temporaries
from desktop.engine.project.store import Project


def test_a_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and temporaries(tmp_path) == []


def test_opening_a_project_removes_stale_temporaries_only(tmp_path):
    """A stale one lost its writer to a crash; a fresh one may be another process's write under
    way, so it stays until a later open finds it stale."""
    folder = tmp_path / "p"
    Project.create(folder, classes=[("background", "#000000", "1")]).close()
    models = folder / "models"
    (models / "fast-v1.pt").write_bytes(b"weights")
    stale, fresh = models / ".fast-v2.pt.abcd1234.tmp", models / ".fast-v3.pt.efgh5678.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"half of a model")
    then = time.time() - STALE_AFTER_S - 1
    os.utime(stale, (then, then))
    Project.open(folder).close()
    assert sorted(p.name for p in models.iterdir()) == sorted(["fast-v1.pt", fresh.name])
