"""Python's cyclic garbage collection, on the GUI thread only."""
from __future__ import annotations

from pyqtgraph.util.garbage_collector import GarbageCollector

_collector = None


def collect_garbage_on_the_gui_thread() -> None:
    """Python's cyclic garbage collector otherwise runs on whichever thread allocates when its
    threshold is reached, the engine thread included. There it destroyed Qt objects of a closed
    window while the GUI thread destroyed others: each held the lock the other wanted, and the
    app froze (seen in the test run: the engine thread in ``~QObject`` waiting for the GIL, the
    GUI thread in ``~QMenu`` waiting for Qt's lock). pyqtgraph's collector turns automatic
    collection off and collects on a GUI-thread timer instead, at the same thresholds."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=0.5)
