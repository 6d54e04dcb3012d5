"""A new keypoint project in one step, from a DeepLabCut project or a COCO keypoints file.

The project is built in a hidden folder beside the one asked for (``.NAME.importing-*``) and
renamed to it only when everything was read, checked and written; a refusal (a malformed file, a
missing frame), a cancel or a full disk deletes the hidden folder, so no half-made project is
ever left where the user looks. Frames and pictures are referenced where they are, not copied.

``progress(n, total, name)`` is called before each step and ``cancelled()`` asked between steps
(plain callables, so that a GUI worker can show and stop an import without this knowing Qt).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop.engine.errors import FormatError, PointillistError, ProjectError, write_refusal
from desktop.engine.images.pictures import list_images
from desktop.engine.keypoints.dlc_project import read_dlc_project
from desktop.engine.keypoints.formats import import_table, read_coco
from desktop.engine.project.setup import add_images, scan_images
from desktop.engine.project.store import Project

Progress = Callable[[int, int, str], None]
Cancelled = Callable[[], bool]


@dataclass
class ImportResult:
    """The project made: its folder, how many images it holds and how many of them have labels,
    and the frames left out (unreadable) with the reason."""

    folder: Path
    images: int
    labelled: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"Created {self.folder} with {self.images} image(s), {self.labelled} of them labelled."
        return "\n".join([text] + [f"  not added: {path.name}: {reason}" for path, reason in self.skipped])


class ImportCancelled(PointillistError):
    def __init__(self):
        super().__init__("The import was cancelled. Nothing was imported.")


def import_dlc_project(config: str | Path, folder: str | Path, progress: Progress | None = None,
                       cancelled: Cancelled | None = None) -> ImportResult:
    """A keypoint project in ``folder`` from the DeepLabCut project of ``config`` (its
    ``config.yaml``): the skeleton, every labelled frame with its labels, and the frames of
    ``labeled-data`` not labelled yet (those that cannot be read are listed in ``skipped``)."""
    dlc = read_dlc_project(config)
    steps = len(dlc.labels)
    with building(folder) as project:
        project.set_skeleton(dlc.skeleton)
        labelled: set[int] = set()
        for n, (path, table) in enumerate(dlc.labels, 1):
            _step(progress, cancelled, n, steps, f"{path.parent.name}/{path.name}")
            labelled.update(import_table(project, table, dlc.root, path))
        known = {info.path for info in project.images()}
        rest = [frame for frames in dlc.frame_folders for frame in list_images(frames)
                if frame.resolve() not in known]
        scan = scan_images(rest, None if progress is None else
                           lambda n, total, path: progress(steps + n, steps + total, path.name), cancelled)
        if scan.cancelled:
            raise ImportCancelled()
        new, _, scan = add_images(project, rest, scan)
        if not labelled and not new:
            raise FormatError(dlc.root / "config.yaml", None, "no frames were found in its labeled-data folder "
                                                              "(labeled-data/<video>/*.png)")
        return ImportResult(Path(folder), len(labelled) + len(new), len(labelled), scan.unreadable)


def import_coco_project(path: str | Path, images: str | Path, folder: str | Path, progress: Progress | None = None,
                        cancelled: Cancelled | None = None) -> ImportResult:
    """A keypoint project in ``folder`` from a COCO keypoints file: the skeleton of its keypoint
    category, and every image it lists (``file_name`` relative to ``images``) with its labels."""
    path, images = Path(path), Path(images)
    table = read_coco(path)
    if not images.is_dir():
        raise FormatError(path, None, f"the images folder '{images}' does not exist")
    with building(folder) as project:
        _step(progress, cancelled, 1, 1, path.name)
        ids = import_table(project, table, images, path)
        labelled = sum(bool((visibility != "").any()) for visibility in table.visibility)
        return ImportResult(Path(folder), len(ids), labelled)


@contextlib.contextmanager
def building(folder: str | Path):
    """An empty keypoint project, open, in a hidden folder beside ``folder``, renamed to
    ``folder`` when the block ends well and deleted when it does not. ``folder`` must not exist,
    or be an empty folder."""
    folder = Path(os.path.abspath(folder))
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise ProjectError(f"'{folder}' exists already and is not an empty folder: choose a new folder "
                           "for the project.")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.importing-", dir=folder.parent))
    except OSError as e:
        raise ProjectError(f"Cannot create the project in '{folder}': {write_refusal(e)}.") from e
    try:
        with Project.create(work, task="keypoints") as project:
            yield project
        if folder.exists():
            folder.rmdir()
        os.rename(work, folder)
    except OSError as e:
        shutil.rmtree(work, ignore_errors=True)
        raise ProjectError(f"Cannot create the project in '{folder}': {write_refusal(e)}. "
                           "Nothing was imported.") from e
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _step(progress: Progress | None, cancelled: Cancelled | None, n: int, total: int, name: str) -> None:
    if cancelled is not None and cancelled():
        raise ImportCancelled()
    if progress is not None:
        progress(n, total, name)
