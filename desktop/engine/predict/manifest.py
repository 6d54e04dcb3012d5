"""``OUT/manifest.json``: what a run of ``pointillist predict`` has finished, so that running it
again does only what is left.

It names the model (its version and the sha256 of its weights) and, for each input finished
with that model, the input's size and modification time as they were when it was predicted,
its output files, and its summary row. An input counts as finished only when all of that
still holds: the same model, the input unchanged, and every output it needs now on disk. A
different model, or ``--overwrite``, starts the manifest afresh, and everything is predicted
again.

The manifest is rewritten (atomically) after an input's outputs are written, never before, so
a run stopped at any moment, even killed, leaves a manifest that promises nothing that is
not on disk. Inputs that failed are not recorded: the next run tries them again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from desktop.engine.project.atomic import atomic_write_bytes

MANIFEST_FILE = "manifest.json"
_FORMAT = "pointillist-predict-manifest-1"


def file_state(path: Path) -> dict:
    """What tells that an input changed: its size and modification time (nanoseconds)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    def __init__(self, out_dir: Path, model: dict, entries: dict[str, dict]):
        self.path = Path(out_dir) / MANIFEST_FILE
        self.model = model
        self.entries = entries

    @classmethod
    def open(cls, out_dir: Path, model: dict, fresh: bool = False) -> "Manifest":
        """The manifest in ``out_dir`` for ``model`` ({'version', 'sha256'}); an empty one, written
        at once, when ``fresh`` is set, when there is none, when it cannot be read, or when it is
        another model's."""
        manifest = cls(out_dir, model, {})
        if not fresh:
            try:
                stored = json.loads(manifest.path.read_text("utf-8"))
            except (OSError, ValueError):
                stored = None
            if (isinstance(stored, dict) and stored.get("format") == _FORMAT and stored.get("model") == model
                    and isinstance(stored.get("inputs"), dict)):
                manifest.entries = stored["inputs"]
                return manifest
        manifest.save()
        return manifest

    def finished(self, key: str, state: dict, outputs: list[str]) -> dict | None:
        """The summary row recorded for input ``key`` when it is finished (see the module
        docstring) and its file is still in ``state``, else None."""
        entry = self.entries.get(key)
        if entry is None or entry.get("state") != state or not set(outputs) <= set(entry.get("outputs", [])):
            return None
        if not all((self.path.parent / name).is_file() for name in outputs):
            return None
        return entry.get("row")

    def record(self, key: str, state: dict, outputs: list[str], row: dict) -> None:
        """Mark an input finished; call only once its outputs are written."""
        self.entries[key] = {"state": state, "outputs": list(outputs), "row": row}
        self.save()

    def save(self) -> None:
        data = {"format": _FORMAT, "model": self.model, "inputs": self.entries}
        atomic_write_bytes(self.path, json.dumps(data, separators=(",", ":")).encode())
