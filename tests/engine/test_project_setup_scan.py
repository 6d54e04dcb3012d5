"""Scanning the files of a new project: links (to the same file, to nothing, in a loop), named
pipes, progress and cancelling, through ``scan_images`` and through ``pointillist new``."""
import os
import threading

import pytest

from desktop.cli import main
from desktop.engine.project.setup import create_project, default_classes, scan_images
from desktop.engine.project.store import Project

from .helpers import blob_image


@pytest.fixture
def linked(tmp_path):
    """A folder with two pictures, a link to one of them, a dangling link, two links to each other
    and a sub-folder named like a picture."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    blob_image(folder / "a.png", 48)
    blob_image(folder / "b.png", 48, seed=1)
    (folder / "copy.png").symlink_to(folder / "a.png")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    (folder / "loop1.png").symlink_to(folder / "loop2.png")
    (folder / "loop2.png").symlink_to(folder / "loop1.png")
    (folder / "sub.png").mkdir()
    return folder


def reasons(scan):
    return {p.name: reason for p, reason in scan.unreadable}


def test_a_file_reached_twice_counts_once_and_bad_links_are_listed_with_their_reason(linked):
    scan = scan_images([linked, linked / "b.png"])
    assert [p.name for p, *_ in scan.readable] == ["a.png", "b.png"]
    assert reasons(scan) == {
        "b.png": f"the same file as {linked / 'b.png'}",  # given twice: in the folder and alone
        "copy.png": f"the same file as {linked / 'a.png'}",
        "gone.png": "a link to a file that does not exist",
        "loop1.png": "a link that points to itself in a loop",
        "loop2.png": "a link that points to itself in a loop",
    }
    assert len(scan.unreadable) == 5 and not scan.cancelled  # 7 files given, 2 read: it adds up


def test_the_project_holds_as_many_images_as_the_scan_says(linked, tmp_path):
    project, scan = create_project(tmp_path / "project", [linked / "copy.png", linked],
                                   default_classes(["a", "b"]))
    with project:
        assert [i.name for i in project.images()] == ["a.png", "b.png"]  # the link's target
    assert [p.name for p, *_ in scan.readable] == ["copy.png", "b.png"]  # as given: the link came first
    assert reasons(scan)["a.png"] == f"the same file as {linked / 'copy.png'}"


def test_pointillist_new_counts_a_linked_duplicate_once_and_lists_every_file_left_out(linked, tmp_path, capsys):
    assert main(["new", "--images", str(linked), "--classes", "a,b", "--dir", str(tmp_path / "project")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Created {tmp_path / 'project'} with 2 image(s)."
    assert sorted(out[1:]) == [f"  not added: copy.png: the same file as {linked / 'a.png'}",
                               "  not added: gone.png: a link to a file that does not exist",
                               "  not added: loop1.png: a link that points to itself in a loop",
                               "  not added: loop2.png: a link that points to itself in a loop"]
    with Project.open(tmp_path / "project") as project:
        assert len(project.images()) == 2


def _in_a_thread(work, seconds=20):
    """Run ``work`` on a daemon thread and fail, rather than hang, if it is still going."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still waiting on a named pipe"
    return result["value"]


def test_a_named_pipe_named_like_a_picture_is_listed_not_read(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    blob_image(folder / "a.png", 48)
    os.mkfifo(folder / "x.png")
    scan = _in_a_thread(lambda: scan_images([folder, folder / "x.png"]))
    assert [p.name for p, *_ in scan.readable] == ["a.png"]
    assert scan.unreadable == [(folder / "x.png", "this is a named pipe (FIFO), not a regular file")] * 2
    assert _in_a_thread(lambda: main(["new", "--images", str(folder), "--classes", "a,b",
                                      "--dir", str(tmp_path / "project")])) == 0
    assert "  not added: x.png: this is a named pipe (FIFO), not a regular file" in capsys.readouterr().out


def test_progress_is_reported_per_file_and_a_cancelled_scan_stops_between_files(tmp_path):
    for i in range(5):
        blob_image(tmp_path / f"p{i}.png", 48, seed=i)
    seen = []
    scan = scan_images([tmp_path], progress=lambda n, total, path: seen.append((n, total, path.name)))
    assert seen == [(n, 5, f"p{n - 1}.png") for n in range(1, 6)] and len(scan.readable) == 5
    seen.clear()
    scan = scan_images([tmp_path], progress=lambda n, total, path: seen.append(n), cancelled=lambda: len(seen) == 2)
    assert scan.cancelled and seen == [1, 2] and [p.name for p, *_ in scan.readable] == ["p0.png", "p1.png"]


def test_a_folder_is_scanned_with_its_sub_folders_once_each_hidden_ones_skipped_and_capped(tmp_path, monkeypatch):
    from desktop.engine.project import setup

    top = tmp_path / "pictures"
    (top / "day1" / "cam1").mkdir(parents=True)
    (top / ".cache").mkdir()
    blob_image(top / "a.png", 48)
    blob_image(top / "day1" / "b.png", 48, seed=1)
    blob_image(top / "day1" / "cam1" / "c.png", 48, seed=2)
    blob_image(top / ".cache" / "hidden.png", 48, seed=3)
    (top / "day1" / "cam1" / "up").symlink_to(top)  # a link back up: followed once, not round and round
    scan = scan_images([top])
    assert sorted(p.relative_to(top).as_posix() for p, *_ in scan.readable) == ["a.png", "day1/b.png",
                                                                                  "day1/cam1/c.png"]
    assert scan.unreadable == [] and not scan.cancelled
    assert scan_images([top], cancelled=lambda: True).cancelled  # a vast tree can be stopped while listed
    monkeypatch.setattr(setup, "MAX_FOLDER_FILES", 2)
    scan = scan_images([top])
    assert len(scan.readable) == 2
    assert scan.unreadable == [(top, "more than 2 images in it and its sub-folders: only the first 2 found "
                                     "are taken")]
