"""Keypoint uncertainty functions and peak location, on heatmaps with known answers."""
import numpy as np
import pytest
import torch

from desktop.engine.keypoints import uncertainty as ku
from desktop.engine.keypoints.learners import locate
from desktop.engine.project.skeleton import Skeleton
from models.keypoint_head import gaussian_targets, heatmap_loss

H, W = 20, 30


def gaussian_map(x, y, sigma=1.5):
    g = gaussian_targets(torch.tensor([[[x, y]]], dtype=torch.float32), H, W, sigma)[0, 0].numpy()
    return g / g.sum()


def test_peaks_are_found_to_a_fraction_of_a_cell():
    heatmaps = np.stack([gaussian_map(4.3, 7.8), gaussian_map(20.0, 11.45), gaussian_map(0.2, 19.0)])
    xy, value = locate(heatmaps)
    cells = np.array([[4.3, 7.8], [20.0, 11.45], [0.2, 19.0]])
    pixels = (cells + 0.5) * 4 - 0.5  # image pixels, stride 4
    np.testing.assert_allclose(xy[:2], pixels[:2], atol=0.05)
    np.testing.assert_allclose(xy[2], pixels[2], atol=0.25 * 4)  # on the border: to the cell
    assert (value > 0).all()


def test_off_peak_mass_is_low_for_a_sharp_peak_and_high_for_two():
    sharp = np.zeros((H, W))
    sharp[5, 5] = 1.0
    two = 0.5 * gaussian_map(5, 5, 0.5) + 0.5 * gaussian_map(20, 15, 0.5)
    flat = np.full((H, W), 1.0 / (H * W))
    scores = ku.off_peak_mass(np.stack([sharp, two, flat]))
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(0.5, abs=0.03)
    assert scores[2] == pytest.approx(1 - 4 / (H * W))  # the first maximum is a corner: 2 x 2 cells


def test_entropy_is_zero_for_one_cell_and_one_for_no_idea():
    sharp = np.zeros((H, W))
    sharp[3, 4] = 1.0
    half = np.zeros((H, W))
    half[0, :2] = 0.5
    flat = np.full((H, W), 1.0 / (H * W))
    np.testing.assert_allclose(ku.heatmap_entropy(np.stack([sharp, half, flat])),
                               [0.0, np.log(2) / np.log(H * W), 1.0], atol=1e-9)


def test_flip_disagreement_undoes_the_mirror_and_swaps_partners():
    skeleton = Skeleton(("nose", "ear_l", "ear_r"), symmetry=((1, 2),))
    width = 100
    xy = np.array([[50.0, 10.0], [40.0, 20.0], [60.0, 20.0]])
    # The mirror image of a consistent prediction: x -> 99 - x, and the left ear is now right.
    mirrored = np.array([[49.0, 10.0], [39.0, 20.0], [59.0, 20.0]])
    np.testing.assert_allclose(ku.flip_disagreement(xy, mirrored, width, skeleton), [0, 0, 0])
    mirrored[0] += (3.0, 4.0)  # the nose 5 px off on the flipped image
    np.testing.assert_allclose(ku.flip_disagreement(xy, mirrored, width, skeleton), [5, 0, 0])
    no_swap = Skeleton(("nose", "ear_l", "ear_r"))
    np.testing.assert_allclose(ku.flip_disagreement(xy, mirrored, width, no_swap)[1:], [20, 20])


def test_plausibility_flags_the_keypoints_of_a_stretched_bone():
    rng = np.random.default_rng(0)
    reference = np.zeros((20, 3, 2))
    reference[:, 1, 0] = 10 + rng.normal(0, 0.5, 20)  # bone 0-1 about 10 px, bone 1-2 about 5 px
    reference[:, 2, 0] = reference[:, 1, 0] + 5 + rng.normal(0, 0.5, 20)
    reference[3, 2] = np.nan  # an unlabelled keypoint in one frame
    typical = np.array([[0.0, 0.0], [10.0, 0.0], [15.0, 0.0]])
    stretched = np.array([[0.0, 0.0], [10.0, 0.0], [35.0, 0.0]])
    bones = ((0, 1), (1, 2))
    assert ku.skeleton_plausibility(typical, reference, bones).max() < 3
    scores = ku.skeleton_plausibility(stretched, reference, bones)
    assert scores[2] > 10 and scores[1] == scores[2] and scores[0] < 3
    assert ku.skeleton_plausibility(stretched, reference[:2], bones).tolist() == [0, 0, 0]  # too few frames
    assert len(ku.bone_pairs(Skeleton(("a", "b", "c")))) == 3  # no edges: every pair


def test_images_rank_by_their_least_certain_keypoints_and_queries_are_pairs():
    scores = {1: np.array([0.1, 0.9, 0.1, 0.1]), 2: np.array([0.5, 0.5, 0.5, 0.5]), 3: np.array([0.0, 0.2, 0.1, 0.1])}
    assert [i for i, _ in ku.rank_images(scores, top=1)] == [1, 2, 3]
    assert [i for i, _ in ku.rank_images(scores, top=3)] == [2, 1, 3]
    assert ku.select_queries(scores, 2) == [(1, 1, 0.9), (2, 0, 0.5)]


def test_loss_ignores_absent_keypoints_and_rewards_the_right_peak():
    cells = torch.tensor([[[5.0, 6.0], [float("nan"), float("nan")]]])
    right = torch.from_numpy(np.log(np.stack([gaussian_map(5, 6), gaussian_map(15, 2)]) + 1e-9))[None].float()
    wrong = torch.from_numpy(np.log(np.stack([gaussian_map(15, 2), gaussian_map(15, 2)]) + 1e-9))[None].float()
    assert heatmap_loss(right, cells, 1.5) < heatmap_loss(wrong, cells, 1.5)
    other = right.clone()
    other[0, 1] = torch.randn(H, W)  # anything at all for the absent keypoint
    assert heatmap_loss(other, cells, 1.5) == heatmap_loss(right, cells, 1.5)


def test_spread_takes_unsure_images_that_are_unlike_each_other_and_the_labelled_ones():
    # Images 1-3 are alike (one clip) and the least sure; 4 is unlike them and a little surer;
    # 5 is as unsure as they are but looks exactly like a labelled frame.
    descriptors = {1: [0.0, 0.0], 2: [0.1, 0.0], 3: [0.0, 0.1], 4: [5.0, 5.0], 5: [9.0, 0.0]}
    uncertainty = {1: 0.9, 2: 0.85, 3: 0.8, 4: 0.5, 5: 0.9}
    labelled = [np.array([9.0, 0.0]), np.array([0.0, 9.0])]
    assert ku.spread_images(uncertainty, descriptors, labelled, 2) == [1, 4]
    by_uncertainty = [i for i, _ in sorted(uncertainty.items(), key=lambda item: (-item[1], item[0]))][:2]
    assert by_uncertainty == [1, 5]  # what ranking alone would take
    assert ku.spread_images(uncertainty, descriptors, labelled, 9) == [1, 4, 2, 3, 5]  # all, never twice
    assert ku.spread_images(uncertainty, descriptors, labelled, 0) == []


def test_spread_with_nothing_labelled_starts_from_the_least_sure_image():
    descriptors = {7: [0.0], 8: [1.0], 9: [1.1]}
    assert ku.spread_images({7: 0.2, 8: 0.3, 9: 0.25}, descriptors, [], 2) == [8, 7]


def test_spread_breaks_ties_by_uncertainty_when_a_frame_repeats_a_labelled_one():
    # Both candidates look exactly like the labelled frame: the less sure one comes first.
    assert ku.spread_images({1: 0.1, 2: 0.9}, {1: [0.0], 2: [0.0]}, [np.array([0.0])], 1) == [2]
