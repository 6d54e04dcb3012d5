"""Nonsense in a keypoint file is refused whole: positions off the picture or not finite, and
wrongly typed COCO fields, each named by file, record and reason, and nothing reaches the project.

Every case imports a real file (written here) into a real project, as the user would, and then
checks that the project holds no image, no label and its skeleton as before."""
import json
import sqlite3

import numpy as np
import pytest

from desktop.engine.errors import FormatError
from desktop.engine.keypoints.formats import KeypointTable, import_table, read_table, write_coco
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project

from .keypoint_data import synthetic_table

SIZE = 96  # the synthetic pictures are SIZE x SIZE
HEADER = ("scorer,me,me,me,me,me,me\nbodyparts,left,left,right,right,tail,tail\n"
          "coords,x,y,x,y,x,y\n")
GOOD_ROW = "frame00.png,10,20,30,40,50,60\n"


@pytest.fixture
def folder(tmp_path):
    synthetic_table(tmp_path, 2, size=SIZE)  # frame00.png and frame01.png beside the label files
    return tmp_path


def import_file(folder, path, project):
    """Read and import ``path`` as the app does."""
    return import_table(project, read_table(path), folder, path)


def assert_refused(folder, name, content, row, *words):
    """Write ``content`` (text, or data for JSON) to ``name`` in ``folder``, import it into a
    fresh project and check the refusal and that nothing was imported."""
    path = folder / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    with Project.create(folder / f"project-{name}", task="keypoints") as project:
        before = project.skeleton()
        with pytest.raises(FormatError) as info:
            import_file(folder, path, project)
        assert project.images() == [] and project.label_count() == 0
        assert project.skeleton() == before
    error = info.value
    assert error.row == row, str(error)
    for word in words:
        assert word in error.reason, str(error)
    assert str(error).startswith(f"Cannot import '{name}'") and str(error).endswith("Nothing was imported.")
    return error


# ----- positions (both formats) ------------------------------------------------------------------
def test_a_negative_csv_coordinate_is_refused(folder):
    assert_refused(folder, "labels.csv", HEADER + GOOD_ROW + "frame01.png,10,20,-5,40,50,60\n", 5,
                   "keypoint 'right' of image 'frame01.png'", "x = -5", "outside the picture")


def test_an_off_image_csv_coordinate_is_refused_with_the_pictures_size(folder):
    assert_refused(folder, "labels.csv", HEADER + GOOD_ROW + "frame01.png,10,20,30,140,50,60\n", 5,
                   "keypoint 'right' of image 'frame01.png'", "y = 140", f"{SIZE} x {SIZE} pixels")


def test_a_coordinate_of_1e300_is_refused(folder):
    assert_refused(folder, "labels.csv", HEADER + "frame00.png,1e300,20,30,40,50,60\n", 4,
                   "keypoint 'left'", "x = 1e+300", "outside the picture")


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "1_0"])
def test_csv_cells_that_are_no_finite_number_are_refused(folder, cell):
    error = assert_refused(folder, "labels.csv", HEADER + f"frame00.png,{cell},20,30,40,50,60\n", 4, "'left'")
    assert "finite" in error.reason or "not a pair of numbers" in error.reason


def test_points_on_the_border_are_taken_and_one_pixel_further_is_not(folder):
    edge = f"frame00.png,-1,0,{SIZE},{SIZE - 1},{SIZE - 0.5},{SIZE}\n"
    (folder / "edge.csv").write_text(HEADER + edge)
    with Project.create(folder / "ok", task="keypoints") as project:
        import_file(folder, folder / "edge.csv", project)
        assert project.label_count() == 3
    assert_refused(folder, "past.csv", HEADER + f"frame00.png,10,20,30,40,{SIZE + 0.5},60\n", 4, f"x = {SIZE + 0.5}")
    assert_refused(folder, "below.csv", HEADER + "frame00.png,10,-1.5,30,40,50,60\n", 4, "y = -1.5")


def coco(**changes):
    """A valid COCO keypoints file for the two pictures; ``changes`` as in ``images__id=[1]``
    (the first image's ``id``), ``annotations=[...]`` (the whole list)."""
    data = {"images": [{"id": 1, "file_name": "frame00.png", "width": SIZE, "height": SIZE},
                       {"id": 2, "file_name": "frame01.png", "width": SIZE, "height": SIZE}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 2,
                             "keypoints": [0, 0, 0, 30, 40, 1, 50, 60, 2], "absent": [1],
                             "bbox": [30.0, 40.0, 20.0, 20.0], "area": 400.0}],
            "categories": [{"id": 1, "name": "mouse", "supercategory": "", "keypoints": ["left", "right", "tail"],
                            "skeleton": [[1, 3], [2, 3]], "symmetric_pairs": [[1, 2]]}]}
    for key, value in changes.items():
        where, _, field = key.partition("__")
        if field:
            data[where][0][field] = value
        else:
            data[where] = value
    return data


def test_the_valid_coco_file_imports(folder):
    (folder / "k.json").write_text(json.dumps(coco()))
    with Project.create(folder / "ok", task="keypoints") as project:
        ids = import_file(folder, folder / "k.json", project)
        xy, vis = project.keypoint_arrays(ids[0])
    assert list(vis) == ["absent", "occluded", "visible"] and xy[1].tolist() == [30.0, 40.0]


def test_an_off_image_coco_coordinate_is_refused_from_the_image_record(folder):
    error = assert_refused(folder, "k.json", coco(annotations__keypoints=[0, 0, 0, 300, 40, 1, 50, 60, 2]),
                           "annotations[0].keypoints", "keypoint 'right' of image 'frame00.png'", "x = 300",
                           f"{SIZE} x {SIZE} pixels")
    assert "Cannot import 'k.json', row annotations[0].keypoints: keypoint 'right'" in str(error)


def test_without_width_and_height_the_picture_itself_gives_the_size(folder):
    images = [{"id": 1, "file_name": "frame00.png"}, {"id": 2, "file_name": "frame01.png"}]
    assert_refused(folder, "k.json", coco(images=images, annotations__keypoints=[0, 0, 0, 30, 1e300, 1, 50, 60, 2]),
                   "images[0]", "keypoint 'right' of image 'frame00.png'", "y = 1e+300")
    assert_refused(folder, "n.json", coco(images=images, annotations__keypoints=[0, 0, 0, -3, 40, 1, 50, 60, 2]),
                   "annotations[0].keypoints", "x = -3")


def test_a_coco_size_that_is_not_the_pictures_is_refused(folder):
    images = [{"id": 1, "file_name": "frame00.png", "width": 640, "height": 480}]
    assert_refused(folder, "k.json", coco(images=images), "images[0]", f"is {SIZE} x {SIZE} pixels",
                   "gives 640 x 480")


def test_a_table_with_a_nan_or_infinite_position_imports_nothing(folder):
    """A table made elsewhere (not read from a file) is checked as strictly."""
    table = synthetic_table(folder, 2, size=SIZE)
    for bad in (np.nan, np.inf):
        table.xy[1, 2, 0] = bad
        with Project.create(folder / f"p{bad}", task="keypoints") as project:
            with pytest.raises(FormatError, match="keypoint 'tail' of image 'frame01.png' has no finite position"):
                import_table(project, table, folder, "memory")
            assert project.images() == [] and project.label_count() == 0 and len(project.skeleton()) == 0


# ----- wrongly typed COCO fields ------------------------------------------------------------------
BAD_FIELDS = {
    "keypoint names as one text": (coco(categories__keypoints="abc"), "categories[0].keypoints",
                                   "list of keypoint names", 'the text "abc"'),
    "keypoint name a number": (coco(categories__keypoints=["left", 2, "tail"]), "categories[0].keypoints",
                               "list of keypoint names"),
    "empty keypoint name": (coco(categories__keypoints=["left", " ", "tail"]), "categories[0].keypoints",
                            "needs a name"),
    "image id a list": (coco(images__id=[1]), "images[0].id", "whole number", "a list [1]"),
    "image id a text": (coco(images__id="1"), "images[0].id", "whole number", 'the text "1"'),
    "image id true": (coco(images__id=True), "images[0].id", "whole number", "yes/no value"),
    "image without id": (coco(images=[{"file_name": "frame00.png"}]), "images[0].id", "there is none"),
    "file name a number": (coco(images__file_name=7), "images[0].file_name", "must be a text"),
    "file name twice": (coco(images=[{"id": 1, "file_name": "frame00.png"}, {"id": 2, "file_name": "frame00.png"}]),
                        "images[1].file_name", "listed twice"),
    "image not an object": (coco(images=["frame00.png"]), "images[0]", "an image must be an object"),
    "width a text": (coco(images__width="96"), "images[0].width", "whole number of pixels"),
    "width zero": (coco(images__width=0), "images[0].width", "at least 1"),
    "height without width": (coco(images=[{"id": 1, "file_name": "frame00.png", "height": SIZE}]), "images[0]",
                             "'height' but no 'width'"),
    "image_id true": (coco(annotations__image_id=True), "annotations[0].image_id", "yes/no value"),
    "image_id a list": (coco(annotations__image_id=[1]), "annotations[0].image_id", "a list"),
    "category_id true": (coco(annotations__category_id=True), "annotations[0].category_id", "whole number"),
    "category_id unknown": (coco(annotations__category_id=5), "annotations[0].category_id", "category_id 5"),
    "category id a text": (coco(categories__id="1"), "categories[0].id", "whole number"),
    "category id twice": (coco(categories=coco()["categories"] + [{"id": 1, "name": "box"}]), "categories[1].id",
                          "used twice"),
    "category not an object": (coco(categories=coco()["categories"] + [3]), "categories[1]", "must be an object"),
    "category name a list": (coco(categories__name=["mouse"]), "categories[0].name", "must be a text"),
    "flag true": (coco(annotations__keypoints=[0, 0, 0, 30, 40, True, 50, 60, 2]), "annotations[0].keypoints",
                  "9 numbers"),
    "flag 1.5": (coco(annotations__keypoints=[0, 0, 0, 30, 40, 1.5, 50, 60, 2]), "annotations[0].keypoints",
                 "flag 1.5", "0 (not labelled)"),
    "keypoints a text": (coco(annotations__keypoints="10 20 2"), "annotations[0].keypoints", "9 numbers"),
    "coordinate of 400 digits": (coco(annotations__keypoints=[0, 0, 0, 10 ** 400, 40, 1, 50, 60, 2]),
                                 "annotations[0].keypoints", "9 numbers"),
    "absent [true]": (coco(annotations__absent=[True]), "annotations[0].absent", "keypoint numbers from 1 to 3",
                      "[true]"),  # was taken for keypoint 1
    "absent but placed": (coco(annotations__absent=[1, 2]), "annotations[0].absent", "'right' is both placed"),
    "absent a number": (coco(annotations__absent=3), "annotations[0].absent", "keypoint numbers"),
    "absent 0": (coco(annotations__absent=[0]), "annotations[0].absent", "from 1 to 3"),
    "absent twice": (coco(annotations__absent=[1, 1]), "annotations[0].absent", "listed twice"),
    "annotation not an object": (coco(annotations=[5]), "annotations[0]", "an annotation must be an object"),
    "annotation id a text": (coco(annotations__id="a1"), "annotations[0].id", "whole number"),
    "iscrowd true": (coco(annotations__iscrowd=True), "annotations[0].iscrowd", "whole number"),
    "iscrowd 2": (coco(annotations__iscrowd=2), "annotations[0].iscrowd", "0 or 1"),
    "num_keypoints a text": (coco(annotations__num_keypoints="2"), "annotations[0].num_keypoints", "whole number"),
    "bbox of 3": (coco(annotations__bbox=[1, 2, 3]), "annotations[0].bbox", "4 numbers"),
    "area a text": (coco(annotations__area="big"), "annotations[0].area", "must be a number"),
    "skeleton [true, 2]": (coco(categories__skeleton=[[True, 2]]), "categories[0].skeleton", "pairs"),
    "skeleton a loop": (coco(categories__skeleton=[[1, 1]]), "categories[0].skeleton", "two different"),
    "skeleton a text": (coco(categories__skeleton="1-2"), "categories[0].skeleton", "pairs"),
    "symmetric pair of three": (coco(categories__symmetric_pairs=[[1, 2, 3]]), "categories[0].symmetric_pairs",
                                "pairs"),
    "two symmetric partners": (coco(categories__symmetric_pairs=[[1, 2], [1, 3]]), "categories[0].symmetric_pairs",
                               "only one symmetric partner"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_a_wrongly_typed_coco_field_is_refused_naming_it(folder, case):
    data, row, *words = BAD_FIELDS[case]
    assert_refused(folder, "labels.json", data, row, *words)


def test_a_refused_file_leaves_an_existing_projects_labels_and_skeleton_alone(folder):
    skeleton = Skeleton(("left", "right", "tail"), edges=((0, 1),))
    (folder / "good.csv").write_text(HEADER + GOOD_ROW)
    with Project.create(folder / "project", task="keypoints") as project:
        project.set_skeleton(skeleton)
        import_file(folder, folder / "good.csv", project)
        (folder / "bad.json").write_text(json.dumps(coco(annotations__absent=[True])))
        with pytest.raises(FormatError, match="absent"):
            import_file(folder, folder / "bad.json", project)
        assert len(project.images()) == 1 and project.label_count() == 3 and project.skeleton() == skeleton


def test_json_too_large_or_deep_to_read_is_refused(folder):
    for name, text in (("deep.json", "[" * 100_000 + "]" * 100_000),
                       ("long.json", json.dumps(coco())[:-1] + ', "n": ' + "9" * 5000 + "}")):
        assert_refused(folder, name, text, None, "too large to read")


def test_the_same_picture_named_twice_is_refused(folder):
    assert_refused(folder, "labels.csv", HEADER + GOOD_ROW + "./frame00.png,1,2,3,4,5,6\n", 5,
                   "'./frame00.png' is the same file as 'frame00.png'")


# ----- one transaction ----------------------------------------------------------------------------
def test_a_failure_while_writing_leaves_nothing_of_the_import(folder):
    """The last write (the labels) fails, as on a full disk: the skeleton and the images written
    before it in the same import must go too."""
    table = synthetic_table(folder, 2, size=SIZE)
    with Project.create(folder / "project", task="keypoints") as project:
        with sqlite3.connect(project.db_path) as other:  # another program's change to the database
            other.execute("CREATE TRIGGER refuse BEFORE INSERT ON labels BEGIN SELECT RAISE(ABORT, 'full'); END")
        with pytest.raises(sqlite3.DatabaseError, match="full"):
            import_table(project, table, folder, "labels.csv")
        assert project.images() == [] and project.label_count() == 0 and len(project.skeleton()) == 0
        project.set_skeleton(Skeleton(("a",)))  # the store's own transactions work again afterwards
        assert project.skeleton().names == ("a",)


def test_an_unreadable_table_record_names_where_it_is(folder):
    """``records`` (CSV rows, COCO image records) name the place in the file, not the table row."""
    table = KeypointTable(Skeleton(("left",)), ["missing.png"], np.zeros((1, 1, 2)), np.array([["visible"]]),
                          records=["images[4]"])
    with Project.create(folder / "project", task="keypoints") as project:
        with pytest.raises(FormatError) as info:
            import_table(project, table, folder, "k.json")
        assert info.value.row == "images[4]" and "file not found" in info.value.reason


def test_a_coco_file_written_from_a_csv_without_scorer_reads_back(folder):
    """A DeepLabCut file may leave the scorer empty; the COCO category then has the name ""."""
    (folder / "labels.csv").write_text(HEADER.replace("me", "") + GOOD_ROW)
    write_coco(read_table(folder / "labels.csv"), folder / "labels.json")
    assert read_table(folder / "labels.json").scorer == ""
