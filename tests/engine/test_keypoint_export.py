"""Keypoint exports: the labelled frames by default, counted truthfully (DeepLabCut CSV, COCO JSON,
the CLI), and the model as TorchScript that finds the app's keypoints."""
import json
import warnings

import numpy as np
import pytest
import torch

from desktop.cli import main
from desktop.engine.errors import ProjectError
from desktop.engine.keypoints.engine import KeypointEngine
from desktop.engine.keypoints.export import export_model, exported_keypoints
from desktop.engine.keypoints.formats import export_summary, import_table, read_table
from desktop.engine.project.store import Project

from .helpers import one_thread  # noqa: F401 (autouse)
from .keypoint_data import synthetic_table


def keypoint_project(tmp_path, n_images=5, labelled=2, size=90):
    """Synthetic disc pictures (90 pixels: not a multiple of 32, so the model pads and crops);
    the first ``labelled`` images carry all their keypoints."""
    table = synthetic_table(tmp_path, n_images, size=size)
    table.visibility[labelled:] = ""
    table.xy[labelled:] = np.nan
    project = Project.create(tmp_path / "project", task="keypoints")
    import_table(project, table, tmp_path, tmp_path / "labels.csv")
    return project


@pytest.mark.parametrize("learner", ["fast", "deep"])
def test_the_exported_model_finds_the_apps_keypoints(tmp_path, learner):
    project = keypoint_project(tmp_path, n_images=3, labelled=2)
    engine = KeypointEngine(project, learner=learner, device="cpu", validation_fraction=0.0)
    with pytest.raises(ProjectError, match="no trained model"):
        export_model(engine, tmp_path / "model")
    engine.train(steps=40 if learner == "fast" else 6)
    path = export_model(engine, tmp_path / "model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(path))
    assert model(torch.zeros(1, 3, 90, 90)).shape == (1, 3, 23, 23)  # ceil(90 / 4)
    for info in project.images():
        ours, confidence = engine.keypoints(info.id)  # what the app draws and asks about
        theirs, their_confidence = exported_keypoints(path, engine.image(info.id))
        np.testing.assert_allclose(theirs, ours, atol=1e-2)  # a hundredth of a pixel
        np.testing.assert_allclose(their_confidence, confidence, atol=1e-4)
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["task"] == "keypoints" and card["learner"] == learner and card["model_version"] == 1
    assert card["bodyparts"] == ["left", "right", "tail"]
    assert card["skeleton"] == [["left", "tail"], ["right", "tail"]] and card["symmetric_pairs"] == [["left", "right"]]
    assert card["input"]["mean"] == [0.5, 0.5, 0.5] and card["input"]["shape"] == "(1, 3, H, W)"
    assert "heatmaps" in card["output"]["what"] and "parabola" in card["output"]["decoding"]
    assert card["training_label_count"] == 6
    project.close()


def test_a_model_export_into_a_file_is_refused_and_keeps_what_was_there(tmp_path):
    project = keypoint_project(tmp_path, n_images=2, labelled=1)
    engine = KeypointEngine(project, device="cpu", validation_fraction=0.0)
    engine.train(steps=5)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ProjectError, match="Cannot write the model to"):
        export_model(engine, blocker / "model")
    assert blocker.read_text() == "not a folder" and project.label_count() == 3
    project.close()


def test_only_labelled_frames_are_exported_unless_all_are_asked_for(tmp_path):
    project = keypoint_project(tmp_path)  # 5 images, 2 labelled
    image_ids = [info.id for info in project.images()]
    project.set_keypoint_labels([(image_ids[3], 1, 0.0, 0.0, "absent")])  # only 'absent': labelled too
    for suffix in ("csv", "json"):
        out = tmp_path / f"labels.{suffix}"
        assert export_summary(project, out) == f"Exported the keypoints of 3 labelled images to {out}."
        table = read_table(out)
        assert table.images == ["frame00.png", "frame01.png", "frame03.png"]
        everything = tmp_path / f"all.{suffix}"
        assert export_summary(project, everything, all_frames=True) == \
            f"Exported 5 images to {everything}: 3 labelled, 2 without labels."
        assert len(read_table(everything).images) == 5
    coco = json.loads((tmp_path / "labels.json").read_text())
    assert len(coco["images"]) == len(coco["annotations"]) == 3
    project.close()


def test_a_project_without_labels_exports_nothing_and_says_why(tmp_path):
    project = keypoint_project(tmp_path, n_images=2, labelled=0)
    with pytest.raises(ProjectError, match="No image has a keypoint label yet"):
        export_summary(project, tmp_path / "labels.csv")
    assert not (tmp_path / "labels.csv").exists()
    assert export_summary(project, tmp_path / "labels.csv", all_frames=True).endswith("0 labelled, 2 without labels.")
    project.close()


def test_the_export_command_writes_a_keypoint_projects_labels_and_model(tmp_path, capsys):
    keypoint_project(tmp_path).close()
    folder = tmp_path / "project"
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", str(folder), "--keypoints", str(out / "labels.csv"), "--model", str(out / "model"),
                 "--steps", "20"]) == 0
    said = capsys.readouterr().out
    assert f"Exported the keypoints of 2 labelled images to {out / 'labels.csv'}." in said
    assert f"Wrote {out / 'model' / 'model.pt'} and its model_card.json." in said
    assert len(read_table(out / "labels.csv").images) == 2
    assert json.loads((out / "model" / "model_card.json").read_text())["bodyparts"] == ["left", "right", "tail"]
    assert main(["export", str(folder), "--keypoints", str(out / "all.json"), "--all-frames"]) == 0
    assert "Exported 5 images" in capsys.readouterr().out and len(read_table(out / "all.json").images) == 5
    with Project.open(folder) as project:
        engine = KeypointEngine(project, device="cpu")
        assert engine.load_latest_weights().version == 1  # the model trained for the export is the project's
        info = project.images()[4]
        np.testing.assert_allclose(exported_keypoints(out / "model" / "model.pt", engine.image(info.id))[0],
                                   engine.keypoints(info.id)[0], atol=1e-2)


def test_the_export_command_refuses_what_a_keypoint_project_cannot_give(tmp_path, capsys):
    keypoint_project(tmp_path, n_images=2, labelled=0).close()
    folder = str(tmp_path / "project")
    with pytest.raises(SystemExit, match="--masks writes segmentation masks"):
        main(["export", folder, "--masks", str(tmp_path / "masks")])
    with pytest.raises(SystemExit, match="give --keypoints too"):
        main(["export", folder, "--model", str(tmp_path / "model"), "--all-frames"])
    assert main(["export", folder, "--keypoints", str(tmp_path / "labels.csv")]) == 2
    assert "No image has a keypoint label yet" in capsys.readouterr().err
    assert not (tmp_path / "labels.csv").exists() and not (tmp_path / "masks").exists()
    Project.create(tmp_path / "cells", classes=[("background", "#000000", "1"), ("cell", "#ff0000", "2")]).close()
    with pytest.raises(SystemExit, match="is a segmentation project"):
        main(["export", str(tmp_path / "cells"), "--keypoints", str(tmp_path / "labels.csv")])
