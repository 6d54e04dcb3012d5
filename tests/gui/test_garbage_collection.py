"""Cyclic garbage is collected on the GUI thread only, never on the engine thread (where it
destroyed a closed window's Qt objects and froze the app: see ``desktop/gui/garbage.py``)."""
import gc
import threading

from PySide6.QtTest import QTest

from desktop.gui.app import MainWindow
from tests.gui.conftest import click

TIMEOUT = 120_000


def test_while_the_engine_trains_every_collection_runs_on_the_gui_thread(qtbot, show, blob_project):
    threads = []

    def record(phase, info):
        if phase == "start":
            threads.append(threading.current_thread().name)

    gc.callbacks.append(record)
    try:
        win = show(MainWindow(blob_project, torch_threads=1))
        ws = win.workspace
        published = []
        ws.bridge.published.connect(published.append)
        qtbot.waitUntil(lambda: ws.session.current is not None, timeout=TIMEOUT)
        QTest.keyClick(ws.viewer, "m")  # free clicking: both classes, in and around the bright square
        for key, points in (("2", [(60, 60), (70, 80), (90, 65)]), ("1", [(10, 10), (150, 20), (20, 140)])):
            QTest.keyClick(ws.viewer, key)
            for x, y in points:
                click(ws.viewer, x, y)
        qtbot.waitUntil(lambda: bool(published), timeout=TIMEOUT)  # the engine thread trained meanwhile
        for _ in range(2000):  # garbage in cycles made here: the GUI thread's timer collects it
            a, b = [], []
            a.append(b)
            b.append(a)
        qtbot.wait(1200)
        win.close()
    finally:
        gc.callbacks.remove(record)
    assert threads, "nothing was collected at all"
    assert set(threads) == {threading.main_thread().name}, threads


def test_what_lives_once_the_engine_predicted_is_left_out_of_collections_until_the_project_closes(
        qtbot, show, blob_project):
    """A full collection traversed every object of torch, timm and the window (270-300 ms with
    100,000 labels: the longest stall, issue 19); those alive at the first queries are set
    aside (``gc.freeze``), and given back when the project closes."""
    win = show(MainWindow(blob_project, torch_threads=1))
    try:
        ws = win.workspace
        qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=TIMEOUT)
        assert gc.get_freeze_count() > len(gc.get_objects())  # most of them
        win.close_project()
        assert gc.get_freeze_count() == 0
        assert ws.bridge.service is None
    finally:
        win.close()
        gc.unfreeze()  # whatever happened, the other tests' objects are collected as ever
