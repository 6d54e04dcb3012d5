"""A large picture in the real window with the real engine: the whole image is painted on a
coarse grid, and the part the expert zooms into at full resolution over it (issue 19)."""
import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRectF
from PySide6.QtTest import QTest
from skimage import data

from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow

from .conftest import click

TIMEOUT = 120_000  # ms: features of 1.2 megapixels and the first model on a busy 2-core machine
SIDE = 1100  # over view_grid.LARGE_PIXELS


def large_project(folder):
    folder.mkdir(parents=True)
    pixels = cv2.resize(data.immunohistochemistry(), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(pixels).save(folder / "tissue.png")
    project = Project.create(folder / "project", classes=[("stain", "#8e3b9a", "1"), ("background", "#f2e8c9", "2")])
    project.add_image(folder / "tissue.png", SIDE, SIDE)
    project.close()
    return folder / "project", pixels.mean(axis=2)


def test_the_view_is_painted_finely_over_a_coarse_whole_and_zooming_in_sharpens_it(qtbot, show, tmp_path):
    folder, grey = large_project(tmp_path / "data")
    win = show(MainWindow(folder, torch_threads=1))
    ws, viewer = win.workspace, win.workspace.image_viewer
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)
    QTest.keyClick(viewer, "m")  # free clicking
    rng = np.random.default_rng(0)
    threshold = np.median(grey)
    for x, y in rng.integers(20, SIDE - 20, (12, 2)):
        QTest.keyClick(viewer, "1" if grey[y, x] < threshold else "2")
        click(viewer, int(x), int(y))
    qtbot.waitUntil(lambda: viewer.items["prediction"].image is not None
                    and (viewer.items["prediction"].image < 2).any(), timeout=TIMEOUT)
    fitted = viewer.pixels_per_screen_pixel()
    first_look = viewer.items["prediction"].image.shape[0]  # twice as coarse as the screen
    qtbot.waitUntil(lambda: viewer.items["prediction"].image.shape[0] * fitted >= SIDE / 2, timeout=TIMEOUT)
    base = viewer.items["prediction"].image
    assert fitted > 1 and base.shape[0] < SIDE  # the whole image, about one class per screen pixel
    assert first_look * fitted < SIDE / 2 <= base.shape[0] * fitted

    viewer.view.setRange(QRectF(400, 300, 150, 150), padding=0)  # zoom in: finer than the image
    qtbot.waitUntil(lambda: viewer._patch["prediction"].image is not None and viewer.painted_stride == 1,
                    timeout=TIMEOUT)  # after a first look at stride 2
    patch = viewer._patch["prediction"]
    rect = patch.mapRectToParent(patch.boundingRect())
    assert patch.image.shape == (round(rect.height()), round(rect.width()))  # one class per image pixel
    assert rect.contains(QRectF(400, 300, 150, 150))
    stride = SIDE / viewer.items["prediction"].image.shape[0]
    under = viewer.items["prediction"].image[int(rect.top() // stride):int(np.ceil(rect.bottom() / stride)),
                                             int(rect.left() // stride):int(np.ceil(rect.right() / stride))]
    assert under.size and np.all(under == 255)  # the base is see-through wherever the patch reaches: no double tint
    # the patch agrees with the coarse base around it, and the stain the expert labelled is in it
    dark = grey[int(rect.top()):int(rect.bottom()), int(rect.left()):int(rect.right())] < threshold
    assert (patch.image[:dark.shape[0], :dark.shape[1]] == 0)[dark].mean() > 0.7

    QTest.keyClick(viewer, "p")  # the prediction layer goes, the patch with it
    assert not viewer.items["prediction"].isVisible() and not patch.isVisible()
    QTest.keyClick(viewer, "]")  # back, and more opaque: both parts alike
    QTest.keyClick(viewer, "p")
    assert patch.isVisible() and patch.opacity() == viewer.items["prediction"].opacity()
    win.close()


def test_the_guess_of_an_old_query_reads_the_view_part_where_it_reaches_and_the_whole_elsewhere():
    from desktop.engine.service.messages import Prediction, QueryPoint
    from desktop.gui.overlay_guess import with_overlay_guess

    whole = Prediction(1, 1, 3, np.zeros((10, 10), np.uint8), np.full((10, 10), 0.6, np.float32),
                       np.zeros((10, 10), np.float32), stride=8)  # 80 x 80 pixels, class 0
    view = Prediction(1, 1, 3, np.ones((16, 16), np.uint8), np.full((16, 16), 0.9, np.float32),
                      np.zeros((16, 16), np.float32), stride=1, origin=(20, 30))  # rows 20-35, columns 30-45: class 1
    inside, outside, past = QueryPoint(7, 33.0, 25.0, ()), QueryPoint(8, 60.0, 25.0, ()), QueryPoint(9, 95.0, 5.0, ())
    assert with_overlay_guess(inside, [view, whole]).candidates == ((1, pytest.approx(0.9)),)
    assert with_overlay_guess(outside, [view, whole]).candidates == ((0, pytest.approx(0.6)),)
    assert with_overlay_guess(past, [view, whole]).candidates == ((0, pytest.approx(0.6)),)  # the whole's edge
    assert with_overlay_guess(inside, []) == inside
