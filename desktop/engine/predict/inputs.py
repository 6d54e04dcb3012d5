"""What ``pointillist predict`` is asked to predict: files, folders and lists of paths, as inputs
with a kind (image or slide) and a name for their outputs.

- A file is taken whatever its name (a misnamed picture still reads; one that does not is a
  failed row with the reason). A ``.txt`` file is a list: one path a line, relative to the
  list's folder, blank lines and ``#`` comments skipped; each line is taken as an argument is.
- A folder is searched through its sub-folders for names ending in an image or slide suffix;
  hidden files and folders (``.git``, macOS ``._`` leftovers) are skipped.
- A file reached twice (two arguments, a folder and a list, a link) is predicted once.
- A path that does not exist is an input with its problem, so that the run reports it in the
  summary and goes on with the rest.

Output names (``input_names``) come from the path relative to where it was found (a folder
argument's files as ``sub_folder_file``, a file argument by its own name), made safe with the
rules of the app's export, and unique: names that clash get a tag from the file's full path,
which is the same on every run, so a resumed run finds the outputs it wrote before.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import IMAGE_SUFFIXES
from desktop.engine.images.slides import SLIDE_SUFFIXES, is_slide_file
from desktop.engine.segmentation.export_names import safe_stem, unique_stems

LIST_SUFFIX = ".txt"
_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES + SLIDE_SUFFIXES, key=len, reverse=True))


@dataclass(frozen=True)
class Input:
    path: Path  # absolute; links are not followed, so the name is the one the user sees
    root: Path  # the folder its name is made relative to
    kind: str  # 'image' or 'slide' (for one that cannot be opened, a guess from its suffix)
    problem: str | None = None  # why it cannot be predicted, found before trying


def collect_inputs(paths: Sequence[Path], skip: Path | None = None) -> list[Input]:
    """The inputs that ``paths`` (command-line arguments) name, in the order given, folders'
    files in sorted order, each file once; see the module docstring. Folders search nothing in
    ``skip``: the output folder, which may lie inside an input folder, holds masks, not inputs."""
    found: list[Input] = []
    seen: set[str] = set()
    skipped = os.path.realpath(skip) if skip is not None else None
    for path in map(Path, paths):
        for item in _expand(path, lists=True, skip=skipped):
            identity = os.path.realpath(item.path)
            if identity not in seen:
                seen.add(identity)
                found.append(item)
    return found


def input_names(inputs: Sequence[Input], suffixes: tuple[str, ...]) -> list[str]:
    """One name per input, unique with every suffix in ``suffixes`` (the outputs' endings)."""
    stems = {i: safe_stem("_".join(_relative(item))) for i, item in enumerate(inputs)}
    tags = {i: "__" + hashlib.sha1(str(item.path).encode()).hexdigest()[:8] for i, item in enumerate(inputs)}
    unique = unique_stems(stems, suffixes, tags)
    return [unique[i] for i in range(len(inputs))]


def _expand(path: Path, lists: bool, skip: str | None) -> list[Input]:
    path = Path(os.path.abspath(path))
    if path.is_dir():
        return [_input(file, path) for file in _folder_files(path, skip)]
    if lists and path.suffix.lower() == LIST_SUFFIX and path.is_file():
        return _listed(path, skip)
    return [_input(path, path.parent)]


def _listed(list_file: Path, skip: str | None) -> list[Input]:
    try:
        lines = list_file.read_text("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return [Input(list_file, list_file.parent, "image", f"the list of inputs cannot be read ({reason})")]
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            out.extend(_expand(list_file.parent / line, lists=False, skip=skip))  # a list in a list: not read
    return out


def _folder_files(folder: Path, skip: str | None) -> list[Path]:
    files = []
    for top, dirs, names in os.walk(folder):
        if skip is not None and os.path.realpath(top) == skip:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(top) / name for name in sorted(names)
                     if not name.startswith(".") and name.lower().endswith(_SUFFIXES))
    return files


def _input(path: Path, root: Path) -> Input:
    try:
        kind = "slide" if is_slide_file(path) else "image"
    except ImageReadError as e:
        return Input(path, root, _guess_kind(path), e.reason)
    return Input(path, root, kind)


def _guess_kind(path: Path) -> str:
    return "slide" if path.name.lower().endswith(SLIDE_SUFFIXES) else "image"


def _relative(item: Input) -> list[str]:
    """The parts of an input's path below its root, its suffix (and an OME '.ome') taken off."""
    parts = list(item.path.relative_to(item.root).parts)
    name = parts[-1]
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
            break
    else:
        name = Path(name).stem or name
    if name.lower().endswith(".ome"):
        name = name[:-4]
    return parts[:-1] + [name]
