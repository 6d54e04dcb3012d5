"""The app's own folders (``desktop.paths``): one place for the commands and the window, moved as
a whole by ``POINTILLIST_HOME``, and the recent-projects list kept there."""
import json
import os

import pytest
from platformdirs import user_data_path

from desktop import paths
from desktop.engine.errors import ProjectError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_VARIABLE, str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_home_variable_moves_every_folder(home, monkeypatch, tmp_path):
    assert paths.data_dir() == home
    assert paths.demo_dir().parent == home and paths.recent_file().parent == home
    monkeypatch.delenv(paths.HOME_VARIABLE)
    assert paths.data_dir() == user_data_path("Pointillist", appauthor=False)
    with paths.home_at(tmp_path / "elsewhere"):
        assert paths.demo_dir() == tmp_path / "elsewhere" / "demo-project"
    assert paths.HOME_VARIABLE not in os.environ  # put back as it was


def test_the_recent_list_round_trips_newest_first(home, tmp_path):
    folders = [tmp_path / f"project{i}" for i in range(paths.MAX_RECENT + 2)]
    for folder in folders:
        folder.mkdir()
    assert paths.recent_projects() == []  # no file yet
    paths.remember_project(folders[0])
    paths.remember_project(folders[1])
    paths.remember_project(folders[0])  # chosen again: moves to the top, not listed twice
    assert paths.recent_projects() == [folders[0], folders[1]]
    for folder in folders:
        paths.remember_project(folder)
    assert paths.recent_projects() == folders[::-1][:paths.MAX_RECENT]
    assert json.loads(paths.recent_file().read_text())["projects"][0] == str(folders[-1])


def test_the_recent_list_drops_folders_that_are_gone(home, tmp_path):
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.mkdir()
    gone.mkdir()
    paths.remember_project(kept)
    paths.remember_project(gone)
    gone.rmdir()
    assert paths.recent_projects() == [kept]
    paths.remember_project(kept)
    assert json.loads(paths.recent_file().read_text()) == {"projects": [str(kept)]}


DAMAGED = [b"", b"{", b"\xff\xfe\x00garbage", b"[1, 2]", b"null", b'{"projects": "one"}', b'{"other": []}',
           b"[" * 100_000, b'{"projects": [1, null, "", ["a"], "/no/such/folder", "' + b"x" * 5000 + b'"]}']


@pytest.mark.parametrize("content", DAMAGED, ids=range(len(DAMAGED)))
def test_a_damaged_recent_list_reads_as_empty_and_is_rewritten(home, tmp_path, content):
    home.mkdir()
    paths.recent_file().write_bytes(content)
    assert paths.recent_projects() == []
    paths.remember_project(tmp_path)
    assert paths.recent_projects() == [tmp_path]


def test_a_recent_list_that_cannot_be_written_says_why(home, tmp_path):
    paths.recent_file().mkdir(parents=True)  # a folder where the file should be
    assert paths.recent_projects() == []
    with pytest.raises(ProjectError, match="Cannot save 'recent-projects.json'.*Nothing was half-written"):
        paths.remember_project(tmp_path)
