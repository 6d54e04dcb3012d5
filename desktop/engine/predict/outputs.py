"""The files ``pointillist predict`` writes for one input, each atomically (a crash leaves the old
file or the new one, never half of one), in the app's own formats:

- a picture: ``NAME.png``, the indexed mask (pixel value = class index, palette = class
  colours), and ``NAME_preview.png``, the picture with the mask blended over it, both as
  ``pointillist export --masks`` writes them;
- a slide: ``NAME_mask.ome.tif``, the pyramidal mask at the working resolution (255 = not
  predicted: no tissue there), and ``NAME.geojson``, the predicted regions for QuPath, both as
  the app's slide export writes them (without label points: there are none here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from desktop.engine.errors import PointillistError
from desktop.engine.predict.model_dir import ModelCard
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.segmentation.export import mask_png, palette, preview_png
from desktop.engine.segmentation.slide_export import qupath_geojson, write_geojson, write_mask_ome_tiff

PICTURE_FORMATS = {"mask": ".png", "preview": "_preview.png"}
SLIDE_FORMATS = {"ome-tiff": "_mask.ome.tif", "geojson": ".geojson"}
FORMATS = tuple(PICTURE_FORMATS) + tuple(SLIDE_FORMATS)
ENDINGS = tuple(PICTURE_FORMATS.values()) + tuple(SLIDE_FORMATS.values())
"""Every ending an output may have: names are made unique with all of them, whatever the
input's kind, so that no picture's output can ever take a slide's name or the other way round."""


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``--formats``: comma-separated names from ``FORMATS``; all of them when not given."""
    if text is None:
        return FORMATS
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise PointillistError(f"Unknown output format {', '.join(unknown) or repr(text)}: choose from "
                               f"{', '.join(FORMATS)}.")
    return chosen


def planned_outputs(name: str, kind: str, formats: tuple[str, ...]) -> list[str]:
    """The file names an input of ``kind`` gets for the chosen formats (those that apply to it)."""
    endings = PICTURE_FORMATS if kind == "image" else SLIDE_FORMATS
    return [f"{name}{ending}" for fmt, ending in endings.items() if fmt in formats]


def write_picture_outputs(out_dir: Path, name: str, pixels: np.ndarray, mask: np.ndarray, card: ModelCard,
                          formats: tuple[str, ...]) -> list[str]:
    colours = palette(card.classes)
    written = []
    if "mask" in formats:
        written.append(f"{name}{PICTURE_FORMATS['mask']}")
        atomic_write_bytes(out_dir / written[-1], mask_png(mask, colours))
    if "preview" in formats:
        written.append(f"{name}{PICTURE_FORMATS['preview']}")
        atomic_write_bytes(out_dir / written[-1], preview_png(pixels, mask, colours))
    return written


def write_slide_outputs(out_dir: Path, name: str, mask: np.ndarray, downsample: float, mpp: float | None,
                        card: ModelCard, formats: tuple[str, ...]) -> list[str]:
    """``mask`` at the working resolution, ``downsample`` level-0 pixels per mask pixel, ``mpp``
    micrometres per mask pixel when known."""
    written = []
    if "ome-tiff" in formats:
        written.append(f"{name}{SLIDE_FORMATS['ome-tiff']}")
        write_mask_ome_tiff(out_dir / written[-1], mask, mpp=mpp)
    if "geojson" in formats:
        written.append(f"{name}{SLIDE_FORMATS['geojson']}")
        ordered = sorted(card.classes, key=lambda c: c.index)
        write_geojson(out_dir / written[-1], qupath_geojson([c.name for c in ordered], [c.colour for c in ordered],
                                                            mask=mask, mask_downsample=downsample))
    return written


def class_areas(mask: np.ndarray, num_classes: int, mpp: float | None) -> tuple[list[float], list[float] | None]:
    """Each class's share of the predicted pixels (a slide's glass, 255, is not predicted) and, when the
    size of a mask pixel is known (``mpp``), its area in square micrometres."""
    counts = np.bincount(mask.ravel(), minlength=256)[:num_classes].astype(np.float64)
    shares = (counts / max(counts.sum(), 1)).tolist()
    areas = (counts * mpp * mpp).tolist() if mpp is not None else None
    return shares, areas
