"""The headless keypoint engine on a real project: train, predict, ask, rank, restore; schema v3."""
import sqlite3

import numpy as np
import pytest

from desktop.engine.keypoints.engine import COLD_START, KeypointEngine
from desktop.engine.keypoints.formats import import_table
from desktop.engine.keypoints.strategies import APP_STRATEGIES
from desktop.engine.project.schema import SCHEMA_VERSION, migrate, schema_version
from desktop.engine.project.store import Project

from .helpers import one_thread  # noqa: F401 (autouse)
from .keypoint_data import synthetic_table


def keypoint_project(tmp_path, n_images=6, labelled=4):
    """Synthetic disc pictures; the first ``labelled`` images carry all their keypoints."""
    table = synthetic_table(tmp_path, n_images, size=96)
    project = Project.create(tmp_path / "project", task="keypoints")
    table.visibility[labelled:] = ""
    table.xy[labelled:] = np.nan
    ids = import_table(project, table, tmp_path, tmp_path / "labels.csv")
    return project, ids, synthetic_table(tmp_path, n_images, size=96)  # the truth for every image


def test_cold_start_train_predict_ask_rank_and_restore(tmp_path):
    project, ids, truth = keypoint_project(tmp_path)
    engine = KeypointEngine(project, validation_fraction=0.0)
    entries, query_ids = engine.propose_queries(ids[5])
    assert [e[0] for e in entries] == [0, 1, 2] and all(e[3] is None for e in entries)  # skeleton order
    assert {q.strategy for q in project.queries(ids[5])} == {COLD_START}
    assert [q.keypoint for q in project.queries(ids[5])] == [0, 1, 2] and len(query_ids) == 3

    report = engine.train(steps=80)
    assert report.published and report.version == engine.version == 1
    assert report.train_labels == project.label_count() == 12
    xy, confidence = engine.keypoints(ids[0])
    assert np.linalg.norm(xy - truth.xy[0], axis=1).max() < 6.0
    assert xy.shape == (3, 2) and ((0 <= confidence) & (confidence <= 1)).all()

    project.set_keypoint_label(ids[4], 2, 10.0, 10.0)  # one keypoint of image 4 is done
    entries, query_ids = engine.propose_queries(ids[4], "confidence")
    assert sorted(e[0] for e in entries) == [0, 1]
    assert entries[0][3] >= entries[1][3]  # least certain first
    assert [q.keypoint for q in project.queries(ids[4])] == [e[0] for e in entries]
    for strategy in APP_STRATEGIES:
        assert engine.scores(ids[4], strategy).shape == (3,)

    ranking = engine.image_uncertainties()
    assert ranking[ids[0]] == 0.0 and ranking[ids[5]] > 0.0  # fully labelled images come last

    again = KeypointEngine(project)
    assert again.load_latest_weights().version == 1
    np.testing.assert_allclose(again.keypoints(ids[0])[0], xy, atol=1e-4)
    project.close()


def test_held_out_labels_give_a_pck_and_absent_keypoints_no_loss(tmp_path):
    project, ids, _ = keypoint_project(tmp_path, n_images=4, labelled=4)
    project.set_keypoint_label(ids[0], 1, 0.0, 0.0, "absent")
    engine = KeypointEngine(project, validation_fraction=0.3)
    train, val, n_train, n_val = engine.labelled_sets()
    assert n_train + n_val == project.label_count() == 12 and n_val > 0
    assert np.isnan(next(t for t in train if t.image.key == f"image-{ids[0]}").xy[1]).all()
    report = engine.train(steps=40)
    assert report.validation_labels == n_val and 0.0 <= report.validation_accuracy <= 1.0
    project.close()


def test_an_empty_skeleton_is_refused(tmp_path):
    with Project.create(tmp_path / "p", task="keypoints") as project:
        with pytest.raises(Exception, match="no keypoints yet"):
            KeypointEngine(project)


def test_migration_to_version_3_keeps_queries_and_adds_keypoint_and_frame_columns(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "project.sqlite", isolation_level=None)
    migrate(conn, target=2)
    conn.execute("INSERT INTO meta VALUES ('task', 'keypoints')")
    conn.execute("INSERT INTO images(path, name, width, height, checksum, added_at) VALUES ('/a.png', 'a', 5, 5, "
                 "'x', 0)")
    conn.execute("INSERT INTO queries(image_id, x, y, strategy, created_at) VALUES (1, 2, 3, 'margin', 0)")
    conn.close()
    with Project.open(folder) as p:
        assert schema_version(p._conn) == SCHEMA_VERSION >= 3
        (query,) = p.queries()
        assert (query.x, query.y, query.keypoint) == (2, 3, None)
        (image,) = p.images()
        assert image.video is None and image.frame is None and image.source == image.path


def test_cli_new_makes_a_keypoint_project_with_its_skeleton(tmp_path, capsys):
    from desktop.cli import main
    from desktop.engine.project.skeleton import Skeleton

    synthetic_table(tmp_path, 2, size=64)
    args = ["new", "--images", str(tmp_path), "--task", "keypoints", "--dir", str(tmp_path / "p")]
    assert main(args + ["--keypoints", "a,b,c", "--edges", "a-b,b-c", "--symmetric", "a:c"]) == 0
    assert "with 2 image(s)" in capsys.readouterr().out
    with Project.open(tmp_path / "p") as project:
        assert project.task == "keypoints"
        assert project.skeleton() == Skeleton(("a", "b", "c"), ((0, 1), (1, 2)), ((0, 2),))
    assert main(args[:-1] + [str(tmp_path / "q"), "--keypoints", "a,b", "--edges", "a-z"]) == 2
    assert "unknown keypoint: z" in capsys.readouterr().err
