"""GUI tests run offscreen with the app's folders in a temporary one, on small generated projects."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from desktop.engine.project.store import Project  # noqa: E402
from desktop.paths import home_at  # noqa: E402

SIZE = 160
BLOB = (40, 100)  # the bright square spans these rows and columns


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, qapp):
    """The recent-projects list, the demo and any other folder of the app's go to a fresh
    temporary folder for each test (children started by a test inherit it), never the user's.
    Not with the ``monkeypatch`` fixture: a test's ``monkeypatch.undo()`` would undo this too.
    It also makes the QApplication that tests building widgets without ``qtbot`` rely on."""
    with home_at(tmp_path_factory.mktemp("home")):
        yield


def make_blob_project(folder, images=2):
    """Dark pictures with one bright square: class 'blob' inside, 'background' outside."""
    folder.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "project", classes=[("background", "#3050f0", "1"),
                                                          ("blob", "#ff0000", "2")])
    for i in range(images):
        pixels = np.full((SIZE, SIZE, 3), 20 + 10 * i, np.uint8)
        pixels[BLOB[0]:BLOB[1], BLOB[0]:BLOB[1]] = (230, 200, 40)
        Image.fromarray(pixels).save(folder / f"picture{i}.png")
        project.add_image(folder / f"picture{i}.png", SIZE, SIZE)
    project.close()
    return folder / "project"


@pytest.fixture
def blob_project(tmp_path):
    return make_blob_project(tmp_path / "data")


@pytest.fixture
def show(qtbot):
    """Show a window and wait until it is active: window shortcuts (Ctrl+Z) only reach that one."""

    def shown(win):
        qtbot.addWidget(win)
        win.show()
        win.activateWindow()
        qtbot.waitUntil(win.isActiveWindow)
        return win

    return shown


def click(viewer, x, y, button=Qt.LeftButton):
    """A real mouse click on image pixel (x, y) of a viewer."""
    QTest.mouseClick(viewer.viewport(), button, Qt.NoModifier, viewer.widget_point(x, y))
