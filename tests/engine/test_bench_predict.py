"""``pointillist bench predict`` on a tiny trained project: the figures of one run of the command
on 1 and 2 workers, pictures and a slide, through the real command line."""
import json

import pytest

from desktop.cli import main
from desktop.engine.images.synthetic_slide import generate_ome_tiff

from .helpers import one_thread, trained_project  # noqa: F401 - one_thread applies here


def test_one_and_two_workers_are_measured(tmp_path, capsys):
    project = trained_project(tmp_path)
    slide = tmp_path / "slide.ome.tif"
    generate_ome_tiff(slide, 2048)
    out = tmp_path / "bench.json"
    assert main(["bench", "predict", "--project", str(project), "--inputs", str(project.parent / "images"),
                 str(slide), "--workers", "2", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["images"], result["slides"], result["slide_tiles"], result["device"]) == (3, 1, 1, "cpu")
    one, two = result["runs"]
    assert (one["workers"], two["workers"], one["speedup"]) == (1, 2, {"images_per_s": 1.0, "tiles_per_s": 1.0})
    for run in (one, two):
        assert run["failed"] == 0 and run["images_per_s"] > 0 and run["tiles_per_s"] > 0
        assert run["torch_threads"] >= 1 and all(p > 50 for p in run["peak_rss_mb"])  # torch alone is more
    assert len(one["peak_rss_mb"]) == 1 and len(two["peak_rss_mb"]) == 2 and two["start_s"] > 0
    speedup = two["images_per_s"] / one["images_per_s"]  # of the rounded rates
    assert two["speedup"]["images_per_s"] == pytest.approx(speedup, rel=0.05, abs=0.01)
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == result
