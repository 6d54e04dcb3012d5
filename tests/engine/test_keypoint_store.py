"""Skeletons and keypoint labels in the project database."""
import numpy as np
import pytest

from desktop.engine.errors import ProjectError
from desktop.engine.project.skeleton import Skeleton, SkeletonError
from desktop.engine.project.store import Project

from .helpers import blob_image

SKELETON = Skeleton.from_names(["nose", "ear_l", "ear_r", "tail"], edges=[("nose", "ear_l"), ("nose", "ear_r")],
                               symmetry=[("ear_l", "ear_r")])


@pytest.fixture
def project(tmp_path):
    project = Project.create(tmp_path / "p", task="keypoints")
    project.set_skeleton(SKELETON)
    blob_image(tmp_path / "a.png", 64)
    project.image_id = project.add_image(tmp_path / "a.png", 64, 64)
    yield project
    project.close()


def test_skeleton_survives_reopening_and_reordering(project):
    assert project.skeleton() == SKELETON
    reordered = Skeleton.from_names(["tail", "nose", "ear_r", "ear_l", "paw"], edges=[("nose", "ear_l")],
                                    symmetry=[("ear_l", "ear_r")])
    project.set_keypoint_label(project.image_id, 0, 5.0, 6.0)  # nose
    project.set_skeleton(reordered)
    with Project.open(project.folder) as again:
        assert again.skeleton() == reordered
        xy, vis = again.keypoint_arrays(project.image_id)
    assert list(vis) == ["", "visible", "", "", ""]  # the nose label follows its keypoint
    np.testing.assert_array_equal(xy[1], [5.0, 6.0])
    assert reordered.flip_permutation().tolist() == [0, 1, 3, 2, 4]


def test_labelled_keypoints_cannot_be_removed_but_can_be_renamed(project):
    project.set_keypoint_label(project.image_id, 3, 1.0, 1.0)
    with pytest.raises(ProjectError, match=r"cannot be removed: 'tail' \(1 label\)"):
        project.set_skeleton(Skeleton(("nose", "ear_l", "ear_r")))
    assert project.skeleton() == SKELETON
    project.rename_keypoint("tail", "tail_base")
    assert project.skeleton().names[3] == "tail_base"
    with pytest.raises(ProjectError, match="already a keypoint called 'nose'"):
        project.rename_keypoint("tail_base", "nose")


def test_bad_skeletons_are_refused():
    with pytest.raises(SkeletonError, match="repeated: a"):
        Skeleton(("a", "b", "a"))
    with pytest.raises(SkeletonError, match="unknown keypoint: c"):
        Skeleton.from_names(["a", "b"], edges=[("a", "c")])
    with pytest.raises(SkeletonError, match="only one symmetric partner"):
        Skeleton(("a", "b", "c"), symmetry=((0, 1), (0, 2)))
    with pytest.raises(SkeletonError, match="two different keypoints"):
        Skeleton(("a", "b"), edges=((1, 1),))


def test_move_is_delete_plus_add_and_undoes_like_segmentation(project):
    first, replaced = project.set_keypoint_label(project.image_id, 1, 10.0, 12.0, "visible")
    assert replaced == []
    moved, replaced = project.set_keypoint_label(project.image_id, 1, 20.0, 22.0, "occluded")
    assert replaced == [first]
    xy, vis = project.keypoint_arrays(project.image_id)
    np.testing.assert_array_equal(xy[1], [20.0, 22.0])
    assert vis[1] == "occluded"
    project.delete_label(moved)  # undo the move
    project.restore_label(first)
    xy, vis = project.keypoint_arrays(project.image_id)
    np.testing.assert_array_equal(xy[1], [10.0, 12.0])
    assert vis[1] == "visible" and len(project.keypoint_labels(project.image_id)) == 1


def test_absent_has_no_position_and_unlabelled_is_empty(project):
    project.set_keypoint_label(project.image_id, 2, 7.0, 8.0, "absent")
    xy, vis = project.keypoint_arrays(project.image_id)
    assert list(vis) == ["", "", "absent", ""]
    assert np.isnan(xy).all()
    assert project.label_arrays(project.image_id)[0].size == 0  # not a segmentation label


def test_bad_keypoint_labels_write_nothing(project):
    with pytest.raises(ProjectError, match="Unknown visibility"):
        project.set_keypoint_labels([(project.image_id, 0, 1.0, 1.0, "visible"),
                                     (project.image_id, 1, 1.0, 1.0, "hidden")])
    with pytest.raises(ProjectError, match="No keypoint 4"):
        project.set_keypoint_label(project.image_id, 4, 1.0, 1.0)
    with pytest.raises(ProjectError, match="needs a position"):
        project.set_keypoint_label(project.image_id, 0, float("nan"), 1.0, "occluded")
    assert project.label_count() == 0 and project.label_revision() == 0
