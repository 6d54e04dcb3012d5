"""Export of slide work for other tools: QuPath GeoJSON and a pyramidal OME-TIFF label mask.

GeoJSON follows what QuPath writes and reads (File > Export objects as GeoJSON): a
FeatureCollection whose features carry ``properties.objectType = "annotation"`` and
``properties.classification = {"name", "color": [r, g, b]}``, in level-0 pixel coordinates with
the origin at the top-left corner of the slide. Labels become Point features; predicted regions
become Polygon features, holes as interior rings.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import tifffile

from desktop.engine.project.atomic import atomic_output, atomic_write_bytes


def qupath_geojson(class_names: Sequence[str], class_colours: Sequence[str],
                   points_xy: np.ndarray | None = None, point_classes: np.ndarray | None = None,
                   mask: np.ndarray | None = None, mask_downsample: float = 1.0,
                   region_classes: Sequence[int] | None = None, min_area: float = 4.0) -> dict:
    """A GeoJSON FeatureCollection that QuPath imports as classified annotations.

    ``class_names[i]`` and ``class_colours[i]`` ('#rrggbb') describe class index ``i``.
    ``points_xy`` (N, 2) are labels in level-0 pixels with class indices ``point_classes``.
    ``mask`` holds a class index per pixel at ``mask_downsample`` level-0 pixels per mask pixel;
    each connected region of a class in ``region_classes`` (default: every class) becomes a
    Polygon, outlines through the centres of its border pixels. Regions smaller than
    ``min_area`` mask pixels are left out: they are noise, and QuPath slows down with
    thousands of tiny objects.
    """
    styles = [_classification(n, c) for n, c in zip(class_names, class_colours, strict=True)]
    features = []
    if points_xy is not None:
        for (x, y), c in zip(np.asarray(points_xy, float).reshape(-1, 2), np.asarray(point_classes)):
            features.append(_feature({"type": "Point", "coordinates": [float(x), float(y)]},
                                     styles[int(c)]))
    if mask is not None:
        wanted = range(len(styles)) if region_classes is None else region_classes
        for c in wanted:
            for rings in _polygons(mask == c, min_area):
                coords = [[[float((px + 0.5) * mask_downsample), float((py + 0.5) * mask_downsample)]
                           for px, py in ring] for ring in rings]
                features.append(_feature({"type": "Polygon", "coordinates": coords}, styles[c]))
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: Path, collection: dict) -> None:
    """Write a FeatureCollection atomically (a crash leaves the old file or the new one)."""
    atomic_write_bytes(Path(path), json.dumps(collection).encode())


def write_mask_ome_tiff(path: Path, mask: np.ndarray, mpp: float | None = None,
                        tile: int = 256) -> int:
    """Write a label mask (H, W) uint8 as a tiled pyramidal OME-TIFF; return the level count.

    Level 0 is ``mask``; each further level (a SubIFD, as OME-TIFF pyramids are stored) halves
    the previous one, taking the most frequent class of each 2 x 2 block so that labels are
    never blended, until the longer side fits in one tile. ``mpp`` is the size of one mask
    pixel in micrometres, written as the OME physical pixel size when known. Deflate
    compression; the file appears only when complete.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"the mask must be 2-D uint8 class indices, got {mask.dtype} {mask.shape}")
    levels = [mask]
    while max(levels[-1].shape) > tile:
        levels.append(_mode_half(levels[-1]))
    metadata = {"axes": "YX", "Name": "Pointillist label mask"}
    extra = {}
    if mpp is not None:
        metadata.update(PhysicalSizeX=mpp, PhysicalSizeXUnit="µm", PhysicalSizeY=mpp,
                        PhysicalSizeYUnit="µm")
        extra = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    options = {"tile": (tile, tile), "compression": "zlib", "photometric": "minisblack"}
    with atomic_output(Path(path)) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            tif.write(levels[0], subifds=len(levels) - 1, metadata=metadata, **options, **extra)
            for level in levels[1:]:
                tif.write(level, subfiletype=1, **options)
    return len(levels)


def _classification(name: str, colour: str) -> dict:
    colour = colour.lstrip("#")
    return {"name": name, "color": [int(colour[i:i + 2], 16) for i in (0, 2, 4)]}


def _feature(geometry: dict, classification: dict) -> dict:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"objectType": "annotation", "classification": classification}}


def _polygons(region: np.ndarray, min_area: float) -> list[list[np.ndarray]]:
    """Each connected part of a boolean image as rings (outline, then holes) of (x, y) pixel
    positions, each ring closed (last point = first)."""
    contours, hierarchy = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    polygons = []
    # RETR_CCOMP: top-level contours are outlines; the children of each are its holes.
    for i, (_, _, child, parent) in enumerate(hierarchy[0]):
        if parent != -1 or len(contours[i]) < 3 or cv2.contourArea(contours[i]) < min_area:
            continue
        rings = [contours[i][:, 0]]
        while child != -1:
            if len(contours[child]) >= 3:
                rings.append(contours[child][:, 0])
            child = hierarchy[0][child][0]
        polygons.append([np.vstack([r, r[:1]]) for r in rings])
    return polygons


def _mode_half(mask: np.ndarray) -> np.ndarray:
    """Half-size label image: the most frequent of each 2 x 2 block (ties: the earliest in
    reading order). An odd last row or column is repeated."""
    mask = np.pad(mask, ((0, mask.shape[0] % 2), (0, mask.shape[1] % 2)), mode="edge")
    blocks = [mask[0::2, 0::2], mask[0::2, 1::2], mask[1::2, 0::2], mask[1::2, 1::2]]
    counts = [sum((b == a).astype(np.uint8) for b in blocks) for a in blocks]
    best, best_count = blocks[0].copy(), counts[0]
    for block, count in zip(blocks[1:], counts[1:]):
        better = count > best_count
        best[better] = block[better]
        best_count = np.maximum(best_count, count)
    return best
