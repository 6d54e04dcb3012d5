"""Reading a DeepLabCut project folder: its ``config.yaml`` and its labelled frames.

A (single-animal) DeepLabCut project keeps the keypoint names and the skeleton in
``config.yaml`` (``bodyparts``, ``skeleton``: pairs of names), the frames in
``labeled-data/<video>/`` and each video's labels in ``labeled-data/<video>/CollectedData_<scorer>.csv``
(and a ``.h5`` twin). Only the CSV is read: DeepLabCut always writes it beside the ``.h5``, and
the ``.h5`` would need pandas and PyTables. A video folder with a ``.h5`` but no CSV is refused,
saying so. Multi-animal projects (``multianimalproject``, an ``individuals`` row) are refused:
Pointillist labels one animal per image. ``*_labeled`` folders (DeepLabCut's ``check_labels``
drawings) are not frames and are skipped.

Everything here is checked without writing anything; each refusal is a :class:`FormatError`
naming the file, the line or row, and the reason. Building the project is ``project_import.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from desktop.engine.errors import FormatError
from desktop.engine.keypoints.formats import read_dlc_csv, read_label_text
from desktop.engine.keypoints.table import KeypointTable
from desktop.engine.keypoints.validation import refuse_malformed
from desktop.engine.project.skeleton import Skeleton, SkeletonError

LABELS = "CollectedData_*.csv"


@dataclass
class DlcProject:
    """What a DeepLabCut project holds: the skeleton, each label file with its table (image
    names relative to ``root``), and every video folder under ``labeled-data``."""

    root: Path
    skeleton: Skeleton
    labels: list[tuple[Path, KeypointTable]]
    frame_folders: list[Path]


def read_dlc_project(config: str | Path) -> DlcProject:
    """Read and check ``config.yaml`` (or the project folder holding it) and every label file of
    its project."""
    config = Path(config)
    if config.is_dir():
        config = config / "config.yaml"
    skeleton = read_dlc_config(config)
    root = config.parent
    folders = frame_folders(root)
    labels = []
    for folder in folders:
        files = sorted(folder.glob(LABELS))
        h5 = sorted(folder.glob("CollectedData_*.h5"))
        if not files and h5:
            raise FormatError(h5[0], None,
                              "only the .h5 label file is there; Pointillist reads the CSV that DeepLabCut "
                              "saves beside it: save the labels again in DeepLabCut, or export them as CSV")
        for path in files:
            labels.append((path, _checked_table(path, skeleton)))
    _refuse_twice_labelled(root, labels)
    return DlcProject(root, skeleton, labels, folders)


@refuse_malformed("DeepLabCut config.yaml")
def read_dlc_config(path: str | Path) -> Skeleton:
    """The skeleton of a DeepLabCut ``config.yaml``: ``bodyparts`` in order, ``skeleton`` edges."""
    path = Path(path)
    text = read_label_text(path)
    try:
        data, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FormatError(path, mark.line + 1 if mark else None, f"not valid YAML ({problem})") from e
    if not isinstance(data, dict):
        raise FormatError(path, None, "a DeepLabCut config.yaml is a list of settings (key: value), "
                                      "with 'bodyparts' among them")
    if data.get("multianimalproject") or data.get("multianimalbodyparts"):
        raise FormatError(path, _line(node, "multianimalproject", "multianimalbodyparts"),
                          "this is a multi-animal project; Pointillist labels one animal per image")
    names = data.get("bodyparts")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        found = "there is none" if "bodyparts" not in data else f"found {names!r}"
        raise FormatError(path, _line(node, "bodyparts"), f"'bodyparts' must be a list of keypoint names; {found}")
    edges = data.get("skeleton") or []
    if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 and all(isinstance(n, str) for n in e)
                                              for e in edges):
        raise FormatError(path, _line(node, "skeleton"), "'skeleton' must be a list of pairs of bodyparts, "
                                                         f"like [nose, tail]; found {edges!r}")
    same = next((a for a, b in edges if a == b), None)
    if same is not None:
        raise FormatError(path, _line(node, "skeleton"), f"the skeleton pair [{same}, {same}] joins a bodypart "
                                                         "to itself")
    try:
        return Skeleton.from_names(names, edges)
    except SkeletonError as e:
        field = "skeleton" if "edge" in str(e) else "bodyparts"  # an edge naming an unknown bodypart, or names
        raise FormatError(path, _line(node, field), str(e).rstrip(".")) from e


def frame_folders(root: Path) -> list[Path]:
    """The video folders under ``root/labeled-data``, sorted; hidden ones and DeepLabCut's
    ``*_labeled`` drawings are left out."""
    labelled = root / "labeled-data"
    if not labelled.is_dir():
        raise FormatError(root / "config.yaml", None, f"there is no labeled-data folder beside it, in {root}")
    try:
        with os.scandir(labelled) as entries:
            names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")
                     and not e.name.endswith("_labeled")]
    except OSError as e:
        raise FormatError(root / "config.yaml", None, f"cannot list {labelled} ({e.strerror or e})") from e
    return [labelled / name for name in sorted(names)]


def _checked_table(path: Path, skeleton: Skeleton) -> KeypointTable:
    """A label file's table, after checking that its bodyparts are the config's (in any order)."""
    table = read_dlc_csv(path)
    names, wanted = table.skeleton.names, skeleton.names
    missing = [n for n in wanted if n not in names]
    extra = [n for n in names if n not in wanted]
    if missing or extra:
        what = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"not in config.yaml: {', '.join(extra)}"] if extra else [])
        raise FormatError(path, 2, f"the bodyparts do not match config.yaml's ({'; '.join(what)})")
    table.images = [name.replace("\\", "/") for name in table.images]  # written on Windows
    return table


def _refuse_twice_labelled(root: Path, labels: list[tuple[Path, KeypointTable]]) -> None:
    """Two label files naming the same frame would overwrite each other's labels."""
    first: dict[str, tuple[Path, int | str]] = {}
    for path, table in labels:
        for name, record in zip(table.images, table.records or range(1, len(table.images) + 1)):
            key = os.path.normpath(os.path.abspath(root / name))
            if key in first and first[key][0] != path:
                other, row = first[key]
                raise FormatError(path, record, f"image '{name}' is labelled already in "
                                                f"{other.relative_to(root)}, row {row}")
            first.setdefault(key, (path, record))


def _line(node, *keys: str) -> int | None:
    """The line (from 1) of the first of ``keys`` in a YAML mapping, for the message."""
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            if getattr(key, "value", None) in keys:
                return key.start_mark.line + 1
    return None
