"""Python's cyclic garbage collection, on the GUI thread only, over what a project made since it
opened."""
from __future__ import annotations

import gc

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


def set_aside_what_lives() -> None:
    """Leave every object alive now out of the full collections from now on (``gc.freeze``),
    once a project is open and its engine has asked its first queries.

    Why: a full collection traverses every object the collector tracks, and it runs on the GUI
    thread. Once the engine has imported torch and timm and built its model, there are about
    470,000 of them (functions, tuples, dicts, types of the imported modules, not labels), and a
    full collection took 270-300 ms: the window's longest stall (issue 19).

    Why it is safe: set-aside objects are freed as ever when nothing refers to them; only a
    cycle among them that becomes garbage later waits, until ``take_back_what_was_set_aside``
    (the project closing) returns them to the collector. Nearly all of them live as long as the
    process (modules, classes, functions) or as the project (its window, engine and model),
    and whatever garbage was waiting at this moment is collected then too."""
    gc.freeze()


def take_back_what_was_set_aside() -> None:
    """Collect the set-aside objects again (``gc.unfreeze``): the project they lived for closed."""
    gc.unfreeze()
