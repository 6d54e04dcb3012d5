"""Every folder and file the app keeps outside projects, named once for the ``pointillist``
commands, the window and the frozen app alike, and the recent-projects list kept there.

They used to be named in three places, two of which disagreed: ``pointillist demo`` made the
demo in one folder and the window's Demo button in another. All of them now sit in the app's
data folder, ``platformdirs``' per-user data folder for "Pointillist" (on Linux
``~/.local/share/Pointillist``). Setting ``POINTILLIST_HOME`` puts them all in that folder
instead, so the tests, the self-test and ``pointillist bench ui`` can open the real window
without touching the user's recent projects or demo.

There is no cache or log folder: feature caches belong to a project's images and live in the
project's own ``cache/``, and the app writes no log file. One added later belongs here.

No Qt and no torch here: the commands use this module without either.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from platformdirs import user_data_path

from desktop.engine.project.atomic import atomic_write_bytes

APP_NAME = "Pointillist"
HOME_VARIABLE = "POINTILLIST_HOME"
MAX_RECENT = 10


def data_dir() -> Path:
    """The app's own folder: ``$POINTILLIST_HOME`` when set, else the platform's user data folder."""
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home).expanduser().absolute()
    return user_data_path(APP_NAME, appauthor=False)


def demo_dir() -> Path:
    """Where ``pointillist demo`` and the window's Demo button make the demo project, once."""
    return data_dir() / "demo-project"


def recent_file() -> Path:
    """The recent-projects list: a JSON object ``{"projects": [folder, ...]}``, newest first."""
    return data_dir() / "recent-projects.json"


@contextlib.contextmanager
def home_at(folder: Path):
    """Keep the app's folders in ``folder`` for the block (``POINTILLIST_HOME``), then restore the
    variable as it was: for the self-test and ``bench ui``, which open the real window."""
    before = os.environ.get(HOME_VARIABLE)
    os.environ[HOME_VARIABLE] = str(folder)
    try:
        yield Path(folder)
    finally:
        if before is None:
            os.environ.pop(HOME_VARIABLE, None)
        else:
            os.environ[HOME_VARIABLE] = before


def recent_projects() -> list[Path]:
    """The recent project folders that still exist, newest first.

    A folder that is gone (deleted, or on a disk not mounted now) is left out rather than shown
    to fail when chosen; the next ``remember_project`` writes the list without it. A list that
    cannot be read or is not what this version writes (damaged, edited by hand) reads as empty:
    losing the list is a nuisance, a window that does not start over it would be worse.
    """
    try:
        stored = json.loads(recent_file().read_bytes())
    except (OSError, ValueError, RecursionError):
        return []
    folders = stored.get("projects") if isinstance(stored, dict) else None
    if not isinstance(folders, list):
        return []
    return [Path(f) for f in folders if isinstance(f, str) and f and _is_folder(Path(f))][:MAX_RECENT]


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, a folder this user may not look into
        return False


def remember_project(folder: Path) -> None:
    """Put ``folder`` first in the recent list. Written atomically, so a crash mid-write leaves
    the old list; a write the disk refuses raises a ProjectError that says why."""
    folder = Path(folder).resolve()
    kept = [folder] + [p for p in recent_projects() if p != folder]
    target = recent_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # the write below fails and says why
    text = json.dumps({"projects": [str(p) for p in kept[:MAX_RECENT]]}, indent=1)
    atomic_write_bytes(target, text.encode())
