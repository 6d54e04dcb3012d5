"""Making a project from files on disk: find the images, check each, reference the readable ones."""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop.engine.errors import ImageReadError, PointillistError, ProjectError
from desktop.engine.images.pictures import IMAGE_SUFFIXES, read_image
from desktop.engine.images.slides import SLIDE_SUFFIXES, is_slide_file, open_image_source
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project
from desktop.resources import palette_colour

MAX_FOLDER_FILES = 100_000  # files taken from one folder and its sub-folders: a project, not a whole disk
THUMBNAIL_CHECK = 256  # a slide is checked by decoding a thumbnail this large, not read whole
_NOT_FILES = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
              stat.S_IFBLK: "a device"}


@dataclass
class ImageScan:
    """What was found: readable images with their level-0 size and level count, and the rest
    with the reason; ``cancelled`` when the scan was stopped before the last file."""

    readable: list[tuple[Path, int, int, int]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    cancelled: bool = False


def default_classes(names: list[str]) -> list[tuple[str, str, str | None]]:
    """``(name, colour, key)`` for class names, keys 1..9 then 0, colours from the default
    palette (``resources/colours.json``: colour-blind safe, Okabe-Ito first), repeated."""
    cleaned = [n.strip() for n in names if n.strip()]
    if len(cleaned) < 2:
        raise ProjectError("A segmentation project needs at least two classes, e.g. 'background,nucleus'.")
    if len(set(cleaned)) != len(cleaned):
        raise ProjectError("Class names must differ from each other.")
    keys = [str(i) for i in range(1, 10)] + ["0"]
    return [(name, palette_colour(i), keys[i] if i < len(keys) else None)
            for i, name in enumerate(cleaned)]


def scan_images(sources: list[Path], progress: Callable[[int, int, Path], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> ImageScan:
    """Expand folders, with their sub-folders (see ``_list_folder``), and decode each file once
    (a slide: its thumbnail), so that a file whose header is fine but whose pixels are not
    (unknown compression, truncated data) is caught now.

    A file reached twice (given twice, or through a link) is checked once; the second is listed
    as unreadable with the reason, so that readable and unreadable add up to what was given and
    the count of readable images is the count the project will hold. ``progress(n, total, path)``
    is called before the n-th file (from 1) is checked and ``cancelled()`` is asked before each:
    plain callables, so that a GUI worker can show the scan and stop it without this module
    knowing about Qt. A cancelled scan stops between files and comes back with what it checked
    so far and ``cancelled`` set.
    """
    scan = ImageScan()
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            try:
                found = _list_folder(source, scan.unreadable, cancelled)
            except PointillistError as e:
                scan.unreadable.append((source, str(e)))
                continue
            if found is None:
                scan.cancelled = True
                return scan
            if len(found) > MAX_FOLDER_FILES:
                scan.unreadable.append((source, f"more than {MAX_FOLDER_FILES} images in it and its sub-folders: "
                                                f"only the first {MAX_FOLDER_FILES} found are taken"))
            files.extend(found[:MAX_FOLDER_FILES])
        else:
            files.append(source)
    first_of: dict[str, Path] = {}
    for n, path in enumerate(files, 1):
        if cancelled is not None and cancelled():
            scan.cancelled = True
            break
        if progress is not None:
            progress(n, len(files), path)
        try:
            identity = _identity(path)
            if identity in first_of:
                raise ImageReadError(path, f"the same file as {first_of[identity]}")
            first_of[identity] = path
            scan.readable.append((path, *probe_image(path)))
        except ImageReadError as e:
            scan.unreadable.append((path, e.reason))
    return scan


def _list_folder(folder: Path, unreadable: list[tuple[Path, str]],
                 cancelled: Callable[[], bool] | None = None) -> list[Path] | None:
    """Files in ``folder`` and its sub-folders ending in an image or slide suffix, sorted by path,
    at most ``MAX_FOLDER_FILES + 1`` (one more tells that there were more); None when
    ``cancelled()`` says so (asked per folder, so a vast tree can be stopped while it is listed).
    A sub-folder that cannot be listed goes to ``unreadable`` with the reason.

    Hidden files and folders are skipped (macOS '._' leftovers, '.git'), and so is a folder
    named like an image. Links to folders are followed, each folder once (a link back up would
    loop). Unlike ``imageio.list_images`` this keeps a link that leads nowhere and a named pipe,
    so that the scan lists them with their reason rather than drop them unseen."""
    suffixes = IMAGE_SUFFIXES + SLIDE_SUFFIXES
    files: list[Path] = []
    seen: set[str] = set()
    pending = [folder]
    while pending and len(files) <= MAX_FOLDER_FILES:
        if cancelled is not None and cancelled():
            return None
        current = pending.pop()
        if os.path.realpath(current) in seen:
            continue
        seen.add(os.path.realpath(current))
        try:
            with os.scandir(current) as entries:
                entries = sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
                folders = [current / e.name for e in entries if _is_folder(e)]
                files += [current / e.name for e in entries if not _is_folder(e)
                          and os.path.splitext(e.name)[1].lower() in suffixes]
        except OSError as e:
            if current == folder:
                raise PointillistError(f"Cannot list images in '{folder}': {e.strerror or e}") from e
            unreadable.append((current, f"the folder cannot be listed ({e.strerror or e})"))
            continue
        pending += reversed(folders)
    return sorted(files)[:MAX_FOLDER_FILES + 1]


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link in a loop
        return False


def _identity(path: Path) -> str:
    """The file ``path`` leads to, links followed, so that a file reached twice counts once.

    A link that leads nowhere or round in a loop, and anything that is not a regular file (a
    named pipe, whose reading would wait for ever; a device), is refused here with the reason.
    Other errors (not found, permission denied) are left to the decoder, which words them.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageReadError(path, "a link that points to itself in a loop") from e
        if e.errno == errno.ENOENT and os.path.islink(path):
            raise ImageReadError(path, "a link to a file that does not exist") from e
        return os.path.abspath(path)
    if not stat.S_ISREG(mode):
        kind = _NOT_FILES.get(stat.S_IFMT(mode), "a special file")
        raise ImageReadError(path, f"this is {kind}, not a regular file")
    return os.path.realpath(path)


def probe_image(path: Path) -> tuple[int, int, int]:
    """``(width, height, levels)`` of a readable image; raises ImageReadError naming the file.

    A slide (anything :func:`slides.is_slide_file` accepts: a pyramid, a tiled or very large
    TIFF, an OpenSlide format) is never read whole: its thumbnail is decoded instead.
    """
    if is_slide_file(path):
        with open_image_source(path) as source:
            source.thumbnail(THUMBNAIL_CHECK)
            return (*source.dimensions[0], source.levels)
    height, width = read_image(path).shape[:2]
    return width, height, 1


def create_project(folder: Path, sources: list[Path], classes: list[tuple[str, str, str | None]],
                   task: str = "segmentation", skeleton: Skeleton | None = None,
                   scan: ImageScan | None = None) -> tuple[Project, ImageScan]:
    """Create the project and reference every readable image; unreadable ones are reported.
    A keypoint project needs ``skeleton`` (at least one keypoint) instead of classes. ``scan``,
    when given, is a finished scan of ``sources`` (the New-project dialog's, made on a worker),
    so that the files are not decoded a second time here."""
    if task == "keypoints" and (skeleton is None or not len(skeleton)):
        raise ProjectError("A keypoint project needs at least one keypoint.")
    scan = _for_task(scan_images(sources) if scan is None else scan, task)
    if not scan.readable:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in scan.unreadable[:5])
        raise ProjectError("No readable images were found" + (f" ({reasons})." if reasons else "."))
    project = Project.create(folder, task=task, classes=classes)
    if skeleton is not None:
        project.set_skeleton(skeleton)
    return project, _reference(project, scan)[1]


def add_images(project: Project, sources: list[Path],
               scan: ImageScan | None = None) -> tuple[list[int], int, ImageScan]:
    """Reference the readable images among ``sources`` (files or folders) in an open project.

    Returns the ids of the images new to it, how many of the readable files it had already
    (those are not added twice), and the scan, whose ``unreadable`` list says which files were
    left out and why. ``scan``, when given, is a finished scan of ``sources`` (as for
    ``create_project``).
    """
    known = {info.id for info in project.images()}
    ids, scan = _reference(project, _for_task(scan_images(sources) if scan is None else scan, project.task))
    new = [image_id for image_id in ids if image_id not in known]
    return new, len(ids) - len(new), scan


def _reference(project: Project, scan: ImageScan) -> tuple[list[int], ImageScan]:
    """Add each readable image of ``scan`` to ``project``: their ids (a file the project had
    already gives its old id) and the scan as it turned out, in which a file that vanished
    since it was scanned, or that the store refused, has moved to the unreadable list."""
    ids: list[int] = []
    readable, unreadable = [], list(scan.unreadable)
    for entry in scan.readable:
        try:
            ids.append(project.add_image(*entry))
        except (OSError, PointillistError) as e:
            unreadable.append((entry[0], getattr(e, "strerror", None) or str(e)))
        else:
            readable.append(entry)
    return ids, ImageScan(readable, unreadable, scan.cancelled)


def _for_task(scan: ImageScan, task: str) -> ImageScan:
    """Keypoint projects label pictures and video frames; a slide is left out, with the reason.
    A new scan: the one given may be shown again (the dialog's, if creating fails)."""
    if task != "keypoints":
        return scan
    slides = [entry for entry in scan.readable if entry[3] > 1 or is_slide_file(entry[0])]
    return ImageScan([entry for entry in scan.readable if entry not in slides],
                     scan.unreadable + [(entry[0], "a slide: keypoint projects take pictures and video frames")
                                        for entry in slides], scan.cancelled)
