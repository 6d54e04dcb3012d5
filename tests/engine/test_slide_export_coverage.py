"""A slide export says how much of the tissue it predicted (issue 17, item 11): the tiles
predicted already always count, the others only while the export's time lasts, a damaged part
is left out instead of failing the export, and the message says what is left and what to do."""
import re

import numpy as np
import pytest
import tifffile

from desktop.engine.images.slides import open_image_source
from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.slide_learning import NOT_PREDICTED, TilePredictions
from desktop.engine.segmentation.slide_regions import export_slide
from desktop.engine.service.messages import PredictView
from desktop.engine.service.slides import SlideServing
from tests.slide_clicks import ten_clicks


def damaged_copy(path, folder):
    """The slide with one tile of its working level (level 1) zeroed: a damaged part in the tissue."""
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[1].keyframe
        middle = len(page.dataoffsets) // 2 - 6
        offset, count = int(page.dataoffsets[middle]), int(page.databytecounts[middle])
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = bytes(count)
    broken = folder / "damaged.ome.tif"
    broken.write_bytes(bytes(data))
    return broken


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model taught by ten clicks on one slide (image 1); image 2 is a larger slide with a
    damaged tile (larger: its thumbnail, which the tissue mask comes from, is read from a level
    below the damage)."""
    folder = tmp_path_factory.mktemp("slides")
    path, big = folder / "slide.ome.tif", folder / "big.ome.tif"
    project = Project.create(folder / "p", classes=[("glass", "#f0f0f0", "1"), ("tissue", "#d02020", "2")])
    image_id = project.add_image(path, 2600, 2600, generate_ome_tiff(path, 2600))
    levels = generate_ome_tiff(big, 5000)
    project.add_image(damaged_copy(big, folder), 5000, 5000, levels)
    with open_image_source(path) as source:
        clicks = ten_clicks(source)
    glass, tissue = project.classes()
    project.add_labels(image_id, [(x, y, (glass, tissue)[c].id) for x, y, c in clicks])
    engine = SegmentationEngine(project, save_models=False, validation_fraction=0.0)
    assert engine.train(100).published
    yield engine, image_id
    engine.slides.close()
    project.close()


def predicted_share(engine, image_id, folder) -> float:
    """Percent of the tissue (on the tissue mask, at the working resolution) that the exported mask predicts."""
    grid = engine.slides.grid(image_id)
    mask = tifffile.imread(next(folder.glob("*_mask.ome.tif")))
    tissue = np.zeros(mask.shape, bool)
    for row in range(grid.grid.rows):
        for col in range(grid.grid.columns):
            h, w = grid.size(col, row)
            tissue[row * grid.tile:row * grid.tile + h, col * grid.tile:col * grid.tile + w] = grid.tissue_in(col, row)
    return 100 * float((mask[tissue] != NOT_PREDICTED).mean())


def test_the_export_message_says_how_much_tissue_is_left_unpredicted(trained, tmp_path):
    engine, image_id = trained
    serving = SlideServing(engine, engine.project, lambda event: None, "margin")
    serving.receive(PredictView(image_id, 1, (600.0, 600.0, 900.0, 900.0)))  # the expert looked here
    while serving.busy:
        serving.serve()
    out = tmp_path / "out"

    # No time for new tiles and none predicted: an empty mask, and the message says so.
    text = export_slide(engine, TilePredictions(), image_id, out, "margin", lambda *_: None, seconds=0)
    assert "0 % of the tissue predicted; 100 % left unpredicted" in text and predicted_share(engine, image_id, out) == 0

    # No time left for new tiles: only the view's, predicted already, are in the mask.
    text = export_slide(engine, serving.predictions, image_id, out, "margin", lambda *_: None, seconds=0)
    share = predicted_share(engine, image_id, out)
    found = re.search(r"(\d+) % of the tissue predicted; (\d+) % left unpredicted: .*Press N or pan there", text)
    assert found, text
    assert 0 < share < 100 and int(found[1]) == pytest.approx(share, abs=1.5)
    assert int(found[1]) + int(found[2]) == 100
    assert "File > Predict" in text

    # With its time: the whole tissue, and it says so; then another export right away costs nothing.
    text = export_slide(engine, serving.predictions, image_id, out, "margin", lambda *_: None)
    assert text.endswith("100 % of the tissue predicted.") and predicted_share(engine, image_id, out) == 100
    text = export_slide(engine, serving.predictions, image_id, out, "margin", lambda *_: None, seconds=0)
    assert text.endswith("100 % of the tissue predicted.")



def test_a_damaged_part_of_the_slide_is_left_out_of_the_export_and_said(trained, tmp_path):
    engine, _ = trained
    out = tmp_path / "out"
    text = export_slide(engine, TilePredictions(), 2, out, "margin", lambda *_: None)
    found = re.search(r"(\d+) % of the tissue predicted; \d+ % left unpredicted \(9 tiles of a damaged part", text)
    assert found, text
    share = predicted_share(engine, 2, out)
    assert 50 < share < 100 and int(found[1]) == pytest.approx(share, abs=1.5)
    assert len(list(out.glob("*.geojson"))) == 1  # written, with the rest of the slide
