"""A DeepLabCut project or a COCO keypoints file becomes a keypoint project in one step (engine
and ``pointillist import``), and a malformed one is refused with file, row and reason, leaving no
project folder behind, whole or half-made.

The DeepLabCut projects are written here as DeepLabCut lays them out: ``config.yaml``,
``labeled-data/<video>/`` frames and ``CollectedData_<scorer>.csv`` (with one index column, or
three as newer DeepLabCut writes), and a ``*_labeled`` folder of drawings that is not frames."""
import csv
import json
import shutil

import numpy as np
import pytest

from desktop.cli import main
from desktop.engine.errors import FormatError, ProjectError
from desktop.engine.keypoints.formats import write_coco
from desktop.engine.keypoints.project_import import ImportCancelled, import_coco_project, import_dlc_project
from desktop.engine.project.store import Project

from .keypoint_data import MIRROR_CSV, MIRROR_MOUSE, synthetic_table

BODYPARTS = ("left", "right", "tail")
CONFIG = """# Project definitions (edit)
Task: mice
scorer: me
date: Dec6
multianimalproject: false
project_path: /somewhere/else/mice-me-2026-12-06
video_sets:
  /data/mouse1.mp4:
    crop: 0, 96, 0, 96
bodyparts:
- left
- right
- tail
skeleton:
- - left
  - tail
- - right
  - tail
"""


def write_dlc_csv_rows(path, bodyparts, rows, index_columns=1, scorer="me"):
    """A CollectedData CSV as DeepLabCut writes it; ``rows`` are (image name, [x, y, ...] with NaN
    for an unlabelled keypoint)."""
    pad = [""] * (index_columns - 1)
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["scorer", *pad] + [scorer] * (2 * len(bodyparts)))
        out.writerow(["bodyparts", *pad] + [b for b in bodyparts for _ in (0, 1)])
        out.writerow(["coords", *pad] + ["x", "y"] * len(bodyparts))
        for name, values in rows:
            index = [name] if index_columns == 1 else name.split("/")
            out.writerow(index + ["" if np.isnan(v) else repr(float(v)) for v in values])


def make_dlc_project(root, videos=(("mouse1", 3), ("mouse2", 2)), index_columns=1, unlabelled=1):
    """A DeepLabCut project in ``root``; returns {labelled frame, relative to root: (3, 2) xy}.
    Each video folder has ``unlabelled`` frames more than it labels; the first labelled frame of
    each has its 'tail' unlabelled."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(CONFIG)
    expected = {}
    for v, (video, labelled) in enumerate(videos):
        folder = root / "labeled-data" / video
        folder.mkdir(parents=True)
        table = synthetic_table(folder, labelled + unlabelled, seed=v)
        rows = []
        for i in range(labelled):
            xy = table.xy[i].copy()
            if i == 0:
                xy[2] = np.nan
            name = f"labeled-data/{video}/{table.images[i]}"
            expected[name] = xy
            rows.append((name, xy.ravel()))
        write_dlc_csv_rows(folder / "CollectedData_me.csv", BODYPARTS, rows, index_columns)
    drawings = root / "labeled-data" / f"{videos[0][0]}_labeled"
    drawings.mkdir()
    shutil.copy(root / "labeled-data" / videos[0][0] / "frame00.png", drawings / "frame00.png")
    return expected


def project_labels(folder, root):
    """{image path relative to ``root``: its (K, 2) xy, NaN where unlabelled} of a project."""
    with Project.open(folder) as project:
        return {info.path.relative_to(root.resolve()).as_posix(): project.keypoint_arrays(info.id)[0]
                for info in project.images()}


def assert_nothing_left(target):
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []  # no hidden half-made folder


@pytest.mark.parametrize("index_columns", [1, 3])
def test_a_dlc_project_becomes_a_keypoint_project_with_its_skeleton_labels_and_unlabelled_frames(tmp_path,
                                                                                                 index_columns):
    expected = make_dlc_project(tmp_path / "dlc", index_columns=index_columns)
    target = tmp_path / "out" / "mice"
    seen = []
    result = import_dlc_project(tmp_path / "dlc" / "config.yaml", target,
                                progress=lambda n, total, name: seen.append((n, total, name)))
    assert (result.images, result.labelled, result.skipped) == (7, 5, [])
    assert seen[:2] == [(1, 2, "mouse1/CollectedData_me.csv"), (2, 2, "mouse2/CollectedData_me.csv")]
    assert seen[2:] == [(3, 4, "frame03.png"), (4, 4, "frame02.png")]  # the two unlabelled frames
    assert sorted(p.name for p in target.parent.iterdir()) == ["mice"]
    with Project.open(target) as project:
        assert project.task == "keypoints"
        skeleton = project.skeleton()
        assert skeleton.names == BODYPARTS and skeleton.edges == ((0, 2), (1, 2))
    labels = project_labels(target, tmp_path / "dlc")
    assert sorted(labels) == sorted(list(expected) + ["labeled-data/mouse1/frame03.png",
                                                      "labeled-data/mouse2/frame02.png"])
    for name, xy in expected.items():
        np.testing.assert_array_equal(labels[name], xy)
    assert np.isnan(labels["labeled-data/mouse1/frame03.png"]).all()


def test_pointillist_import_makes_the_project_from_a_dlc_config_or_a_coco_file(tmp_path, capsys):
    make_dlc_project(tmp_path / "dlc")
    assert main(["import", "--dlc", str(tmp_path / "dlc"), "--dir", str(tmp_path / "a")]) == 0  # the folder will do
    assert capsys.readouterr().out.splitlines() == [f"Created {tmp_path / 'a'} with 7 image(s), 5 of them labelled."]
    with Project.open(tmp_path / "a") as project:
        table_images = len(project.images())
    images = tmp_path / "coco-images"
    images.mkdir()
    table = synthetic_table(images, 3)
    table.visibility[2] = ""
    write_coco(table, tmp_path / "keypoints.json")
    assert main(["import", "--coco", str(tmp_path / "keypoints.json"), "--images", str(images),
                 "--dir", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.splitlines() == [f"Created {tmp_path / 'b'} with 3 image(s), 2 of them labelled."]
    labels = project_labels(tmp_path / "b", images)
    np.testing.assert_array_equal(labels["frame01.png"], table.xy[1])
    with Project.open(tmp_path / "b") as project:
        assert project.skeleton() == table.skeleton  # its edges and left/right pairs too
    assert table_images == 7
    with pytest.raises(SystemExit):  # a COCO file names its pictures relative to a folder: it is needed
        main(["import", "--coco", str(tmp_path / "keypoints.json"), "--dir", str(tmp_path / "c")])
    assert "--images" in capsys.readouterr().err and not (tmp_path / "c").exists()


def _replace(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _h5_only(root):
    (root / "labeled-data/mouse2/CollectedData_me.csv").unlink()
    (root / "labeled-data/mouse2/CollectedData_me.h5").write_bytes(b"\x89HDF\r\n\x1a\n")


def _no_frames(root):
    shutil.rmtree(root / "labeled-data")
    (root / "labeled-data" / "mouse1").mkdir(parents=True)


def _twice(root):
    csv_path = root / "labeled-data/mouse2/CollectedData_me.csv"
    with open(csv_path, "a") as f:
        f.write("labeled-data/mouse1/frame01.png,1,2,3,4,5,6\n")


BAD = {  # what is done to a good project: (file refused, row, words of the reason)
    "bad YAML": (lambda root: _replace(root / "config.yaml", "- right\n", "- right: [\n"),
                 "config.yaml", 13, ["not valid YAML"]),
    "no bodyparts": (lambda root: _replace(root / "config.yaml", "bodyparts:\n- left\n- right\n- tail\n", ""),
                     "config.yaml", None, ["'bodyparts' must be a list", "there is none"]),
    "bodyparts not a list": (lambda root: _replace(root / "config.yaml", "bodyparts:\n", "bodyparts: left\nx:\n"),
                             "config.yaml", 10, ["'bodyparts' must be a list of keypoint names; found 'left'"]),
    "multi-animal": (lambda root: _replace(root / "config.yaml", "project: false", "project: true"),
                     "config.yaml", 5, ["multi-animal project"]),
    "skeleton names an unknown bodypart": (lambda root: _replace(root / "config.yaml", "  - tail\n- - right",
                                                                 "  - nose\n- - right"),
                                           "config.yaml", 14, ["unknown keypoint: nose"]),
    "a skeleton pair joins a bodypart to itself": (lambda root: _replace(root / "config.yaml", "- - right\n  - tail",
                                                                         "- - right\n  - right"),
                                                   "config.yaml", 14, ["[right, right] joins a bodypart to itself"]),
    "header does not match the config": (lambda root: _replace(root / "config.yaml", "- tail\n", "- tail\n- nose\n"),
                                         "CollectedData_me.csv", 2, ["do not match config.yaml's", "missing nose"]),
    "a row names a missing frame": (lambda root: (root / "labeled-data/mouse2/frame01.png").unlink(),
                                    "CollectedData_me.csv", 5, ["labeled-data/mouse2/frame01.png", "file not found"]),
    "a cell is not a number": (lambda root: _replace(root / "labeled-data/mouse1/CollectedData_me.csv",
                                                     "\nlabeled-data/mouse1/frame01.png,",
                                                     "\nlabeled-data/mouse1/frame01.png,abc"),
                               "CollectedData_me.csv", 5, ["'left' is not a pair of numbers"]),
    "no frames at all": (_no_frames, "config.yaml", None, ["no frames were found in its labeled-data folder"]),
    "only the .h5 labels": (_h5_only, "CollectedData_me.h5", None, ["only the .h5 label file", "CSV"]),
    "a frame labelled in two files": (_twice, "CollectedData_me.csv", 6, [
        "labeled-data/mouse1/frame01.png", "labelled already in labeled-data/mouse1/CollectedData_me.csv, row 5"]),
}


@pytest.mark.parametrize("case", BAD)
def test_a_malformed_dlc_project_is_refused_with_file_row_and_reason_and_nothing_is_left(tmp_path, case):
    spoil, name, row, words = BAD[case]
    make_dlc_project(tmp_path / "dlc")
    spoil(tmp_path / "dlc")
    target = tmp_path / "out" / "mice"
    with pytest.raises(FormatError) as info:
        import_dlc_project(tmp_path / "dlc" / "config.yaml", target)
    error = info.value
    assert (error.path.name, error.row) == (name, row), str(error)
    for word in words:
        assert word in error.reason, str(error)
    assert str(error).endswith("Nothing was imported.")
    assert_nothing_left(target)


def test_pointillist_import_says_why_it_refused_and_leaves_no_folder(tmp_path, capsys):
    make_dlc_project(tmp_path / "dlc")
    (tmp_path / "dlc/labeled-data/mouse2/frame01.png").unlink()
    assert main(["import", "--dlc", str(tmp_path / "dlc" / "config.yaml"), "--dir", str(tmp_path / "mice")]) == 2
    assert capsys.readouterr().err == (
        "pointillist: Cannot import 'CollectedData_me.csv', row 5: image 'labeled-data/mouse2/frame01.png': "
        "file not found. Nothing was imported.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dlc"]


def test_a_coco_file_with_bad_fields_or_a_missing_picture_is_refused_and_nothing_is_left(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_coco(synthetic_table(images, 2), tmp_path / "keypoints.json")
    data = json.loads((tmp_path / "keypoints.json").read_text())
    data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:-1]
    (tmp_path / "short.json").write_text(json.dumps(data))
    target = tmp_path / "out" / "project"
    with pytest.raises(FormatError) as info:
        import_coco_project(tmp_path / "short.json", images, target)
    assert info.value.row == "annotations[1].keypoints" and "must be 9 numbers" in info.value.reason
    assert_nothing_left(target)
    (images / "frame01.png").unlink()
    with pytest.raises(FormatError) as info:
        import_coco_project(tmp_path / "keypoints.json", images, target)
    assert info.value.row == "images[1]" and "'frame01.png': file not found" in info.value.reason
    assert_nothing_left(target)
    with pytest.raises(FormatError, match="the images folder .* does not exist"):
        import_coco_project(tmp_path / "keypoints.json", tmp_path / "nowhere", target)


def test_a_folder_in_use_is_not_touched_and_a_cancelled_import_leaves_nothing(tmp_path):
    make_dlc_project(tmp_path / "dlc")
    config = tmp_path / "dlc" / "config.yaml"
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="exists already and is not an empty folder"):
        import_dlc_project(config, used)
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    with pytest.raises(ImportCancelled):
        import_dlc_project(config, tmp_path / "out" / "mice", cancelled=lambda: True)
    assert_nothing_left(tmp_path / "out" / "mice")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert import_dlc_project(config, empty).images == 7  # an empty folder chosen for it is fine


@pytest.mark.skipif(not MIRROR_CSV.is_file(), reason="the shared mirror-mouse data is not here")
def test_the_mirror_mouse_labels_laid_out_as_a_dlc_project_import_whole(tmp_path):
    """The real labels (17 bodyparts, 90 of 93 frames labelled, some cells empty), in a DeepLabCut
    project made of links to the real frames, with the newer three index columns."""
    with open(MIRROR_CSV, newline="") as f:
        rows = list(csv.reader(f))
    bodyparts = rows[1][1::2]
    root = tmp_path / "mirror"
    frames = root / "labeled-data" / "mirror"
    frames.mkdir(parents=True)
    for picture in sorted((MIRROR_MOUSE / "labeled-data").glob("*.png")):
        (frames / picture.name).symlink_to(picture)
    (root / "config.yaml").write_text("scorer: rick\nbodyparts:\n" + "".join(f"- {b}\n" for b in bodyparts)
                                      + "skeleton:\n- [nose_top, tailBase_top]\n")
    labelled = [(f"labeled-data/mirror/{row[0].split('/')[-1]}", [float(c) if c else np.nan for c in row[1:]])
                for row in rows[3:] if row]
    write_dlc_csv_rows(frames / "CollectedData_rick.csv", bodyparts, labelled, index_columns=3, scorer="rick")
    result = import_dlc_project(root / "config.yaml", tmp_path / "project")
    assert (result.images, result.labelled) == (93, 90)
    labels = project_labels(tmp_path / "project", MIRROR_MOUSE)  # the links' targets are referenced
    cells = sum(1 for _, values in labelled for v in values[::2] if not np.isnan(v))
    assert sum(int(np.isfinite(xy[:, 0]).sum()) for xy in labels.values()) == cells
    name, values = labelled[0]
    np.testing.assert_array_equal(labels["labeled-data/" + name.split("/")[-1]].ravel(), values)
