"""File > Predict images or slides...: the dialog, with real widgets and real child processes.

Most tests start tests/fake_predict_cli.py, a stand-in that speaks the command's protocol in a
fraction of a second; the command-line builder is what the dialog takes to start it.
"""
import json
import sys
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QProcess, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from desktop.gui import predict_dialog
from desktop.gui.app import MainWindow
from desktop.gui.predict_command import Done, Summary, Total, parse_line, predict_arguments, predict_command
from desktop.gui.predict_dialog import PredictDialog

FAKE = Path(__file__).resolve().parents[1] / "fake_predict_cli.py"


def fake(*options: str):
    """A command builder that starts the stand-in, with its own options before 'predict'."""
    return lambda arguments: [sys.executable, str(FAKE), *options, "predict", *arguments]


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/broken.png", "sub/c.png"):
        (folder / name).write_bytes(b"x")
    return folder


def dialog_for(qtbot, tmp_path, inputs, command, images=()):
    dialog = PredictDialog(tmp_path / "project", list(images), "deep", command=command)
    qtbot.addWidget(dialog)
    dialog.add_inputs([inputs])
    dialog.out.setText(str(tmp_path / "out"))
    return dialog


def gone(pid: int) -> bool:
    """No process left with this id, not even a zombie waiting to be reaped."""
    return not psutil.pid_exists(pid)


def test_the_command_line_of_a_normal_run_runs_the_module_with_this_python(tmp_path):
    arguments = predict_arguments(tmp_path / "p", [tmp_path / "a b.png", tmp_path / "d"], tmp_path / "out",
                                  ["mask", "geojson"], "deep", 3)
    assert predict_command(arguments) == [
        sys.executable, "-m", "desktop.cli", "predict", str(tmp_path / "p"), str(tmp_path / "a b.png"),
        str(tmp_path / "d"), "--out", str(tmp_path / "out"), "--formats", "mask,geojson", "--learner", "deep",
        "--workers", "3"]


def test_the_frozen_app_is_its_own_command(monkeypatch):
    """packaging/launch.py hands the frozen executable's arguments to desktop.cli.main."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/Applications/Pointillist.app/Contents/MacOS/Pointillist")
    assert predict_command(["p", "a.png"]) == [sys.executable, "predict", "p", "a.png"]


def test_the_protocol_lines_are_read_and_anything_else_is_ignored():
    assert parse_line("inputs 12\n") == Total(12)
    assert parse_line("done 3/12 my slide.svs :: ok") == Done(3, 12, "my slide.svs", None)
    assert parse_line("done 4/12 x.png :: failed: cannot read it: truncated") == Done(4, 12, "x.png",
                                                                                    "cannot read it: truncated")
    assert parse_line("summary /tmp/out dir/summary.csv\r\n") == Summary(Path("/tmp/out dir/summary.csv"))
    for other in ("", "inputs many", "done soon", "done 1/2 x.png", "UserWarning: something", "summary"):
        assert parse_line(other) is None


def test_a_run_to_completion_shows_progress_failures_and_the_summary(qtbot, tmp_path, inputs, monkeypatch):
    opened = []
    monkeypatch.setattr(predict_dialog.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    dialog = dialog_for(qtbot, tmp_path, inputs, fake("--delay", "0.05"))
    dialog.formats["preview"].setChecked(False)
    dialog.formats["ome-tiff"].setChecked(False)
    dialog.workers.setValue(2)
    assert dialog.learner.currentText() == "deep" and not dialog.open_button.isEnabled()
    QTest.mouseClick(dialog.start_button, Qt.LeftButton)
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=20000)
    assert dialog.progress.maximum() == 4 and dialog.progress.value() == 4
    assert [dialog.failures.item(i).text() for i in range(dialog.failures.count())] == [
        "broken.png: cannot read this file: it is not an image"]
    assert dialog.current.text() == "Done: 1 of 4 failed (listed below); the others are predicted."
    assert dialog.message.text() == f"Summary: {tmp_path / 'out' / 'summary.csv'}"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mask.png")) == ["a.mask.png", "b.mask.png",
                                                                              "c.mask.png"]
    assert json.loads((tmp_path / "out" / "arguments.json").read_text()) == [
        str(tmp_path / "project"), str(inputs), "--out", str(tmp_path / "out"), "--formats", "mask,geojson",
        "--learner", "deep", "--workers", "2"]
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.open_button.isEnabled()
    QTest.mouseClick(dialog.open_button, Qt.LeftButton)
    assert opened == [str(tmp_path / "out")]


def test_cancel_midway_stops_the_process_and_says_so(qtbot, tmp_path, inputs):
    for i in range(20):
        (inputs / f"more{i}.png").write_bytes(b"x")
    dialog = dialog_for(qtbot, tmp_path, inputs, fake("--delay", "0.3"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.value() >= 2, timeout=20000)
    pid = dialog.run.process.processId()
    QTest.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.run.process.state() == QProcess.NotRunning, timeout=5000)
    qtbot.waitUntil(lambda: gone(pid), timeout=5000)
    assert dialog.current.text().startswith("Cancelled after ") and "of 24" in dialog.current.text()
    assert dialog.message.text().startswith("Cancelled.")
    assert 2 <= dialog.progress.value() < 24 and dialog.start_button.isEnabled()


def test_a_usage_error_shows_what_the_command_said(qtbot, tmp_path, inputs):
    dialog = dialog_for(qtbot, tmp_path, inputs, fake("--usage-error", "The project has no model yet: label first."))
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=20000)
    assert dialog.message.text() == ("The prediction could not start:\n"
                                     "pointillist: The project has no model yet: label first.")
    assert dialog.current.text() == "Not started." and dialog.failures.isHidden()
    assert dialog.start_button.isEnabled()


def test_a_command_that_cannot_be_found_is_said(qtbot, tmp_path, inputs):
    dialog = dialog_for(qtbot, tmp_path, inputs, lambda arguments: [str(tmp_path / "no-such-program"), *arguments])
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running() and dialog.start_button.isEnabled(), timeout=10000)
    assert dialog.message.text().startswith("The prediction stopped before the end:\nCould not start ")


def test_many_inputs_go_to_the_command_in_a_list_file(qtbot, tmp_path):
    """A project's own images can be thousands: more than a Windows command line holds."""
    folder = tmp_path / ("a-long-folder-name-" * 4)
    folder.mkdir()
    images = [folder / f"image-with-a-long-name-{i:04d}.png" for i in range(200)]
    for path in images:
        path.write_bytes(b"x")
    (tmp_path / "mine.txt").write_text(f"{images[0]}\n")
    dialog = PredictDialog(tmp_path / "project", images, command=fake("--delay", "0"))
    qtbot.addWidget(dialog)
    dialog.use_project_images()
    dialog.add_inputs([tmp_path / "mine.txt"])
    dialog.out.setText(str(tmp_path / "out"))
    dialog.start()
    listed = Path(dialog.list_folder.name) / "inputs.txt"
    assert listed.read_text().splitlines() == [str(p) for p in images]
    qtbot.waitUntil(lambda: not dialog.running(), timeout=20000)
    arguments = json.loads((tmp_path / "out" / "arguments.json").read_text())
    assert arguments[1:3] == [str(tmp_path / "mine.txt"), str(listed)] and arguments[3] == "--out"
    assert dialog.progress.value() == dialog.progress.maximum() == 201
    assert len(list((tmp_path / "out").glob("*.mask.png"))) == 200
    assert not listed.parent.exists()  # the list goes when the run ends


def test_bad_choices_are_said_before_anything_starts(qtbot, tmp_path, inputs, monkeypatch):
    dialog = PredictDialog(tmp_path / "project", [], command=fake())
    qtbot.addWidget(dialog)

    def said() -> str:
        dialog.start()
        assert dialog.run is None  # nothing started
        return dialog.message.text()

    assert said().startswith("Add the images, slides or folders to predict")
    dialog.add_inputs([inputs, tmp_path / "b.png"])
    dialog.inputs.setCurrentRow(1)
    dialog.remove_selected()
    assert dialog.input_paths() == [inputs]
    assert said() == "Choose an output folder."
    (tmp_path / "a-file").write_text("x")
    dialog.out.setText(str(tmp_path / "a-file"))
    assert said() == f"The output folder {tmp_path / 'a-file'} is a file: choose a folder."
    dialog.out.setText(str(tmp_path / "new" / "out"))
    monkeypatch.setattr(predict_dialog.os, "access", lambda path, mode: False)  # read-only, as root too
    assert said() == f"This user may not write in {tmp_path}: choose another output folder."
    monkeypatch.undo()
    for box in dialog.formats.values():
        box.setChecked(False)
    assert said() == "Tick at least one format."


def test_the_project_images_are_one_click_and_listed_once(qtbot, tmp_path):
    images = [tmp_path / "a.png", tmp_path / "b.svs"]
    dialog = PredictDialog(tmp_path / "project", images)
    qtbot.addWidget(dialog)
    dialog.add_inputs([tmp_path / "other.png"])
    QTest.mouseClick(dialog.project_images_button, Qt.LeftButton)
    dialog.add_inputs([tmp_path / "a.png"])
    assert dialog.input_paths() == images


def test_closing_during_a_run_asks_then_stops_the_process(qtbot, tmp_path, inputs, monkeypatch):
    answers = [QMessageBox.No, QMessageBox.Yes]
    monkeypatch.setattr(predict_dialog.QMessageBox, "question", lambda *a: answers.pop(0))
    dialog = dialog_for(qtbot, tmp_path, inputs, fake("--delay", "1"))
    dialog.show()
    dialog.start()
    qtbot.waitUntil(lambda: dialog.run.process.state() == QProcess.Running, timeout=10000)
    pid = dialog.run.process.processId()
    assert not dialog.close() and dialog.isVisible() and dialog.running()  # 'No': it goes on
    QTest.keyClick(dialog, Qt.Key_Escape)  # Escape asks too: 'Yes'
    assert not answers and not dialog.isVisible()
    assert dialog.run.process.state() == QProcess.NotRunning and gone(pid)


def test_the_file_menu_opens_it_for_a_segmentation_project(show, blob_project):
    win = show(MainWindow(start_engine=False))
    assert not win.predict_action.isEnabled()
    win.open_project(blob_project)
    win.workspace.training_panel.learner.setCurrentText("deep")
    assert win.predict_action.isEnabled()
    win.predict_action.trigger()
    dialog = win.predict_dialog
    assert dialog.isVisible() and dialog.project == blob_project.resolve()
    assert dialog.learner.currentText() == "deep"
    QTest.mouseClick(dialog.project_images_button, Qt.LeftButton)
    assert [p.name for p in dialog.input_paths()] == ["picture0.png", "picture1.png"]
    dialog.out.setText("/somewhere")
    dialog.close()
    win.predict_action.trigger()  # the same dialog again, with its choices
    assert win.predict_dialog is dialog and dialog.isVisible() and dialog.out.text() == "/somewhere"
    win.close()
    assert not dialog.isVisible()


def test_closing_the_main_window_during_a_run_asks_and_leaves_no_process(qtbot, show, blob_project, tmp_path,
                                                                         inputs, monkeypatch):
    answers = [QMessageBox.No, QMessageBox.Yes]
    monkeypatch.setattr(predict_dialog.QMessageBox, "question", lambda *a: answers.pop(0))
    win = show(MainWindow(blob_project, start_engine=False))
    win.predict_action.trigger()
    dialog = win.predict_dialog
    dialog.command = fake("--delay", "1")  # the stand-in, in place of the real command
    dialog.add_inputs([inputs])
    dialog.out.setText(str(tmp_path / "out"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.run.process.state() == QProcess.Running, timeout=10000)
    pid = dialog.run.process.processId()
    assert not win.close() and win.isVisible() and dialog.running()  # 'No': both stay
    assert win.close() and not answers
    assert dialog.run.process.state() == QProcess.NotRunning and gone(pid)
