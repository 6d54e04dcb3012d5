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


def test_a_folder_that_is_gone_is_said_to_not_exist_by_every_command(home, tmp_path, capsys):
    """The window's command line, export and predict say that the folder does not exist (it was
    'not a Pointillist project' before), a file that it is a file, a folder without a database
    that it is not a project; each exits 2 with nothing written."""
    from desktop.cli import main

    (tmp_path / "picture.png").write_bytes(b"")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "empty").mkdir()
    gone = tmp_path / "gone"
    commands = {"open": [str(gone)], "export": ["export", str(gone), "--masks", str(tmp_path / "masks")],
                "predict": ["predict", str(gone), str(tmp_path / "picture.png"), "--out", str(tmp_path / "out")]}
    for name, argv in commands.items():
        assert main(argv) == 2, name
        assert f"'{gone}' does not exist" in capsys.readouterr().err, name
    assert main([str(tmp_path / "a-file")]) == 2
    assert "is a file, not a project folder" in capsys.readouterr().err
    assert main([str(tmp_path / "empty")]) == 2
    assert "is not a Pointillist project" in capsys.readouterr().err
    assert not (tmp_path / "masks").exists() and not gone.exists()
    assert paths.recent_projects() == []


def test_bench_ui_leaves_the_recent_list_alone(home, tmp_path):
    """'pointillist bench ui' opens the real window on a temporary demo: the issue found three of
    its deleted folders in a user's Recent list. It keeps its folders in a home of its own."""
    import subprocess
    import sys

    kept = tmp_path / "kept"
    kept.mkdir()
    paths.remember_project(kept)
    before = paths.recent_file().read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_QPA")}
    env[paths.HOME_VARIABLE] = str(home)
    done = subprocess.run([sys.executable, "-m", "desktop.cli", "bench", "ui", "--clicks", "2"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert paths.recent_file().read_bytes() == before and sorted(p.name for p in home.iterdir()) == [
        "recent-projects.json"]
