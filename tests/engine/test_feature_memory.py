"""Memory and the feature cache (issue 19, item 6): the maps in memory stay within their budget,
a map that left memory is read back from disk rather than computed again, and a training round
on more labelled images than the budget holds computes no map at all."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor, default_feature_budget, sample_points
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine

from .helpers import blob_image, clicks_from_mask, one_thread  # noqa: F401  (fixture)

SIZE = 96


class CountingExtractor(FeatureExtractor):
    """The real extractor, counting the maps it computes."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        return super().__call__(image)


@pytest.fixture(scope="module")
def extractor():
    return CountingExtractor()


@pytest.fixture
def images(tmp_path):
    """Four textured pictures with discs, as ImageRefs, and their masks."""
    refs, masks = [], []
    for i in range(4):
        path = tmp_path / f"blobs{i}.png"
        masks.append(blob_image(path, SIZE, seed=i))
        pixels = np.repeat(cv2.imread(str(path), 0)[..., None], 3, axis=2)
        refs.append(ImageRef(f"image-{i}", lambda p=pixels: p))
    return refs, masks


def _map_bytes(extractor, ref) -> int:
    return extractor(ref.load()).nbytes


def test_maps_in_memory_stay_within_the_budget_and_come_back_from_disk(tmp_path, extractor, images):
    refs, _ = images
    one = _map_bytes(extractor, refs[0])
    cache = FeatureCache(extractor, budget_bytes=int(1.5 * one), folder=tmp_path / "features",
                         disk_budget_bytes=3 * one)
    first = [cache.get(r.key, r.load) for r in refs]
    assert cache.nbytes <= cache.budget_bytes and cache.nbytes == one
    on_disk = sum(p.stat().st_size for p in (tmp_path / "features").rglob("*") if p.is_file())
    assert one * 3 <= on_disk <= one * 3 + 1024  # the disk budget: the oldest map's file went
    extractor.calls = 0
    again = [cache.get(r.key, r.load) for r in refs[1:]]  # each left memory; read back, not computed
    assert extractor.calls == 0
    for a, b in zip(first[1:], again):
        assert torch.equal(a.values, b.values) and torch.equal(a.fine, b.fine)
        assert (a.height, a.width) == (b.height, b.width)
    cache.get(refs[0].key, refs[0].load)  # beyond the disk budget: computed again
    assert extractor.calls == 1
    cache.discard(refs[0].key)
    assert refs[0].key not in cache and refs[3].key in cache


class WatchedExtractor(FeatureExtractor):
    """The real extractor, noting the bytes of maps its cache holds whenever it computes one."""

    def __init__(self):
        super().__init__()
        self.cache, self.held = None, []

    def __call__(self, image):
        self.held.append(self.cache.nbytes)
        return super().__call__(image)


def test_room_is_made_in_memory_before_a_map_is_computed_not_after(tmp_path, images):
    """The map being computed counts against the budget: the maps kept, the new one and the
    encoder's temporaries were all in memory at once (at 2048 x 2048 a map is 0.3 GB)."""
    refs, _ = images
    extractor = WatchedExtractor()
    one = extractor.map_nbytes(SIZE, SIZE)
    cache = FeatureCache(extractor, budget_bytes=2 * one, folder=tmp_path / "features")
    extractor.cache = cache
    maps = [cache.get(r.key, r.load) for r in refs]
    assert maps[0].nbytes == one
    assert extractor.held == [0, one, one, one]  # was 0, one, 2 one, 2 one: the third map beside two kept
    assert cache.nbytes == 2 * one and refs[0].key in cache  # what left memory is read back from disk


def test_each_cache_spills_to_a_folder_of_its_own_and_clears_what_ended_processes_left(tmp_path, extractor, images):
    """Two engines on one project (a test, a command beside a window) each emptied the one shared
    folder when they opened: the other's next read of a map found no file."""
    refs, _ = images
    parent = tmp_path / "features"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True).stdout.strip()
    (parent / f"{ended}-0badc0de").mkdir(parents=True)  # a crashed session's maps
    (parent / f"{ended}-0badc0de" / "image-9").write_bytes(b"map")
    (parent / "image-8").write_bytes(b"map")  # a file of the layout before: maps straight in the folder
    cache = FeatureCache(extractor, budget_bytes=0, folder=parent)
    first = cache.get(refs[0].key, refs[0].load)
    other = FeatureCache(extractor, budget_bytes=0, folder=parent)
    assert refs[0].key not in other
    left = sorted(p.name.split("-")[0] for p in parent.iterdir())
    assert left == [str(os.getpid())] * 2
    extractor.calls = 0
    again = cache.get(refs[0].key, refs[0].load)  # read back from its own folder: the second left it alone
    assert extractor.calls == 0 and torch.equal(first.values, again.values)


def test_the_default_budget_follows_the_machines_memory():
    import psutil
    total = psutil.virtual_memory().total
    assert default_feature_budget() == min(4 << 30, max(256 << 20, total // 12))


def _labels(refs, masks, per_class, seed):
    return [PointLabels(ref, np.array([(y, x) for x, y, _ in clicks], np.float64),
                        np.array([c for _, _, c in clicks]))
            for ref, mask in zip(refs, masks) for clicks in [clicks_from_mask(mask, per_class, seed)]]


def test_training_rounds_beyond_the_budget_compute_no_map_again(tmp_path, extractor, images):
    """Before, a budget holding 1 of 4 labelled maps made every round compute all four again
    (least recently used eviction under cyclic access); now a round reads kept points."""
    refs, masks = images
    one = _map_bytes(extractor, refs[0])
    labels = _labels(refs, masks, 5, seed=0)
    more = [PointLabels(a.image, np.concatenate([a.yx, b.yx]), np.concatenate([a.classes, b.classes]))
            for a, b in zip(labels, _labels(refs, masks, 5, seed=1))]
    for folder in (None, tmp_path / "features"):
        learner = FastLearner(2, FeatureCache(extractor, budget_bytes=one, folder=folder), seed=0)
        extractor.calls = 0
        learner.fit(labels, 30)
        first = extractor.calls
        # Each map once: the input statistics, the labels and the anchor pool are drawn from it
        # together (a pass for the statistics first computed every map twice without a folder).
        assert first == 4
        for _ in range(3):  # with a model now: anchors too, from the kept pools
            learner.fit(labels, 30)
        assert extractor.calls == first
        learner.fit(more, 30)  # new points need their image's map once
        assert extractor.calls == first + (0 if folder else 4)
        # Validation keeps the held-back labels' features too: each map once, then none.
        held_back = _labels(refs, masks, 3, seed=2)
        scored = learner.predict_labels(held_back)
        assert extractor.calls == first + (0 if folder else 8)
        for _ in range(2):
            again = learner.predict_labels(held_back)
            assert extractor.calls == first + (0 if folder else 8)
            assert all(np.array_equal(a, b) for a, b in zip(again, scored))
        for lab, probs in zip(held_back, scored):  # what prediction gives at those pixels
            assert probs.shape == (6, 2)
            np.testing.assert_allclose(probs, learner.predict_points(lab.image, lab.yx), atol=1e-6)


def test_kept_pools_are_the_maps_features_and_labels_exactly_so(extractor, images):
    refs, masks = images
    cache = FeatureCache(extractor, budget_bytes=0)
    learner = FastLearner(2, cache, seed=0)
    fmap = extractor(refs[0].load())
    pool_yx, pool = learner.points.pool(refs[0], 50)
    assert torch.allclose(pool, sample_points(fmap, pool_yx), rtol=1e-3, atol=1e-3)  # float16
    assert np.array_equal(learner.points.pool(refs[0], 20)[0], pool_yx[:20])  # a smaller pool: a prefix
    learner.points.retain({refs[1].key})
    assert learner.points.nbytes == 0
    # The labels' features (``LabelFeatures``, kept by position when labels have no ids) are exact.
    labels = _labels(refs[:1], masks[:1], 5, seed=0)
    for _ in range(2):
        learner.fit(labels, 5)
        store, rows = learner.label_features.gather(labels, lambda image, yx: fmap)
        assert torch.equal(store[torch.from_numpy(rows)], sample_points(fmap, labels[0].yx))


def test_an_engine_keeps_evicted_maps_in_the_projects_cache_folder(tmp_path):
    project = Project.create(tmp_path / "project", classes=[("background", "#0000ff", "1"),
                                                            ("object", "#ff0000", "2")])
    ids = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        mask = blob_image(path, SIZE, seed=i)
        ids.append(project.add_image(path, SIZE, SIZE))
        for x, y, c in clicks_from_mask(mask, 3, seed=i):
            project.add_label(ids[-1], x, y, project.classes()[c].id)
    engine = SegmentationEngine(project, validation_fraction=0.0, save_models=False, feature_budget_bytes=0)
    engine.train(20)
    for image_id in ids:
        engine.predict(image_id)
    own, = (project.cache_dir / "features").iterdir()
    assert {p.name.split("#")[0] for p in own.iterdir()} == {f"image-{i}" for i in ids}
    project.close()
