"""A click costs the same with 100 labels on an image or 100,000 (issue 19, item 5): the label
points let clicks through, a click adds to one small scatter plot of them, and the counts and
the mean answer time follow the store by what changed. Engine thread off: this is the GUI."""
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from desktop.engine.project.store import Project
from desktop.gui.app import MainWindow
from desktop.gui.dots import CHUNK, Dots
from desktop.gui.label_tally import LabelTally

from .conftest import click


def _many_labels(folder, count):
    with Project.open(folder) as project:
        image_id, class_id = project.images()[0].id, project.classes()[0].id
        rng = np.random.default_rng(0)
        project.add_labels(image_id, [(float(x), float(y), class_id) for x, y in rng.uniform(0, 159, (count, 2))])


def test_a_click_on_a_label_goes_to_the_image_and_adds_to_one_small_plot(qtbot, show, blob_project):
    _many_labels(blob_project, 2 * CHUNK + 100)
    win = show(MainWindow(blob_project, start_engine=False))
    labels = win.workspace.viewer.items["labels"]
    plots = labels.childItems()
    assert [len(plot.data) for plot in plots] == [CHUNK, CHUNK, 100]
    taken = []
    for plot in plots:
        plot.sigClicked.connect(lambda *_: taken.append(True))
    x, y = labels.data["x"][5] - 0.5, labels.data["y"][5] - 0.5  # right on a drawn label
    QTest.keyClick(win.workspace.viewer, Qt.Key_M)
    click(win.workspace.viewer, x, y)
    assert not taken  # no scatter plot took the click (pyqtgraph built an object per point for it)
    assert labels.childItems()[:2] == plots[:2] and [len(p.data) for p in labels.childItems()] == [CHUNK, CHUNK, 101]
    with Project.open(blob_project) as project:
        assert project.label_count() == 2 * CHUNK + 101
    win.close()


def test_the_tally_follows_the_store_through_adds_deletes_undo_and_other_images(blob_project):
    with Project.open(blob_project) as project:
        first, second = (i.id for i in project.images())
        background, blob = (c.id for c in project.classes())
        project.add_labels(first, [(1.0, 2.0, background), (3.0, 4.0, background)], seconds=[2.0, None])
        tally = LabelTally(project)

        def agrees():
            tally.catch_up()
            counts = project.class_label_counts()
            return ([tally.count(first), tally.count(second)]
                    == [project.label_count(first), project.label_count(second)]
                    and tally.labelled_classes() == len(counts)
                    and tally.mean_seconds() == pytest.approx(project.mean_answer_seconds()))

        assert agrees() and tally.labelled_classes() == 1 and tally.mean_seconds() == 2.0
        new = project.add_label(second, 5.0, 6.0, blob, seconds=4.0)
        assert agrees() and tally.count(second) == 1 and tally.labelled_classes() == 2 and tally.mean_seconds() == 3.0
        project.delete_label(new)
        project.restore_label(new)
        project.delete_label(new)  # several operations on one label between two looks count once
        assert agrees() and tally.count(second) == 0 and tally.labelled_classes() == 1
        tally.catch_up()
        project.restore_label(new)
        assert agrees() and tally.count(second) == 1
        many = project.add_labels(first, [(float(i % 100), float(i // 100), blob) for i in range(3000)])
        project.delete_label(many[-1])
        assert agrees() and tally.count(first) == 2 + 2999


def test_a_repaint_draws_the_plot_that_changed_and_copies_the_full_ones(qtbot, show, blob_project, monkeypatch):
    """Drawing every label at every repaint was the window's longest stall with 100,000 labels."""
    _many_labels(blob_project, 2 * CHUNK + 100)
    painted = []
    draw = Dots.paint
    monkeypatch.setattr(Dots, "paint", lambda self, *args: (painted.append(self), draw(self, *args))[1])
    win = show(MainWindow(blob_project, start_engine=False))
    viewer = win.workspace.viewer
    plots = viewer.items["labels"].childItems()
    qtbot.wait(50)
    viewer.viewport().repaint()
    assert set(plots) <= set(painted)  # drawn, and their pictures kept
    painted.clear()
    QTest.keyClick(viewer, Qt.Key_M)
    click(viewer, 20, 30)
    qtbot.wait(50)  # the scene's updates are sent on from the event loop
    viewer.viewport().repaint()
    assert viewer.items["labels"].childItems() == plots and len(plots[2].data) == 101
    assert plots[2] in painted and plots[0] not in painted and plots[1] not in painted
    win.close()
