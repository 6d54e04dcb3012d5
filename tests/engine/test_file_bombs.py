"""Files made to stall the app: TIFFs whose header promises absurd work, and named pipes named
like pictures. Each is refused at once, in words, through every way a file is opened; real
large images still open.

Each call runs on a thread with a time limit, so that a regression fails instead of hanging
the run for hours (a daemon thread left behind dies with the test process).
"""
import math
import os
import struct
import threading
import zlib

import numpy as np
import openslide
import pytest
import tifffile

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import image_size, list_images, read_image, read_mask
from desktop.engine.images.slides import OpenSlideSource, TiffSource, is_slide_file, open_image_source
from desktop.engine.images.video import read_frame, video_info
from desktop.engine.keypoints.video_frames import add_video
from desktop.engine.project.setup import probe_image, scan_images


def _soon(work, seconds=20):
    """``work()``, failing rather than waiting if it takes longer than ``seconds``."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as e:  # handed to the test thread below
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still working after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _refused(call, path, seconds=20) -> str:
    with pytest.raises(ImageReadError) as info:
        _soon(lambda: call(path), seconds)
    assert info.value.path == path
    return info.value.reason


def tiles_left_out(path, shape, tile, *, ome=False, dtype=np.uint8):
    """A TIFF that declares ``shape`` (Y, X[, S]) in tiles of ``tile`` and leaves every tile out
    (TileByteCounts 0), so that it stays a few KB whatever it declares."""
    count = math.prod(-(-side // t) for side, t in zip(shape, tile))
    photometric = "rgb" if len(shape) == 3 else "minisblack"
    tifffile.imwrite(path, ((b"", 0) for _ in range(count)), shape=shape, dtype=dtype, tile=tile,
                     compression="zlib", photometric=photometric, ome=ome)
    return path


def deflated_zeros(n: int, chunk: int) -> bytes:
    """A valid zlib stream of ``n`` zero bytes (``chunk`` divides ``n``), built without ever
    holding them: a chunk compressed with a full flush is a block that stands alone, so the
    stream is a header, that block repeated, an empty final block and the Adler-32 of n zeros."""
    compressor = zlib.compressobj(9)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = ((n % 65521) << 16) | 1
    return block[:2] + block[2:] * (n // chunk) + b"\x03\x00" + struct.pack(">I", adler)


def one_strip(path, height, width, samples=1):
    """Zeros stored as ONE deflated strip, as the reported bomb: a few MB that decode to
    ``height * width * samples`` bytes on any read."""
    n = height * width * samples
    data = deflated_zeros(n, width * samples * 250)
    shape = (height, width, samples) if samples > 1 else (height, width)
    tifffile.imwrite(path, iter([(data, len(data))]), shape=shape, dtype=np.uint8, rowsperstrip=height,
                     compression="zlib", photometric="rgb" if samples == 3 else "minisblack")
    return path


@pytest.fixture
def million(tmp_path):
    """The reported 30 KB TIFF of 1,000,000 x 1,000,000 pixels, tiles left out; OpenSlide takes it
    as generic TIFF."""
    path = tiles_left_out(tmp_path / "million.tif", (1_000_000, 1_000_000, 3), (16384, 16384))
    assert path.stat().st_size < 40_000 and openslide.OpenSlide.detect_format(str(path)) == "generic-tiff"
    return path


@pytest.fixture
def single_strip(tmp_path):
    """The reported 3.5 MB TIFF: 60,000 x 60,000 pixels in one deflated strip of 3.6 GB."""
    path = one_strip(tmp_path / "strip.tif", 60_000, 60_000)
    assert path.stat().st_size < 4_000_000 and openslide.OpenSlide.detect_format(str(path)) is None
    return path


def test_a_million_pixels_a_side_is_refused_everywhere(million, tmp_path):
    for call in (is_slide_file, open_image_source, probe_image, TiffSource,
                 lambda p: OpenSlideSource(p, "generic-tiff")):
        reason = _refused(call, million)
        assert "1,000,000 x 1,000,000 pixels" in reason and "500,000 a side" in reason
    for call in (read_image, image_size):  # the plain-picture limit, with its way out
        assert "too large" in _refused(call, million)
    scan = _soon(lambda: scan_images([million]))
    assert not scan.readable and "larger than any slide scanner makes" in scan.unreadable[0][1]
    ome = tiles_left_out(tmp_path / "million.ome.tif", (1_000_000, 1_000_000, 3), (16384, 16384), ome=True)
    assert "500,000 a side" in _refused(open_image_source, ome)  # the tifffile backend's way in


def test_one_strip_of_3_6_gb_is_refused_before_decoding(single_strip):
    for call in (is_slide_file, open_image_source, probe_image, TiffSource):
        reason = _refused(call, single_strip)
        assert "strips are 60,000 x 60,000 pixels each (3.6 GB" in reason and "256 MB a strip" in reason
        assert "pyramidal tiled OME-TIFF" in reason
    for call in (read_image, image_size):
        assert "too large" in _refused(call, single_strip)
    scan = _soon(lambda: scan_images([single_strip]))
    assert not scan.readable and "3.6 GB" in scan.unreadable[0][1]


@pytest.mark.parametrize("ome", [False, True], ids=["openslide", "tifffile"])
def test_huge_tiles_are_refused(tmp_path, ome):
    path = tiles_left_out(tmp_path / "big-tiles.tif", (40_000, 40_000, 3), (16384, 16384), ome=ome)
    reason = _refused(open_image_source, path)
    assert "tiles are 16,384 x 16,384 pixels each (0.8 GB once decoded)" in reason
    source = TiffSource if ome else (lambda p: OpenSlideSource(p, "generic-tiff"))
    assert "256 MB a tile" in _refused(source, path)  # each backend checks what it reads


@pytest.mark.parametrize("ome", [False, True], ids=["openslide", "tifffile"])
def test_no_reduced_levels_is_refused_at_opening(tmp_path, ome):
    """400,000 pixels a side is a size slides have, but not without smaller levels: the
    thumbnail alone would read 160 gigapixels."""
    path = tiles_left_out(tmp_path / "flat.tif", (400_000, 400_000), (4096, 4096), ome=ome)
    assert _soon(lambda: is_slide_file(path))  # the header alone does not say how many levels
    for call in (open_image_source, probe_image):
        reason = _refused(call, path)
        assert "400,000 x 400,000 pixels and has no reduced-resolution levels" in reason
        assert "convert it to a pyramidal tiled OME-TIFF" in reason


def test_a_pyramid_with_a_gap_makes_its_thumbnail_from_the_small_level(tmp_path):
    """300,000 x 9,000 pixels, then 200 x 6: the thumbnail asked is between the two, and
    reading the large level for it would take minutes (hours, larger)."""
    path = tmp_path / "gap.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(((b"", 0) for _ in range(293 * 9)), shape=(9_000, 300_000), dtype=np.uint8,
                  tile=(1024, 1024), compression="zlib", subifds=1)
        tif.write(np.full((6, 200), 200, np.uint8), tile=(16, 16), subfiletype=1)
    with open_image_source(path) as source:
        assert source.dimensions == [(300_000, 9_000), (200, 6)]
        thumb = _soon(lambda: source.thumbnail(256))
    assert thumb.shape == (6, 200, 3) and (thumb == 200).all()


@pytest.mark.parametrize("ome", [False, True], ids=["openslide", "tifffile"])
def test_a_20000_pixel_tiled_tiff_without_levels_still_opens(tmp_path, ome):
    path = tiles_left_out(tmp_path / "flat.tif", (20_000, 20_000, 3), (1024, 1024), ome=ome)
    with open_image_source(path) as source:
        assert (source.backend, source.dimensions) == ("tifffile" if ome else "openslide", [(20_000, 20_000)])
    if ome:  # its thumbnail read too (through OpenSlide that takes 10 s: left out)
        assert _soon(lambda: probe_image(path), 60) == (20_000, 20_000, 1)


def test_a_large_picture_in_one_big_strip_is_read_whole(tmp_path):
    """90 megapixels of RGB in one 270 MB strip (Pillow and tifffile write uncompressed
    pictures so): too big to decode for every region, small enough to read once."""
    path = one_strip(tmp_path / "photo.tif", 9_000, 10_000, samples=3)
    assert not is_slide_file(path)
    with open_image_source(path) as source:
        assert (source.backend, source.dimensions) == ("picture", [(10_000, 9_000)])


def with_tag(path, source, tag, value):
    """``source`` (a little-endian classic TIFF) with the SHORT or LONG value of ``tag`` in its
    first IFD replaced, as a damaged or hostile file has it."""
    data = bytearray(source.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", data, ifd)[0], 12):
        code, kind = struct.unpack_from("<HH", data, entry)
        if code == tag:
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("tag, value, reason", [
    (256, 0, "damaged"),  # ImageWidth 0: tifffile divides by it
    (322, 0, "damaged"),  # TileWidth 0: the same, once decoding
    (258, 0, "samples of 0 bits, which cannot be read here"),  # tifffile would read an empty array
    (258, 64000, "samples of 64000 bits"),
])
def test_a_tiff_header_with_impossible_sizes_is_refused_not_a_crash(tmp_path, tag, value, reason):
    source = tmp_path / "source.tif"
    tifffile.imwrite(source, np.full((64, 64), 100, np.uint8), tile=(16, 16))
    path = with_tag(tmp_path / "odd.tif", source, tag, value)
    assert reason in _refused(read_image, path)
    _refused(probe_image, path)  # in OpenSlide's words where it takes the file (a tiled TIFF)
    if tag != 322:  # image_size reads no tile
        assert reason in _refused(image_size, path)


# --- named pipes --------------------------------------------------------------------------------

@pytest.fixture
def pipes(tmp_path):
    """Named pipes (FIFOs) named like a picture, a TIFF, a slide and a video. Opening one for
    reading waits for a writer; whatever a failed test leaves waiting is let go at the end."""
    paths = {name: tmp_path / name for name in ("x.png", "x.tif", "x.svs", "x.avi")}
    for path in paths.values():
        os.mkfifo(path)
    yield paths
    for path in paths.values():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # wakes a reader stuck in open()
        except OSError:
            pass  # nobody is waiting on it


@pytest.mark.parametrize("name", ["x.png", "x.tif", "x.svs"])
def test_a_named_pipe_is_refused_not_waited_on(pipes, name):
    path = pipes[name]
    calls = [is_slide_file, open_image_source, probe_image]
    if name != "x.svs":
        calls += [read_image, read_mask, image_size]
    for call in calls:
        assert _refused(call, path, 5) == "this is a named pipe (FIFO), not a regular file"


def test_a_named_pipe_named_like_a_video_is_refused(pipes, tmp_path):
    from desktop.engine.project.store import Project

    path = pipes["x.avi"]
    for call in (video_info, lambda p: read_frame(p, 0)):
        assert _refused(call, path, 5) == "this is a named pipe (FIFO), not a regular file"
    with Project.create(tmp_path / "p", task="keypoints") as project:
        assert "named pipe" in _refused(lambda p: add_video(project, p, 3), path, 5)


def test_a_named_pipe_is_not_listed_as_a_picture(pipes, tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    assert [p.name for p in _soon(lambda: list_images(tmp_path), 5)] == ["a.png"]
