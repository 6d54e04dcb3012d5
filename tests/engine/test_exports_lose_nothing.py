"""Exports write one file per image, under a name of its own, readable by others, and go on past
an image that fails; the model card tells the labels the model was trained on (issue 14)."""
import csv
import json
import os
import sqlite3
import stat
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from desktop.cli import main
from desktop.engine.errors import ProjectError
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.export import export_masks, export_model
from desktop.engine.segmentation.slide_export import write_geojson, write_mask_ome_tiff

from .helpers import blob_image, clicks_from_mask, one_thread  # noqa: F401


def _project(tmp_path, names, per_class=6):
    """A project of blob images at the relative ``names``, each labelled from its mask."""
    root = tmp_path / "images"
    project = Project.create(tmp_path / "project", classes=[("background", "#000000", "1"),
                                                             ("cell", "#ff0000", "2")])
    class_ids = [c.id for c in project.classes()]
    masks = {}
    for seed, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        masks[name] = blob_image(tmp_path / "blob.png", size=64, seed=seed)
        Image.open(tmp_path / "blob.png").save(path)  # PNG or TIFF, by the name's suffix
        image_id = project.add_image(path, 64, 64)
        for x, y, c in clicks_from_mask(masks[name], per_class, seed=seed):
            project.add_label(image_id, x, y, class_ids[c])
    return project, masks


def _mapping(folder):
    with open(folder / "masks.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_images_of_the_same_name_get_masks_of_their_own(tmp_path, capsys):
    names = ["a/slice.png", "b/slice.png", "img.png", "img.tif", "other.png"]
    project, masks = _project(tmp_path, names)
    project.close()
    out = tmp_path / "masks"
    assert main(["export", str(tmp_path / "project"), "--masks", str(out)]) == 0
    assert "Wrote 5 mask(s)" in capsys.readouterr().out
    rows = _mapping(out)
    assert [r["status"] for r in rows] == ["ok"] * 5
    mask_files = [r["mask"] for r in rows]
    assert len(set(mask_files)) == 5 and "other.png" in mask_files  # a unique name stays plain
    assert len([p for p in out.iterdir() if p.name.endswith(".png")]) == 10  # masks and previews
    for row in rows:  # each file holds its own image's prediction, not another's
        image_name = os.path.relpath(row["image_path"], tmp_path / "images")
        predicted = np.array(Image.open(out / row["mask"]))
        assert (predicted == masks[image_name]).mean() > 0.85, row


def test_a_second_export_names_each_image_the_same_way(tmp_path):
    project, _ = _project(tmp_path, ["a/slice.png", "b/slice.png"])
    engine = SegmentationEngine(project, save_models=False)
    engine.train(60)
    first = _mapping(export_masks(engine, tmp_path / "one").mapping.parent)
    second = _mapping(export_masks(engine, tmp_path / "two").mapping.parent)
    assert [(r["image_id"], r["mask"]) for r in first] == [(r["image_id"], r["mask"]) for r in second]


def test_a_long_name_and_a_failing_image_stop_no_other_image(tmp_path):
    long_name = "x" * 240 + ".png"
    project, _ = _project(tmp_path, [long_name, "gone.png", "last.png"])
    SegmentationEngine(project).train(60)
    (tmp_path / "images" / "gone.png").unlink()
    engine = SegmentationEngine(project)  # a new session: the picture is read from disk again
    assert engine.load_latest_weights()
    result = export_masks(engine, tmp_path / "out")
    assert [p.name for p in result.written][1:] == ["last.png"] and len(result.written) == 2
    assert all(len(p.name.encode()) < 200 for p in (tmp_path / "out").iterdir())
    assert [name for name, _ in result.skipped] == ["gone.png"]
    rows = _mapping(tmp_path / "out")
    assert rows[1]["status"] == "file not found" and rows[0]["status"] == rows[2]["status"] == "ok"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_exported_files_follow_the_umask_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        project, _ = _project(tmp_path, ["a.png"])
        engine = SegmentationEngine(project, save_models=False)
        engine.train(60)
        export_masks(engine, tmp_path / "out")
        export_model(engine, tmp_path / "out")
        write_geojson(tmp_path / "out" / "slide.geojson", {"type": "FeatureCollection", "features": []})
        write_mask_ome_tiff(tmp_path / "out" / "slide.ome.tif", np.zeros((64, 64), np.uint8))
        atomic_write_bytes(tmp_path / "out" / "table.csv", b"a,b\n")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert len(modes) == 8 and set(modes.values()) == {0o644}, modes


def test_the_model_card_counts_the_labels_its_model_was_trained_on(tmp_path):
    project, masks = _project(tmp_path, ["a.png", "b.png"])
    engine = SegmentationEngine(project)
    report = engine.train(60)
    image_id = project.images()[0].id
    class_ids = [c.id for c in project.classes()]
    for x, y, c in clicks_from_mask(masks["a.png"], 40, seed=5):  # labelled after the model was made
        project.add_label(image_id, x, y, class_ids[c])
    export_model(engine, tmp_path / "model")
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["model_version"] == report.version
    assert card["training_label_count"] == report.train_labels
    assert card["validation_label_count"] == report.validation_labels
    assert project.label_count() > report.train_labels + report.validation_labels + 40


def test_clean_up_removes_only_model_files_the_app_wrote(tmp_path):
    project, _ = _project(tmp_path, ["a.png"])
    users = ["fast-best-keep.pt", "fast-v1 (copy).pt", "fast-latest.pt"]
    for name in users:
        (project.models_dir / name).write_bytes(b"the user's own file")
    engine = SegmentationEngine(project, validation_fraction=0.0)  # nothing held back: every round publishes
    versions = [engine.train(20).version for _ in range(5)]
    files = sorted(p.name for p in project.models_dir.iterdir())
    assert files == sorted(users + [f"fast-v{v}.pt" for v in versions[-3:]])
    recorded = {m.version: m.path for m in project.model_versions()}
    assert [recorded[v] for v in versions[:2]] == [None, None]  # their files were removed, and said so


def test_two_engines_on_one_project_never_share_a_model_file(tmp_path):
    """Two engines (as two windows have) train at the same time, each on its own connection and
    thread; every version's file holds the weights that version was published with, and the
    newest loads as the newest."""
    project, _ = _project(tmp_path, ["a.png", "b.png"])
    project.close()
    published, errors = {}, []

    def train(seed):
        try:
            with Project.open(tmp_path / "project") as own:
                engine = SegmentationEngine(own, seed=seed, validation_fraction=0.0)
                for steps in range(5, 10):
                    report = engine.train(steps)
                    published[report.version] = {k: v.clone() for k, v in engine.learner.state_dict().items()
                                                 if isinstance(v, torch.Tensor)}
        except Exception as e:  # reported below: a thread's exception would pass unseen
            errors.append(e)

    threads = [threading.Thread(target=train, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(published) == list(range(1, 11))
    with Project.open(tmp_path / "project") as project:
        kept = [m for m in project.model_versions() if m.path is not None]
        assert len(kept) >= 3
        for model in kept:
            saved = torch.load(project.models_dir / model.path, weights_only=True)
            for key, value in published[model.version].items():
                assert torch.equal(saved[key], value), (model.version, key)
        fresh = SegmentationEngine(project)
        assert fresh.load_latest_weights().version == 10 and not fresh.problems


def test_a_reserved_version_is_never_claimed_twice(tmp_path):
    project, _ = _project(tmp_path, ["a.png"])
    other = Project.open(tmp_path / "project")
    first = project.reserve_model_version("fast", 5)
    second = other.reserve_model_version("fast", 5)
    assert first != second and first[1] != second[1]
    assert project.latest_published_model() is None  # nothing loads a version before its file is written
    other.publish_model_version(second[0], saved=True)
    assert project.latest_published_model().version == second[0]


def test_labels_of_a_class_the_database_lost_give_a_message(tmp_path, capsys):
    project, _ = _project(tmp_path, ["a.png"])
    project.close()
    with sqlite3.connect(project.db_path) as db:  # a hand edit: the sqlite3 shell leaves foreign keys off
        db.execute("DELETE FROM classes WHERE name = 'cell'")
    assert main(["export", str(tmp_path / "project"), "--masks", str(tmp_path / "m")]) == 2
    error = capsys.readouterr().err
    assert "database is damaged" in error and "'a.png'" in error and "Traceback" not in error
    with Project.open(tmp_path / "project") as project, pytest.raises(ProjectError, match="edited by hand"):
        SegmentationEngine(project).labelled_sets()  # the split reads every label


def test_an_image_replaced_by_a_named_pipe_is_reported_not_waited_on(tmp_path):
    project, _ = _project(tmp_path, ["a.png", "b.png"])
    SegmentationEngine(project).train(30)
    (tmp_path / "images" / "a.png").unlink()
    os.mkfifo(tmp_path / "images" / "a.png")  # nothing will ever write to it
    project.close()
    done = []

    def export():  # in a thread of its own, so that a hang fails the test instead of stalling it
        with Project.open(tmp_path / "project") as own:
            engine = SegmentationEngine(own)
            assert engine.load_latest_weights()
            done.append(export_masks(engine, tmp_path / "out"))

    worker = threading.Thread(target=export, daemon=True)
    worker.start()
    worker.join(60)
    assert done, "the export waited on the pipe"
    assert [name for name, _ in done[0].skipped] == ["a.png"] and "named pipe" in done[0].skipped[0][1]
    assert [p.name for p in done[0].written] == ["b.png"]
