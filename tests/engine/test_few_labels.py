"""The first clicks must already give a good model: ten random labelled pixels per image, on real
EM membranes and real H&E nuclei, scored on an image the learner never saw (issue 18)."""
from pathlib import Path

import numpy as np
import pytest

from desktop.engine.images.pictures import read_image, read_mask
from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.segmentation.metrics import confusion, iou_per_class

from .helpers import one_thread  # noqa: F401  (fixture)


def _isbi(data: Path) -> tuple[list[Path], list[Path]]:
    folder = data / "isbi2012_em_membranes"
    names = [f"{i}.png" for i in range(6)]
    return [folder / "image" / n for n in names], [folder / "label" / n for n in names]


def _monuseg(data: Path) -> tuple[list[Path], list[Path]]:
    folder = data / "monuseg2018_test"
    images = sorted((folder / "images").glob("*.tif"))[:4]
    return images, [folder / "masks_binary" / f"{p.stem}.png" for p in images]


@pytest.mark.parametrize("dataset, floor", [(_isbi, 0.57), (_monuseg, 0.635)], ids=["isbi", "monuseg"])
def test_ten_random_pixels_per_image_already_segment_an_unseen_image(shared_data, dataset, floor):
    """Train on all images but the last with 10 random labelled pixels each, score the last.

    Measured over these 4 seeds (mean mIoU): before the encoder's channels were scaled down
    (``ENCODER_SHARE``), 0.531 on ISBI and 0.596 on MoNuSeg: the head fitted 496 deep channels
    to 50 or 30 points. Now 0.599 and 0.670. The floors sit between.
    """
    images, mask_paths = dataset(shared_data)
    if not all(p.is_file() for p in images + mask_paths) or len(images) < 4:
        pytest.skip(f"the data set of {dataset.__name__} is not complete here")
    refs = [ImageRef(str(p), lambda p=p: read_image(p)) for p in images]
    masks = [read_mask(p) for p in mask_paths]
    cache = FeatureCache(FeatureExtractor())
    scores = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        labels = []
        for ref, mask in zip(refs[:-1], masks[:-1]):
            yx = np.stack([rng.integers(mask.shape[0], size=10), rng.integers(mask.shape[1], size=10)], 1)
            labels.append(PointLabels(ref, yx.astype(np.float64), mask[yx[:, 0], yx[:, 1]]))
        learner = FastLearner(2, cache, seed=seed)
        learner.fit(labels, 300)
        predicted = learner.predict_proba(refs[-1]).argmax(0)
        scores.append(float(np.nanmean(iou_per_class(confusion(masks[-1], predicted, 2)))))
    assert np.mean(scores) > floor, scores
