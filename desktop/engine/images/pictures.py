"""Reading pictures (PNG, JPEG, BMP, TIFF) whole, for display, the model and the benchmarks.

Slides (resolution pyramids) are read elsewhere. Every failure here becomes an
:class:`ImageReadError` that names the file and says why in plain words.

Decoders: tifffile for TIFF (any bit depth, channel count and layout) and Pillow for the rest,
because Pillow reads the size and EXIF from the header before decoding, and it reports a truncated
JPEG where OpenCV quietly fills the missing part with grey. OpenCV decodes the one case Pillow gets
wrong: 16-bit colour PNG, which Pillow cuts to 8 bits. The decoder is chosen from the file's first
bytes, not its suffix, so a misnamed file still reads.
"""
from __future__ import annotations

import contextlib
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from desktop.engine.errors import ImageReadError, PointillistError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

MAX_PIXELS = 150_000_000
"""Largest picture read whole (width x height; e.g. 12,000 x 12,500), checked from the header
before decoding. A PNG or JPEG cannot be read in parts, and decoding one peaks at about 14 bytes a
pixel (Pillow's image, its RGB copy and two arrays), 2 GB at this limit: what a workstation can
spare beside the app. Pictures that large come from slide scanners and stitching, and such
images open tile by tile as slides once stored as a pyramidal (OME-)TIFF, which the refusal says.
Pillow's own decompression-bomb check is switched off below so that this one, which names the
size and the way out, is the one users meet."""

_MAX_DECODED_BYTES = 16 * MAX_PIXELS
"""A TIFF is decoded whole (a stack with all its planes) before its first picture is taken; this
caps that, at what float32 RGBA at ``MAX_PIXELS`` would take."""

_PIL_FORMATS = ("PNG", "JPEG", "BMP")  # JPEG includes MPO (camera multi-picture JPEG)
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_CONTROL_BYTES = frozenset(range(32)) - {9, 10, 12, 13}  # no text has these; binary files do
_DAMAGED = "the file is truncated or damaged"
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_SAMPLE = 1_000_000  # values used for the percentiles: plenty, and fast on any picture
_NOT_FILES = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
              stat.S_IFBLK: "a device"}

# What decoders raise for a bad file (tifffile divides by a header's size or tile size of 0).
# Anything else is a bug in this module and propagates.
_DECODE_ERRORS = (ValueError, SyntaxError, EOFError, IndexError, KeyError, RuntimeError,
                  ZeroDivisionError, struct.error, zlib.error, cv2.error)

# EXIF / TIFF orientation -> (transpose, flip rows, flip columns) that turn the stored pixels upright.
_ORIENTATIONS = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False),
                 5: (True, False, False), 6: (True, False, True), 7: (True, True, True),
                 8: (True, True, False)}

Image.MAX_IMAGE_PIXELS = None  # _check_size replaces it: see MAX_PIXELS


def read_image(path: str | Path) -> np.ndarray:
    """The picture at ``path`` as uint8 RGB (H, W, 3), C-contiguous, turned upright.

    - Grey is repeated to three channels; of two channels the first is shown as grey; of more than
      three, the first three are shown as RGB.
    - Alpha (RGBA, grey + alpha, palette transparency, TIFF alpha) is composited on white, so that
      transparent areas look as in other viewers instead of showing whatever colour hides under
      them.
    - 8-bit values are kept. Any other depth (16-bit, 32-bit, float) is stretched per picture so
      that its 0.5th and 99.5th percentiles become 0 and 255: microscopy is often dim 12-bit data
      in 16-bit files. The percentiles are shared by the channels shown, keeping their balance.
    - TIFF: of three axes (after dropping those of length 1), a last one of at most 8 that is
      shorter than the other two holds channels; else such a first one does (channel-first);
      else the first axis is a stack, and its first plane is read. Axes in front of three are
      stacks too.
    - The EXIF orientation (JPEG, and PNG when the EXIF comes before the pixels) and the TIFF
      Orientation tag are applied.
    """
    path = Path(path)
    with _reasons(path):
        head = _probe(path)
        if head[:4] in _TIFF_MAGIC:
            pixels, has_alpha, orientation = _read_tiff(path)
            return _upright(_to_rgb8(pixels, has_alpha), orientation)
        with _open_pil(path, head) as im:
            _check_size(path, *im.size)
            orientation = _exif_orientation(im)  # before decoding: see _exif_orientation
            return _upright(_pil_rgb8(path, im), orientation)


def read_mask(path: str | Path) -> np.ndarray:
    """Class indices (H, W) as int64, from a benchmark or imported mask, turned upright.

    Multi-channel files (grey + alpha 'LA' PNG, RGB) give channel 0; palette PNGs give palette
    indices, not colours. A mask whose only values are 0 and 255 (the usual black-and-white
    export) reads as classes 0 and 1. Fractional values are refused.
    """
    path = Path(path)
    with _reasons(path):
        head = _probe(path)
        if head[:4] in _TIFF_MAGIC:
            values, _, orientation = _read_tiff(path)
        else:
            with _open_pil(path, head) as im:
                _check_size(path, *im.size)
                orientation = _exif_orientation(im)
                values = _png16(path)[0] if _is_png16_colour(im) else np.asarray(im)
        if values.ndim == 3:
            values = values[..., 0]
        if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
            raise ImageReadError(path, "this mask holds fractional values, not class numbers")
        mask = values.astype(np.int64)
        if mask.max(initial=0) == 255 and np.isin(mask, (0, 255)).all():
            mask //= 255
        return _upright(mask, orientation)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the picture ``read_image`` returns, from the file header alone.

    Raises ImageReadError where ``read_image`` would, except for damage past the header.
    """
    path = Path(path)
    with _reasons(path):
        head = _probe(path)
        if head[:4] in _TIFF_MAGIC:
            with tifffile.TiffFile(path) as tif:
                _, width, height = _tiff_header(path, tif)
                orientation = tif.series[0].keyframe.tags.valueof(274, 1)
        else:
            with _open_pil(path, head) as im:
                width, height = im.size
                _check_size(path, width, height)
                orientation = _exif_orientation(im)
    transpose = _ORIENTATIONS.get(orientation, (False,))[0]
    return (height, width) if transpose else (width, height)


def list_images(folder: str | Path) -> list[Path]:
    """Files in ``folder`` (not in its sub-folders) with a suffix in ``IMAGE_SUFFIXES``, sorted by
    name. Hidden files are skipped: they are mostly macOS '._' leftovers, not pictures."""
    folder = Path(folder)
    try:
        entries = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".") and p.is_file()]
    except FileNotFoundError as e:
        raise PointillistError(f"Cannot list images in '{folder}': folder not found") from e
    except NotADirectoryError as e:
        raise PointillistError(f"Cannot list images in '{folder}': this is not a folder") from e
    except OSError as e:
        raise PointillistError(f"Cannot list images in '{folder}': {e.strerror or e}") from e
    return sorted(entries, key=lambda p: p.name)


@contextlib.contextmanager
def _reasons(path: Path):
    """Turn what the file system and the decoders raise into ImageReadError."""
    try:
        yield
    except FileNotFoundError as e:
        raise ImageReadError(path, "file not found") from e
    except PermissionError as e:
        raise ImageReadError(path, "permission denied (this user may not read the file)") from e
    except MemoryError as e:
        raise ImageReadError(path, "not enough free memory to open this image") from e
    except OSError as e:
        # Pillow reports truncated data as an OSError without an errno.
        reason = _DAMAGED if e.errno is None else f"the file could not be read ({e.strerror})"
        raise ImageReadError(path, reason) from e
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, _DAMAGED) from e


def check_regular_file(path: Path) -> None:
    """ImageReadError unless ``path`` leads to a regular file, checked before anything opens it:
    a named pipe (FIFO) or a device named like an image would keep its reader (ours, OpenSlide's
    format detection, OpenCV's video decoder) waiting for ever for data that may never come.
    What ``stat`` raises (not found, permission denied) is left to the caller, which words it."""
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise ImageReadError(path, "this is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = _NOT_FILES.get(stat.S_IFMT(mode), "a special file")
        raise ImageReadError(path, f"this is {kind}, not a regular file")


def _probe(path: Path) -> bytes:
    """The first bytes of the file, after the checks that need no decoder."""
    check_regular_file(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        kind = f"'{path.suffix}'" if path.suffix else "(the name has no extension)"
        raise ImageReadError(path, f"unsupported image format {kind}; "
                                   f"supported are {', '.join(IMAGE_SUFFIXES)}")
    with path.open("rb") as f:
        head = f.read(512)
    if not head:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return head


def _open_pil(path: Path, head: bytes) -> Image.Image:
    """Open (header only) a PNG, JPEG or BMP with Pillow."""
    try:
        return Image.open(path, formats=_PIL_FORMATS)
    except Image.UnidentifiedImageError as e:
        if _CONTROL_BYTES.isdisjoint(head):
            reason = "this is not an image file (it looks like text)"
        else:
            reason = "this is not a PNG, JPEG, BMP or TIFF image, or it is damaged"
        raise ImageReadError(path, reason) from e


def _check_size(path: Path, width: int, height: int, decoded_bytes: int = 0) -> None:
    if width * height > MAX_PIXELS:
        raise ImageReadError(path, f"too large to open as a plain image ({width} x {height} = "
                                   f"{width * height / 1e6:.3g} megapixels; the limit is "
                                   f"{MAX_PIXELS / 1e6:g}). Convert it to a pyramidal TIFF or OME-TIFF "
                                   "to open it as a slide")
    if decoded_bytes > _MAX_DECODED_BYTES:
        raise ImageReadError(path, f"image too large: the file holds {decoded_bytes / 1e9:.1f} GB of "
                                   f"pixel data (a stack of pictures, or many channels); the limit "
                                   f"is {_MAX_DECODED_BYTES / 1e9:.1f} GB")


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation that came with the header (1 if none, or if the EXIF is unreadable,
    as other viewers do). A PNG may carry its EXIF after the pixels; that is ignored, so that
    ``image_size`` agrees with ``read_image`` without decoding."""
    if "exif" not in im.info:
        return 1
    try:
        return int(im.getexif().get(0x0112, 1))
    except (OSError, TypeError, *_DECODE_ERRORS):
        return 1


def _pil_rgb8(path: Path, im: Image.Image) -> np.ndarray:
    if _is_png16_colour(im):
        return _to_rgb8(*_png16(path))
    if im.mode in _HIGH_DEPTH_MODES:
        return _to_rgb8(np.asarray(im), has_alpha=False)
    has_alpha = im.has_transparency_data
    return _to_rgb8(np.asarray(im.convert("RGBA" if has_alpha else "RGB")), has_alpha)


def _is_png16_colour(im: Image.Image) -> bool:
    """Whether Pillow would cut this PNG's 16-bit colour (or grey + alpha) to 8 bits."""
    rawmode = im.tile[0].args if im.format == "PNG" and im.tile else None
    return isinstance(rawmode, str) and rawmode.endswith(";16B") and im.mode in ("RGB", "RGBA")


def _png16(path: Path) -> tuple[np.ndarray, bool]:
    """A 16-bit colour PNG decoded by OpenCV: (H, W, 3 or 4) uint16 RGB(A), and whether it has alpha."""
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ImageReadError(path, _DAMAGED)
    channels = bgr.shape[2]
    return bgr[..., [2, 1, 0, 3][:channels]], channels == 4


def _read_tiff(path: Path) -> tuple[np.ndarray, bool, int]:
    """The picture in a TIFF as (H, W) or (H, W, C), whether its last channel is alpha, and the
    Orientation tag."""
    with tifffile.TiffFile(path) as tif:
        series, _, _ = _tiff_header(path, tif)
        page = series.keyframe
        if page.compression not in tifffile.TIFF.DECOMPRESSORS:
            raise ImageReadError(path, f"this TIFF is compressed in a way that cannot be read here "
                                       f"(compression code {int(page.compression)})")
        pixels = _picture(series.asarray())
        # Extra samples 1 and 2 are associated and unassociated alpha.
        has_alpha = (pixels.ndim == 3 and pixels.shape[2] == page.samplesperpixel
                     and bool(page.extrasamples) and page.extrasamples[-1] in (1, 2))
        return pixels, has_alpha, page.tags.valueof(274, 1)


def _tiff_header(path: Path, tif: tifffile.TiffFile) -> tuple[tifffile.TiffPageSeries, int, int]:
    """The first series of an open TIFF, and its picture's width and height, size-checked."""
    series = tif.series[0]
    if series.keyframe.dtype is None:  # tifffile then reads an empty array, not an error
        raise ImageReadError(path, f"this TIFF stores samples of {series.keyframe.bitspersample} bits, "
                                   "which cannot be read here")
    # A broadcast view of one value takes no memory and gives the picture's shape before decoding.
    height, width = _picture(np.broadcast_to(np.zeros((), series.dtype), series.shape)).shape[:2]
    _check_size(path, width, height, series.nbytes)
    return series, width, height


def _picture(a: np.ndarray) -> np.ndarray:
    """The 2-D picture, (H, W) or (H, W, C), in an array of any layout (rules in read_image)."""
    while a.ndim > 2 and 1 in a.shape:
        a = a.squeeze(axis=a.shape.index(1))
    while a.ndim > 3:
        a = a[0]
    if a.ndim == 3:
        if a.shape[2] <= 8 and a.shape[2] < min(a.shape[:2]):
            return a
        if a.shape[0] <= 8 and a.shape[0] < min(a.shape[1:]):
            return np.moveaxis(a, 0, -1)
        return a[0]
    return a


def _to_rgb8(pixels: np.ndarray, has_alpha: bool) -> np.ndarray:
    """uint8 RGB from (H, W) or (H, W, C) of any dtype (rules in read_image)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    alpha = None
    if has_alpha:
        pixels, alpha = pixels[..., :-1], pixels[..., -1]
    pixels = pixels[..., :1] if pixels.shape[2] == 2 else pixels[..., :3]
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype != np.uint8:
        pixels = _stretch(pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels if alpha is None else _on_white(pixels, alpha)


def _stretch(values: np.ndarray) -> np.ndarray:
    """uint8 with the 0.5th..99.5th percentile of ``values`` mapped to 0..255."""
    sample = values.reshape(-1)
    if sample.size > _SAMPLE:  # a fixed random sample: the same percentiles, much faster
        sample = sample[np.random.default_rng(0).integers(0, sample.size, _SAMPLE)]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
    scale = 255 / (high - low) if high > low else 0.0
    out = (values.astype(np.float32) - low) * scale
    np.clip(out, 0, 255, out=out)
    np.nan_to_num(out, copy=False)
    return np.rint(out, out=out).astype(np.uint8)


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` composited on white; ``alpha`` is in its own dtype's scale (1.0 for float)."""
    opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1
    if alpha.min() >= opaque:  # the common case, with no arithmetic
        return rgb
    weight = np.clip(alpha.astype(np.float32) / opaque, 0, 1)[..., None]
    return np.rint(rgb * weight + 255 * (1 - weight)).astype(np.uint8)


def _upright(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` turned as its EXIF / TIFF orientation says, C-contiguous and writable (Pillow's
    arrays are read-only)."""
    transpose, flip_rows, flip_columns = _ORIENTATIONS.get(orientation, (False, False, False))
    if transpose:
        a = a.swapaxes(0, 1)
    if flip_rows:
        a = a[::-1]
    if flip_columns:
        a = a[:, ::-1]
    return np.require(a, requirements="CW")
