"""Slide exports (QuPath GeoJSON, pyramidal OME-TIFF mask) and the slide benchmark's fixture."""
import json

import numpy as np
import pytest
import tifffile

from desktop.cli import main
from desktop.engine.images.slides import open_image_source
from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.segmentation.slide_export import qupath_geojson, write_geojson, write_mask_ome_tiff

NAMES = ["background", "tumour", "stroma"]
COLOURS = ["#ffffff", "#c80000", "#00a050"]


def _mask():
    mask = np.zeros((300, 400), np.uint8)
    mask[50:150, 40:200] = 1
    mask[80:110, 90:130] = 0  # a hole in the tumour
    mask[200:260, 250:380] = 2
    mask[5, 5] = 2  # a single pixel: noise, left out
    return mask


def test_geojson_has_qupath_points_and_polygons_with_holes(tmp_path):
    points = np.array([[100.5, 20.0], [900.0, 800.0], [30.0, 40.0]])
    collection = qupath_geojson(NAMES, COLOURS, points, np.array([1, 2, 0]), _mask(),
                                mask_downsample=4.0, region_classes=[1, 2])
    path = tmp_path / "export.geojson"
    write_geojson(path, collection)
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    for feature in data["features"]:
        assert feature["type"] == "Feature"
        assert feature["properties"]["objectType"] == "annotation"
    pts = [f for f in data["features"] if f["geometry"]["type"] == "Point"]
    assert [f["geometry"]["coordinates"] for f in pts] == points.tolist()
    assert [f["properties"]["classification"] for f in pts] == [
        {"name": "tumour", "color": [200, 0, 0]}, {"name": "stroma", "color": [0, 160, 80]},
        {"name": "background", "color": [255, 255, 255]}]
    polygons = {f["properties"]["classification"]["name"]: f["geometry"]["coordinates"]
                for f in data["features"] if f["geometry"]["type"] == "Polygon"}
    assert sorted(polygons) == ["stroma", "tumour"]  # one each; background not asked for
    tumour = np.array(polygons["tumour"][0])
    assert len(polygons["tumour"]) == 2 and len(polygons["stroma"]) == 1  # outline + hole
    for ring in polygons["tumour"] + polygons["stroma"]:
        assert ring[0] == ring[-1] and len(ring) >= 4
    # Level-0 coordinates: mask pixels 40..199 x 50..149 at 4x, through the border pixel centres.
    assert tumour.min(0).tolist() == [162.0, 202.0] and tumour.max(0).tolist() == [798.0, 598.0]
    hole = np.array(polygons["tumour"][1])
    assert hole.min(0).tolist() == [358.0, 318.0] and hole.max(0).tolist() == [522.0, 442.0]


def test_ome_tiff_mask_reads_back_with_tifffile(tmp_path):
    mask = np.zeros((1000, 700), np.uint8)
    mask[100:900, 100:600] = 1
    mask[0:2, 0:2] = [[3, 3], [3, 2]]  # 2 x 2 block: the most frequent class wins
    path = tmp_path / "mask.ome.tif"
    assert write_mask_ome_tiff(path, mask, mpp=2.0) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["mask.ome.tif"]  # no temporary file left
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        levels = tif.series[0].levels
        assert [level.shape for level in levels] == [(1000, 700), (500, 350), (250, 175)]
        assert np.array_equal(levels[0].asarray(), mask)
        half = levels[1].asarray()
        assert half[0, 0] == 3 and np.array_equal(half[50:450, 50:300], np.ones((400, 250)))
        assert levels[0].keyframe.tilewidth == 256
        assert 'PhysicalSizeX="2.0"' in tif.ome_metadata
    with open_image_source(path) as source:
        assert source.mpp == 2.0 and source.levels == 3


def test_mask_must_be_class_indices(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mask_ome_tiff(tmp_path / "m.ome.tif", np.zeros((10, 10), np.float32))


def test_generated_benchmark_slide_is_a_consistent_pyramid(tmp_path):
    path = tmp_path / "synthetic.ome.tif"
    assert generate_ome_tiff(path, 3000) == 5  # 3000, 1500, 750, 375, 188
    with open_image_source(path) as source:
        assert source.dimensions[0] == (3000, 3000) and source.dimensions[-1] == (188, 188)
        assert source.mpp == 0.5
        fine = source.read_region(0, 1024, 1024, 1024, 1024).astype(np.float32)
        coarse = source.read_region(2, 1024, 1024, 256, 256).astype(np.float32)
    shrunk = fine.reshape(256, 4, 256, 4, 3).mean((1, 3))
    assert np.abs(shrunk - coarse).mean() < 8  # the same picture, JPEG noise apart
    assert fine.std() > 20  # texture, not a flat colour


@pytest.mark.slow  # loads the encoder, trains and predicts: about a minute on a busy 2-core CPU
def test_cli_bench_slides_reports_every_figure(shared_data, capsys):
    slide = shared_data / "wsi_test_slides" / "openslide_python_fixtures" / "boxes.tiff"
    if not slide.is_file():
        pytest.skip("boxes.tiff is not present")
    assert main(["bench", "slides", "--slide", str(slide)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["width"], result["height"], result["levels"]) == (300, 250, 4)
    for key in ("open_ms", "first_view_ms", "tiles_per_s", "predict_tiles_per_s"):
        assert result[key] > 0
    assert result["first_view_level"] == 0 and result["first_view_tiles"] == 2  # 256-pixel tiles


def test_cli_bench_slides_on_a_broken_slide_says_why(shared_data, capsys):
    slide = shared_data / "wsi_test_slides" / "openslide_python_fixtures" / "unopenable.tiff"
    if not slide.is_file():
        pytest.skip("unopenable.tiff is not present")
    assert main(["bench", "slides", "--slide", str(slide)]) == 2
    assert "unopenable.tiff" in capsys.readouterr().err
