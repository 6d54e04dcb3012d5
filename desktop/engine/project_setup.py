"""Making a project from files on disk: find the images, check each, reference the readable ones."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ImageReadError, PointillistError, ProjectError
from .imageio import IMAGE_SUFFIXES, list_images, read_image
from .store import Project

# Colour-blind-friendly, well separated on grey tissue and on fluorescence (Okabe-Ito first).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
           "#999999", "#882255")


@dataclass
class ImageScan:
    """What was found: readable images with their size, and the rest with the reason."""

    readable: list[tuple[Path, int, int]] = field(default_factory=list)
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
    """Expand folders (not recursively) and decode each file once, so that a file whose header
    is fine but whose pixels are not (unknown compression, truncated data) is caught now."""
    scan = ImageScan()
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            try:
                files.extend(list_images(source))
            except PointillistError as e:
                scan.unreadable.append((source, str(e)))
        else:
            files.append(source)
    for path in files:
        try:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ImageReadError(path, f"unsupported image format '{path.suffix or path.name}'")
            height, width = read_image(path).shape[:2]
            scan.readable.append((path, width, height))
        except ImageReadError as e:
            scan.unreadable.append((path, e.reason))
    return scan


def create_project(folder: Path, sources: list[Path], classes: list[tuple[str, str, str | None]],
                   task: str = "segmentation") -> tuple[Project, ImageScan]:
    """Create the project and reference every readable image; unreadable ones are reported."""
    scan = scan_images(sources)
    if not scan.readable:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in scan.unreadable[:5])
        raise ProjectError("No readable images were found" + (f" ({reasons})." if reasons else "."))
    project = Project.create(folder, task=task, classes=classes)
    for path, width, height in scan.readable:
        project.add_image(path, width, height)
    return project, scan
