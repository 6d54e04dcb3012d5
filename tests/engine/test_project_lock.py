"""One writer per project: a second opener is told who has it, may open it read-only, and a lock
left by a killed process is taken over (issue 14). A write lock held by another program is
refused fast instead of freezing the window."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from desktop.cli import main
from desktop.engine.errors import ProjectError
from desktop.engine.project.lock import HOLDER_NAME, ProjectInUse, ProjectLock
from desktop.engine.project.store import Project

HOLD = """
import sys, time
from desktop.engine.project.lock import ProjectLock
lock = ProjectLock(sys.argv[1], purpose="a test process")
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def folder(tmp_path):
    Project.create(tmp_path / "p", classes=[("a", "#000000", "1"), ("b", "#ffffff", "2")]).close()
    return tmp_path / "p"


def test_a_second_opener_is_told_who_has_the_project(folder):
    with ProjectLock(folder, purpose="the first window"):
        with pytest.raises(ProjectInUse) as refused:
            ProjectLock(folder).acquire()
        assert "the first window" in str(refused.value) and f"process {os.getpid()}" in str(refused.value)
        assert "read-only" in str(refused.value)
    with ProjectLock(folder):  # released: free for the next
        pass
    assert not (folder / HOLDER_NAME).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(folder):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectInUse, match=f"a test process \\(process {holder.pid}"):
            ProjectLock(folder).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / HOLDER_NAME).exists()  # the stale note is still there...
    lock = ProjectLock(folder, purpose="the next window")
    lock.acquire()  # ...and the lock is free all the same
    assert "the next window" in (folder / HOLDER_NAME).read_text()
    lock.release()


def test_a_project_opened_read_only_refuses_every_write_and_changes_nothing(folder):
    before = (folder / "project.sqlite").read_bytes()
    with Project.open(folder, read_only=True) as project:
        assert [c.name for c in project.classes()] == ["a", "b"]
        with pytest.raises(ProjectError, match="open read-only here"):
            project.add_class("c", "#ff0000")
        with pytest.raises(ProjectError, match="open read-only"):
            project.set_meta("x", "y")
    assert (folder / "project.sqlite").read_bytes() == before


def test_export_while_a_window_has_the_project_uses_its_saved_model_only(folder, capsys):
    with ProjectLock(folder, purpose="a Pointillist window"):
        with pytest.raises(SystemExit, match="No saved fast model to export, and the project is open elsewhere"):
            main(["export", str(folder), "--masks", str(folder.parent / "m")])
    assert "open in a Pointillist window" in capsys.readouterr().out
    with Project.open(folder) as project:
        assert project.model_versions() == []  # nothing was trained behind the window's back


def test_a_write_lock_held_by_another_program_is_refused_fast(folder):
    other = sqlite3.connect(folder / "project.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing, and not finishing
    try:
        with Project.open(folder, busy_timeout=0.5) as project:
            start = time.monotonic()
            with pytest.raises(ProjectError, match="busy in another program"):
                project.add_class("c", "#ff0000")
            assert time.monotonic() - start < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
