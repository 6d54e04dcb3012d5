"""Making a project from files on disk: find the images, check each, reference the readable ones."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ImageReadError, PointillistError, ProjectError
from .imageio import list_images, read_image
from .slides import SLIDE_SUFFIXES, is_slide_file, open_image_source
from .skeleton import Skeleton
from .store import Project

THUMBNAIL_CHECK = 256  # a slide is checked by decoding a thumbnail this large, not read whole

# Colour-blind-friendly, well separated on grey tissue and on fluorescence (Okabe-Ito first).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
           "#999999", "#882255")


@dataclass
class ImageScan:
    """What was found: readable images with their level-0 size and level count, and the rest
    with the reason."""

    readable: list[tuple[Path, int, int, int]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def default_classes(names: list[str]) -> list[tuple[str, str, str | None]]:
    """``(name, colour, key)`` for class names, keys 1..9 then 0, colours from ``PALETTE``."""
    cleaned = [n.strip() for n in names if n.strip()]
    if len(cleaned) < 2:
        raise ProjectError("A segmentation project needs at least two classes, e.g. 'background,nucleus'.")
    if len(set(cleaned)) != len(cleaned):
        raise ProjectError("Class names must differ from each other.")
    keys = [str(i) for i in range(1, 10)] + ["0"]
    return [(name, PALETTE[i % len(PALETTE)], keys[i] if i < len(keys) else None)
            for i, name in enumerate(cleaned)]


def scan_images(sources: list[Path]) -> ImageScan:
    """Expand folders (not recursively) and decode each file once (a slide: its thumbnail), so
    that a file whose header is fine but whose pixels are not (unknown compression, truncated
    data) is caught now."""
    scan = ImageScan()
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            try:
                files.extend(list_images(source))
                files.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in SLIDE_SUFFIXES
                                    and not p.name.startswith(".") and p.is_file()))
            except PointillistError as e:
                scan.unreadable.append((source, str(e)))
        else:
            files.append(source)
    for path in files:
        try:
            scan.readable.append((path, *probe_image(path)))
        except ImageReadError as e:
            scan.unreadable.append((path, e.reason))
    return scan


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
                   task: str = "segmentation", skeleton: Skeleton | None = None) -> tuple[Project, ImageScan]:
    """Create the project and reference every readable image; unreadable ones are reported.
    A keypoint project needs ``skeleton`` (at least one keypoint) instead of classes."""
    if task == "keypoints" and (skeleton is None or not len(skeleton)):
        raise ProjectError("A keypoint project needs at least one keypoint.")
    scan = _for_task(scan_images(sources), task)
    if not scan.readable:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in scan.unreadable[:5])
        raise ProjectError("No readable images were found" + (f" ({reasons})." if reasons else "."))
    project = Project.create(folder, task=task, classes=classes)
    if skeleton is not None:
        project.set_skeleton(skeleton)
    for path, width, height, levels in scan.readable:
        project.add_image(path, width, height, levels)
    return project, scan


def add_images(project: Project, sources: list[Path]) -> tuple[list[int], int, ImageScan]:
    """Reference the readable images among ``sources`` (files or folders) in an open project.

    Returns the ids of the images new to it, how many of the readable files it had already
    (those are not added twice), and the scan, whose ``unreadable`` list says which files were
    left out and why; a file that vanished after the scan, or that the store refused, joins it.
    """
    scan = _for_task(scan_images(sources), project.task)
    known = {info.id for info in project.images()}
    new: list[int] = []
    already: set[int] = set()
    for path, width, height, levels in scan.readable:
        try:
            image_id = project.add_image(path, width, height, levels)
        except (OSError, PointillistError) as e:
            scan.unreadable.append((path, getattr(e, "strerror", None) or str(e)))
            continue
        if image_id in known:
            already.add(image_id)
        elif image_id not in new:  # the same file given twice (a folder and a file in it)
            new.append(image_id)
    return new, len(already), scan


def _for_task(scan: ImageScan, task: str) -> ImageScan:
    """Keypoint projects label pictures and video frames; a slide is left out, with the reason."""
    if task != "keypoints":
        return scan
    slides = [entry for entry in scan.readable if entry[3] > 1 or is_slide_file(entry[0])]
    scan.readable = [entry for entry in scan.readable if entry not in slides]
    scan.unreadable += [(entry[0], "a slide: keypoint projects take pictures and video frames") for entry in slides]
    return scan
