"""Writing files so that a crash leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from desktop.engine.errors import ProjectError, write_refusal

# A writer holds its temporary for one write (seconds at most); one unchanged this long lost its
# writer to a crash. Younger ones are left alone: another process may be writing them right now.
STALE_AFTER_S = 600.0


@contextlib.contextmanager
def atomic_output(target: Path):
    """For writers that want a file name, not bytes (tifffile): yields a temporary path in
    ``target``'s folder; once the block ends without error, that file is fsynced and renamed
    over ``target``. On error it is removed. A write the file system refuses (disk full,
    read-only folder), in the block or here, becomes a ProjectError that says so."""
    target = Path(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{_short(target.name)}.", suffix=".tmp")
    except OSError as e:
        raise _not_saved(target, e) from e
    try:
        os.fchmod(fd, _NEW_FILE_MODE)  # mkstemp makes files only their owner may read
    except (AttributeError, OSError):  # Windows has no fchmod, nor such modes
        pass
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _not_saved(target, e) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _umask() -> int:
    """The process's umask, which can only be read by setting it; done once, at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()
"""The mode any program's new file gets (``open(..., 'w')``): exported masks, models and tables
are for others to read too, as the user's umask allows."""

_TEMPORARY_STEM_BYTES = 32
"""The temporary is named after the target, cut to this many bytes: a name near the 255-byte
limit plus the temporary's prefix and suffix would otherwise be refused."""


def _short(name: str) -> str:
    return name.encode()[:_TEMPORARY_STEM_BYTES].decode(errors="ignore")


def _not_saved(target: Path, error: OSError) -> ProjectError:
    return ProjectError(f"Cannot save '{target.name}' (in {target.parent}): {write_refusal(error)}. "
                        "Nothing was half-written, and files saved before are unchanged.")


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``target``, fsync it, then rename it over."""
    with atomic_output(target) as tmp:
        tmp.write_bytes(data)


def temporaries(folder: Path) -> list[Path]:
    """Files in ``folder`` named as ``atomic_output`` names its temporaries: ``.NAME.XXXXXXXX.tmp``,
    hidden, never the name of a file anyone reads. After a crash mid-write they are all that is
    left of the new file; ``NAME`` itself is still the old, whole one."""
    try:
        return [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    except OSError:
        return []


def remove_stale_temporaries(folder: Path, older_than: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporaries in ``folder`` unchanged for ``older_than`` seconds; returns them.
    Best effort: a read-only folder keeps them, and they harm nothing there."""
    removed = []
    for path in temporaries(folder):
        try:
            if time.time() - path.stat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
