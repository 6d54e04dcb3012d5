"""The Qt binding itself must keep Python's reference counts: PySide6 6.12.0 on CPython 3.11
dropped a reference to True on every signal emit, so a long labelling session died with
"bool_dealloc". pyproject.toml excludes that release; this test catches a bad install."""
import sys

from PySide6.QtCore import QObject, Signal


class _Sender(QObject):
    fired = Signal(object)


def test_signal_emits_keep_reference_counts(qapp):
    sender = _Sender()
    received = []
    sender.fired.connect(received.append)
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(200):
        sender.fired.emit(i)
    assert len(received) == 200
    assert sys.getrefcount(True) - before_true > -50
    assert sys.getrefcount(None) - before_none > -50
