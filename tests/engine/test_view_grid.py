"""A large image is predicted by its view, at about the screen's resolution, and asked about on
a coarse grid refined at the chosen cells (issue 19): with the real encoder, a real tissue
picture and a head trained on labels that follow it."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.project.store import Project
from desktop.engine.segmentation import uncertainty, view_grid
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.slide_learning import NOT_PREDICTED
from desktop.engine.service.image_views import STRIP_CELLS, _Step
from desktop.engine.service.messages import (ImageRanking, Predict, Prediction, Progress, ProposeQueries, Queries,
                                             ShowView)
from desktop.engine.service.segmentation import SegmentationServing
from desktop.engine.service.serving import ServingOptions

from .helpers import one_thread  # noqa: F401  (fixture)


def tissue(height: int, width: int) -> np.ndarray:
    return cv2.resize(data.immunohistochemistry(), (width, height), interpolation=cv2.INTER_CUBIC)


def expert_labels(pixels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels as a consistent expert would give them: brown (dark) stain is class 1."""
    rng = np.random.default_rng(seed)
    yx = np.stack([rng.integers(0, pixels.shape[0], n), rng.integers(0, pixels.shape[1], n)], 1)
    grey = pixels.mean(axis=2)
    return yx.astype(np.float64), (grey[yx[:, 0], yx[:, 1]] < np.median(grey)).astype(np.int64)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    pixels = tissue(600, 520)  # not a multiple of 32: the padded grid reaches past the image
    ref = ImageRef("tissue", lambda: pixels)
    learner = FastLearner(2, FeatureCache(FeatureExtractor()))
    learner.fit([PointLabels(ref, *expert_labels(pixels, 300))], steps=100)
    return learner, ref


def test_full_resolution_is_the_whole_image_prediction_and_windows_are_its_crops(trained):
    learner, ref = trained
    fmap = learner.features(ref)
    with torch.inference_mode():  # the whole-image computation as it was before strips and windows
        hidden = learner.head.hidden_map(fmap)
        whole = torch.softmax(learner.head.classify(hidden), dim=-1).permute(2, 0, 1).numpy()
    assert np.allclose(learner.predict_grid(ref, 1), whole, atol=1e-6)
    assert np.allclose(learner.predict_grid(ref, 1, (64, 96, 300, 333)), whole[:, 64:300, 96:333], atol=1e-6)
    for stride in (2, 4, 8):
        grid = learner.predict_grid(ref, stride)
        assert grid.shape[1:] == (-(-600 // stride), -(-520 // stride))
        window = learner.predict_grid(ref, stride, (16 * stride, 8 * stride, 600, 520))
        assert np.allclose(window, grid[:, 16:, 8:], atol=1e-6)


@pytest.mark.parametrize("stride", [2, 4, 8, 16])
def test_a_coarse_grid_shows_what_full_resolution_shows(trained, stride):
    """Each cell's class is the full-resolution class of most of its pixels, nearly everywhere:
    disagreement is only where a cell straddles a border."""
    learner, ref = trained
    full = learner.predict_grid(ref, 1).argmax(0)
    coarse = learner.predict_grid(ref, stride).argmax(0)
    rows, cols = coarse.shape
    padded = np.pad(full, ((0, rows * stride - 600), (0, cols * stride - 520)), mode="edge")
    majority = padded.reshape(rows, stride, cols, stride).mean(axis=(1, 3)) > 0.5
    assert (majority == coarse.astype(bool)).mean() > {2: 0.98, 4: 0.95, 8: 0.9, 16: 0.85}[stride]


def test_strides_follow_the_screen_and_the_image_size():
    assert [view_grid.view_stride(s) for s in (0.25, 1.0, 1.01, 2.0, 2.9, 5.9)] == [1, 1, 2, 2, 4, 8]
    assert view_grid.query_stride(1024, 1024) == 1 and view_grid.query_stride(1000, 1000) == 1  # ISBI, MoNuSeg
    for side in (1100, 2048, 4096, 8192):
        stride = view_grid.query_stride(side, side)
        assert stride >= 4 and (side / stride) ** 2 <= view_grid.QUERY_CELLS
    assert view_grid.overview_stride(512, 512) == 1 and view_grid.overview_stride(4096, 4096) == 8
    assert view_grid.aligned_window((10.5, -20, 100, 2000), 8, 600, 520) == (0, 8, 600, 112)
    assert view_grid.aligned_window((600, 700, 50, 50), 4, 600, 520) == (596, 516, 600, 520)  # off the image


def _large_project(tmp_path, side=1100):
    pixels = tissue(side, side)
    Image.fromarray(pixels).save(tmp_path / "large.png")
    project = Project.create(tmp_path / "project", classes=[("tissue", "#8e3b9a", "1"), ("background", "#f2e8c9", "2")])
    image_id = project.add_image(tmp_path / "large.png", side, side)
    yx, cls = expert_labels(pixels, 200, seed=1)
    classes = [c.id for c in project.classes()]
    project.add_labels(image_id, [(float(x), float(y), classes[int(c)]) for (y, x), c in zip(yx, cls)])
    return project, image_id, pixels


def test_queries_on_a_large_image_are_the_uncertain_pixels_of_uncertain_cells(tmp_path, one_thread):
    project, image_id, _ = _large_project(tmp_path)
    engine = SegmentationEngine(project, save_models=False)
    engine.train(150)
    asked_before = project.asked_points(image_id)
    points, ids = engine.propose_queries(image_id, 8, "margin", min_distance=8.0)
    assert len(points) == len(ids) == 8
    full = uncertainty.margin(engine.predict(image_id))
    _, labelled, _ = project.label_arrays(image_id)
    taken = {tuple(p) for p in np.round(np.concatenate([labelled, asked_before])).astype(int)}
    assert not taken & {tuple(p) for p in points}
    # each query is among the image's most uncertain pixels at full resolution
    assert np.all(full[points[:, 0], points[:, 1]] >= np.quantile(full, 0.9))
    spread = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(8) * 1e9
    assert spread.min() >= 8.0
    project.close()


def _shown_large_image(tmp_path):
    """A trained engine's serving showing a large image (no view known yet: its overview at once),
    and the list of what it sent."""
    project, image_id, _ = _large_project(tmp_path)
    engine = SegmentationEngine(project, save_models=False)
    engine.train(150)
    sent = []
    serving = SegmentationServing(engine, project, sent.append, ServingOptions())
    serving.show(Predict(image_id, 1))
    return project, image_id, engine, serving, sent


def test_a_large_image_sends_its_view_first_then_the_overview(tmp_path, one_thread):
    project, image_id, engine, serving, sent = _shown_large_image(tmp_path)
    first = [e for e in sent if isinstance(e, Prediction)]
    assert len(first) == 1 and first[0].stride == 4 and first[0].covers_image(1100, 1100)
    serving.handle(ShowView(image_id, 1, (100.5, 200.0, 300.0, 150.0), 1.0))  # zoomed in to 1:1
    first_look = [e for e in sent if isinstance(e, Prediction)][1]  # twice as coarse: a quarter of the cost
    assert (first_look.stride, first_look.origin, first_look.class_map.shape) == (2, (200, 100), (75, 151))
    assert serving.busy
    serving.serve()
    view = [e for e in sent if isinstance(e, Prediction)][2]
    assert (view.stride, view.origin, view.class_map.shape) == (1, (200, 100), (150, 301))
    assert np.array_equal(view.class_map, engine.predict(image_id).argmax(0)[200:350, 100:401])
    assert not serving.busy  # the overview of this model version was sent already
    count = len(sent)
    serving.handle(ShowView(image_id, 1, (100.5, 200.0, 300.0, 150.0), 1.0))  # the same view again: nothing new
    assert len(sent) == count
    project.add_labels(image_id, [(900.0, 900.0, project.classes()[0].id)])
    assert engine.train(50).published
    sent.clear()
    serving.model_changed()  # a new version: the view first, the rest of the image after it
    fresh = [e for e in sent if isinstance(e, Prediction)]
    assert len(fresh) == 1 and fresh[0].origin == (200, 100) and fresh[0].version == engine.version
    assert not [e for e in sent if isinstance(e, Queries)]  # asked once the view is sent, not before
    serving.serve()
    assert [e for e in sent if isinstance(e, Prediction)][-1].stride == 1
    assert serving.busy and not [e for e in sent if isinstance(e, Queries)]
    serving.serve()
    asked = [e for e in sent if isinstance(e, Queries)]
    assert len(asked) == 1 and asked[0].version == engine.version and len(asked[0].points) == 8
    serving.serve()  # the overview's 275 x 275 cells are two strips: a click waits for one, not for all
    assert [e for e in sent if isinstance(e, Prediction)][-1].stride == 1 and serving.busy
    serving.serve()
    overview = [e for e in sent if isinstance(e, Prediction)][-1]
    assert overview.covers_image(1100, 1100) and overview.version == engine.version and not serving.busy
    assert np.array_equal(overview.uncertainty, uncertainty.margin(engine.predict_grid(image_id, 4)))
    project.close()


def test_showing_another_image_drops_what_was_queued_for_the_last_one(tmp_path, one_thread):
    project, image_id, engine, serving, _ = _shown_large_image(tmp_path)
    serving.handle(ShowView(image_id, 1, (100.5, 200.0, 300.0, 150.0), 1.0))
    project.add_labels(image_id, [(900.0, 900.0, project.classes()[0].id)])
    assert engine.train(50).published
    serving.model_changed()  # a new version: the view, the overview and the queries after them are queued
    assert serving.views.busy and serving.busy
    small = tmp_path / "small.png"
    Image.fromarray(tissue(64, 64)).save(small)
    serving.show(Predict(project.add_image(small, 64, 64), 2))  # the expert moved on
    assert not serving.busy  # neither the large image's strips nor its queries are computed now
    project.close()


def test_a_learner_that_predicts_whole_images_computes_a_view_as_one_strip():
    step = _Step(Predict(1, 1), 1, 4, (0, 0, 1100, 1100), True)
    assert len(step.strips(STRIP_CELLS)) == 2  # 275 x 275 cells
    assert step.strips(step.window_cells) == [(0, 0, 1100, 1100)]


def test_a_large_image_without_features_is_painted_a_tile_at_a_time_the_views_first(tmp_path, one_thread):
    """Its map is computed a tile at a time (``feature_tiles.py``): each tile's cells are sent as
    soon as it is done, nearest the view's centre first, the others unpainted; the last sending is
    what the whole map gives."""
    project, image_id, _ = _large_project(tmp_path, side=1600)  # 2 x 2 tiles
    engine = SegmentationEngine(project, save_models=False)
    engine.train(100)
    whole = engine.predict_grid(image_id, 4)
    engine.cache.discard(engine.ref(image_id).key)  # the expert comes back to it once its map has left
    sent = []
    serving = SegmentationServing(engine, project, sent.append, ServingOptions())
    serving.handle(ShowView(image_id, 1, (900.0, 1000.0, 700.0, 600.0), 3.5))  # the bottom right, at stride 4
    serving.show(Predict(image_id, 1))
    serving.propose(ProposeQueries(image_id, 8))  # as the window asks when it opens an image
    tiles = engine.feature_tiles(image_id)
    assert tiles.done.tolist() == [[False, False], [False, True]]  # one tile, the view's own
    assert not [e for e in sent if isinstance(e, Queries)]  # queries read every tile: after them
    painted = [e for e in sent if isinstance(e, Prediction)]
    assert len(painted) == 1 and painted[0].stride == 4 and painted[0].origin == (1000, 900)
    first = painted[0].class_map
    assert (first[:6] == NOT_PREDICTED).all() and (first[6:, 31:] != NOT_PREDICTED).all()  # tiles start at 1024
    assert np.isnan(painted[0].uncertainty[:6]).all()
    serving.idle(60.0, lambda: False)  # nothing ranked while the tiles come: it would take them over
    assert not [e for e in sent if isinstance(e, ImageRanking)] and tiles.done.sum() == 1
    serving.handle(ShowView(image_id, 1, (1100.0, 1100.0, 300.0, 300.0), 1.0))  # zoomed in, within the tile done
    assert tiles.done.sum() == 1  # painted from it, no other tile computed first
    zoomed = [e for e in sent if isinstance(e, Prediction)][-1]
    assert (zoomed.stride, zoomed.origin) == (4, (1100, 1100)) and (zoomed.class_map != NOT_PREDICTED).all()
    serving.handle(ShowView(image_id, 1, (900.0, 1000.0, 700.0, 600.0), 3.5))  # back to the bottom right
    while serving.busy:
        serving.serve()
    asked = [i for i, e in enumerate(sent) if isinstance(e, Queries)]
    assert len(asked) == 1 and len(sent[asked[0]].points) == 8
    assert asked[0] > max(i for i, e in enumerate(sent) if isinstance(e, Prediction) and e.origin == (1000, 900))
    view = [e for e in sent if isinstance(e, Prediction) and e.origin == (1000, 900)]
    assert len(view) == 5 and (view[-1].class_map != NOT_PREDICTED).all()  # the tile done again, then 3 more
    assert np.array_equal(view[-1].class_map, whole.argmax(0)[250:, 225:])  # the same cells as the whole map's
    overview = [e for e in sent if isinstance(e, Prediction)][-1]
    assert overview.covers_image(1600, 1600) and np.array_equal(overview.class_map, whole.argmax(0))
    assert engine.feature_tiles(image_id) is None and engine.ref(image_id).key in engine.cache  # kept whole now
    engine.cache.discard(engine.ref(image_id).key)
    sent.clear()
    serving.propose(ProposeQueries(image_id, 8))  # open queries: shown at once, their likeliest classes later
    assert [len(p.candidates) for p in sent[-1].points] == [0] * 8 and serving.busy
    while serving.busy:
        serving.serve()
    assert [len(p.candidates) for p in sent[-1].points] == [2] * 8
    project.close()


def test_first_queries_on_a_large_image_wait_for_its_features_a_tile_per_step(tmp_path, one_thread):
    pixels = tissue(1600, 1600)
    Image.fromarray(pixels).save(tmp_path / "large.png")
    project = Project.create(tmp_path / "project", classes=[("tissue", "#8e3b9a", "1"), ("background", "#f2e8c9", "2")])
    image_id = project.add_image(tmp_path / "large.png", 1600, 1600)
    engine = SegmentationEngine(project, save_models=False)
    sent = []
    serving = SegmentationServing(engine, project, sent.append, ServingOptions())
    serving.show(Predict(image_id, 1))
    serving.propose(ProposeQueries(image_id, 8))
    assert not sent and serving.busy  # nothing computed in the message's turn: a tile per step
    for step in range(4):
        serving.serve()
        assert [e.fraction for e in sent if isinstance(e, Progress) and e.fraction is not None][-1] == (step + 1) / 4
        assert not [e for e in sent if isinstance(e, Queries)]
    serving.serve()
    asked = [e for e in sent if isinstance(e, Queries)]
    assert len(asked) == 1 and len(asked[0].points) == 8 and not serving.busy
    project.close()


def test_ranking_a_large_image_gives_way_between_its_tiles(tmp_path, one_thread):
    project, image_id, _ = _large_project(tmp_path, side=1600)
    engine = SegmentationEngine(project, save_models=False)
    engine.train(100)
    engine.cache.discard(engine.ref(image_id).key)
    sent = []
    serving = SegmentationServing(engine, project, sent.append, ServingOptions())
    asked = []
    serving.idle(60.0, lambda: asked.append(1) or len(asked) > 2)  # a message comes while the first tile is computed
    assert not [e for e in sent if isinstance(e, ImageRanking)]
    assert engine.feature_tiles(image_id).done.sum() == 1  # kept: ranking goes on from there
    serving.idle(60.0, lambda: False)
    ranking = [e for e in sent if isinstance(e, ImageRanking)]
    assert len(ranking) == 1 and set(ranking[0].uncertainty) == {image_id}
    assert engine.feature_tiles(image_id) is None
    project.close()
