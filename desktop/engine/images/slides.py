"""One way to read every image the app shows: slides (resolution pyramids) and ordinary pictures.

:func:`open_image_source` picks a backend from the file's content, not its name:

- OpenSlide (``openslide-python`` + ``openslide-bin``) for what it recognises: Aperio SVS,
  Hamamatsu NDPI, MIRAX, Leica SCN, Ventana BIF, DICOM-WSI, Philips TIFF and generic tiled TIFF.
- tifffile for OME-TIFF, and for other TIFFs that OpenSlide does not take and that are tiled,
  pyramidal, over 50 megapixels or named other than .tif/.tiff (QPTIFF): only the tiles (or
  strips) that touch a region are read and decoded.
- :func:`desktop.engine.images.pictures.read_image` for ordinary pictures, as one level held in memory.

Coordinates follow OpenSlide: ``read_region(level, x, y, w, h)`` takes ``x, y`` in level-0
pixels and ``w, h`` in pixels of ``level``; the result is uint8 RGB ``(h, w, 3)``. Whatever
lies outside the image (or is transparent in the slide) is white, as on a glass slide.

Reads are thread-safe: the viewer reads tiles on worker threads. Every failure, at opening or
at reading, is an :class:`ImageReadError` naming the file and the reason. Files whose header
promises more work than any real slide needs (absurd sizes, huge tiles or strips, no reduced
levels) are refused at opening: see :mod:`desktop.engine.images.tiff_limits`.
"""
from __future__ import annotations

import contextlib
import re
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import openslide
import tifffile

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import IMAGE_SUFFIXES, MAX_PIXELS, check_regular_file, read_image
from desktop.engine.images.tiff_limits import (MAX_SEGMENT_BYTES, MAX_UNPYRAMIDED_PIXELS, check_openslide,
                                               check_reduced_levels, check_size, check_tiff_segments, tiff_segment)

_MAX_MPP = 50.0
"""Pixels larger than this (micrometres) are not a microscope's. TIFF writers that know no
resolution often store 72 dpi, which reads as 352.8 um per pixel; such a value is ignored."""

# OME writes the micro sign (U+00B5); some writers use the Greek mu (U+03BC).
_OME_UNITS_UM = {"\u00b5m": 1.0, "\u03bcm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
_TIFF_UNIT_UM = {2: 25400.0, 3: 10000.0}  # ResolutionUnit inch, centimetre -> um per unit
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm")
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_WINDOW_SAMPLE = 2048  # pixels each way read to choose how other than 8-bit data is shown
_THUMBNAIL_BLOCK = 2048  # level pixels read at a time (each way) while building a thumbnail


class ImageSource:
    """A readable image with one or more resolution levels, level 0 the finest.

    Subclasses set ``path``, ``dimensions`` ((width, height) per level), ``downsamples`` and
    ``mpp``, and implement ``_read`` for a region inside the level.
    """

    path: Path
    dimensions: list[tuple[int, int]]
    downsamples: list[float]
    mpp: float | None  # micrometres per level-0 pixel, None when the file does not say
    backend: str

    @property
    def levels(self) -> int:
        return len(self.dimensions)

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 RGB (h, w, 3) of ``level`` whose top-left corner is level-0 pixel (x, y).

        The region starts at the level pixel nearest (x, y) / downsample, so that
        ``round(level_x * downsample)`` leads back to ``level_x`` even where downsamples are not
        whole numbers. Parts outside the image are white. Raises ImageReadError when the file
        is damaged.
        """
        self._check(level, w, h)
        ds = self.downsamples[level]
        lx, ly = round(x / ds), round(y / ds)
        width, height = self.dimensions[level]
        x0, y0, x1, y1 = max(lx, 0), max(ly, 0), min(lx + w, width), min(ly + h, height)
        if x0 >= x1 or y0 >= y1:
            return np.full((h, w, 3), 255, np.uint8)
        inside = self._read(level, x0, y0, x1 - x0, y1 - y0)
        if (x0, y0, x1, y1) == (lx, ly, lx + w, ly + h):
            return inside
        out = np.full((h, w, 3), 255, np.uint8)
        out[y0 - ly:y1 - ly, x0 - lx:x1 - lx] = inside
        return out

    def _check(self, level: int, w: int, h: int) -> None:
        if not 0 <= level < self.levels:
            raise ValueError(f"level {level} does not exist; this image has {self.levels}")
        if w <= 0 or h <= 0:
            raise ValueError(f"region size must be positive, got {w} x {h}")

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """uint8 RGB of a region in level coordinates that lies wholly inside the level."""
        raise NotImplementedError

    def level_for_downsample(self, downsample: float) -> int:
        """The coarsest level that is at least as fine as ``downsample`` (level 0 if none is)."""
        fits = [i for i, d in enumerate(self.downsamples) if d <= downsample * 1.01]
        return max(fits, key=lambda i: self.downsamples[i]) if fits else 0

    def thumbnail(self, max_size: int) -> np.ndarray:
        """The whole image as uint8 RGB, its longer side at most ``max_size`` pixels.

        Read from the coarsest level that is still at least that large, one block at a time, so
        that a slide without small levels never needs a whole level in memory. Where that level
        is over ``MAX_UNPYRAMIDED_PIXELS`` (a pyramid with a gap: 400,000 pixels wide, then 200),
        the finest level under it (opening made sure of one) is read: smaller, but not for hours.
        """
        level = self.level_for_downsample(max(max(self.dimensions[0]) / max_size, 1.0))
        if self.dimensions[level][0] * self.dimensions[level][1] > MAX_UNPYRAMIDED_PIXELS:
            level = min(i for i, (w, h) in enumerate(self.dimensions) if w * h <= MAX_UNPYRAMIDED_PIXELS)
        width, height = self.dimensions[level]
        factor = min(1.0, max_size / max(width, height))
        out = np.full((max(1, round(height * factor)), max(1, round(width * factor)), 3), 255, np.uint8)
        for top in range(0, height, _THUMBNAIL_BLOCK):
            bottom = min(top + _THUMBNAIL_BLOCK, height)
            r0, r1 = round(top * factor), round(bottom * factor)
            for left in range(0, width, _THUMBNAIL_BLOCK):
                right = min(left + _THUMBNAIL_BLOCK, width)
                c0, c1 = round(left * factor), round(right * factor)
                if r1 > r0 and c1 > c0:
                    block = self._read(level, left, top, right - left, bottom - top)
                    out[r0:r1, c0:c1] = cv2.resize(block, (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA)
        return out

    def close(self) -> None:
        """Release the file. Reading afterwards is an error."""

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_image_source(path: str | Path) -> ImageSource:
    """Open ``path`` with the backend that fits it (see the module docstring)."""
    path = Path(path)
    backend, vendor = _backend(path, _head(path))
    if backend == "tifffile":
        return TiffSource(path)
    if backend == "openslide":
        return OpenSlideSource(path, vendor)
    return PictureSource(path)


def is_slide_file(path: str | Path) -> bool:
    """True when :func:`open_image_source` reads ``path`` as a slide (a tile at a time), False
    for an ordinary picture; decided from the file's header, without decoding pixels. Raises
    ImageReadError as ``open_image_source`` does for files that cannot be opened at all."""
    path = Path(path)
    return _backend(path, _head(path))[0] != "picture"


def _head(path: Path) -> bytes:
    """The first four bytes, which tell a TIFF; ImageReadError for what is no file to read
    (before OpenSlide's format detection opens it: see ``check_regular_file``)."""
    try:
        check_regular_file(path)
        with path.open("rb") as f:
            head = f.read(4)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise ImageReadError(path, "file not found") from e
    except OSError as e:
        raise ImageReadError(path, f"the file could not be read ({e.strerror or e})") from e
    if not head:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return head


def _backend(path: Path, head: bytes) -> tuple[str, str | None]:
    """('openslide' | 'tifffile' | 'picture', OpenSlide's vendor name) for a file's first bytes."""
    vendor = openslide.OpenSlide.detect_format(str(path))
    if head in _TIFF_MAGIC and vendor in (None, "generic-tiff"):
        kind = _tiff_kind(path)
        if kind == "ome" or (kind == "tiles" and vendor is None):
            return "tifffile", None
    if vendor is not None:
        return "openslide", vendor
    if path.suffix.lower() in SLIDE_SUFFIXES:
        raise ImageReadError(path, "the slide reader (OpenSlide) does not recognise this file: it "
                                   "may be damaged or incomplete, or a format it does not know")
    return "picture", None


class OpenSlideSource(ImageSource):
    """A slide read by OpenSlide.

    OpenSlide's handles are thread-safe, but after any read error a handle refuses all further
    work; the handle is then replaced, so one damaged tile does not make the whole slide
    unreadable.
    """

    backend = "openslide"

    def __init__(self, path: Path, vendor: str):
        self.path = path
        self.vendor = vendor
        self._lock = threading.Lock()
        self._slide = self._open()
        check_openslide(path, self._slide)
        self.dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]
        self.downsamples = [float(d) for d in self._slide.level_downsamples]
        self.mpp = _plausible_mpp(self._slide.properties.get(openslide.PROPERTY_NAME_MPP_X))

    def _open(self) -> openslide.OpenSlide:
        try:
            return openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideError as e:
            reason = str(e).replace(f"Reading {self.path}: ", "")  # the name is in the message already
            raise ImageReadError(self.path, f"the slide reader (OpenSlide, format '{self.vendor}') "
                                            f"cannot open it: {reason}") from e

    def read_region(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """As ``ImageSource.read_region``; OpenSlide itself fills what lies outside."""
        self._check(level, w, h)
        return self._read_level0(level, x, y, w, h)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ds = self.downsamples[level]
        return self._read_level0(level, round(x * ds), round(y * ds), w, h)

    def _read_level0(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        slide = self._slide
        try:
            rgba = np.asarray(slide.read_region((x, y), level, (w, h)))
        except openslide.OpenSlideError as e:
            with self._lock:
                if self._slide is slide:
                    slide.close()
                    self._slide = self._open()
            raise ImageReadError(self.path, f"part of the slide is damaged and cannot be decoded "
                                            f"(OpenSlide: {e})") from e
        return _on_white(rgba)

    def close(self) -> None:
        self._slide.close()


class TiffSource(ImageSource):
    """An OME-TIFF or large TIFF read by tifffile, one tile or strip at a time.

    Levels are tifffile's ``series[0].levels`` (OME SubIFDs, or the pyramids tifffile
    recognises). Of a level, only its first page is read: for a stack of channel pages that is
    the first channel, shown as grey. Bytes are read under a lock; decoding happens outside it,
    so worker threads decode in parallel.
    """

    backend = "tifffile"

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        with _tiff_reasons(path), contextlib.ExitStack() as files:
            self._tif = files.enter_context(tifffile.TiffFile(path))
            self._file = files.enter_context(path.open("rb"))  # for the tiles, under _lock
            self._pages = [level.keyframe for level in self._tif.series[0].levels]
            self.dimensions = [(int(p.imagewidth), int(p.imagelength)) for p in self._pages]
            check_size(path, self.dimensions)
            check_tiff_segments(path, self._pages)
            check_reduced_levels(path, self.dimensions)
            for page in self._pages:
                if page.compression not in tifffile.TIFF.DECOMPRESSORS:
                    raise ImageReadError(path, f"this TIFF is compressed in a way that cannot be "
                                               f"read here (compression code {int(page.compression)})")
                if page.dtype is None:
                    raise ImageReadError(path, f"this TIFF stores samples of {page.bitspersample} bits, "
                                               "which cannot be read here")
            self.downsamples = [self.dimensions[0][0] / w for w, _ in self.dimensions]
            self.mpp = _plausible_mpp(_tiff_mpp(self._tif))
            self._window = self._value_window()
            self._files = files.pop_all()  # opened fine: keep both until close()

    def _value_window(self) -> tuple[float, float] | None:
        """For other than 8-bit data: the values shown as black and white, the 0.5th and 99.5th
        percentiles of (the middle 2048 x 2048 pixels of) the smallest level, so that every
        tile is stretched alike."""
        if self._pages[-1].dtype == np.uint8:
            return None
        width, height = self.dimensions[-1]
        w, h = min(width, _WINDOW_SAMPLE), min(height, _WINDOW_SAMPLE)
        values = self._read_raw(self.levels - 1, (width - w) // 2, (height - h) // 2, w, h)
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        low, high = np.percentile(values, (0.5, 99.5)) if values.size else (0.0, 1.0)
        return float(low), float(high)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return _to_rgb8(self._read_raw(level, x, y, w, h), self._window)

    def _read_raw(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The stored samples (h, w, samples) of a region. Segments (tiles or strips) that the
        file leaves out read as 0, as tifffile reads them."""
        page = self._pages[level]
        if page.is_tiled:
            seg_w, seg_h = page.tilewidth, page.tilelength
        else:
            seg_w, seg_h = page.imagewidth, page.rowsperstrip or page.imagelength
        per_row = -(-page.imagewidth // seg_w)
        per_plane = per_row * -(-page.imagelength // seg_h)
        separate = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
        planes = min(page.samplesperpixel, 3) if separate else 1
        out = np.zeros((h, w, planes if separate else page.samplesperpixel), page.dtype)
        with _tiff_reasons(self.path):
            for row in range(y // seg_h, (y + h - 1) // seg_h + 1):
                for col in range(x // seg_w, (x + w - 1) // seg_w + 1):
                    for plane in range(planes):
                        index = plane * per_plane + row * per_row + col
                        data = self._segment_bytes(page, index)
                        seg, (_, _, top, left, _), _ = page.decode(
                            data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
                        if seg is None:
                            continue
                        seg = seg[0]  # (rows, cols, samples) of this segment
                        sy0, sx0 = max(y - top, 0), max(x - left, 0)
                        sy1 = min(y + h - top, seg.shape[0])
                        sx1 = min(x + w - left, seg.shape[1])
                        dst = out[top + sy0 - y:top + sy1 - y, left + sx0 - x:left + sx1 - x]
                        if separate:
                            dst[..., plane] = seg[sy0:sy1, sx0:sx1, 0]
                        else:
                            dst[...] = seg[sy0:sy1, sx0:sx1]
        return out

    def _segment_bytes(self, page, index: int) -> bytes | None:
        count = int(page.databytecounts[index])
        if count == 0:
            return None
        with self._lock:
            self._file.seek(int(page.dataoffsets[index]))
            data = self._file.read(count)
        if len(data) != count:
            raise ImageReadError(self.path, "the file is truncated: part of the image is missing")
        return data

    def close(self) -> None:
        self._files.close()


class PictureSource(ImageSource):
    """An ordinary picture (PNG, JPEG, BMP, small TIFF), read whole once: one level."""

    backend = "picture"

    def __init__(self, path: Path):
        self.path = path
        self._pixels = read_image(path)
        height, width = self._pixels.shape[:2]
        self.dimensions = [(width, height)]
        self.downsamples = [1.0]
        self.mpp = None

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._pixels[y:y + h, x:x + w].copy()


def _tiff_kind(path: Path) -> str:
    """'ome' for OME-TIFF; 'tiles' for a TIFF better read a tile at a time than whole (tiled,
    pyramidal or large) or one that read_image refuses by its name (QPTIFF, SVS-like suffixes
    OpenSlide did not claim); else 'picture'.

    A large TIFF in strips too big to read one at a time is a 'picture' if read_image takes it.
    The rest are checked for sizes and tiles no slide has, as opening would (whether a level is
    small enough is left to the backend, which may see more levels: OpenSlide, generic TIFF).
    """
    with _tiff_reasons(path), tifffile.TiffFile(path) as tif:
        pages = [level.keyframe for level in tif.series[0].levels]
        page = pages[0]
        pixels = page.imagewidth * page.imagelength
        large = pixels > MAX_PIXELS // 3  # > 50 megapixels
        whole = pixels <= MAX_PIXELS and tiff_segment(page)[3] > MAX_SEGMENT_BYTES
        odd_name = path.suffix.lower() not in IMAGE_SUFFIXES
        if not (tif.is_ome or page.is_tiled or len(pages) > 1 or odd_name or (large and not whole)):
            return "picture"
        check_size(path, [(p.imagewidth, p.imagelength) for p in pages])
        check_tiff_segments(path, pages)
        return "ome" if tif.is_ome else "tiles"


@contextlib.contextmanager
def _tiff_reasons(path: Path):
    """tifffile's and the file system's errors as ImageReadError."""
    try:
        yield
    except ImageReadError:
        raise
    except MemoryError as e:
        raise ImageReadError(path, "not enough free memory to read this image") from e
    except (tifffile.TiffFileError, ValueError, IndexError, KeyError, RuntimeError, EOFError,
            ZeroDivisionError, zlib.error) as e:
        raise ImageReadError(path, f"the TIFF file is damaged or not supported ({e})") from e
    except OSError as e:
        raise ImageReadError(path, f"the file could not be read ({e.strerror or e})") from e


def _tiff_mpp(tif: tifffile.TiffFile) -> float | None:
    """Micrometres per pixel from the OME metadata, else from the TIFF resolution tags."""
    if tif.is_ome:
        pixels = re.search(r"<Pixels\b[^>]*>", tif.ome_metadata or "")
        if pixels:
            size = re.search(r'PhysicalSizeX="([^"]+)"', pixels.group(0))
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', pixels.group(0))
            factor = _OME_UNITS_UM.get(unit.group(1) if unit else "µm")
            if size and factor:
                return float(size.group(1)) * factor
        return None
    page = tif.pages.first
    unit = _TIFF_UNIT_UM.get(int(page.tags.valueof(296, 2)))
    resolution = page.tags.valueof(282)
    if unit is None or not resolution or not resolution[0] or not resolution[1]:
        return None
    return unit * resolution[1] / resolution[0]


def _plausible_mpp(value) -> float | None:
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        return None
    return mpp if 0 < mpp <= _MAX_MPP else None


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """RGB from OpenSlide's (non-premultiplied) RGBA, transparent parts on white."""
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    weight = alpha[..., None].astype(np.float32) / 255
    return np.rint(rgb * weight + 255 * (1 - weight)).astype(np.uint8)


def _to_rgb8(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """uint8 RGB from (h, w, samples): grey repeated, two samples -> the first as grey, more
    than three -> the first three; other dtypes stretched by ``window``."""
    values = values[..., :1] if values.shape[-1] == 2 else values[..., :3]
    if window is not None:
        low, high = window
        scale = 255 / (high - low) if high > low else 0.0
        values = np.clip((values.astype(np.float32) - low) * scale, 0, 255)
        values = np.rint(np.nan_to_num(values)).astype(np.uint8)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(values)
