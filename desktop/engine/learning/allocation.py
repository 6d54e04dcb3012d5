"""Give memory freed inside the heap back to the system (glibc), now and then.

glibc serves a request of 32 MB or less from its heap once a block that large has been freed
(its mmap threshold rises with every large free), and memory freed in the middle of the heap is
kept, not returned. Feature maps of a few to a few hundred megabytes, cached and evicted in turn,
leave such holes: the 600-image benchmark's process held 3.9 GB of heap, about 1.9 GB more than
its 2 GiB of cached maps. ``malloc_trim`` returns the free pages of every arena. It is called
after a map enters the cache (and so another may have left it), at most every ``INTERVAL_S``.
Mapping every block over 1 MiB on its own (``mallopt``) did the same at every allocation, and a
training round at 100,000 labels took 3.2 s instead of 2.5 s: each step's temporaries faulted in
fresh memory. Elsewhere (macOS, Windows) nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time

INTERVAL_S = 2.0


def _trim_function():
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # musl has none


_trim = _trim_function()
_lock = threading.Lock()
_last = 0.0


def give_back_freed_memory() -> None:
    """``malloc_trim(0)`` unless it ran under ``INTERVAL_S`` ago; nothing off glibc."""
    global _last
    if _trim is None:
        return
    with _lock:
        now = time.monotonic()
        if now - _last < INTERVAL_S:
            return
        _last = now
    _trim(0)
