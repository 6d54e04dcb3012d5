"""A large picture's map computed a tile at a time (``feature_tiles.py``) is the whole picture's
map: cell for cell where the context covers the picture, and to a trained head's answers with
the context the app uses. Real encoder, real tissue picture."""
import numpy as np
import torch
from PIL import Image

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.feature_tiles import CONTEXT, FeatureTiles
from desktop.engine.learning.features import FeatureCache, FeatureExtractor, FeatureMap
from desktop.engine.learning.grid_head import Levels, head_probabilities
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine

from .helpers import one_thread  # noqa: F401  (fixture)
from .test_view_grid import expert_labels, tissue


def tiles_of(extractor: FeatureExtractor, picture: np.ndarray, tile: int, context: int) -> FeatureTiles:
    return FeatureTiles(picture, extractor.encode, extractor.coarse_channels, extractor.filters.channels,
                        tile=tile, context=context)


def test_tiles_put_every_cell_where_the_whole_picture_has_it(one_thread):
    extractor = FeatureExtractor()
    picture = tissue(600, 520)  # not a multiple of 32: the last tiles own the cells over the padding
    values, fine = extractor.encode(picture)
    tiles = tiles_of(extractor, picture, tile=256, context=1024)  # each tile sees the whole picture
    assert tiles.rows == [0, 256, 600] and tiles.cols == [0, 256, 520]  # the short rests join the last tiles
    tiles.finish()
    assert tiles.complete
    assert tiles.values.shape == values.shape and torch.equal(tiles.values, values)
    assert torch.equal(tiles.fine, fine)


def answers(learner: FastLearner, fmap: FeatureMap) -> np.ndarray:
    with torch.inference_mode():
        return head_probabilities(learner.head, fmap, 1, None, Levels(), "picture").argmax(-1).numpy()


def test_with_the_apps_context_a_trained_head_answers_as_on_the_whole_map(one_thread):
    extractor = FeatureExtractor()
    picture = tissue(1100, 1300)
    ref = ImageRef("tissue", lambda: picture)
    learner = FastLearner(2, FeatureCache(extractor))
    learner.fit([PointLabels(ref, *expert_labels(picture, 300))], steps=100)
    tiles = tiles_of(extractor, picture, tile=512, context=CONTEXT)
    tiles.finish()
    assert tiles.done.shape == (2, 3)
    whole = answers(learner, FeatureMap(*extractor.encode(picture), *picture.shape[:2]))
    tiled = answers(learner, FeatureMap(tiles.values, tiles.fine, *picture.shape[:2]))
    assert 0.995 < np.mean(whole == tiled) < 1  # the seams differ, a little


def test_missing_tiles_come_in_view_first_nearest_its_centre_first():
    picture = np.zeros((3000, 3000, 3), np.uint8)
    tiles = FeatureTiles(picture, encode=None, channels=1, fine_channels=1)
    assert tiles.done.shape == (3, 3)
    order = tiles.missing(near=(2900, 100), within=(0, 1200, 3000, 3000))  # the right two columns in view
    assert order[:2] == [(2, 1), (1, 1)] and {c for _, c in order[:6]} == {1, 2} and order[6] == (2, 0)
    tiles.done[2, 1] = True
    assert (2, 1) not in tiles.missing()


def test_a_round_on_clicks_in_a_tile_done_computes_no_other_tile(tmp_path, one_thread):
    """The expert clicks on what is painted: a round trains on those clicks from their tiles,
    leaves the tiles still to come to the serving, and draws the image's anchor pool once its
    map is whole."""
    small, large = tissue(512, 512), tissue(1600, 1600)[::-1].copy()
    for name, pixels in (("small", small), ("large", large)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    project = Project.create(tmp_path / "project", classes=[("tissue", "#8e3b9a", "1"), ("background", "#f2e8c9", "2")])
    ids = [project.add_image(tmp_path / "small.png", 512, 512), project.add_image(tmp_path / "large.png", 1600, 1600)]
    classes = [c.id for c in project.classes()]

    def label(image_id, pixels, n, seed, within=(0, 0)):
        yx, cls = expert_labels(pixels[within[0]:, within[1]:], n, seed)
        project.add_labels(image_id, [(float(x + within[1]), float(y + within[0]), classes[int(c)])
                                      for (y, x), c in zip(yx, cls)])

    label(ids[0], small, 60, 0)
    engine = SegmentationEngine(project, save_models=False)
    engine.train(50)
    tiles = engine.feature_tiles(ids[1])
    tiles.compute((1, 1))  # the serving painted the tile from (1024, 1024) first
    label(ids[1], large, 40, 1, within=(1040, 1040))
    report = engine.train(50)
    assert report.train_labels + report.validation_labels == 100
    assert tiles.done.tolist() == [[False, False], [False, True]] and engine.cache.under_way(engine.ref(ids[1]).key)
    assert not engine.learner.points.has_pool(engine.ref(ids[1]), 1)
    tiles.finish()
    label(ids[1], large, 5, 2, within=(1040, 1040))
    engine.train(50)
    assert engine.learner.points.has_pool(engine.ref(ids[1]), 1)
    project.close()


def test_a_build_all_done_is_kept_when_another_starts_and_one_too_large_is_not_started():
    extractor = FeatureExtractor()
    cache = FeatureCache(extractor)
    first, second = tissue(300, 200), tissue(200, 300)
    cache.building("first", lambda: first).finish()
    assert cache.building("second", lambda: second) is not None
    assert "first" in cache and "second" not in cache  # nothing of the first is computed again
    small = FeatureCache(extractor, budget_bytes=1 << 20)  # no folder: a map beyond the budget is never kept
    assert small.building("first", lambda: first) is None


def test_a_map_under_way_is_read_only_at_points_whose_neighbour_cells_are_done():
    picture = np.zeros((3000, 3000, 3), np.uint8)
    tiles = FeatureTiles(picture, encode=None, channels=1, fine_channels=1)
    tiles.done[0, 0] = True
    yx = np.array([[100.0, 100.0], [1021.0, 100.0], [1030.0, 100.0], [1019.0, 1019.0]])
    assert tiles.done_around(yx, 4).tolist() == [True, False, False, True]  # 1021 reads cell 256, the next tile's
    assert tiles.covering(yx[1:2], 4) == [(0, 0), (1, 0)]
