"""DeepLabCut CSV and COCO keypoints: lossless round trips, and malformed files refused whole."""
import json

import numpy as np
import pytest

from desktop.engine.errors import FormatError, ProjectError
from desktop.engine.keypoints.formats import (KeypointTable, export_project_file, import_table, project_table,
                                              read_coco, read_dlc_csv, read_table, write_coco, write_dlc_csv)
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project

from .keypoint_data import MIRROR_CSV, MIRROR_MOUSE, synthetic_table

real_data = pytest.mark.skipif(not MIRROR_CSV.is_file(), reason="shared mirror-mouse data not present")


def assert_same(a: KeypointTable, b: KeypointTable):
    assert a.skeleton == b.skeleton
    assert a.images == b.images
    np.testing.assert_array_equal(a.xy, b.xy)  # NaN == NaN here
    np.testing.assert_array_equal(a.visibility, b.visibility)


def mixed_table() -> KeypointTable:
    skeleton = Skeleton(("snout", "ear_l", "ear_r"), edges=((0, 1), (0, 2)), symmetry=((1, 2),))
    xy = np.array([[[10.5, 20.25], [1 / 3, 7.0], [np.nan, np.nan]],
                   [[np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]],
                   [[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]])
    vis = np.array([["visible", "occluded", "absent"], ["", "", ""], ["visible", "visible", "occluded"]])
    return KeypointTable(skeleton, ["a/1.png", "a/2.png", "b/3.png"], xy, vis, sizes=[(40, 30)] * 3)


@real_data
def test_real_csv_round_trips_byte_for_byte(tmp_path):
    table = read_dlc_csv(MIRROR_CSV)
    assert table.xy.shape == (90, 17, 2) and table.scorer == "rick"
    assert 0.05 < (table.visibility == "").mean() < 0.15  # about 9 % of cells are empty
    write_dlc_csv(table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == MIRROR_CSV.read_bytes()
    write_coco(table, tmp_path / "out.json")
    assert_same(read_coco(tmp_path / "out.json"), table)


@real_data
def test_real_csv_through_a_project_reimports_identically(tmp_path):
    table = read_dlc_csv(MIRROR_CSV)
    small = KeypointTable(table.skeleton, table.images[:6], table.xy[:6], table.visibility[:6], scorer=table.scorer)
    with Project.create(tmp_path / "p", task="keypoints") as project:
        ids = import_table(project, small, MIRROR_MOUSE, MIRROR_CSV)
        exported = project_table(project, MIRROR_MOUSE, scorer="rick", image_ids=ids)
    write_dlc_csv(exported, tmp_path / "export.csv")
    assert_same(read_dlc_csv(tmp_path / "export.csv"), small)
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(tmp_path / "export.csv", header=[0, 1, 2], index_col=0)
    assert frame.shape == (6, 34)
    assert frame.columns[0] == ("rick", "paw1LH_top", "x")


def test_coco_keeps_visibility_absent_and_skeleton(tmp_path):
    table = mixed_table()
    write_coco(table, tmp_path / "k.json")
    data = json.loads((tmp_path / "k.json").read_text())
    assert data["categories"][0]["skeleton"] == [[1, 2], [1, 3]]
    assert data["annotations"][0]["keypoints"][3:9] == [1 / 3, 7.0, 1, 0, 0, 0]
    assert len(data["annotations"]) == 2  # the unlabelled image has no annotation
    back = read_coco(tmp_path / "k.json")
    assert_same(back, table)
    assert back.sizes == table.sizes


def test_project_round_trip_keeps_occluded_and_absent(tmp_path):
    table = synthetic_table(tmp_path, 3)
    table.visibility[0, 1] = "occluded"
    table.visibility[1, 2], table.xy[1, 2] = "absent", np.nan
    table.visibility[2, 0], table.xy[2, 0] = "", np.nan
    with Project.create(tmp_path / "p", task="keypoints") as project:
        import_table(project, table, tmp_path, "memory")
        assert project.skeleton() == table.skeleton
        exported = project_table(project, tmp_path)
    assert_same(exported, table)
    write_dlc_csv(exported, tmp_path / "e.csv")  # CSV keeps positions only
    again = read_dlc_csv(tmp_path / "e.csv")
    assert list(again.visibility[0]) == ["visible", "visible", "visible"]
    assert list(again.visibility[1]) == ["visible", "visible", ""]


HEADER = "scorer,me,me,me,me\nbodyparts,a,a,b,b\ncoords,x,y,x,y\n"
BAD_CSV = {
    "empty": ("", None, "empty"),
    "two header rows": ("scorer,me,me\nbodyparts,a,a\n", None, "three header rows"),
    "no coords row": ("scorer,me,me\nbodyparts,a,a\nimg.png,1,2\n", 3, "'coords'"),
    "multi-animal": ("scorer,me,me\nindividuals,m1,m1\nbodyparts,a,a\ncoords,x,y\n", 2, "multi-animal"),
    "y before x": ("scorer,me,me\nbodyparts,a,a\ncoords,y,x\n", 3, "x and y"),
    "short row": (HEADER + "img1.png,1,2,3\n", 4, "4 cells, expected 5"),
    "half a point": (HEADER + "img1.png,1,2,3,4\nimg2.png,1,,3,4\n", 5, "only one of x and y"),
    "not a number": (HEADER + "img1.png,1,2,three,4\n", 4, "not a pair of numbers"),
    "infinite": (HEADER + "img1.png,1,2,inf,4\n", 4, "not a finite position"),
    "repeated image": (HEADER + "img1.png,1,2,3,4\nimg1.png,1,2,3,4\n", 5, "already labelled in row 4"),
    "repeated bodypart": ("scorer,me,me,me,me\nbodyparts,a,a,a,a\ncoords,x,y,x,y\n", 2, "repeated: a"),
    "no image path": (HEADER + ",1,2,3,4\n", 4, "no image path"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_malformed_csv_is_refused_with_row_and_reason(tmp_path, case):
    text, row, reason = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as info:
        read_table(path)
    assert info.value.row == row and reason in info.value.reason
    assert "bad.csv" in str(info.value) and "Nothing was imported" in str(info.value)


def test_binary_and_missing_files_are_refused(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(FormatError, match="not a text"):
        read_table(tmp_path / "b.csv")
    with pytest.raises(FormatError, match="file not found"):
        read_table(tmp_path / "missing.json")
    with pytest.raises(FormatError, match=r"\.csv \(DeepLabCut\) or \.json"):
        read_table(tmp_path / "labels.txt")


def coco(**changes):
    data = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 3, 4, 1]}],
            "categories": [{"id": 1, "name": "mouse", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]}
    for key, value in changes.items():
        where, _, field = key.partition("__")
        target = data[where][0] if field else data
        target[field or where] = value
    return data


BAD_COCO = {
    "flag 3": (coco(annotations__keypoints=[1, 2, 3, 3, 4, 1]), "annotations[0].keypoints", "flag 3"),
    "too few numbers": (coco(annotations__keypoints=[1, 2, 2]), "annotations[0].keypoints", "6 numbers"),
    "text coordinate": (coco(annotations__keypoints=["1", 2, 2, 3, 4, 1]), "annotations[0].keypoints", "6 numbers"),
    "unknown image": (coco(annotations__image_id=9), "annotations[0].image_id", "image_id 9"),
    "edge to keypoint 3": (coco(categories__skeleton=[[1, 3]]), "categories[0].skeleton", "'skeleton' must be pairs"),
    "no keypoint category": (coco(categories=[]), None, "one category with keypoints"),
    "repeated image id": (coco(images=[{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]),
                          "images[1].id", "used twice"),
    "absent but placed": (coco(annotations__absent=[1]), "annotations[0].absent", "both placed and absent"),
    "not an object": ([1, 2], None, "an object with lists"),
}


@pytest.mark.parametrize("case", sorted(BAD_COCO))
def test_malformed_coco_is_refused_with_row_and_reason(tmp_path, case):
    data, row, reason = BAD_COCO[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError) as info:
        read_table(path)
    assert info.value.row == row and reason in info.value.reason


def test_two_animals_in_one_image_and_broken_json_are_refused(tmp_path):
    data = coco()
    data["annotations"].append(dict(data["annotations"][0], id=2))
    (tmp_path / "two.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="only one animal"):
        read_coco(tmp_path / "two.json")
    (tmp_path / "cut.json").write_text(json.dumps(coco())[:-20])
    with pytest.raises(FormatError, match="not valid JSON"):
        read_coco(tmp_path / "cut.json")


def test_an_import_with_a_missing_image_changes_nothing(tmp_path):
    table = synthetic_table(tmp_path, 3)
    (tmp_path / table.images[2]).unlink()
    with Project.create(tmp_path / "p", task="keypoints") as project:
        with pytest.raises(FormatError) as info:
            import_table(project, table, tmp_path, "labels.csv")
        assert info.value.row == 3 and "file not found" in info.value.reason
        assert project.images() == [] and len(project.skeleton()) == 0 and project.label_count() == 0


def test_an_import_must_fit_the_projects_skeleton(tmp_path):
    table = synthetic_table(tmp_path, 1)
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("left", "right")))
        with pytest.raises(FormatError, match="not in the project's skeleton: tail"):
            import_table(project, table, tmp_path, "labels.csv")
        assert project.label_count() == 0
    with Project.create(tmp_path / "seg", task="segmentation") as project:
        with pytest.raises(FormatError, match="segmentation project"):
            import_table(project, table, tmp_path, "labels.csv")


def test_export_from_a_connection_of_its_own_says_what_it_wrote_or_why_not(tmp_path):
    table = synthetic_table(tmp_path, 3, size=64)
    project = Project.create(tmp_path / "project", task="keypoints")
    import_table(project, table, tmp_path, tmp_path / "labels.csv")
    text = export_project_file(project.folder, tmp_path / "out.csv")  # the window's connection stays open
    assert text == f"Exported the keypoints of 3 labelled images to {tmp_path / 'out.csv'}."
    assert read_dlc_csv(tmp_path / "out.csv").images == table.images
    (tmp_path / "blocked").write_text("a file, not a folder")
    with pytest.raises(ProjectError, match="Cannot save 'labels.csv'"):
        export_project_file(project.folder, tmp_path / "blocked" / "labels.csv")
    project.close()
