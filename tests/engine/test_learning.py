"""The learners must really learn: real images, sparse clicks, scored against real masks."""
import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries

from desktop.engine.images.pictures import read_image, read_mask
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import _ANCHOR_BUDGET
from desktop.engine.learning.features import FeatureExtractor, FeatureMap, sample_points
from desktop.engine.learning.task_engine import is_validation
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.metrics import confusion, iou_per_class
from desktop.engine.service.loop import ROUNDS_AFTER_CHANGE, STEPS

from .helpers import blob_image, clicks_from_mask

CLASSES = [("background", "#0000ff", "1"), ("object", "#ff0000", "2")]


def make_project(tmp_path, n_images=2, size=128):
    project = Project.create(tmp_path / "project", classes=CLASSES)
    masks = {}
    for i in range(n_images):
        path = tmp_path / f"img{i}.png"
        mask = blob_image(path, size=size, seed=i)
        masks[project.add_image(path, size, size)] = mask
    return project, masks


def add_clicks(project, image_id, mask, per_class, seed=0):
    ids = [c.id for c in project.classes()]
    for x, y, c in clicks_from_mask(mask, per_class, seed):
        project.add_label(image_id, x, y, ids[c])


def test_point_features_match_the_dense_map():
    """Sampling at a pixel gives what bilinear resizing of the stride-4 map gives there."""
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(size=(8, 10, 5)).astype(np.float16))
    fine = torch.from_numpy(rng.normal(size=(32, 40, 2)).astype(np.float16))
    fmap = FeatureMap(values, fine, 32, 40)
    dense = torch.nn.functional.interpolate(values.permute(2, 0, 1)[None].float(), scale_factor=4,
                                            mode="bilinear", align_corners=False)[0]
    yx = np.array([[0, 0], [5, 7], [31, 39], [13, 22]], np.float64)
    got = sample_points(fmap, yx)
    iy, ix = yx[:, 0].astype(int), yx[:, 1].astype(int)
    assert torch.allclose(got[:, :5], dense[:, iy, ix].T, atol=1e-3)
    assert torch.equal(got[:, 5:], fine[iy, ix].float())


def test_features_cover_odd_sizes():
    fmap = FeatureExtractor()(np.zeros((50, 70, 3), np.uint8))
    assert fmap.values.shape == (16, 24, 496) and (fmap.height, fmap.width) == (50, 70)
    assert fmap.fine.shape == (50, 70, 7) and fmap.channels == 503


def test_fast_learner_learns_a_real_nucleus_image_from_sparse_clicks(tmp_path, shared_data):
    folder = shared_data / "dsb2018_nuclei_sample"
    truth = (read_mask(folder / "mask_instance.tif") > 0).astype(np.int64)
    with Project.create(tmp_path / "p", classes=CLASSES) as project:
        image_id = project.add_image(folder / "image.tif", 512, 512)
        add_clicks(project, image_id, truth, per_class=20)
        engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False)
        report = engine.train(300)
        assert report.published and report.train_labels == 40
        predicted = engine.predict(image_id).argmax(0)
    iou = iou_per_class(confusion(truth, predicted, 2))
    # 40 random clicks on 262,144 pixels (0.015 %): nuclei must still be found. Calling every
    # pixel a nucleus would score 0.2 on that class, calling none 0.
    assert iou[1] > 0.5 and iou.mean() > 0.65, iou


def test_engine_trains_predicts_queries_and_publishes(tmp_path):
    project, masks = make_project(tmp_path)
    engine = SegmentationEngine(project, validation_fraction=0.0)
    first = next(iter(masks))
    cold, cold_ids = engine.propose_queries(first, 5, "margin", min_distance=8)
    assert len(cold) == 5 and project.queries(first)[0].strategy == "cold_start"
    for image_id, mask in masks.items():
        add_clicks(project, image_id, mask, per_class=10)
    report = engine.train(200)
    assert report.version == 1 and (project.models_dir / "fast-v1.pt").is_file()
    probs = engine.predict(first)
    assert probs.shape == (2, 128, 128) and np.allclose(probs.sum(0), 1, atol=1e-4)
    accuracy = (probs.argmax(0) == masks[first]).mean()
    assert accuracy > 0.9
    points, ids = engine.propose_queries(first, 6, "margin", min_distance=5)
    assert len(points) == len(ids) == 6
    labelled = np.round(project.label_arrays(first)[1]).astype(int)
    assert not {tuple(p) for p in points} & {tuple(p) for p in labelled}
    ranking = engine.image_uncertainties("margin")
    assert set(ranking) == set(masks)
    # A fresh engine on the reopened project starts from the saved model.
    project.close()
    with Project.open(tmp_path / "project") as again:
        restored = SegmentationEngine(again)
        assert restored.load_latest_weights() and restored.version == 1
        assert np.allclose(restored.predict(first), probs, atol=1e-5)


def test_bald_and_all_strategies_give_maps(tmp_path):
    project, masks = make_project(tmp_path, n_images=1, size=96)
    engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False)
    image_id = next(iter(masks))
    add_clicks(project, image_id, masks[image_id], per_class=8)
    engine.train(100)
    for strategy in ("random", "entropy", "least_confidence", "margin", "bald"):
        scores = engine.scores(image_id, strategy)
        assert scores.shape == (96, 96) and np.isfinite(scores).all(), strategy
    assert engine.scores(image_id, "bald").max() > 0


def test_worse_model_is_refused_and_previous_kept(tmp_path):
    """Wrong training labels (every background click says "object") make the new model worse on
    the unchanged held-back labels: it is not published."""
    project, masks = make_project(tmp_path, n_images=1)
    image_id = next(iter(masks))
    engine = SegmentationEngine(project, validation_fraction=0.5, save_models=False)
    add_clicks(project, image_id, masks[image_id], per_class=20)
    good = engine.train(200)
    assert good.published and good.validation_accuracy > 0.8
    before = engine.predict(image_id)
    ids = [c.id for c in project.classes()]
    for x, y, c in clicks_from_mask(masks[image_id], 200, seed=5):
        if c == 0:
            label = project.add_label(image_id, x, y, ids[1])
            if is_validation(np.array([label]), 0.5)[0]:  # keep the held-back set as it was
                project.delete_label(label)
    bad = engine.train(300)
    assert bad.validation_accuracy < good.validation_accuracy - 0.02, "wrong labels must hurt"
    assert not bad.published and bad.version is None
    assert np.allclose(engine.predict(image_id), before)
    assert [m.published for m in project.model_versions()] == [True, False]


def test_harder_held_back_labels_do_not_stop_publishing(tmp_path):
    """New held-back labels the model in use gets wrong must not freeze it: both models are
    compared on the held-back labels of today, not against the best score of an older set."""
    project, masks = make_project(tmp_path, n_images=1)
    image_id = next(iter(masks))
    engine = SegmentationEngine(project, validation_fraction=0.5, save_models=False)
    add_clicks(project, image_id, masks[image_id], per_class=20)
    good = engine.train(200)
    ids = [c.id for c in project.classes()]
    for x, y, c in clicks_from_mask(masks[image_id], 200, seed=5):  # the expert changes their mind
        if c == 0:
            project.add_label(image_id, x, y, ids[1])
    after = engine.train(300)
    assert after.validation_accuracy < good.validation_accuracy - 0.02  # the old rule refused this
    assert after.published and after.version == 2


def test_deep_learner_runs_end_to_end_on_cpu(tmp_path):
    project, masks = make_project(tmp_path, n_images=1, size=96)
    image_id = next(iter(masks))
    add_clicks(project, image_id, masks[image_id], per_class=10)
    engine = SegmentationEngine(project, learner="deep", device="cpu", validation_fraction=0.0, save_models=False)
    engine.learner.crop = 64
    engine.learner.batch = 2
    first = engine.train(3)
    second = engine.train(3)
    assert first.published and second.version == 2
    probs = engine.predict(image_id)
    assert probs.shape == (2, 96, 96) and np.allclose(probs.sum(0), 1, atol=1e-4)
    assert engine.scores(image_id, "bald").shape == (96, 96)
    points, _ = engine.propose_queries(image_id, 3, "margin")  # embedding-diverse picks
    assert len(points) == 3 and len({tuple(p) for p in points}) == 3


def test_unreadable_project_image_gives_a_clear_error(tmp_path):
    from desktop.engine.errors import ImageReadError

    project, masks = make_project(tmp_path, n_images=1)
    image_id = next(iter(masks))
    project.image(image_id).path.write_bytes(b"")
    engine = SegmentationEngine(project, save_models=False)
    with pytest.raises(ImageReadError, match="empty"):
        engine.predict(image_id)
    assert project.integrity_ok()


def test_reading_helpers_agree(shared_data):
    image = read_image(shared_data / "isbi2012_em_membranes" / "image" / "0.png")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8


def _border_pixels_of_objects(mask: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` object pixels next to the background: what margin's queries look like."""
    border = np.argwhere(find_boundaries(mask.astype(bool), mode="inner"))
    return border[np.random.default_rng(seed).permutation(len(border))[:count]].astype(np.float64)


def test_anchors_are_pixels_the_model_is_sure_of_spread_over_the_image(tmp_path):
    project, masks = make_project(tmp_path, n_images=1)
    image_id, mask = next(iter(masks.items()))
    add_clicks(project, image_id, mask, per_class=10)
    engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False)
    engine.train(200)
    learner, ref = engine.learner, engine.ref(image_id)
    yx, classes = learner.anchor_points(ref)
    assert 50 <= len(yx) <= learner.anchors_per_image
    probs = learner.predict_points(ref, yx)
    assert (probs.max(1) >= learner.anchor_confidence).all()
    assert np.array_equal(probs.argmax(1), classes)
    assert set(classes.tolist()) == {0, 1}
    rows, cols = (yx // 64).astype(int).T  # every quarter of the image has some
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 4
    # However many images are labelled, a fit gets at most the budget of anchors in all.
    learner.anchors_per_image = 10_000
    images = {f"copy-{i}": ImageRef(f"copy-{i}", ref.load) for i in range(4)}
    anchors = learner._anchors(images)
    assert len(anchors) == 4 and sum(len(classes) for _, classes in anchors) <= _ANCHOR_BUDGET
    # A model sure of nothing gives no anchors, and training goes on without them.
    learner.anchor_confidence = 1.01
    assert len(learner.anchor_points(ref)[0]) == 0 and learner._anchors(images) == []
    assert engine.train(50).published


def test_anchors_hold_the_model_when_new_labels_all_sit_on_borders(tmp_path):
    """The drift that anchors prevent: a second round of labels that are all object pixels on
    object borders (as uncertainty queries tend to be) makes an unanchored head call more of
    the image object; the anchored head stays where it was. The first fit, with no model yet,
    has no anchors: both heads start identical."""
    fractions = {}
    for anchors in ("off", "on"):
        folder = tmp_path / anchors
        folder.mkdir()
        project, masks = make_project(folder, n_images=1)
        image_id, mask = next(iter(masks.items()))
        add_clicks(project, image_id, mask, per_class=10)
        engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False, seed=0)
        if anchors == "off":
            engine.learner.anchors_per_image = 0
        engine.train(200)
        first = engine.predict(image_id)
        object_id = project.classes()[1].id
        project.add_labels(image_id, [(x, y, object_id) for y, x in _border_pixels_of_objects(mask, 60)])
        engine.train(200)
        fractions[anchors] = (first, first.argmax(0).mean(), engine.predict(image_id).argmax(0).mean())
        project.close()
    assert np.allclose(fractions["off"][0], fractions["on"][0])
    drift = {a: after - before for a, (_, before, after) in fractions.items()}
    # Since the head's prior favours the filters (fast.ENCODER_SHARE), border labels move even an
    # unanchored head by under 1 % of the image here (0.0065); anchors, weighing 0.3 of the
    # labels (fast._ANCHOR_WEIGHT, so that corrections win), take a quarter of that off.
    assert 0 < drift["on"] < drift["off"] * 0.9 and drift["on"] < 0.01, drift


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clicks_on_confidently_wrong_pixels_win_over_anchors(tmp_path, seed):
    """Anchors come from the model's sure answers, so they disagree with an expert exactly
    where the model is sure and wrong. The app trains ``ROUNDS_AFTER_CHANGE`` rounds after a
    change, with its own step count; after them every correction must have been learned.

    The model now makes no sure mistake on these blobs, so the expert here overrules three
    answers it is sure of, on pixels that look like their neighbours: the hardest correction
    to learn under the filters' prior (with anchors at full weight, none of the 12 was)."""
    project, masks = make_project(tmp_path, n_images=1)
    image_id, mask = next(iter(masks.items()))
    add_clicks(project, image_id, mask, per_class=10, seed=seed)
    engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False, seed=seed)
    engine.train(STEPS["fast"])
    probs = engine.predict(image_id)
    sure = np.argwhere(probs.max(0) > 0.95)
    assert len(sure) > mask.size / 2
    picks = sure[np.random.default_rng(seed).choice(len(sure), 3, replace=False)]
    wanted = [1 - int(probs[:, y, x].argmax()) for y, x in picks]
    ids = [c.id for c in project.classes()]
    project.add_labels(image_id, [(float(x), float(y), ids[c]) for (y, x), c in zip(picks, wanted)])
    for _ in range(ROUNDS_AFTER_CHANGE["fast"]):
        engine.train(STEPS["fast"])
    after = engine.predict(image_id).argmax(0)
    assert [after[y, x] == c for (y, x), c in zip(picks, wanted)] == [True] * 3
