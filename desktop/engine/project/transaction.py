"""One SQLite write transaction, and what the store says when SQLite refuses a write."""
from __future__ import annotations

import sqlite3

from desktop.engine.errors import ProjectBusy, ProjectError


class Transaction:
    """``with``-block around BEGIN IMMEDIATE ... COMMIT / ROLLBACK on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __enter__(self):
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise write_error(e) from e
        return self._conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
                return False
            except sqlite3.OperationalError as e:
                self._rollback()
                raise write_error(e) from e
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):  # e.g. the disk filled up during an INSERT
            raise write_error(exc) from exc
        return False

    def _rollback(self) -> None:
        # SQLite may have rolled back already (it does on a full disk); ROLLBACK would then fail.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def write_error(e: sqlite3.OperationalError) -> ProjectError:
    return (ProjectBusy if "locked" in str(e) else ProjectError)(_write_problem(e))


def _write_problem(e: sqlite3.OperationalError) -> str:
    text = str(e)
    if "readonly" in text:
        return ("The project is read-only, so the last change was not saved. Copy the project folder to a "
                "place where you may write, then open it again.")
    if "full" in text:
        return ("The disk is full, so the last change was not saved; everything saved before it is "
                "safe. Free some space on the disk and try again.")
    if "locked" in text:
        return "The project is busy in another program; the last change was not saved. Try again."
    return f"The project database could not be written: {text}."
