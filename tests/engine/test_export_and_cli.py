"""Demo project, headless project creation, and export, through the real command line."""
import json

import numpy as np
import pytest
from PIL import Image

from desktop.cli import main
from desktop.engine.project.demo import DEMO_CLASSES, create_demo_project
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.export import export_masks, export_model, scripted_predict

from .helpers import blob_image, clicks_from_mask


@pytest.fixture
def labelled_project(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    masks = [blob_image(images / f"cells{i}.png", size=96, seed=i) for i in range(2)]
    (images / "notes.txt").write_text("not an image")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    assert main(["new", "--images", str(images), "--classes", "background, cell", "--dir",
                 str(tmp_path / "project")]) == 0
    with Project.open(tmp_path / "project") as project:
        ids = [c.id for c in project.classes()]
        for info, mask in zip(project.images(), masks):
            for x, y, c in clicks_from_mask(mask, 12):
                project.add_label(info.id, x, y, ids[c])
    return tmp_path / "project", masks


def test_new_references_readable_images_and_reports_the_rest(labelled_project, capsys):
    folder, _ = labelled_project
    with Project.open(folder) as project:
        assert [i.name for i in project.images()] == ["cells0.png", "cells1.png"]
        assert [c.name for c in project.classes()] == ["background", "cell"]
        assert [c.key for c in project.classes()] == ["1", "2"]


def test_new_with_bad_input_says_why(tmp_path, capsys):
    assert main(["new", "--images", str(tmp_path / "nothing-here"), "--classes", "a,b",
                 "--dir", str(tmp_path / "p")]) == 2
    assert "No readable images" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    blob_image(tmp_path / "one.png", 64)
    assert main(["new", "--images", str(tmp_path / "one.png"), "--classes", "only-one",
                 "--dir", str(tmp_path / "p")]) == 2
    assert "at least two classes" in capsys.readouterr().err


def test_export_command_writes_masks_matching_the_prediction_and_a_loadable_model(labelled_project, tmp_path):
    folder, masks = labelled_project
    assert main(["export", str(folder), "--masks", str(tmp_path / "masks"), "--model", str(tmp_path / "model")]) == 0
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == ["cells0.png", "cells0_preview.png", "cells1.png", "cells1_preview.png", "masks.csv"]
    indexed = Image.open(tmp_path / "masks" / "cells0.png")
    assert indexed.mode == "P"
    mask = np.array(indexed)
    assert (mask == masks[0]).mean() > 0.9
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert [c["name"] for c in card["classes"]] == ["background", "cell"]
    assert card["training_label_count"] + card["validation_label_count"] == 48
    assert card["input"]["mean"] == [0.5, 0.5, 0.5]
    with Project.open(folder) as project:
        engine = SegmentationEngine(project)
        assert engine.load_latest_weights()
        info = project.images()[0]
        ours = engine.predict(info.id)
        theirs = scripted_predict(tmp_path / "model" / "model.pt", engine.image(info.id))
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 1e-3
    assert (theirs.argmax(0) == mask).mean() > 0.999


def test_export_without_labels_or_into_a_file_is_refused(tmp_path, capsys):
    blob_image(tmp_path / "a.png", 64)
    main(["new", "--images", str(tmp_path / "a.png"), "--classes", "a,b", "--dir", str(tmp_path / "p")])
    with pytest.raises(SystemExit, match="no labels"):
        main(["export", str(tmp_path / "p"), "--masks", str(tmp_path / "m")])
    assert main(["export", str(tmp_path / "nowhere"), "--masks", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_into_an_unwritable_place_keeps_the_project(labelled_project, tmp_path):
    folder, _ = labelled_project
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with Project.open(folder) as project:
        engine = SegmentationEngine(project, save_models=False)
        engine.train(50)
        with pytest.raises(Exception, match="Cannot write the export"):
            export_masks(engine, blocker / "masks")
        export_model(engine, tmp_path / "ok")
        assert project.integrity_ok() and project.label_count() == 48


def test_demo_project_is_created_once(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--no-window"]) == 0
    with Project.open(tmp_path / "demo") as project:
        assert [c.name for c in project.classes()] == DEMO_CLASSES
        names = [i.name for i in project.images()]
        assert len(names) == 4 and all(max(i.width, i.height) <= 512 for i in project.images())
        project.add_label(project.images()[0].id, 5, 5, project.classes()[0].id)
    create_demo_project(tmp_path / "demo")
    with Project.open(tmp_path / "demo") as project:
        assert project.label_count() == 1
