"""The Predict dialog driving the real ``pointillist predict`` on a tiny trained project: a run to
the end, and Cancel during a run on two Dask workers, after which no process of it is left.

Each starts a real command (torch, the model, Dask), so each takes tens of seconds on a busy
machine; the dialog's other behaviour is tested against a stand-in in test_predict_dialog.py.
"""
import cv2
import numpy as np
import psutil
import pytest
from PySide6.QtCore import QProcess, Qt
from PySide6.QtTest import QTest

from desktop.engine.project.store import Project
from desktop.gui.predict_dialog import PredictDialog
from tests.engine.helpers import one_thread  # noqa: F401 - one_thread applies here
from tests.engine.helpers import trained_project as make_trained_project

RUN_TIMEOUT_MS = 180_000  # two shared cores: starting Python, torch and Dask workers takes a while


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    """Three small pictures of discs, labelled by clicks, and a fast model trained and saved."""
    project = make_trained_project(tmp_path_factory.mktemp("predict"), pictures=3, size=96)
    with Project.open(project) as opened:
        return project, [info.path for info in opened.images()]


def test_a_real_run_writes_the_masks_and_reaches_done(qtbot, tmp_path, trained_project):
    project, images = trained_project
    dialog = PredictDialog(project, images, "fast")
    qtbot.addWidget(dialog)
    QTest.mouseClick(dialog.project_images_button, Qt.LeftButton)
    dialog.out.setText(str(tmp_path / "out"))
    QTest.mouseClick(dialog.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running(), timeout=RUN_TIMEOUT_MS)
    assert dialog.current.text() == "Done: all 3 predicted.", dialog.message.text()
    assert dialog.progress.value() == dialog.progress.maximum() == 3
    assert dialog.message.text() == f"Summary: {tmp_path / 'out' / 'summary.csv'}"
    assert dialog.failures.count() == 0 and dialog.open_button.isEnabled()
    for i in range(3):
        mask = cv2.imread(str(tmp_path / "out" / f"cells{i}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape[:2] == (96, 96)
        assert (tmp_path / "out" / f"cells{i}_preview.png").is_file()


def test_cancel_stops_a_real_run_on_two_workers_and_leaves_no_process(qtbot, tmp_path, trained_project):
    project, _ = trained_project
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):  # enough work that the run is far from its end when cancelled
        cv2.imwrite(str(inputs / f"noise{i}.png"), rng.integers(0, 255, (512, 512), np.uint8))
    dialog = PredictDialog(project, [], "fast")
    qtbot.addWidget(dialog)
    dialog.add_inputs([inputs])
    dialog.out.setText(str(tmp_path / "out"))
    dialog.workers.setMaximum(2)
    dialog.workers.setValue(2)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1, timeout=RUN_TIMEOUT_MS)  # the workers are at work
    command = psutil.Process(dialog.run.process.processId())
    family = [command, *command.children(recursive=True)]
    assert len(family) >= 3  # the command and Dask's two workers at least
    QTest.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.run.process.state() == QProcess.NotRunning, timeout=15_000)
    assert dialog.current.text().startswith("Cancelled after ") and dialog.progress.value() < 20
    assert dialog.message.text().startswith("Cancelled.")
    qtbot.waitUntil(lambda: not any(p.is_running() for p in family), timeout=20_000)
