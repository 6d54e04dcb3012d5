"""``bench compare``: scores put on equal cost before strategies are averaged and ranked."""
import json

import pytest

from desktop.cli import main
from desktop.engine.bench.compare import compare
from desktop.engine.errors import PointillistError


def _write(path, strategy, seed, rounds, learner="fast"):
    path.write_text(json.dumps({"strategy": strategy, "learner": learner, "seed": seed, "rounds": rounds}))
    return path


def _kp(clicks, rmse):
    return [{"round": i + 1, "clicks": c, "rmse_px": r} for i, (c, r) in enumerate(zip(clicks, rmse))]


def test_keypoint_runs_are_compared_at_the_clicks_every_run_reached(tmp_path):
    # "confidence" ends lower but paid more clicks; at 400 clicks it is interpolated back.
    files = [_write(tmp_path / "r0.json", "random", 0, _kp([100, 400], [40.0, 30.0])),
             _write(tmp_path / "r1.json", "random", 1, _kp([100, 420], [40.0, 28.0])),
             _write(tmp_path / "c0.json", "confidence", 0, _kp([100, 500], [40.0, 20.0]))]
    result = compare(files)
    assert result["at"] == 400 and result["lower_is_better"]
    by = {s["strategy"]: s for s in result["strategies"]}
    assert by["confidence"]["scores"] == pytest.approx([25.0])  # halfway from 40 to 20
    assert by["random"]["scores"] == pytest.approx([30.0, 40 - 12 * 300 / 320])
    assert [s["strategy"] for s in result["strategies"]] == ["confidence", "random"]


def test_each_strategy_is_set_against_random_on_the_seeds_both_ran(tmp_path):
    # flip beats random by 2, 4 and -1 px on seeds 0-2; seed 3 has no random run to pair with
    random_ = {0: 30.0, 1: 26.0, 2: 20.0}
    flip = {0: 28.0, 1: 22.0, 2: 21.0, 3: 10.0}
    files = [_write(tmp_path / f"r{k}.json", "random", k, _kp([100, 400], [50.0, v])) for k, v in random_.items()]
    files += [_write(tmp_path / f"f{k}.json", "flip", k, _kp([100, 400], [50.0, v])) for k, v in flip.items()]
    by = {s["strategy"]: s for s in compare(files, at=400)["strategies"]}
    assert by["random"]["vs_random"] is None
    paired = by["flip"]["vs_random"]
    assert paired["seeds"] == 3 and paired["better_on"] == 2
    assert paired["better_by"] == pytest.approx(5 / 3)
    spread = (((2 - 5 / 3) ** 2 + (4 - 5 / 3) ** 2 + (-1 - 5 / 3) ** 2) / 2) ** 0.5  # sample sd
    assert paired["standard_error"] == pytest.approx(spread / 3 ** 0.5)


def test_segmentation_higher_miou_ranks_first_and_a_chosen_cost_is_used(tmp_path):
    seg = lambda m: [{"round": 1, "labelled_pixels": 100, "miou": 0.5}, {"round": 2, "labelled_pixels": 200, "miou": m}]
    files = [_write(tmp_path / "a.json", "random", 0, seg(0.6)), _write(tmp_path / "b.json", "margin", 0, seg(0.7))]
    result = compare(files, at=150)
    assert [s["strategy"] for s in result["strategies"]] == ["margin", "random"]
    assert result["strategies"][0]["mean"] == pytest.approx(0.6)


def test_bad_inputs_are_refused_with_the_file_named(tmp_path):
    kp = _write(tmp_path / "kp.json", "random", 0, _kp([100, 200], [3.0, 2.0]))
    seg = _write(tmp_path / "seg.json", "random", 0, [{"round": 1, "labelled_pixels": 10, "miou": 0.5}])
    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps({"strategy": "random", "rounds": [], "dense_miou": 0.8}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PointillistError, match="mix segmentation and keypoint"):
        compare([kp, seg])
    with pytest.raises(PointillistError, match="dense.json: has no rounds"):
        compare([dense])
    with pytest.raises(PointillistError, match="broken.json: cannot read"):
        compare([broken])
    with pytest.raises(PointillistError, match="cover 100 to 200, not 300"):
        compare([kp], at=300)
    with pytest.raises(PointillistError, match="both random, seed 0: give each run once"):
        compare([kp, _write(tmp_path / "kp2.json", "random", 0, _kp([100, 200], [3.0, 2.0]))])
    with pytest.raises(PointillistError, match="mix learners"):
        compare([kp, _write(tmp_path / "deep.json", "random", 1, _kp([100, 200], [3.0, 2.0]), learner="deep")])
    with pytest.raises(PointillistError, match="clicks do not grow"):
        compare([_write(tmp_path / "down.json", "random", 0, _kp([200, 100], [3.0, 2.0]))])
    with pytest.raises(PointillistError, match="share no clicks: one starts at 300, another ends at 200"):
        compare([kp, _write(tmp_path / "late.json", "flip", 0, _kp([300, 400], [3.0, 2.0]))])


def test_the_command_prints_the_table_and_refuses_a_bad_file(tmp_path, capsys):
    files = [_write(tmp_path / f"{s}.json", s, 0, _kp([100, 200], [r, r - 1]))
             for s, r in [("random", 9.0), ("flip", 5.0)]]
    assert main(["bench", "compare", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "rmse_px at 200 clicks" in out and out.index("flip") < out.index("random")
    assert "vs random on the same 1 seed: better by 4, better on 1 of 1" in out  # one seed: no error bar
    assert main(["bench", "compare", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err
