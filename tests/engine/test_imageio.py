"""Reading pictures and masks: formats, depths, layouts, orientation, and clear errors."""
import os
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from desktop.engine.errors import ImageReadError, PointillistError
from desktop.engine.images import pictures as imageio
from desktop.engine.images.pictures import image_size, list_images, read_image, read_mask

from .helpers import black_png

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _gradient(shape, dtype=np.uint8, top=255):
    """Distinct values everywhere, so that any mix-up of axes or channels shows."""
    values = np.linspace(0, top, int(np.prod(shape)))
    return values.reshape(shape).astype(dtype)


def _check_rgb8(image, height, width):
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)
    assert image.flags.c_contiguous and image.flags.writeable


# --- formats and depths -------------------------------------------------------------------------

def test_png_rgb_and_bmp_are_exact(tmp_path):
    rgb = _gradient((20, 30, 3))
    for name in ("a.png", "a.bmp"):
        Image.fromarray(rgb).save(tmp_path / name)
        image = read_image(tmp_path / name)
        _check_rgb8(image, 20, 30)
        np.testing.assert_array_equal(image, rgb)


def test_grey_png_is_repeated_to_three_channels(tmp_path):
    grey = _gradient((20, 30))
    Image.fromarray(grey).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    _check_rgb8(image, 20, 30)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_jpeg(tmp_path):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 40)
    rgb[:, 24:] = (20, 180, 90)
    Image.fromarray(rgb).save(tmp_path / "a.jpeg", quality=95)
    image = read_image(tmp_path / "a.jpeg")
    _check_rgb8(image, 32, 48)
    assert np.abs(image[4:28, 4:20].astype(int) - (200, 30, 40)).max() < 12
    assert np.abs(image[4:28, 28:44].astype(int) - (20, 180, 90)).max() < 12


def test_16_bit_grey_png_is_stretched(tmp_path):
    dim = _gradient((40, 50), np.uint16, top=4095)  # 12-bit data in a 16-bit file
    cv2.imwrite(str(tmp_path / "g16.png"), dim)
    image = read_image(tmp_path / "g16.png")
    _check_rgb8(image, 40, 50)
    assert image.min() == 0 and image.max() == 255
    assert np.all(np.diff(image[..., 0].ravel().astype(int)) >= 0)  # order kept


def test_16_bit_colour_png_keeps_all_bits_and_channel_order(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint16)
    rgb[:10, :, 0] = 3000  # red on top, green below: all within 12 bits
    rgb[10:, :, 1] = 3000
    cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1])  # OpenCV writes BGR
    image = read_image(tmp_path / "c16.png")
    _check_rgb8(image, 20, 30)
    np.testing.assert_array_equal(image[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(image[-1, 0], (0, 255, 0))


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    _check_rgb8(image, 10, 10)
    np.testing.assert_array_equal(image[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(image[5, 5], (10, 20, 30))
    assert 120 < image[0, 1, 0] < 140

    grey_alpha = np.stack([np.full((10, 10), 50, np.uint8), np.full((10, 10), 255, np.uint8)], -1)
    grey_alpha[0, 0, 1] = 0
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(image[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(image[5, 5], (50, 50, 50))


@pytest.mark.parametrize("name, data, options, expected", [
    ("grey8", _gradient((20, 30)), {}, lambda d: np.dstack([d] * 3)),
    ("rgb8", _gradient((20, 30, 3)), {}, lambda d: d),
    ("planar_rgb8", _gradient((3, 20, 30)), {"photometric": "rgb"},
     lambda d: np.moveaxis(d, 0, -1)),
    ("rgba8", np.dstack([_gradient((20, 30, 3)), np.full((20, 30), 255, np.uint8)]), {},
     lambda d: d[..., :3]),
    ("two_channels", _gradient((20, 30, 2)), {"photometric": "minisblack"},
     lambda d: np.dstack([d[..., 0]] * 3)),
    ("two_channels_plain", _gradient((20, 30, 2)), {}, lambda d: np.dstack([d[..., 0]] * 3)),
    ("five_channels_first", _gradient((5, 20, 30)), {}, lambda d: np.moveaxis(d[:3], 0, -1)),
    ("five_channels_last", _gradient((20, 30, 5)),
     {"photometric": "minisblack", "planarconfig": "contig"}, lambda d: d[..., :3]),
    ("stack_of_20", _gradient((20, 24, 30)), {}, lambda d: np.dstack([d[0]] * 3)),
])
def test_tiff_8_bit_layouts(tmp_path, name, data, options, expected):
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, data, **options)
    image = read_image(path)
    want = expected(data)
    _check_rgb8(image, *want.shape[:2])
    np.testing.assert_array_equal(image, want)
    assert image_size(path) == (want.shape[1], want.shape[0])


@pytest.mark.parametrize("dtype, top", [(np.uint16, 4095), (np.uint16, 235), (np.float32, 1.0),
                                        (np.int32, 100_000)])
def test_tiff_high_depth_is_stretched(tmp_path, dtype, top):
    data = _gradient((40, 50), dtype, top)
    tifffile.imwrite(tmp_path / "deep.tiff", data)
    image = read_image(tmp_path / "deep.tiff")
    _check_rgb8(image, 40, 50)
    assert image.min() == 0 and image.max() == 255
    assert np.all(np.diff(image[..., 0].ravel().astype(int)) >= 0)


def test_uint16_rgb_tiff_and_float_nan(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint16)
    rgb[..., 2] = 1000
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.tif")[0, 0], (0, 0, 255))

    data = _gradient((20, 30), np.float32, 1.0)
    data[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    image = read_image(tmp_path / "nan.tif")
    assert image[0, 0, 0] == 0 and image.max() == 255


def test_content_decides_the_decoder_not_the_suffix(tmp_path):
    rgb = _gradient((20, 30, 3))
    Image.fromarray(rgb).save(tmp_path / "really_a_png.tif", format="PNG")
    tifffile.imwrite(tmp_path / "really_a_tiff.png", rgb)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", format="JPEG")
    (tmp_path / "really_a_jpeg.png").write_bytes((tmp_path / "photo.jpg").read_bytes())
    np.testing.assert_array_equal(read_image(tmp_path / "really_a_png.tif"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "really_a_tiff.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "really_a_jpeg.png"), read_image(tmp_path / "photo.jpg"))
    assert image_size(tmp_path / "really_a_jpeg.png") == (30, 20)


# --- orientation --------------------------------------------------------------------------------

def test_jpeg_exif_orientation_6_turns_the_picture_clockwise(tmp_path):
    stored = np.full((20, 40, 3), 255, np.uint8)  # 40 wide, 20 tall as stored
    stored[:8, :8] = (255, 0, 0)  # red marker at the stored top left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=95)

    image = read_image(tmp_path / "photo.jpg")
    _check_rgb8(image, 40, 20)  # upright: 20 wide, 40 tall
    assert image_size(tmp_path / "photo.jpg") == (20, 40)
    top_right, top_left = image[3, 16].astype(int), image[3, 3].astype(int)
    assert top_right[0] > 200 and top_right[1] < 60  # the marker moved to the top right
    assert top_left.min() > 200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    stored = _gradient((6, 10, 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), want)
    assert image_size(tmp_path / "o.png") == (want.shape[1], want.shape[0])


def test_tiff_orientation_tag(tmp_path):
    stored = _gradient((6, 10))
    tifffile.imwrite(tmp_path / "o.tif", stored, extratags=[(274, "H", 1, 6, True)])
    np.testing.assert_array_equal(read_image(tmp_path / "o.tif")[..., 0], np.rot90(stored, -1))
    assert image_size(tmp_path / "o.tif") == (6, 10)


# --- masks --------------------------------------------------------------------------------------

def test_mask_0_255_reads_as_0_1_and_channel_0_of_la(tmp_path):
    binary = np.zeros((10, 12), np.uint8)
    binary[2:5, 3:9] = 255
    Image.fromarray(np.dstack([binary, np.full_like(binary, 255)]), "LA").save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.shape == (10, 12) and mask.dtype == np.int64
    np.testing.assert_array_equal(mask, binary // 255)

    tifffile.imwrite(tmp_path / "m.tif", binary)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), binary // 255)


def test_mask_values_are_kept_otherwise(tmp_path):
    classes = np.array([[0, 1, 2], [255, 0, 1]], np.uint8)  # 255 among other classes: kept
    Image.fromarray(classes).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "c.png"), classes)

    palette = Image.fromarray(classes, "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 255] * 253)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), classes)  # indices, not colours

    instances = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    cv2.imwrite(str(tmp_path / "i.png"), instances)
    np.testing.assert_array_equal(read_mask(tmp_path / "i.png"), instances)

    tifffile.imwrite(tmp_path / "f.tif", instances.astype(np.float32))
    np.testing.assert_array_equal(read_mask(tmp_path / "f.tif"), instances)


def test_fractional_mask_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "prob.tif", np.full((4, 4), 0.5, np.float32))
    with pytest.raises(ImageReadError, match="prob.tif.*fractional"):
        read_mask(tmp_path / "prob.tif")


# --- errors -------------------------------------------------------------------------------------

def _truncated(path, source):
    data = source.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _make_png(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)


def _make_bad(tmp_path, case):
    """The file for an error case, and the words its message must hold."""
    path = tmp_path / {"missing": "gone.png", "folder": "folder.png", "unsupported": "a.xyz",
                       "empty": "empty.png", "text": "notes.png", "binary": "noise.png",
                       "truncated_png": "cut.png", "truncated_jpeg": "cut.jpg",
                       "truncated_tiff": "cut.tif", "bad_tiff": "bad.tif",
                       "odd_compression": "odd.tif"}[case]
    source = tmp_path / f"source{path.suffix}"
    if case == "folder":
        path.mkdir()
        return path, "folder"
    if case == "missing":
        return path, "not found"
    if case == "unsupported":
        path.write_bytes(b"whatever")
        return path, "unsupported image format '.xyz'"
    if case == "empty":
        path.touch()
        return path, "empty (0 bytes)"
    if case == "text":
        path.write_text("Patient 12, slide 3: see the attached report.\n")
        return path, "it looks like text"
    if case == "binary":
        path.write_bytes(bytes(range(256)) * 4)
        return path, "not a PNG, JPEG, BMP or TIFF image"
    if case == "truncated_png":
        _make_png(source)
    elif case == "truncated_jpeg":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
            source, format="JPEG")
    elif case == "truncated_tiff":
        tifffile.imwrite(source, np.ones((64, 64, 3), np.uint8), compression="zlib")
    elif case == "bad_tiff":
        source.write_bytes(b"II*\0" + b"\xff" * 100)
        path.write_bytes(source.read_bytes())
        return path, "truncated or damaged"
    elif case == "odd_compression":
        tifffile.imwrite(source, np.ones((8, 8), np.uint8))
        entry = struct.pack("<HHIH", 259, 3, 1, 1)  # IFD entry: Compression, SHORT, 1 value, none
        data = source.read_bytes()
        assert data.count(entry) == 1
        path.write_bytes(data.replace(entry, struct.pack("<HHIH", 259, 3, 1, 52479)))
        return path, "compressed in a way that cannot be read"
    _truncated(path, source)
    return path, "truncated or damaged"


@pytest.mark.parametrize("read", [read_image, read_mask, image_size])
@pytest.mark.parametrize("case", ["missing", "folder", "unsupported", "empty", "text", "binary",
                                  "truncated_png", "truncated_jpeg", "truncated_tiff", "bad_tiff",
                                  "odd_compression"])
def test_bad_files_raise_a_clear_error(tmp_path, read, case):
    path, words = _make_bad(tmp_path, case)
    if read is image_size and (case.startswith("truncated") or case == "odd_compression"):
        pytest.skip("image_size reads the header only")
    with pytest.raises(ImageReadError) as caught:
        read(path)
    assert str(caught.value).startswith(f"Cannot read image '{path.name}': ")
    assert words in caught.value.reason
    assert caught.value.path == path


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="file permissions do not bind root")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    _make_png(path)
    path.chmod(0)
    with pytest.raises(ImageReadError, match="secret.png.*permission denied"):
        read_image(path)


@pytest.mark.parametrize("read", [read_image, read_mask, image_size])
def test_huge_png_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch, read):
    """30,000 x 30,000 (900 megapixels, 3.6 GB once decoded) in a valid PNG of a few hundred kB."""
    small = black_png(tmp_path / "small.png", 70, 30)
    assert read_image(small).shape == (30, 70, 3) and not read_image(small).any()
    path = black_png(tmp_path / "huge.png", 30000, 30000)
    assert path.stat().st_size < 1_000_000

    def no_decoding(*args):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageReadError) as caught:
        read(path)
    assert str(caught.value) == (
        "Cannot read image 'huge.png': too large to open as a plain image (30000 x 30000 = 900 megapixels; "
        "the limit is 150). Convert it to a pyramidal TIFF or OME-TIFF to open it as a slide")


def test_size_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(imageio, "MAX_PIXELS", 1000)
    _make_png(tmp_path / "big.png")
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((64, 64), np.uint8))
    for path in (tmp_path / "big.png", tmp_path / "big.tif"):
        with pytest.raises(ImageReadError, match=r"too large to open as a plain image \(64 x 64 = "
                                                 r"0.0041 megapixels; the limit is 0.001\)"):
            read_image(path)


def test_error_survives_pickling():
    error = pickle.loads(pickle.dumps(ImageReadError("/data/x.png", "file not found")))
    assert str(error) == "Cannot read image 'x.png': file not found"
    assert error.path == Path("/data/x.png") and error.reason == "file not found"


# --- listing ------------------------------------------------------------------------------------

def test_list_images(tmp_path):
    for name in ("b.png", "a.TIF", "10.jpg", "2.jpeg", "c.bmp", "notes.txt", ".hidden.png"):
        (tmp_path / name).touch()
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["10.jpg", "2.jpeg", "a.TIF", "b.png", "c.bmp"]
    with pytest.raises(PointillistError, match="folder not found"):
        list_images(tmp_path / "nowhere")


# --- the real data sets, when present -----------------------------------------------------------

def _data(relative):
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def test_dsb_uint16_tiff():
    image = read_image(_data("dsb2018_nuclei_sample/image.tif"))
    _check_rgb8(image, 512, 512)
    assert image.max() == 255


def test_isbi_image_and_label():
    image = read_image(_data("isbi2012_em_membranes/image/0.png"))
    _check_rgb8(image, 512, 512)
    label = read_mask(_data("isbi2012_em_membranes/label/0.png"))
    assert label.shape == (512, 512)
    assert set(np.unique(label)) == {0, 1}


def test_monuseg_binary_masks():
    paths = list_images(_data("monuseg2018_test/masks_binary"))
    assert len(paths) == 14
    for path in paths:
        mask = read_mask(path)
        assert mask.shape == (1000, 1000)
        assert set(np.unique(mask)) == {0, 1}
    assert image_size(_data("monuseg2018_test/images") / f"{paths[0].stem}.tif") == (1000, 1000)
