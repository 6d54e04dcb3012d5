"""Changing a project's classes (and a keypoint project's skeleton) after it was made: the store
checks an edit as a whole and makes it all or nothing, a merge moves the labels as label
operations, and a model made for the old classes is never loaded for the new ones."""
import numpy as np
import pytest

from desktop.engine.errors import ProjectError
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine

from .helpers import blob_image, clicks_from_mask, one_thread, trained_project  # noqa: F401 (fixture)


def rows(project):
    return [(c.id, c.name, c.colour, c.key) for c in project.classes()]


@pytest.fixture
def project(tmp_path):
    with Project.open(trained_project(tmp_path, pictures=2)) as opened:
        yield opened


def test_rename_recolour_rekey_and_swap_keep_ids_and_the_model(project):
    (bg, _, _, _), (cell, _, _, _) = rows(project)
    revision, oldest = project.label_revision(), project.models_from_version()
    project.edit_classes([(cell, "cell", "#00ff00", "c"), (bg, " background ", "#123456", "1")])  # swapped order
    assert rows(project) == [(cell, "cell", "#00ff00", "c"), (bg, "background", "#123456", "1")]
    project.edit_classes([(cell, "background", "#00ff00", None), (bg, "cell", "#123456", None)])  # swapped names
    assert [(c.name, c.index) for c in project.classes()] == [("background", 0), ("cell", 1)]
    assert project.label_revision() == revision and project.models_from_version() == oldest  # nothing to retrain


BAD = [
    ([(None, "", "#ffffff", None)], "has no name"),
    ([(None, "a", "#fff", None), (None, "b", "#000000", None)], "give it as #rrggbb"),
    ([(None, "a", "#ffffff", None), (None, "A", "#000000", None)], "Two classes are called 'A'"),
    ([(None, "a", "#ffffff", "x"), (None, "b", "#000000", "X")], "'a' and 'b' would both have the key X"),
    ([(None, "a", "#ffffff", "4"), (None, "b", "#000000", None)], "'a' and 'b' would both have the key 4"),
    ([(None, "a", "#ffffff", "1")], "'background' and 'a' would both have the key 1"),
    ([(None, "a", "#ffffff", "ab")], "a class's key is one character"),
    ([], "at least one class"),
]


@pytest.mark.parametrize("edit, why", BAD, ids=[why for _, why in BAD])
def test_a_bad_edit_says_why_and_changes_nothing(project, edit, why):
    before, labels = rows(project), project.labels()
    kept = [(cid, name, colour, key) for cid, name, colour, key in before]
    with pytest.raises(ProjectError, match=why):
        project.edit_classes(kept + edit if edit else [])
    assert rows(project) == before and project.labels() == labels


def test_a_class_cannot_vanish_nor_be_merged_into_one_that_goes(project):
    (bg, *bg_rest), (cell, *cell_rest) = rows(project)
    with pytest.raises(ProjectError, match="'cell' is neither kept nor merged"):
        project.edit_classes([(bg, *bg_rest)])
    with pytest.raises(ProjectError, match="merged into a class that is not kept"):
        project.edit_classes([(bg, *bg_rest)], merges={cell: cell})
    assert [c.id for c in project.classes()] == [bg, cell]


def test_a_merge_moves_the_live_labels_as_operations_and_removes_the_class(project):
    (bg, *bg_rest), (cell, *_) = rows(project)
    image_id = project.images()[0].id
    gone = project.labels(image_id)[-1]
    project.delete_label(gone.id)  # a deleted label of a merged class follows it too
    counts, revision = project.class_label_counts(), project.label_revision()
    project.edit_classes([(bg, *bg_rest)], merges={cell: bg})
    assert [c.id for c in project.classes()] == [bg]
    assert project.class_label_counts() == {bg: counts[bg] + counts[cell]}
    changes = project.label_changes(image_id, revision)
    moved = [c for c in changes if not c[2]]
    assert moved and all(c[5] == bg for c in moved)  # another window redraws them with their new class
    assert project.label_count() == counts[bg] + counts[cell]
    assert {lab.class_id for lab in project.labels(include_deleted=True)} == {bg}
    assert project.models_from_version() == 2  # version 1 was made for two classes


def test_a_model_of_two_classes_is_not_loaded_for_three_and_one_for_three_is_trained(project):
    old_engine = SegmentationEngine(project, save_models=True)
    assert old_engine.load_latest_weights().version == 1
    (bg, *bg_rest), (cell, *cell_rest) = rows(project)
    project.edit_classes([(bg, *bg_rest), (cell, *cell_rest), (None, "membrane", "#0000ff", None)])
    membrane = project.classes()[2].id
    info = project.images()[0]
    project.add_labels(info.id, [(2.0, 2.0, membrane), (3.0, 60.0, membrane), (60.0, 3.0, membrane)])
    report = old_engine.train(10)  # the engine of two classes, still running: it says so, and trains nothing
    assert not report.published and "classes or keypoints changed" in report.note
    engine = SegmentationEngine(project, save_models=True)  # as the project opened again builds it
    assert engine.load_latest_weights() is None and engine.problems == []  # passed over in silence: not damaged
    report = engine.train(30)
    assert report.published and report.version == 2
    assert engine.predict(info.id).shape == (3, info.height, info.width)
    assert SegmentationEngine(project).load_latest_weights().version == 2


def test_a_skeleton_edit_renames_refuses_to_drop_used_keypoints_and_outdates_models_on_reorder(tmp_path):
    blob_image(tmp_path / "a.png", 64)
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose", "ear_l", "ear_r", "tail")))
        image_id = project.add_image(tmp_path / "a.png", 64, 64)
        for keypoint in (0, 0, 3):  # the nose moved once: its first label is deleted, and still counts
            project.set_keypoint_label(image_id, keypoint, 5.0 + keypoint, 6.0)
        project.add_model_version("fast", 3)
        with pytest.raises(ProjectError, match=r"cannot be removed: 'nose' \(2 labels\), 'tail' \(1 label\)\. "
                                               r"Rename them instead"):
            project.set_skeleton(Skeleton(("ear_l", "ear_r")))
        project.set_skeleton(Skeleton(("ear_r", "ear_l", "nose", "tail")), renamed={"nose": "ear_r", "ear_r": "nose"})
        assert project.skeleton().names == ("ear_r", "ear_l", "nose", "tail")
        assert project.models_from_version() == 0  # the same keypoints in the same order: renamed only
        xy, _ = project.keypoint_arrays(image_id)
        np.testing.assert_array_equal(xy[0], [5.0, 6.0])  # the old nose's label, under its new name
        project.set_skeleton(Skeleton(("ear_l", "ear_r", "nose", "tail")))  # reordered: the heatmaps' order
        assert project.models_from_version() == 2
        with pytest.raises(ProjectError, match="already a keypoint called 'tail'"):
            project.set_skeleton(Skeleton(("ear_l", "ear_r", "tail", "x")), renamed={"nose": "tail"})
        assert project.skeleton().names == ("ear_l", "ear_r", "nose", "tail")
