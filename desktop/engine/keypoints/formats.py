"""Keypoint labels in and out: DeepLabCut-style CSV and COCO keypoints JSON.

Both formats go through :class:`KeypointTable` (one row per image). Readers check every field of
the whole file before returning (see ``validation.py``), and ``import_table`` checks every
image and position before its first write and then writes in one transaction, so a malformed file
raises :class:`FormatError` naming the record and the reason, and nothing of it reaches the project.

What each format can carry:
- DeepLabCut CSV: positions only. A labelled cell pair is read as ``visible``; an empty pair is
  unlabelled. Writing, ``occluded`` keeps its position and ``absent`` becomes empty. Numbers are
  written as Python's shortest round-trip form, so reading and writing a file gives it back
  byte for byte (when it was written that way, as pandas does).
- COCO JSON: flags 2 (visible), 1 (occluded), 0 (not labelled); the skeleton as 1-based index
  pairs. COCO cannot tell ``absent`` from unlabelled, so Pointillist adds two fields other tools
  ignore: ``absent`` (1-based keypoints) on an annotation and ``symmetric_pairs`` on the category.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np

from desktop.engine.errors import FormatError, ImageReadError, ProjectError, write_refusal
from desktop.engine.images.video import frames_by_index
from desktop.engine.keypoints.table import VIS_DTYPE, KeypointTable
from desktop.engine.keypoints.validation import (check_images, check_position, coco_annotation, coco_category,
                                                 coco_images, refuse_malformed)
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.project.skeleton import UNLABELLED, Skeleton, SkeletonError
from desktop.engine.project.store import Project

_COCO_FLAG = {"visible": 2, "occluded": 1}
_COCO_VIS = {2: "visible", 1: "occluded"}


# ----- DeepLabCut CSV ---------------------------------------------------------------------------
@refuse_malformed("DeepLabCut CSV")
def read_dlc_csv(path: str | Path) -> KeypointTable:
    path = Path(path)
    rows = _csv_rows(path)
    if len(rows) < 3:
        raise FormatError(path, None, "a DeepLabCut file starts with three header rows "
                                      "(scorer, bodyparts, coords); this one has fewer rows")
    scorer_row, parts_row, coords_row = rows[:3]
    if rows[1] and rows[1][0].strip() == "individuals":
        raise FormatError(path, 2, "multi-animal files (with an 'individuals' row) are not supported")
    for number, (row, word) in enumerate(zip(rows[:3], ("scorer", "bodyparts", "coords")), 1):
        if not row or row[0].strip() != word:
            found = repr(row[0]) if row else "nothing"
            raise FormatError(path, number, f"the first cell should be '{word}', found {found}")
    index_cols = next((i for i, c in enumerate(coords_row) if c.strip() in ("x", "y")), None)
    if index_cols is None:
        raise FormatError(path, 3, "the coords row has no x or y column")
    width = len(coords_row)
    for number, row in enumerate(rows[:3], 1):
        if len(row) != width:
            raise FormatError(path, number, f"{len(row)} cells, but the coords row has {width}")
    names = []
    for col in range(index_cols, width, 2):
        part = parts_row[col].strip()
        pair = coords_row[col:col + 2]
        if [c.strip() for c in pair] != ["x", "y"] or col + 1 >= width or parts_row[col + 1].strip() != part:
            raise FormatError(path, 3, f"columns {col + 1}-{col + 2} should be the x and y of one bodypart "
                                       f"(found {parts_row[col:col + 2]} / {pair})")
        names.append(part)
    scorers = {c.strip() for c in scorer_row[index_cols:]}
    if len(scorers) != 1:
        raise FormatError(path, 1, f"expected one scorer, found {', '.join(sorted(scorers))}")
    try:
        skeleton = Skeleton(tuple(names))
    except SkeletonError as e:
        raise FormatError(path, 2, str(e).rstrip(".")) from e
    images, xy, seen, records = [], [], {}, []
    for number, row in enumerate(rows[3:], 4):
        if not any(c.strip() for c in row):
            continue  # a blank line (often the last one)
        if len(row) != width:
            raise FormatError(path, number, f"{len(row)} cells, expected {width}")
        name = "/".join(c.strip() for c in row[:index_cols] if c.strip())
        if not name:
            raise FormatError(path, number, "no image path in the first cell")
        if name in seen:
            raise FormatError(path, number, f"image '{name}' is already labelled in row {seen[name]}")
        seen[name] = number
        values = np.full((len(names), 2), np.nan)
        for k, col in enumerate(range(index_cols, width, 2)):
            cells = [c.strip() for c in row[col:col + 2]]
            if cells == ["", ""]:
                continue
            if "" in cells:
                raise FormatError(path, number, f"'{names[k]}' has only one of x and y")
            try:
                if any("_" in c for c in cells):  # Python reads '1_0' as 10; no other tool does
                    raise ValueError(cells)
                values[k] = [float(c) for c in cells]
            except ValueError:
                raise FormatError(path, number, f"'{names[k]}' is not a pair of numbers: {cells}") from None
            if not np.isfinite(values[k]).all():
                raise FormatError(path, number, f"'{names[k]}' is not a finite position: {cells}")
            check_position(path, number, name, names[k], *values[k])  # the picture's size comes at import
        images.append(name)
        xy.append(values)
        records.append(number)
    xy = np.array(xy).reshape(len(images), len(names), 2)
    visibility = np.where(np.isfinite(xy[..., 0]), "visible", UNLABELLED)
    return KeypointTable(skeleton, images, xy, visibility, scorer=scorers.pop(), records=records)


def write_dlc_csv(table: KeypointTable, path: str | Path) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = table.skeleton.names
    writer.writerow(["scorer"] + [table.scorer] * (2 * len(names)))
    writer.writerow(["bodyparts"] + [n for n in names for _ in (0, 1)])
    writer.writerow(["coords"] + ["x", "y"] * len(names))
    for image, xy, vis in zip(table.images, table.xy, table.visibility):
        cells = [image]
        for (x, y), v in zip(xy, vis):
            known = v in ("visible", "occluded")
            cells += [repr(float(x)), repr(float(y))] if known else ["", ""]
        writer.writerow(cells)
    atomic_write_bytes(Path(path), out.getvalue().encode("utf-8"))


def read_label_text(path: Path) -> str:
    """A label file's text (UTF-8, a byte-order mark allowed), or a FormatError saying why not."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, None, "file not found") from None
    except UnicodeDecodeError as e:
        raise FormatError(path, None, "this is not a text (UTF-8) file") from e
    except OSError as e:
        raise FormatError(path, None, f"the file could not be read ({e.strerror or e})") from e


def _csv_rows(path: Path) -> list[list[str]]:
    text = read_label_text(path)
    if not text.strip():
        raise FormatError(path, None, "the file is empty")
    try:
        return list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise FormatError(path, None, f"not valid CSV ({e})") from e


# ----- COCO keypoints JSON ----------------------------------------------------------------------
def write_coco(table: KeypointTable, path: str | Path) -> None:
    skeleton = table.skeleton
    images, annotations = [], []
    for i, (name, xy, vis) in enumerate(zip(table.images, table.xy, table.visibility), 1):
        entry = {"id": i, "file_name": name}
        if table.sizes is not None:
            entry["width"], entry["height"] = map(int, table.sizes[i - 1])
        images.append(entry)
        if not (vis != UNLABELLED).any():
            continue
        flat, placed = [], []
        for (x, y), v in zip(xy, vis):
            flag = _COCO_FLAG.get(str(v), 0)
            flat += [float(x), float(y), flag] if flag else [0, 0, 0]
            if flag:
                placed.append((x, y))
        annotation = {"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                      "keypoints": flat, "num_keypoints": len(placed),
                      "absent": [k + 1 for k, v in enumerate(vis) if v == "absent"]}
        if placed:
            (x0, y0), (x1, y1) = np.min(placed, 0), np.max(placed, 0)
            annotation["bbox"] = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
            annotation["area"] = float((x1 - x0) * (y1 - y0))
        annotations.append(annotation)
    category = {"id": 1, "name": table.scorer, "supercategory": table.scorer, "keypoints": list(skeleton.names),
                "skeleton": [[a + 1, b + 1] for a, b in skeleton.edges],
                "symmetric_pairs": [[a + 1, b + 1] for a, b in skeleton.symmetry]}
    data = {"images": images, "annotations": annotations, "categories": [category]}
    atomic_write_bytes(Path(path), json.dumps(data, indent=1).encode("utf-8"))


@refuse_malformed("COCO keypoints")
def read_coco(path: str | Path) -> KeypointTable:
    """Every field Pointillist reads or writes is checked (see ``validation.py``); a placed
    keypoint must lie on its picture when the image record gives its width and height (else
    ``import_table`` checks it against the picture itself)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(path, None, "file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(path, None, f"not valid JSON ({e})") from e
    except (ValueError, RecursionError) as e:  # a number of thousands of digits; lists nested thousands deep
        raise FormatError(path, None, "the JSON holds numbers or nesting too large to read") from e
    except OSError as e:
        raise FormatError(path, None, f"the file could not be read ({e.strerror or e})") from e
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list)
                                             for key in ("images", "annotations", "categories")):
        raise FormatError(path, None, "a COCO file is an object with lists 'images', 'annotations', 'categories'")
    category_id, category, skeleton = coco_category(path, data["categories"])
    images = coco_images(path, data["images"])
    rows = {image_id: row for row, (image_id, _, _) in enumerate(images)}
    category_ids = {c["id"] for c in data["categories"]}
    k = len(skeleton)
    xy = np.full((len(rows), k, 2), np.nan)
    visibility = np.full((len(rows), k), UNLABELLED, VIS_DTYPE)
    done: dict[int, int] = {}
    for number, ann in enumerate(data["annotations"]):
        read = coco_annotation(path, number, ann, category_id, category_ids, set(rows), skeleton)
        if read is None:
            continue  # other categories (e.g. plain boxes) are not keypoints of this skeleton
        image_id, points, absent = read
        row = rows[image_id]
        if row in done:
            raise FormatError(path, f"annotations[{number}]", f"a second annotation for image id {image_id} (the "
                                                              f"first is annotations[{done[row]}]): only one "
                                                              "animal per image is supported")
        done[row] = number
        _, name, size = images[row]
        for i, (x, y, flag) in enumerate(points):
            if flag:
                check_position(path, f"annotations[{number}].keypoints", name, skeleton.names[i], x, y, size)
                xy[row, i] = (x, y)
                visibility[row, i] = _COCO_VIS[flag]
        visibility[row, absent] = "absent"
    sizes = [size for _, _, size in images]
    return KeypointTable(skeleton, [name for _, name, _ in images], xy, visibility,
                         scorer=str(category.get("name", "pointillist")),
                         sizes=sizes if all(sizes) else None, records=[f"images[{i}]" for i in range(len(images))])


# ----- projects ---------------------------------------------------------------------------------
def import_table(project: Project, table: KeypointTable, images_root: str | Path, source: str | Path) -> list[int]:
    """Add the table's images (paths relative to ``images_root``) and labels to a keypoint project.

    Everything is checked first: every image must be readable, name a file no other row names,
    have the size the file gives for it (if it gives one), and hold its placed keypoints (within
    ``validation.BORDER``); every keypoint must be in the project's skeleton (an empty
    skeleton becomes the table's). Then all is written in one transaction, so that a failure
    while writing (a full disk) leaves nothing of the import either. Returns the image ids, in order.
    """
    images_root = Path(images_root)
    if project.task != "keypoints":
        raise FormatError(source, None, "the project is a segmentation project, not a keypoint project")
    current = project.skeleton()
    if len(current):
        unknown = [n for n in table.skeleton.names if n not in current.names]
        if unknown:
            raise FormatError(source, None, f"keypoints not in the project's skeleton: {', '.join(unknown)}")
        channel = [current.names.index(n) for n in table.skeleton.names]
    else:
        channel = list(range(len(table.skeleton)))
    found = check_images(table, images_root, source)
    with project.batch():  # an import is whole or not at all
        if not len(current):
            project.set_skeleton(table.skeleton)
        ids = []
        for path, (w, h), record in found:
            try:
                ids.append(project.add_image(path, w, h))
            except OSError as e:  # gone or locked since it was checked
                raise FormatError(source, record, f"image '{path.name}' could not be read "
                                                  f"({e.strerror or e})") from e
        entries = [(image_id, channel[k], float(x), float(y), str(v))
                   for image_id, xy, vis in zip(ids, table.xy, table.visibility)
                   for k, ((x, y), v) in enumerate(zip(xy, vis)) if v != UNLABELLED]
        project.set_keypoint_labels(entries, author=f"import:{Path(source).name}")
    return ids


def project_table(project: Project, images_root: str | Path | None = None, scorer: str = "pointillist",
                  image_ids: list[int] | None = None, paths: dict[int, Path] | None = None) -> KeypointTable:
    """The project's keypoint labels as a table; paths relative to ``images_root`` where possible.
    ``paths`` names a file for some images instead of their own (exported video frames)."""
    infos = project.images() if image_ids is None else [project.image(i) for i in image_ids]
    names = []
    for info in infos:
        source = (paths or {}).get(info.id, info.path)
        try:
            names.append(source.resolve().relative_to(Path(images_root).resolve()).as_posix() if images_root
                         else str(source))
        except ValueError:
            names.append(str(source))
    arrays = [project.keypoint_arrays(info.id) for info in infos]
    skeleton = project.skeleton()
    xy = np.array([a[0] for a in arrays]).reshape(len(infos), len(skeleton), 2)
    visibility = np.array([a[1] for a in arrays], VIS_DTYPE).reshape(len(infos), len(skeleton))
    return KeypointTable(skeleton, names, xy, visibility, scorer=scorer,
                         sizes=[(info.width, info.height) for info in infos])


def read_table(path: str | Path) -> KeypointTable:
    """By suffix: ``.csv`` is DeepLabCut, ``.json`` is COCO."""
    path = Path(path)
    readers = {".csv": read_dlc_csv, ".json": read_coco}
    if path.suffix.lower() not in readers:
        raise FormatError(path, None, "keypoint labels are read from .csv (DeepLabCut) or .json (COCO) files")
    return readers[path.suffix.lower()](path)


def write_table(table: KeypointTable, path: str | Path) -> None:
    """By suffix, as ``read_table``: ``.csv`` is DeepLabCut, ``.json`` is COCO."""
    path = Path(path)
    writers = {".csv": write_dlc_csv, ".json": write_coco}
    if path.suffix.lower() not in writers:
        raise FormatError(path, None, "keypoint labels are written to .csv (DeepLabCut) or .json (COCO) files")
    writers[path.suffix.lower()](table, path)


def exported_images(project: Project, all_frames: bool = False) -> list:
    """The images an export writes: those with a label, or with ``all_frames`` every one."""
    return [info for info in project.images() if all_frames or project.label_count(info.id)]


def export_project(project: Project, path: str | Path, all_frames: bool = False) -> KeypointTable:
    """Write a project's keypoint labels to ``path`` (see ``write_table``): the images with at
    least one label (an ``absent`` one counts), or with ``all_frames`` every image, the others'
    rows empty. A project with no label at all is refused unless ``all_frames``: an empty file
    would say nothing. Image paths are relative to the file's folder when every image lies
    under it, as DeepLabCut keeps them; else to the images' common folder; an image that cannot
    be named that way keeps its absolute path.

    A video frame has no file of its own, so it is written as one, in DeepLabCut's layout:
    ``labeled-data/<video name>/img<frame>.png`` beside ``path``, and the exported file names
    it relative to its own folder. The file then names only real images and imports again, here
    or in any tool that reads the format. A frame whose video is gone is taken from an earlier
    export if that left it there; else the export is refused, naming the video."""
    path = Path(path).resolve()
    if path.suffix.lower() not in (".csv", ".json"):
        raise FormatError(path, None, "keypoint labels are written to .csv (DeepLabCut) or .json (COCO) files")
    infos = exported_images(project, all_frames)
    if not infos:
        raise ProjectError("No image has a keypoint label yet: there is nothing to export. Label some "
                           "first, or export all frames to write every image without labels.")
    frames = write_frames([info for info in infos if info.video is not None], path.parent)
    sources = [info.path for info in infos if info.video is None]
    if frames or all(p.is_relative_to(path.parent) for p in sources):
        root = path.parent
    else:
        try:
            root = Path(os.path.commonpath([p.parent for p in sources]))
        except ValueError:  # different drives (Windows): absolute names
            root = None
    table = project_table(project, images_root=root, image_ids=[info.id for info in infos], paths=frames)
    write_table(table, path)
    return table


def export_summary(project: Project, path: str | Path, all_frames: bool = False) -> str:
    """Export the project to ``path`` (see ``export_project``) and say what was written, counted
    from what was written: its images, those with a label, and the video frames saved as files.
    A refusal of the file system is a ProjectError, like every other reason this can fail."""
    path = Path(path)
    try:
        table = export_project(project, path, all_frames)
    except OSError as e:
        raise ProjectError(f"Cannot write beside '{path}': {write_refusal(e)}.") from e
    rows, labelled = len(table.images), int((table.visibility != UNLABELLED).any(1).sum())
    text = (f"Exported the keypoints of {labelled} labelled image{'s' * (labelled != 1)} to {path}."
            if labelled == rows else
            f"Exported {rows} images to {path}: {labelled} labelled, {rows - labelled} without labels.")
    frames = sum(info.video is not None for info in exported_images(project, all_frames))
    if frames:
        text += f" The {frames} video frames are saved beside it as PNG files, under labeled-data."
    return text


def export_project_file(folder: str | Path, path: str | Path, all_frames: bool = False) -> str:
    """``export_summary`` on a connection of its own to the project in ``folder``, so that a
    worker thread can export while the window and the engine use theirs."""
    with Project.open(folder) as project:
        return export_summary(project, path, all_frames)


def frame_folders(videos: list[Path]) -> dict[Path, str]:
    """A folder name under ``labeled-data`` for each video: its name without suffix, as
    DeepLabCut does, made unique (``cam``, ``cam-2``...) when two videos share one."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for video in sorted(set(videos)):
        name, n = video.stem, 1
        while name.lower() in taken:
            n += 1
            name = f"{video.stem}-{n}"
        taken.add(name.lower())
        names[video] = name
    return names


def write_frames(infos: list, folder: Path) -> dict[int, Path]:
    """Save the video frames ``infos`` as lossless PNGs under ``folder/labeled-data``, each
    video read once; returns image id -> file. Writes are atomic."""
    by_video: dict[Path, list] = {}
    for info in infos:
        by_video.setdefault(Path(info.video), []).append(info)
    names = frame_folders(list(by_video))
    out: dict[int, Path] = {}
    for video, members in by_video.items():
        target_folder = Path(folder) / "labeled-data" / names[video]
        targets = {info.id: target_folder / f"img{int(info.frame):05d}.png" for info in members}
        if not video.is_file() and all(t.is_file() for t in targets.values()):
            out.update(targets)  # exported before: the frames are there already
            continue
        pixels = frames_by_index(video, [info.frame for info in members])
        target_folder.mkdir(parents=True, exist_ok=True)
        for info in members:
            if info.frame not in pixels:
                raise ImageReadError(video, f"frame {info.frame} cannot be read (the video is shorter or damaged)")
            ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels[info.frame], cv2.COLOR_RGB2BGR))
            if not ok:
                raise ImageReadError(video, f"frame {info.frame} could not be encoded as PNG")
            atomic_write_bytes(targets[info.id], encoded.tobytes())
        out.update(targets)
    return out
