"""The window's side of the ``pointillist predict`` contract: the command line it starts, and the
lines it reads back.

The prediction runs in its own process, not on the engine thread: it may take hours over many
slides, it loads torch (the GUI never does) and it must not slow labelling down. The command,
when its standard output is not a terminal, prints ``inputs TOTAL``, then ``done N/TOTAL NAME ::
STATUS`` per finished input (STATUS ``ok`` or ``failed: reason``), then ``summary PATH``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from desktop.engine.predict.inputs import LIST_SUFFIX

LONGEST_INPUTS = 8000  # characters of input paths on the command line; more go into a list file
# The command's formats, each for one kind of input: its default is all of them.
FORMATS = {"mask": "Masks (PNG; images)", "preview": "Coloured previews (images)",
           "ome-tiff": "OME-TIFF masks (slides)", "geojson": "GeoJSON regions (slides)"}


def predict_arguments(project: Path, inputs: list[Path], out: Path, formats: list[str], learner: str,
                      workers: int) -> list[str]:
    """The arguments after ``pointillist predict``. No ``--overwrite``: a second Start continues
    a run that was cancelled or failed, and keeps what was already written."""
    return ([str(project), *map(str, inputs), "--out", str(out), "--formats", ",".join(formats),
             "--learner", learner, "--workers", str(workers)])


def inputs_for_command(inputs: list[Path], folder: Path) -> list[Path]:
    """The inputs as arguments, or, when they would make the command line too long (Windows
    refuses one over 32,767 characters, and a project's own images can be thousands), the files
    and folders written one a line to a list in ``folder``, which the command reads as if given
    one by one (same output names, so a later run still continues). Lists stay arguments: the
    command reads no list inside a list."""
    if sum(len(str(path)) + 1 for path in inputs) <= LONGEST_INPUTS:
        return inputs
    lists = [path for path in inputs if path.suffix.lower() == LIST_SUFFIX and path.is_file()]
    listed = folder / "inputs.txt"
    listed.write_text("".join(f"{path.absolute()}\n" for path in inputs if path not in lists), "utf-8")
    return [*lists, listed]


def predict_command(arguments: list[str]) -> list[str]:
    """The program and its arguments. The frozen app (PyInstaller, ``packaging/launch.py``) is
    itself ``pointillist``: its executable takes the subcommand directly. Otherwise the app runs
    in a Python interpreter, which runs the command line module."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "predict", *arguments]
    return [sys.executable, "-m", "desktop.cli", "predict", *arguments]


@dataclass(frozen=True)
class Total:
    total: int


@dataclass(frozen=True)
class Done:
    n: int
    total: int
    name: str
    failure: str | None  # the reason, or None when the input was predicted


@dataclass(frozen=True)
class Summary:
    path: Path


def parse_line(line: str) -> Total | Done | Summary | None:
    """One line of the command's standard output; None for any other line (a library's
    warning printed there must not stop the run)."""
    word, _, rest = line.rstrip("\r\n").partition(" ")
    try:
        if word == "inputs":
            return Total(int(rest))
        if word == "summary" and rest:
            return Summary(Path(rest))
        if word == "done":
            counts, _, rest = rest.partition(" ")
            n, total = counts.split("/")
            name, separator, status = rest.partition(" :: ")
            if separator and (status == "ok" or status.startswith("failed")):
                failure = None if status == "ok" else (status.removeprefix("failed").lstrip(":").strip()
                                                       or "no reason given")
                return Done(int(n), int(total), name, failure)
    except ValueError:
        pass
    return None
