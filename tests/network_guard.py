"""A network guard for child interpreters: copied as ``sitecustomize.py`` into a folder on the
child's ``PYTHONPATH`` by ``tests/test_self_test.py``, so it runs before the program does.

With ``POINTILLIST_NETWORK_LOG`` set, it creates that file (proof that the guard ran) and then
refuses, with ``ConnectionRefusedError``, and writes one line to the file for:

- every ``connect``, ``connect_ex``, ``sendto`` and ``sendmsg`` on a socket of any family other
  than ``AF_UNIX``: IPv4 and IPv6 (loopback included), and anything more exotic;
- every name or address look-up (``getaddrinfo``, ``gethostbyname``, ...), since resolving a
  name is itself traffic to a DNS server. ``socket.create_connection`` goes through both.

``AF_UNIX`` sockets are let through: they name a file on this machine and cannot leave it (Qt's
xcb plugin and D-Bus, Python's multiprocessing use them). The guard sees what goes through
Python's ``socket`` module; code that opens sockets in C (Qt's QtNetwork, libcurl) is not seen,
so it also records, at exit, whether ``PySide6.QtNetwork`` was loaded at all.
"""
import atexit
import os
import socket
import sys

LOG = os.environ.get("POINTILLIST_NETWORK_LOG")


def _record(line: str) -> None:
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def _refuse(what: str):
    _record(what)
    raise ConnectionRefusedError(f"refused by the test's network guard: {what}")


def _guard_method(name: str) -> None:
    original = getattr(socket.socket, name)

    def guarded(self, *args, **kwargs):
        if self.family != socket.AF_UNIX:
            _refuse(f"{name} {getattr(self.family, 'name', self.family)} {args[:1]!r}")
        return original(self, *args, **kwargs)

    setattr(socket.socket, name, guarded)


def _guard_lookup(name: str) -> None:
    setattr(socket, name, lambda *args, **kwargs: _refuse(f"{name} {args[:1]!r}"))


def _loaded_network_modules() -> None:
    if "PySide6.QtNetwork" in sys.modules:
        _record("loaded PySide6.QtNetwork")


if LOG:
    open(LOG, "a").close()
    for method in ("connect", "connect_ex", "sendto", "sendmsg"):
        _guard_method(method)
    for lookup in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        _guard_lookup(lookup)
    atexit.register(_loaded_network_modules)
