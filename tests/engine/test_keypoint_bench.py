"""The keypoint benchmark: its simulated annotator, and a whole small run through the CLI."""
import json

import numpy as np
import pytest
import torch

from desktop.cli import main
from desktop.engine.bench.keypoints import annotate, parse_pairs
from desktop.engine.errors import PointillistError
from desktop.engine.keypoints.formats import write_dlc_csv

from .keypoint_data import synthetic_table


def test_the_annotator_clicks_only_what_is_off_or_wrongly_visible():
    truth = np.array([[10.0, 10.0], [20.0, 20.0], [np.nan, np.nan], [30.0, 30.0]])
    proposed = np.array([[12.0, 12.0], [20.0, 24.0], [5.0, 5.0], [30.0, 30.0]])
    entries, clicks = annotate(proposed, truth, threshold=3.0)
    assert clicks == 2  # keypoint 1 is 4 px off; keypoint 2 is not in the image
    assert entries == [(0, 12.0, 12.0, "visible"), (1, 20.0, 20.0, "visible"), (2, 0.0, 0.0, "absent"),
                       (3, 30.0, 30.0, "visible")]


def test_pairs_are_parsed_and_bad_ones_refused():
    assert parse_pairs("a:b, c:d") == [("a", "b"), ("c", "d")]
    assert parse_pairs(None) == []
    with pytest.raises(PointillistError, match="'a-b' is not a pair"):
        parse_pairs("a-b")


@pytest.mark.parametrize("strategy", ["flip", "spread"])
def test_a_small_benchmark_runs_from_the_command_line(tmp_path, capsys, strategy):
    table = synthetic_table(tmp_path, 10, size=64)
    table.xy[4, 2], table.visibility[4, 2] = np.nan, ""
    write_dlc_csv(table, tmp_path / "labels.csv")
    threads = torch.get_num_threads()
    try:
        code = main(["bench", "keypoints", "--labels", str(tmp_path / "labels.csv"), "--images-root", str(tmp_path),
                     "--initial-images", "3", "--images-per-round", "2", "--rounds", "2", "--strategy", strategy,
                     "--symmetric", "left:right", "--steps", "10", "--threads", "1", "--device", "cpu",
                     "--out", str(tmp_path / "out.json")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["test_images"] == 2 and result["pool_images"] == 8
    first, second = result["rounds"]
    assert (first["labelled_images"], second["labelled_images"]) == (3, 5)
    assert 0 <= second["clicks"] - first["clicks"] <= 2 * 3
    for entry in result["rounds"]:
        assert set(entry) >= {"labelled_images", "clicks", "rmse_px", "pck_5px", "train_seconds"}
        assert 0 <= entry["pck_5px"] <= 1 and entry["rmse_px"] >= 0
    assert "round  2" in capsys.readouterr().out


def test_the_benchmark_names_a_bad_label_file(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("scorer,me,me\nbodyparts,a,a\ncoords,x,y\nimg.png,1\n")
    code = main(["bench", "keypoints", "--labels", str(tmp_path / "labels.csv"), "--images-root", str(tmp_path),
                 "--initial-images", "1", "--images-per-round", "1", "--rounds", "1", "--strategy", "random"])
    assert code == 2
    assert "labels.csv', row 4: 2 cells, expected 3" in capsys.readouterr().err
