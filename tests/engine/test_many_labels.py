"""A training round and a query proposal cost what changed, not everything stored (issue 19, item
5): a round gathers the features of the new labels only, shuffles them once when there are more
than a batch, and validates on a bounded sample of the held-back labels; a proposal is kept apart
from a bounded number of labelled pixels; none changes what the learner learns from few labels."""
import numpy as np
import pytest
import torch

from desktop.engine.images.pictures import read_image
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import _BATCH, FastLearner, _cyclic
from desktop.engine.learning.features import FeatureCache, FeatureExtractor, sample_points
from desktop.engine.learning.label_features import LabelFeatures
from desktop.engine.learning.task_engine import VALIDATION_SAMPLE, is_validation, validation_sample
from desktop.engine.project.live_labels import LiveLabels
from desktop.engine.project.store import Project
from desktop.engine.segmentation import selection
from desktop.engine.segmentation.engine import SegmentationEngine

from .helpers import blob_image, clicks_from_mask, one_thread  # noqa: F401  (fixture)

CLASSES = [("background", "#0000ff", "1"), ("object", "#ff0000", "2")]


def test_a_round_gathers_the_features_of_the_new_labels_only(tmp_path):
    project = Project.create(tmp_path / "project", classes=CLASSES)
    mask = blob_image(tmp_path / "blobs.png", size=128)
    image_id = project.add_image(tmp_path / "blobs.png", 128, 128)
    class_ids = [c.id for c in project.classes()]

    def add(clicks):
        return np.array([project.add_label(image_id, x, y, class_ids[c]) for x, y, c in clicks])

    def training(ids):
        return set(ids[~is_validation(ids, engine.validation_fraction)].tolist())

    first = add(clicks_from_mask(mask, 40, seed=0))
    engine = SegmentationEngine(project, save_models=False)
    engine.train(20)
    assert set(engine.learner.label_features.gathered.tolist()) == training(first)
    more = add(clicks_from_mask(mask, 3, seed=1))
    engine.train(20)  # the anchors of the trained model come too: drawn from their pools, not kept
    assert set(engine.learner.label_features.gathered.tolist()) == training(more)
    project.delete_label(int(sorted(training(first))[0]))
    engine.train(20)
    assert len(engine.learner.label_features.gathered) == 0
    project.restore_label(int(sorted(training(first))[0]))  # its features went with the round after the delete
    engine.train(20)
    assert engine.learner.label_features.gathered.tolist() == [sorted(training(first))[0]]


@pytest.mark.parametrize("count", [60, _BATCH + 500], ids=["one batch", "more than a batch"])
def test_labels_known_by_id_train_the_same_head_as_labels_gathered_afresh(tmp_path, count):
    """Fits on labels with ids (kept features) and on the same labels without: equal weights."""
    mask = blob_image(tmp_path / "blobs.png", size=128)
    image = ImageRef("blobs", lambda: read_image(tmp_path / "blobs.png"))
    rng = np.random.default_rng(0)
    yx = rng.uniform(0, 127, (count + 20, 2))
    classes = mask[np.round(yx[:, 0]).astype(int), np.round(yx[:, 1]).astype(int)].astype(np.int64)
    ids = np.arange(1, len(yx) + 1) * 3
    cache = FeatureCache(FeatureExtractor())

    def learner(with_ids: bool) -> FastLearner:
        out = FastLearner(2, cache, seed=0)  # seeds torch's generator too (dropout): one learner at a time
        for upto in (count, count + 10, count + 20):  # new labels each fit; the first one gone in the last
            chosen = slice(1 if upto == count + 20 else 0, upto)
            out.fit([PointLabels(image, yx[chosen], classes[chosen], ids[chosen] if with_ids else None)], 15)
        return out

    kept, afresh = learner(True).head.state_dict(), learner(False).head.state_dict()
    for name in afresh:
        assert torch.equal(kept[name], afresh[name]), name


def test_queries_are_kept_apart_from_a_bounded_number_of_labelled_pixels():
    """With 25,000 labelled pixels on an image, the embedding is asked for the candidates and
    ``KNOWN_LIMIT`` labelled pixels spread over them; with few, for every one of them."""
    rng = np.random.default_rng(0)
    scores = rng.random((512, 512))
    asked = []

    def embed(yx):
        asked.append(len(yx))
        return np.stack([yx[:, 0] / 512, yx[:, 1] / 512, np.sin(yx[:, 0] / 20)], 1)

    for labelled in (rng.uniform(0, 511, (25_000, 2)), rng.uniform(0, 511, (40, 2))):
        picks = selection.choose_queries(scores, 8, np.random.default_rng(1), embed, labelled=labelled,
                                         min_distance=8)
        assert len(picks) == 8
    pool = len(selection.uncertain_pool(scores, np.random.default_rng(1)))
    candidates = pool + pool // selection.COVERAGE_SHARE
    assert asked == [candidates + selection.KNOWN_LIMIT, candidates + 40]


def test_the_nearest_squared_distance_is_the_distance_written_out():
    rng = np.random.default_rng(0)
    x, known = rng.normal(size=(300, 16)), rng.normal(size=(5000, 16))
    known[7] = x[3]  # an exact match is at distance 0, not a hair below
    written_out = np.min(((x[:, None, :] - known[None]) ** 2).sum(-1), axis=1)
    found = selection.nearest_squared_distance(x, known)
    assert found[3] == 0.0
    np.testing.assert_allclose(found, written_out, rtol=1e-9, atol=1e-9)


def test_kept_features_are_those_gathered_afresh_through_deletes_labels_without_ids_and_unkept_rows(tmp_path):
    """Whatever was kept, moved or written over, each label's row holds its own features."""
    blob_image(tmp_path / "blobs.png", size=128)
    image = ImageRef("blobs", lambda: read_image(tmp_path / "blobs.png"))
    fmap = FeatureCache(FeatureExtractor()).get(image.key, image.load)
    rng = np.random.default_rng(0)
    yx, ids = rng.uniform(0, 127, (6000, 2)), np.arange(6000) * 2 + 1
    kept = LabelFeatures()
    for chosen in (np.arange(5000), np.r_[4900:5000, 5000:5010], np.r_[4950:5010, 5500:6000], np.arange(6000)):
        others = PointLabels(ImageRef("anchors", image.load), rng.uniform(0, 127, (300, 2)), np.zeros(300, np.int64))
        labels = [others, PointLabels(image, yx[chosen], np.zeros(len(chosen), np.int64), ids[chosen]), others]
        store, rows = kept.gather(labels, lambda image, yx: fmap)
        unkept = torch.randn(40, store.shape[1])  # as the anchors' features are written after them
        store, unkept_rows = kept.add_unkept([unkept[:30], unkept[30:]])
        expected = torch.cat([sample_points(fmap, lab.yx) for lab in labels] + [unkept])
        assert torch.equal(store[torch.from_numpy(np.concatenate([rows, unkept_rows]))], expected)
    assert len(kept.gathered) == 6000 - 60 - 500  # the last call gathered the labels not kept by the one before


def test_live_labels_follow_the_store_and_read_again_only_what_changed(tmp_path):
    project = Project.create(tmp_path / "project", classes=CLASSES + [("third", "#00ff00", "3")])
    for name in ("a.png", "b.png"):
        blob_image(tmp_path / name, size=64)
    first, second = (project.add_image(tmp_path / name, 64, 64) for name in ("a.png", "b.png"))
    background, blob, third = (c.id for c in project.classes())
    project.add_labels(first, [(float(i), 2.0 * i % 60, background if i % 3 else blob) for i in range(50)])
    project.add_labels(second, [(3.0, 4.0, third)])
    live = LiveLabels(project)

    def agree():
        for image_id in (first, second):
            for mine, stored in zip(live.arrays(image_id), project.label_arrays(image_id)):
                np.testing.assert_array_equal(mine, stored)

    agree()
    untouched = live.arrays(second)
    new = project.add_labels(first, [(5.5, 6.5, blob), (7.0, 8.0, background)])
    project.delete_label(3)
    project.delete_label(new[0])
    project.restore_label(new[0])
    agree()
    assert live.arrays(second) is untouched  # nothing of it changed: not read again
    project.add_label(second, 1.0, 1.0, blob)
    agree()
    project.edit_classes([(blob, "blob", "#ff0000", "2"), (third, "third", "#00ff00", "3")],
                         merges={background: blob})  # every class moves up one, the third's labels untouched
    agree()


def test_validation_scores_a_fixed_sample_of_the_held_back_labels_when_they_are_many():
    """Up to ``limit`` held-back labels, all of them; above, ``limit`` chosen by id alone: the same
    whatever the order, and a new label changes the sample by at most one label."""
    ids = np.random.default_rng(0).permutation(np.arange(1, 20_001) * 7)
    assert validation_sample(ids[:300], limit=300).all()
    chosen = validation_sample(ids, limit=300)
    assert chosen.sum() == 300
    sample = set(ids[chosen].tolist())
    shuffled = ids[::-1]
    assert set(shuffled[validation_sample(shuffled, limit=300)].tolist()) == sample
    grown = np.append(ids, [140_007, 140_014])
    assert len(sample - set(grown[validation_sample(grown, limit=300)].tolist())) <= 2
    by_thousand = np.histogram(ids[chosen], bins=10, range=(0, 140_007))[0]
    assert by_thousand.min() > 300 / 10 / 2  # spread over the ids, not the lowest ones


def test_a_round_validates_on_the_sample_and_counts_every_held_back_label(tmp_path):
    project = Project.create(tmp_path / "project", classes=CLASSES)
    mask = blob_image(tmp_path / "blobs.png", size=128)
    image_id = project.add_image(tmp_path / "blobs.png", 128, 128)
    class_ids = [c.id for c in project.classes()]
    yx = np.random.default_rng(0).uniform(0, 127, (12_000, 2))
    ids = np.array(project.add_labels(image_id, [(x, y, class_ids[mask[round(y), round(x)]]) for y, x in yx]))
    engine = SegmentationEngine(project, save_models=False, validation_fraction=0.5)
    train, val, n_train, n_val = engine.labelled_sets()
    held = ids[is_validation(ids, 0.5)]
    assert n_val == len(held) > VALIDATION_SAMPLE and n_train == len(ids) - len(held)
    assert sum(len(p.ids) for p in val) == VALIDATION_SAMPLE
    assert set(np.concatenate([p.ids for p in val]).tolist()) == set(held[validation_sample(held)].tolist())
    assert not set(np.concatenate([p.ids for p in train]).tolist()) & set(held.tolist())


def test_more_labels_than_a_batch_are_shuffled_once_and_walked_through_a_batch_at_a_time():
    rows = torch.arange(10).float()[:, None]
    assert torch.equal(_cyclic(rows, 4, 4), rows[4:8])
    assert _cyclic(rows, 4, 4)._base is not None  # a view, no copy
    assert torch.equal(_cyclic(rows, 28, 4), torch.cat([rows[8:], rows[:2]]))  # round the end, from row 28 % 10
    learner = FastLearner(2, FeatureCache(FeatureExtractor()), seed=0)
    learner.head.mean.fill_(1.0)
    learner.head.std.fill_(2.0)
    store = torch.randn(50, learner.head.mean.shape[0])
    kept = torch.arange(40, 0, -1)  # the rows of the labels, in the store
    feats, targets, weight = learner._shuffle(store, kept, torch.arange(40), torch.arange(40.0))
    assert sorted(targets.tolist()) == list(range(40)) and targets.tolist() != list(range(40))
    assert torch.equal(weight, targets.float())
    assert torch.allclose(feats, (store[kept[targets]] - 1.0) / 2.0)
