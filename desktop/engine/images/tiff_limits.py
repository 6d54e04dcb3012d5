"""Limits that keep a broken or hostile slide from stalling the app, checked from the header
before any pixel is decoded.

A TIFF's header may declare anything. A 30 KB file can claim 1,000,000 x 1,000,000 pixels with
its tiles left out, and its thumbnail alone would take some 240,000 block reads (hours); a 3.5 MB
file can hold 60,000 x 60,000 pixels in one compressed strip, which any read of any part decodes
whole (3.6 GB, every time). Such files are refused when they are opened, by every backend and
for every level, with what is wrong and what to do. The limits sit well above real slides.
"""
from __future__ import annotations

from pathlib import Path

import tifffile

from desktop.engine.errors import ImageReadError

MAX_SIDE = 500_000
"""Widest or tallest image accepted, in pixels. A whole 75 x 25 mm glass slide scanned at
0.25 um per pixel (a 40x scan) is 300,000 x 100,000 pixels, and real SVS, NDPI and MRXS files
stay under about 200,000 a side; half a million leaves room for larger glass and finer scans, and
refuses only sizes no scanner makes."""

MAX_SEGMENT_BYTES = 256 * 2**20
"""Largest tile or strip accepted, decoded. Any read that touches one decodes it whole, on each
of the viewer's worker threads at once. Scanners write tiles of 256 to 1024 pixels (a few MB at
most). Pictures saved as one uncompressed strip (Pillow's and tifffile's habit) pass up to 85
megapixels of RGB, and bigger ones up to ``imageio.MAX_PIXELS`` are read whole instead, once
(see ``slides._tiff_kind``)."""

MAX_UNPYRAMIDED_PIXELS = 2_500_000_000
"""Largest coarsest level accepted (width x height, e.g. 50,000 x 50,000), and the most pixels a
thumbnail reads. A thumbnail (made when a slide joins a project and when it is shown) is read
from a reduced-resolution level a block at a time; at this size that is about 600 blocks of
2048 x 2048: on the test machine about 25 s through tifffile and 85 s through OpenSlide for
compressed tiles, slow but bounded. Scanners always write reduced levels (the coarsest a few
thousand pixels a side), so this stops only images stored flat, which open once converted."""

_CONVERT = "convert it to a pyramidal tiled OME-TIFF (for example with QuPath or bfconvert) to open it"


def check_size(path: Path, dimensions: list[tuple[int, int]]) -> None:
    """ImageReadError for a level over ``MAX_SIDE`` a side; ``dimensions`` is (width, height)
    per level."""
    width, height = max(dimensions, key=max)
    if max(width, height) > MAX_SIDE:
        raise ImageReadError(path, f"the file says the image is {width:,} x {height:,} pixels, larger "
                                   f"than any slide scanner makes (the limit is {MAX_SIDE:,} a side): "
                                   "it is damaged, or made to stall the programs that open it")


def check_reduced_levels(path: Path, dimensions: list[tuple[int, int]]) -> None:
    """ImageReadError for an image whose smallest level is over ``MAX_UNPYRAMIDED_PIXELS``;
    ``dimensions`` are the levels as the backend that reads the file sees them."""
    width, height = min(dimensions, key=lambda d: d[0] * d[1])
    if width * height > MAX_UNPYRAMIDED_PIXELS:
        raise ImageReadError(path, f"the image is {width:,} x {height:,} pixels and has no "
                                   f"reduced-resolution levels small enough to show it whole (at "
                                   f"most {MAX_UNPYRAMIDED_PIXELS / 1e9:g} gigapixels); {_CONVERT}")


def check_tiff_segments(path: Path, pages: list[tifffile.TiffPage]) -> None:
    """ImageReadError for a TIFF level whose tiles or strips decode to over
    ``MAX_SEGMENT_BYTES`` each; ``pages`` are the levels' first pages."""
    for page in pages:
        _check_segment(path, *tiff_segment(page))


def tiff_segment(page: tifffile.TiffPage) -> tuple[str, int, int, int]:
    """('tile' or 'strip', width, height, bytes decoded) of one tile or strip of a page, from
    its tags alone."""
    if page.is_tiled:
        kind, width, height = "tile", page.tilewidth, page.tilelength * page.tiledepth
    else:
        kind, width = "strip", page.imagewidth
        height = min(page.rowsperstrip or page.imagelength, page.imagelength)
    samples = 1 if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE else page.samplesperpixel
    return kind, width, height, width * height * samples * -(-page.bitspersample // 8)


def check_openslide(path: Path, slide) -> None:
    """The checks above, on a slide OpenSlide opened: its levels, and the tile size it reports
    per level, decoded as 4 bytes a pixel (formats that report none pass). A slide refused is
    closed."""
    dimensions = [(int(w), int(h)) for w, h in slide.level_dimensions]
    try:
        check_size(path, dimensions)
        for level in range(slide.level_count):
            width = int(slide.properties.get(f"openslide.level[{level}].tile-width", 0))
            height = int(slide.properties.get(f"openslide.level[{level}].tile-height", 0))
            _check_segment(path, "tile", width, height, width * height * 4)
        check_reduced_levels(path, dimensions)
    except ImageReadError:
        slide.close()
        raise


def _check_segment(path: Path, kind: str, width: int, height: int, nbytes: int) -> None:
    if nbytes > MAX_SEGMENT_BYTES:
        raise ImageReadError(path, f"its {kind}s are {width:,} x {height:,} pixels each "
                                   f"({nbytes / 1e9:.1f} GB once decoded), and showing any part of "
                                   f"the image decodes a whole {kind}; the limit is "
                                   f"{MAX_SEGMENT_BYTES // 2**20} MB a {kind}: {_CONVERT}")
