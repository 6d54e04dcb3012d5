"""Keypoint learners learn real keypoints; the deep learner's augmentation keeps labels right."""
import numpy as np
import pytest
import torch

from desktop.engine.images.pictures import read_image
from desktop.engine.keypoints.formats import read_dlc_csv
from desktop.engine.keypoints.learners import DeepKeypointLearner, FastKeypointLearner, KeypointLabels, locate
from desktop.engine.learning.base import ImageRef
from desktop.engine.learning.features import FeatureCache, FeatureExtractor

from .helpers import one_thread  # noqa: F401 (autouse)
from .keypoint_data import MIRROR_CSV, MIRROR_MOUSE, synthetic_table


def training_frames(tmp_path, n):
    """(refs, xy) of ``n`` real mirror-mouse frames, or of synthetic ones without the data."""
    if MIRROR_CSV.is_file():
        table, root = read_dlc_csv(MIRROR_CSV), MIRROR_MOUSE
    else:
        table, root = synthetic_table(tmp_path, n), tmp_path
    refs = [ImageRef(name, lambda p=root / name: read_image(p)) for name in table.images[:n]]
    return refs, table.xy[:n], table.skeleton


def read_image_size(ref):
    return ref.load().shape[:2]


def rmse(errors):
    return float(np.sqrt(np.nanmean(errors ** 2)))


def test_fast_learner_fits_labelled_frames_far_better_than_the_mean_pose(tmp_path):
    refs, truth, skeleton = training_frames(tmp_path, 3)
    learner = FastKeypointLearner(skeleton, FeatureCache(FeatureExtractor()), seed=0)
    labels = [KeypointLabels(ref, xy) for ref, xy in zip(refs, truth)]
    labels[0].xy[1] = np.nan  # an absent keypoint: no loss, and no error
    report = learner.fit(labels, steps=60)
    assert np.isfinite(report.loss)
    predicted = np.array([locate(learner.predict_heatmaps(ref))[0] for ref in refs])
    model = rmse(np.linalg.norm(predicted - truth, axis=2))
    mean_pose = rmse(np.linalg.norm(np.nanmean(truth, axis=0) - truth, axis=2))
    print(f"RMSE {model:.2f} px, mean pose {mean_pose:.2f} px")
    assert model < 8.0 and model < mean_pose / 5, (model, mean_pose)
    heatmaps = learner.predict_heatmaps(refs[0])
    height, width = read_image_size(refs[0])
    assert heatmaps.shape == (len(skeleton), -(-height // 4), -(-width // 4))  # the stride-4 grid
    np.testing.assert_allclose(heatmaps.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    restored = FastKeypointLearner(skeleton, learner.cache, seed=1)
    restored.load_state_dict(learner.state_dict())
    np.testing.assert_allclose(restored.predict_heatmaps(refs[0]), heatmaps, atol=1e-6)
    older = learner.state_dict()  # as the head saved them before it had a second stage
    older["head"] = {key: value for key, value in older["head"].items() if not key.startswith("context.")}
    fresh = FastKeypointLearner(skeleton, learner.cache, seed=1)
    untouched = {key: value.clone() for key, value in fresh.head.state_dict().items()}
    with pytest.raises(ValueError, match="another version"):
        fresh.load_state_dict(older)
    assert all(torch.equal(value, untouched[key]) for key, value in fresh.head.state_dict().items())
    assert not fresh.trained


@pytest.fixture(scope="module")
def deep_learner():
    from desktop.engine.project.skeleton import Skeleton

    skeleton = Skeleton(("left", "right", "tail"), symmetry=((0, 1),))
    return DeepKeypointLearner(skeleton, device="cpu", seed=0, batch=2)


def test_augmentation_moves_labels_with_the_pixels_and_swaps_partners_on_flips(tmp_path, deep_learner):
    table = synthetic_table(tmp_path, 1, size=96)
    image = read_image(tmp_path / table.images[0])
    colours = [tuple(image[int(y), int(x)] > 150) for x, y in table.xy[0]]  # red, green, blue discs
    seen = set()
    for _ in range(12):
        pixels, xy = deep_learner.augment(image, table.xy[0])
        at = [tuple(pixels[int(round(y)), int(round(x))] > 150) for x, y in xy]
        assert at in ([colours[0], colours[1], colours[2]], [colours[1], colours[0], colours[2]])
        seen.add(at[0] == colours[0])
    assert seen == {True, False}  # flipped sometimes, and then 'left' sits on the old right disc


def test_deep_learner_trains_and_predicts_probability_maps(tmp_path, deep_learner):
    table = synthetic_table(tmp_path, 2, size=64)
    refs = [ImageRef(n, lambda p=tmp_path / n: read_image(p)) for n in table.images]
    xy = table.xy.copy()
    xy[1, 2] = np.nan
    report = deep_learner.fit([KeypointLabels(r, p) for r, p in zip(refs, xy)], steps=2)
    assert report.steps == 2 and np.isfinite(report.loss)
    heatmaps = deep_learner.predict_heatmaps(refs[0])
    assert heatmaps.shape == (3, 16, 16)
    np.testing.assert_allclose(heatmaps.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    described = deep_learner.describe(refs[0])  # what the spread strategy measures distances in
    assert described.shape == (deep_learner.net.encoder.channels[-1],) and np.isfinite(described).all()


def test_fast_head_can_place_a_keypoint_where_nothing_in_the_features_marks_it():
    """Position channels: on features that are the same everywhere, the head still learns
    where a keypoint tends to be (a fixed camera's view). Without them its output would be the
    same in every cell but those at the border."""
    from models.keypoint_head import FastHeatmapHead, decode_peaks, heatmap_loss

    torch.manual_seed(0)
    head = FastHeatmapHead(in_channels=8, num_keypoints=1, dims=8, hidden=16, dropout=0.0)
    flat = torch.zeros(1, 8, 20, 24)
    target = torch.tensor([[[15.0, 6.0]]])  # cell x = 15, y = 6
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        loss = heatmap_loss(head(flat), target, sigma=1.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    peak, _ = decode_peaks(torch.softmax(head(flat).flatten(2), -1).view(1, 1, 20, 24)[0])
    assert torch.linalg.norm(peak[0] - target[0, 0]) < 1.5, peak


def _lookalike_scene(rng, size=48, offset=12):
    """Features where keypoint 1 (a 'paw') looks exactly like a decoy elsewhere: which of the
    two look-alikes it is follows only from keypoint 0 (a unique mark), 'offset' cells to its left."""
    features = torch.zeros(4, size, size)
    mark = np.array([rng.integers(4, size - offset - 4), rng.integers(4, size - 4)])
    paw = mark + [offset, 0]
    while True:  # drawn as the paw is, so that where it is in the frame says nothing
        decoy = np.array([rng.integers(4, size - offset - 4), rng.integers(4, size - 4)]) + [offset, 0]
        if np.abs(decoy - paw).max() > 16 and np.abs(decoy - mark).max() > 8:
            break
    features[0, mark[1], mark[0]] = 4.0
    features[1, paw[1], paw[0]] = 4.0
    features[1, decoy[1], decoy[0]] = 4.0
    return features, torch.tensor(np.stack([mark, paw]), dtype=torch.float32)


def test_skeleton_context_tells_a_keypoint_from_its_lookalike_by_where_the_others_are():
    """The second stage reads where every keypoint's first-stage heatmap is: a paw that looks
    exactly like a decoy is found by its place beside the mark. The first stage, which sees only
    how each place looks (and where it is in the frame), is right about half of the time."""
    from models.keypoint_head import FastHeatmapHead, decode_peaks, heatmap_loss, spatial_softmax

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    head = FastHeatmapHead(in_channels=4, num_keypoints=2, dims=4, hidden=16, dropout=0.0)
    train = [_lookalike_scene(rng) for _ in range(32)]
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for step in range(400):
        features, cells = train[step % len(train)]
        loss = sum(heatmap_loss(logits, cells[None], 1.0) for logits in head.stages(features[None]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    first_right = final_right = 0
    with torch.no_grad():
        for _ in range(40):
            features, cells = _lookalike_scene(rng)
            first, final = head.stages(features[None])
            for logits, tally in ((first, "first"), (final, "final")):
                peaks, _ = decode_peaks(spatial_softmax(logits)[0])
                right = bool(torch.linalg.norm(peaks[1] - cells[1]) < 2)
                first_right += right and tally == "first"
                final_right += right and tally == "final"
    assert final_right >= 36, final_right
    assert first_right <= 28, first_right


@pytest.mark.parametrize("height, width", [(48, 64), (99, 102), (45, 51)])
def test_skeleton_context_corrects_the_coarse_cell_it_read(height, width):
    """With the second stage wired to hand a keypoint's pooled heatmap straight back, the
    correction peaks over the 8 x 8 block of cells that holds the first stage's peak, on maps
    of any size (a map that is not a whole number of blocks must not stretch the correction)."""
    from models.keypoint_head import SkeletonContext

    context = SkeletonContext(num_keypoints=1, width=1)
    with torch.no_grad():
        for layer in (context.gather, context.spread, context.correct):
            layer.weight.zero_()
            layer.bias.zero_()
            centre = layer.kernel_size[0] // 2
            layer.weight[0, 0, centre, centre] = 1.0
    for y, x in [(0, 0), (height - 1, width - 1), (height // 2, 5), (height - 3, width // 3)]:
        logits = torch.full((1, 1, height, width), -30.0)
        logits[0, 0, y, x] = 30.0
        with torch.no_grad():
            correction = (context(logits) - logits)[0, 0]
        peak = int(correction.argmax())
        assert (peak // width // 8, peak % width // 8) == (y // 8, x // 8), (y, x, divmod(peak, width))
