"""What the driver processes (``crash_driver``, ``two_windows``) print: one whole line an event,
flushed at once, so that a parent reading their stdout sees each as it happens, and never half of
one when the engine thread and the GUI thread announce at the same time."""
import sys
import threading

_lock = threading.Lock()


def say(*words) -> None:
    line = " ".join(str(w) for w in words) + "\n"
    with _lock:
        sys.stdout.write(line)
        sys.stdout.flush()
