"""A large picture's map computed a tile at a time (``feature_tiles.py``) is the whole picture's
map: cell for cell where the context covers the picture, and to a trained head's answers with
the context the app uses. Real encoder, real tissue picture."""
import numpy as np
import torch

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.feature_tiles import ALIGN, CONTEXT, FeatureTiles
from desktop.engine.learning.features import FeatureCache, FeatureExtractor, FeatureMap
from desktop.engine.learning.grid_head import Levels, head_probabilities

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
    assert tiles.done.shape == (3, 3) and all(edge % ALIGN == 0 for edge in tiles.rows[:-1] + tiles.cols[:-1])
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
    assert tiles.done.shape == (3, 3)
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
