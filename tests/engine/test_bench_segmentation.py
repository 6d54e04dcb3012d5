"""The benchmark command on tiny generated data (default run) and on real data (slow)."""
import json

import cv2
import pytest

from desktop.cli import main

from .helpers import blob_image


def write_split(folder, names, size=96):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, name in enumerate(names):
        mask = blob_image(folder / "images" / f"{name}.png", size=size, seed=i)
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask * 255)  # 0/255 reads as classes 0/1


def args_for(tmp_path, *extra):
    return ["bench", "segmentation",
            "--train-images", str(tmp_path / "train" / "images"), "--train-masks", str(tmp_path / "train" / "masks"),
            "--test-images", str(tmp_path / "test" / "images"), "--test-masks", str(tmp_path / "test" / "masks"),
            *extra]


def test_bench_rounds_and_json(tmp_path, capsys):
    write_split(tmp_path / "train", ["a", "b", "c"])
    write_split(tmp_path / "test", ["d"])
    out = tmp_path / "result.json"
    code = main(args_for(tmp_path, "--pixels-per-round", "5", "--rounds", "3", "--strategy", "margin",
                         "--steps", "60", "--seed", "3", "--out", str(out)))
    assert code == 0
    result = json.loads(out.read_text())
    assert (result["strategy"], result["learner"], result["seed"], result["dense_miou"]) == ("margin", "fast", 3, None)
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert [r["pixels_per_image"] for r in rounds] == [5, 10, 15]
    assert [r["labelled_pixels"] for r in rounds] == [15, 30, 45]
    assert set(rounds[0]) == {"round", "pixels_per_image", "labelled_pixels", "miou", "iou_per_class",
                              "train_seconds", "query_seconds", "evaluate_seconds", "round_seconds"}
    assert 0.5 < rounds[-1]["miou"] <= 1.0 and len(rounds[-1]["iou_per_class"]) == 2
    assert "round  3" in capsys.readouterr().out


def test_bench_dense_and_ignore_index(tmp_path):
    write_split(tmp_path / "train", ["a", "b"])
    write_split(tmp_path / "test", ["d"])
    out = tmp_path / "dense.json"
    assert main(args_for(tmp_path, "--pixels-per-round", "5", "--rounds", "1", "--strategy", "random", "--dense",
                         "--steps", "20", "--ignore-index", "0", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    assert result["rounds"] == [] and result["dense_miou"] is not None


def test_bench_reports_a_missing_mask(tmp_path):
    write_split(tmp_path / "train", ["a"])
    write_split(tmp_path / "test", ["d"])
    (tmp_path / "train" / "masks" / "a.png").unlink()
    with pytest.raises(SystemExit, match="No mask"):
        main(args_for(tmp_path, "--pixels-per-round", "5", "--rounds", "1", "--strategy", "margin"))


@pytest.mark.slow
def test_bench_on_isbi_margin_beats_random_early(tmp_path, shared_data):
    folder = shared_data / "isbi2012_em_membranes"
    names = sorted(p.name for p in (folder / "image").iterdir())
    for part, chosen in (("train", names[:25]), ("test", names[25:])):
        for sub, src in (("images", "image"), ("masks", "label")):
            (tmp_path / part / sub).mkdir(parents=True)
            for name in chosen:
                (tmp_path / part / sub / name).symlink_to(folder / src / name)
    scores = {}
    for strategy in ("margin", "random"):
        out = tmp_path / f"{strategy}.json"
        assert main(args_for(tmp_path, "--pixels-per-round", "10", "--rounds", "10", "--strategy", strategy,
                             "--out", str(out))) == 0
        scores[strategy] = json.loads(out.read_text())["rounds"][-1]["miou"]
    assert scores["margin"] > 0.6 and scores["random"] > 0.6
