"""Bad input from the outside world: unreadable pictures added to a project, a read-only project,
a full disk, damaged model files. Each is refused or survived with a message that names the
file and says what to do, and nothing already saved is lost."""
import ast
import ctypes
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from desktop.engine.errors import ProjectError
from desktop.engine.project.setup import add_images, create_project, default_classes, scan_images
from desktop.engine.project.store import Project
from desktop.engine.segmentation.engine import SegmentationEngine
from desktop.engine.segmentation.export import export_masks, export_model

from .helpers import black_png, blob_image, clicks_from_mask, one_thread  # noqa: F401 (autouse)

REPO = Path(__file__).resolve().parents[2]


def _files(folder):
    """Every file under ``folder`` (hidden temporaries included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _labelled_project(tmp_path, images=1):
    project = Project.create(tmp_path / "project", classes=default_classes(["background", "cell"]))
    ids = [c.id for c in project.classes()]
    for i in range(images):
        path = tmp_path / f"cells{i}.png"
        mask = blob_image(path, 64, seed=i)
        image_id = project.add_image(path, 64, 64)
        project.add_labels(image_id, [(x, y, ids[c]) for x, y, c in clicks_from_mask(mask, 12, seed=i)])
    return project


# ----- pictures that cannot be added -------------------------------------------------------------

def test_adding_images_takes_the_readable_and_says_why_for_each_other(tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    blob_image(pictures / "good.png", 64)
    Image.open(pictures / "good.png").convert("RGB").save(pictures / "photo.png", format="JPEG")  # misnamed
    (pictures / "empty.png").touch()
    (pictures / "cut.png").write_bytes((pictures / "good.png").read_bytes()[:300])
    (pictures / "notes.png").write_text("Patient 12, slide 3: see the attached report.\n")
    (pictures / "noise.bmp").write_bytes(bytes(range(256)) * 4)
    black_png(pictures / "huge.png", 30000, 30000)
    (pictures / "readme.txt").write_text("not listed: not named as a picture")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4")

    scan = scan_images([pictures, report, tmp_path / "gone.png"])

    assert [(p.name, w, h, levels) for p, w, h, levels in scan.readable] == [("good.png", 64, 64, 1),
                                                                             ("photo.png", 64, 64, 1)]
    assert {p.name: reason for p, reason in scan.unreadable} == {
        "cut.png": "the file is truncated or damaged",
        "empty.png": "the file is empty (0 bytes)",
        "huge.png": "too large to open as a plain image (30000 x 30000 = 900 megapixels; the limit is 150). "
                    "Convert it to a pyramidal TIFF or OME-TIFF to open it as a slide",
        "noise.bmp": "this is not a PNG, JPEG, BMP or TIFF image, or it is damaged",
        "notes.png": "this is not an image file (it looks like text)",
        "report.pdf": "unsupported image format '.pdf'; supported are .png, .jpg, .jpeg, .bmp, .tif, .tiff",
        "gone.png": "file not found",
    }
    project, _ = create_project(tmp_path / "project", [pictures, report], default_classes(["a", "b"]))
    with project:
        assert [i.name for i in project.images()] == ["good.png", "photo.png"]
        label = project.add_label(project.images()[1].id, 10, 10, project.classes()[0].id)
    with Project.open(tmp_path / "project") as project:
        assert [lab.id for lab in project.labels()] == [label] and project.integrity_ok()
        # Adding to the open project: the same rules, nothing added twice, labels untouched.
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "later.png")
        ids, already, scan = add_images(project, [pictures, tmp_path / "later.png", tmp_path / "gone.png",
                                                  tmp_path / "later.png"])
        assert [project.image(i).name for i in ids] == ["later.png"] and already == 2
        assert len(scan.readable) == 3 and {p.name for p, _ in scan.unreadable} >= {"cut.png", "gone.png"}
        assert (tmp_path / "later.png", f"the same file as {tmp_path / 'later.png'}") in scan.unreadable  # given twice
        assert len(project.images()) == 3 and [lab.id for lab in project.labels()] == [label]


def test_no_readable_image_makes_no_project(tmp_path):
    (tmp_path / "empty.png").touch()
    with pytest.raises(ProjectError, match=r"No readable images were found \(empty.png: the file is empty"):
        create_project(tmp_path / "project", [tmp_path / "empty.png"], default_classes(["a", "b"]))
    assert not (tmp_path / "project").exists()


# ----- a read-only project -----------------------------------------------------------------------

_OPEN = """
import sys
from desktop.engine.errors import ProjectError
from desktop.engine.project.store import Project
try:
    Project.open(sys.argv[1])
except ProjectError as e:
    print(e)
else:
    print("opened")
"""


def _without_root_powers():
    """Drop, from this (child) process's capability bounding set, what lets root write through
    file permissions: the program it then runs is root bound by them (Linux, with CAP_SETPCAP)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def _run_bound_by_permissions(args):
    """Run ``args`` as a process that file permissions bind: as it is unless the tests run as
    root, else as root without its powers over files, else as 'nobody' (which needs an interpreter
    that 'nobody' may run); skip the test when none of these can be had here."""
    ways = [None] if os.geteuid() != 0 else [_without_root_powers, _as_nobody]
    for preexec in ways:
        try:
            return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, preexec_fn=preexec)
        except (subprocess.SubprocessError, OSError):
            continue
    pytest.skip("no way here to run a check that file permissions bind")


def test_a_read_only_project_is_refused_with_a_clear_message_and_kept(tmp_path):
    # Not under tmp_path, which as root lies in a folder that only root may enter.
    base = Path(tempfile.mkdtemp(prefix="pointillist-read-only-"))
    try:
        base.chmod(0o755)
        project = _labelled_project(base)
        labels = project.labels()
        project.close()
        folder = project.folder
        before = _files(folder)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        run = _run_bound_by_permissions([sys.executable, "-c", _OPEN, str(folder)])
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == (
            f"The project 'project' is read-only: this user may not write to {folder}. Pointillist saves "
            "every label the moment you click, so it opens only projects it can write to. Copy the project "
            "folder to a place where you may write (or ask for write permission), then open it again. "
            "Nothing was changed.")
        assert _files(folder) == before
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        with Project.open(folder) as reopened:
            assert reopened.labels() == labels
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(base)


# ----- a full disk -------------------------------------------------------------------------------

def _fill_the_disk(monkeypatch):
    """Every ``Path.write_bytes`` (how atomic_write_bytes writes) writes half, then finds the disk full."""
    def half_then_full(self, data):
        with open(self, "wb") as f:
            f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", half_then_full)


def test_a_full_disk_leaves_no_half_written_model_or_export(tmp_path, monkeypatch):
    project = _labelled_project(tmp_path, images=2)
    engine = SegmentationEngine(project, validation_fraction=0)
    engine.train(20)
    export_masks(engine, tmp_path / "masks")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pt").write_bytes(b"an earlier export")
    models, masks, model = (_files(project.models_dir), _files(tmp_path / "masks"), _files(tmp_path / "model"))
    assert list(models) == ["fast-v1.pt"]

    _fill_the_disk(monkeypatch)
    report = engine.train(20)
    assert report.published and engine.version == 2  # the new model is in use, though not saved
    assert engine.problems == [
        f"Cannot save 'fast-v2.pt' (in {project.models_dir}): the disk is full. Free some space on it and "
        "try again. Nothing was half-written, and files saved before are unchanged. The model in use is not "
        "affected; the next version will be saved again."]
    assert project.model_versions()[-1].path is None
    with pytest.raises(ProjectError) as caught:
        export_masks(engine, tmp_path / "masks")
    assert str(caught.value).startswith(f"Cannot save 'cells0.png' (in {tmp_path / 'masks'}): the disk is full.")
    with pytest.raises(ProjectError, match="Cannot save 'model.pt' .*: the disk is full"):
        export_model(engine, tmp_path / "model")
    assert (_files(project.models_dir), _files(tmp_path / "masks"), _files(tmp_path / "model")) == (
        models, masks, model)  # the earlier files, whole, and no temporaries beside them

    monkeypatch.undo()  # space freed
    engine.train(20)
    assert sorted(_files(project.models_dir)) == ["fast-v1.pt", "fast-v3.pt"]
    assert SegmentationEngine(project).load_latest_weights().version == 3


# ----- model files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def five_versions(tmp_path_factory):
    """A project whose fast learner published five versions, beside an older release's
    ``fast-latest.pt`` and the deep learner's file; and what version 4 predicts."""
    tmp_path = tmp_path_factory.mktemp("five")
    project = _labelled_project(tmp_path)
    (project.models_dir / "fast-latest.pt").write_bytes(b"from an older Pointillist")
    (project.models_dir / "deep-v1.pt").write_bytes(b"the other learner's")
    engine = SegmentationEngine(project, validation_fraction=0)
    for _ in range(5):
        engine.train(10)
    expected = SegmentationEngine(project)
    expected.learner.load_state_dict(torch.load(project.models_dir / "fast-v4.pt", weights_only=True))
    expected.model.classes = expected.training_classes()  # as loading a saved model does: both classes
    version_4 = expected.predict(project.images()[0].id)
    project.close()
    return project.folder, version_4


@pytest.fixture
def saved(five_versions, tmp_path):
    """A copy of the ``five_versions`` project (its images stay where they are)."""
    folder, version_4 = five_versions
    shutil.copytree(folder, tmp_path / "project")
    with Project.open(tmp_path / "project") as project:
        yield project, version_4


def test_only_the_newest_model_files_are_kept(saved):
    project, _ = saved
    assert sorted(_files(project.models_dir)) == ["deep-v1.pt", "fast-latest.pt", "fast-v3.pt", "fast-v4.pt",
                                                  "fast-v5.pt"]  # files the app did not record stay


class _RunsCode:
    """Unpickled without ``weights_only``, this would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _damage(path, how, tmp_path):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()
    elif how == "runs code":
        torch.save({"learner": "fast", "payload": _RunsCode(tmp_path / "ran")}, path)
    elif how == "other classes":
        state = torch.load(path, weights_only=True)
        torch.save({**state, "num_classes": 3}, path)


@pytest.mark.parametrize("how", ["truncated", "zeroed", "empty", "missing", "runs code", "other classes"])
def test_a_damaged_newest_model_falls_back_to_the_one_before(saved, tmp_path, how):
    project, version_4 = saved
    _damage(project.models_dir / "fast-v5.pt", how, tmp_path)
    restored = SegmentationEngine(project)
    assert restored.load_latest_weights().version == 4 and restored.version == 4
    why = {"missing": "is missing",
           "other classes": "does not fit this project (made for other classes or keypoints, or by an older version)",
           }.get(how, "is damaged or incomplete")
    assert restored.problems == [f"A saved model cannot be used: 'fast-v5.pt' {why}. Using the saved "
                                 "version 4 instead; your labels are safe."]
    assert not (tmp_path / "ran").exists()
    np.testing.assert_array_equal(restored.predict(project.images()[0].id), version_4)


def test_with_every_saved_model_damaged_the_model_is_retrained(saved):
    project, _ = saved
    for path in project.models_dir.glob("fast-v*.pt"):
        path.write_bytes(b"garbage")
    restored = SegmentationEngine(project)
    assert restored.load_latest_weights() is None and not restored.learner.trained
    assert restored.problems == [
        "A saved model cannot be used: 'fast-v5.pt' is damaged or incomplete; 'fast-v4.pt' is damaged or "
        "incomplete; 'fast-v3.pt' is damaged or incomplete. "
        "The model will be retrained from your labels, which are safe."]
    assert restored.train(10).version == 6


def test_every_torch_load_is_weights_only():
    """Model files are data from disk: loading one must never run code from it."""
    calls = []
    for path in sorted([*REPO.glob("desktop/**/*.py"), *REPO.glob("models/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                keywords = {k.arg: k.value for k in node.keywords}
                safe = isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", safe is True))
    assert {"desktop/engine/learning/task_engine.py", "models/encoder.py"} <= {c.split(":")[0] for c, _ in calls}
    assert [c for c, safe in calls if not safe] == []


def test_the_export_command_says_which_model_it_passed_over(saved, tmp_path, capsys):
    from desktop.cli import main

    project, _ = saved
    _damage(project.models_dir / "fast-v5.pt", "truncated", tmp_path)
    assert main(["export", str(project.folder), "--masks", str(tmp_path / "masks")]) == 0
    out = capsys.readouterr().out
    assert ("A saved model cannot be used: 'fast-v5.pt' is damaged or incomplete. Using the saved version 4 "
            "instead; your labels are safe.") in out
    assert "mask(s) to" in out


def test_a_keypoint_project_leaves_slides_out_with_the_reason(tmp_path):
    from desktop.engine.images.synthetic_slide import generate_ome_tiff
    from desktop.engine.project.skeleton import Skeleton

    generate_ome_tiff(tmp_path / "slide.ome.tif", 3000)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "frame.png")
    project, scan = create_project(tmp_path / "kp", [tmp_path / "frame.png", tmp_path / "slide.ome.tif"], [],
                                   task="keypoints", skeleton=Skeleton(("nose",)))
    with project:
        assert [i.name for i in project.images()] == ["frame.png"]
        assert scan.unreadable == [(tmp_path / "slide.ome.tif", "a slide: keypoint projects take pictures and video "
                                                                 "frames")]
        ids, already, later = add_images(project, [tmp_path / "slide.ome.tif"])
        assert ids == [] and already == 0 and "a slide" in later.unreadable[0][1]
