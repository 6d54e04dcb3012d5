"""One writer per project: the lock that a window (or a command that trains) holds while it works.

Labels from two windows would merge safely in SQLite, but two engines training on one project
publish model versions in turn and confuse the user about which model is in use; so the second
one is told, and may open the project read-only. The lock is an operating-system file lock
(``filelock``: ``flock`` on Linux and macOS, ``msvcrt`` on Windows) on ``project.lock``. The
system drops it when its process ends, however it ends, so a lock left by a crash is no lock:
the next opener takes it without asking anyone, and overwrites the stale note of who held it.

Beside it, ``project.lock.json`` says who holds the lock (program, process, machine, since
when), only to tell the second opener; it decides nothing.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import time
from pathlib import Path

import filelock

from desktop.engine.errors import ProjectError, write_refusal
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.project.store import check_project_folder

LOCK_NAME = "project.lock"
HOLDER_NAME = "project.lock.json"


class ProjectInUse(ProjectError):
    """The project is open for writing elsewhere; ``holder`` says where, in words."""

    def __init__(self, folder: Path, holder: str):
        self.folder = folder
        self.holder = holder
        super().__init__(f"The project '{folder.name}' is open in {holder}. Only one window at a time can "
                         "label and train in a project: close it there, or open this one read-only.")


class ProjectLock:
    """``acquire()`` or raise ProjectInUse; ``release()`` when the project is closed."""

    def __init__(self, folder: str | os.PathLike, purpose: str = "a Pointillist window"):
        self.folder = Path(folder)
        self.purpose = purpose
        self._lock = filelock.FileLock(self.folder / LOCK_NAME, timeout=0)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        check_project_folder(self.folder)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise ProjectInUse(self.folder, self._holder()) from None
        except OSError as e:  # a read-only folder, most often
            raise ProjectError(f"Cannot open the project '{self.folder.name}' for writing: {write_refusal(e)}. "
                               "Nothing was changed.") from e
        note = {"purpose": self.purpose, "pid": os.getpid(), "host": socket.gethostname(),
                "user": _user(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            atomic_write_bytes(self.folder / HOLDER_NAME, json.dumps(note).encode())
        except ProjectError:
            pass  # the note only helps a second opener; the lock itself is held

    def release(self) -> None:
        if self._lock.is_locked:
            (self.folder / HOLDER_NAME).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "ProjectLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _holder(self) -> str:
        try:
            note = json.loads((self.folder / HOLDER_NAME).read_text())
            where = "on this computer" if note["host"] == socket.gethostname() else f"on {note['host']}"
            return (f"{note['purpose']} (process {note['pid']} of {note['user']} {where}, "
                    f"since {note['since']})")
        except (OSError, ValueError, KeyError, TypeError):
            return "another Pointillist window"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this user id (containers)
        return "an unknown user"
