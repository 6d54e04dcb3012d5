"""``OUT/summary.csv``: one row per input, rewritten (atomically) as rows arrive, so that it is
complete and readable at every moment of a run, and after it was stopped.

Columns: ``name`` (of the outputs), ``path``, ``kind`` (image or slide), ``width`` and
``height`` (the input's own pixels; a slide's level 0), ``mpp`` (micrometres per pixel of the
input, when the file says), then for each class ``CLASS_share`` (of the predicted pixels: a
slide's glass is not predicted) and ``CLASS_area_um2`` (square micrometres, when the pixel size
is known, else empty), then ``model_version``, ``seconds`` (to read, predict and write it) and
``status`` (``ok``, or why it failed).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from desktop.engine.project.atomic import atomic_write_bytes

SUMMARY_FILE = "summary.csv"


def header(class_names: Sequence[str]) -> list[str]:
    per_class = [column for name in class_names for column in (f"{name}_share", f"{name}_area_um2")]
    return ["name", "path", "kind", "width", "height", "mpp", *per_class, "model_version", "seconds", "status"]


def write_summary(path: Path, class_names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write the header and ``rows`` (each in ``header`` order; None is written empty)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header(class_names))
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    atomic_write_bytes(Path(path), text.getvalue().encode())
