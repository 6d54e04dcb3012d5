"""Checks on keypoint label files, field by field, before anything of them reaches a project.

An import takes nothing from a file it refuses, so every check here runs before the first write.
Each refusal is a :class:`FormatError` naming the file, the record (a CSV row, ``images[0].id``,
``annotations[3].keypoints``...) and what is wrong, in words for someone who never read the
format's specification: a wrongly typed field would otherwise be taken for something else (the
text ``"abc"`` for three keypoint names, ``true`` for the number 1) or stop the import with a
programmer's error. The readers and the importer are in ``formats.py``.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from desktop.engine.errors import FormatError, ImageReadError
from desktop.engine.images.pictures import image_size
from desktop.engine.keypoints.table import KeypointTable
from desktop.engine.project.skeleton import UNLABELLED, VISIBILITIES, Skeleton, SkeletonError

BORDER = 1.0
"""How far (in pixels) a keypoint may lie beyond the picture and still be taken. Pixel centres are
at whole coordinates here (0 to width - 1), COCO puts them at halves (0.5 to width - 0.5), and
annotation tools let a point sit on the very edge; so up to one pixel past the outermost pixel
centre is the picture's border, and anything further out is a mistake."""

MALFORMED = (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)
"""What Python raises when a reader meets data shaped unlike anything its checks foresee."""

_COCO_FLAGS = "0 (not labelled), 1 (occluded) or 2 (visible)"


def refuse_malformed(kind: str):
    """The last line behind the checks: a reader that still trips over a file (in a way no check
    foresaw) refuses it as malformed, like any other bad file, instead of failing with a
    programmer's error; the technical detail stays in ``__cause__``."""
    def wrap(reader):
        @functools.wraps(reader)
        def read(path, *args, **kwargs):
            try:
                return reader(path, *args, **kwargs)
            except MALFORMED as e:
                raise FormatError(path, None, f"its contents are not laid out as a {kind} file's must be") from e
        return read
    return wrap


def found(value) -> str:
    """What a JSON value is, in words and shortened, spelt as in the file: ``the text "abc"``,
    ``a list [1, true]``..."""
    if isinstance(value, str):
        return f"the text {_json(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {_json(value)}"
    if isinstance(value, list):
        return f"a list {_json(value)}"
    if isinstance(value, dict):
        return f"an object {_json(value)}"
    return _json(value) + ("" if value is None else " (a yes/no value, not a number)")


def _json(value, depth: int = 0) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 30 else value[:30] + "...", ensure_ascii=False)
    if isinstance(value, int) and abs(value) >= 10 ** 15:
        return f"{'-' if value < 0 else ''}{str(abs(value))[:4]}... ({len(str(abs(value)))} digits)"
    if isinstance(value, (int, float)):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if depth >= 2:
        return "[...]" if isinstance(value, list) else "{...}"
    if isinstance(value, list):
        items = [_json(v, depth + 1) for v in value[:6]] + (["..."] if len(value) > 6 else [])
        return "[" + ", ".join(items) + "]"
    items = [f"{_json(str(k))}: {_json(v, depth + 1)}" for k, v in list(value.items())[:4]]
    return "{" + ", ".join(items + (["..."] if len(value) > 4 else [])) + "}"


def is_whole(value) -> bool:
    """An integer, not a bool: JSON's ``true`` reaches Python as a kind of 1."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite number, not a bool; not NaN or Infinity (which Python's JSON reader accepts) and
    not an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_position(path: Path | str, record, image: str, keypoint: str, x: float, y: float,
                   size: tuple[int, int] | None = None) -> None:
    """Refuse a placed keypoint that is not a finite position, or lies off its picture (``size``:
    width, height), beyond ``BORDER``. Without a size only negative positions can be refused."""
    if not (is_number(x) and is_number(y)):
        raise FormatError(path, record, f"keypoint '{keypoint}' of image '{image}' has no finite position "
                                        f"(x = {x}, y = {y})")
    limits = size or (math.inf, math.inf)
    for axis, value, limit in (("x", x, limits[0]), ("y", y, limits[1])):
        if -BORDER <= value <= limit - 1 + BORDER:
            continue
        where = (f"which is {size[0]} x {size[1]} pixels ({axis} runs from 0 to {limit - 1})" if size
                 else "where positions start at 0")
        raise FormatError(path, record, f"keypoint '{keypoint}' of image '{image}' is at {axis} = {value:g}, "
                                        f"outside the picture, {where}")


def check_images(table: KeypointTable, images_root: Path, source) -> list[tuple[Path, tuple[int, int], int | str]]:
    """``(path, (width, height), record)`` of each image of a ``KeypointTable`` about to be
    imported, after checking that it can be read, that no other row names the same file, that it
    has the size the file gives for it (if any), and that its placed keypoints lie on it."""
    out, files = [], {}
    for i, name in enumerate(table.images):
        record = table.records[i] if table.records else i + 1
        path = images_root / name
        try:
            size = image_size(path)
            file = path.resolve()
        except ImageReadError as e:
            raise FormatError(source, record, f"image '{name}': {e.reason}") from e
        except (OSError, ValueError) as e:  # a name the file system cannot take (a NUL, a loop of links)
            raise FormatError(source, record, f"image '{name}' cannot be found under {images_root}") from e
        if file in files:
            raise FormatError(source, record, f"image '{name}' is the same file as '{table.images[files[file]]}', "
                                              "labelled already")
        files[file] = i
        if table.sizes is not None and tuple(table.sizes[i]) != size:
            given = "%d x %d" % tuple(table.sizes[i])
            raise FormatError(source, record, f"image '{name}' is {size[0]} x {size[1]} pixels, but the file "
                                              f"gives {given} for it: the labels may be of another copy of the picture")
        for k, ((x, y), v) in enumerate(zip(table.xy[i], table.visibility[i])):
            if v not in VISIBILITIES + (UNLABELLED,):
                raise FormatError(source, record, f"keypoint '{table.skeleton.names[k]}' of image '{name}' is "
                                                  f"'{v}'; it can be {', '.join(VISIBILITIES)} or unlabelled")
            if v in ("visible", "occluded"):
                check_position(source, record, name, table.skeleton.names[k], float(x), float(y), size)
        out.append((path, size, record))
    return out


# ----- COCO keypoints JSON ----------------------------------------------------------------------
def _object(path, where: str, value, what: str) -> dict:
    if not isinstance(value, dict):
        raise FormatError(path, where, f"{what} must be an object {{...}}, found {found(value)}")
    return value


def _whole(path, where: str, record: dict, key: str, minimum: int | None = None, optional: bool = False):
    value = record.get(key)
    if optional and key not in record:
        return None
    if not is_whole(value) or (minimum is not None and value < minimum):
        above = "" if minimum is None else f" of at least {minimum}"
        missing = "there is none" if key not in record else f"found {found(value)}"
        raise FormatError(path, f"{where}.{key}", f"'{key}' must be a whole number{above}; {missing}")
    return value


def _text(path, where: str, record: dict, key: str, optional: bool = False, empty: bool = False) -> str | None:
    if optional and key not in record:
        return None
    value = record.get(key)
    if not isinstance(value, str) or not (empty or value.strip()):
        missing = "there is none" if key not in record else f"found {found(value)}"
        words = "a text" if empty else "a text that is not empty"
        raise FormatError(path, f"{where}.{key}", f"'{key}' must be {words}; {missing}")
    return value


def coco_images(path, images: list) -> list[tuple[int, str, tuple[int, int] | None]]:
    """``(id, file_name, (width, height) or None)`` of each image record. Ids and file names must
    be unique: labels of one picture given twice would overwrite each other."""
    out, ids, names = [], {}, {}
    for number, image in enumerate(images):
        where = f"images[{number}]"
        _object(path, where, image, "an image")
        image_id = _whole(path, where, image, "id")
        name = _text(path, where, image, "file_name")
        if image_id in ids:
            raise FormatError(path, f"{where}.id", f"image id {image_id} is used twice "
                                                   f"(also by images[{ids[image_id]}])")
        if name in names:
            raise FormatError(path, f"{where}.file_name", f"image '{name}' is listed twice "
                                                          f"(also as images[{names[name]}])")
        ids[image_id], names[name] = number, number
        given = [key for key in ("width", "height") if image.get(key) is not None]
        size = None
        if len(given) == 1:
            raise FormatError(path, where, f"the image has a '{given[0]}' but no "
                                           f"'{({'width', 'height'} - set(given)).pop()}'")
        if given:
            size = []
            for key in given:
                value = image[key]
                if not (is_number(value) and float(value).is_integer() and value >= 1):
                    raise FormatError(path, f"{where}.{key}", f"'{key}' must be a whole number of pixels, "
                                                              f"at least 1; found {found(value)}")
                size.append(int(value))
            size = tuple(size)
        out.append((image_id, name, size))
    return out


def coco_category(path, categories: list) -> tuple[int, dict, Skeleton]:
    """The one category with keypoints: ``(its id, itself, its skeleton)``, after checking every
    category's id and names (annotations find their category by id, so ids must be unique)."""
    ids, keypoint_categories = {}, []
    for number, category in enumerate(categories):
        where = f"categories[{number}]"
        _object(path, where, category, "a category")
        category_id = _whole(path, where, category, "id")
        if category_id in ids:
            raise FormatError(path, f"{where}.id", f"category id {category_id} is used twice "
                                                   f"(also by categories[{ids[category_id]}])")
        ids[category_id] = number
        for key in ("name", "supercategory"):  # may be "" (a DeepLabCut file's scorer, often)
            _text(path, where, category, key, optional=True, empty=True)
        names = category.get("keypoints", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FormatError(path, f"{where}.keypoints", "'keypoints' must be a list of keypoint names, each a "
                                                          f"text in quotes; found {found(names)}")
        if names:
            keypoint_categories.append(number)
    if len(keypoint_categories) != 1:
        raise FormatError(path, None, f"expected one category with keypoints, found {len(keypoint_categories)}")
    number = keypoint_categories[0]
    category = categories[number]
    return category["id"], category, _coco_skeleton(path, f"categories[{number}]", category)


def _coco_skeleton(path, where: str, category: dict) -> Skeleton:
    names = category["keypoints"]

    def pairs(key):
        value = category.get(key, [])
        if not isinstance(value, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(is_whole(i) and 1 <= i <= len(names) for i in p)
                and p[0] != p[1] for p in value):
            raise FormatError(path, f"{where}.{key}", f"'{key}' must be pairs of two different keypoint numbers "
                                                      f"from 1 to {len(names)}, like [1, 2]; found {found(value)}")
        return tuple((a - 1, b - 1) for a, b in value)

    try:
        return Skeleton(tuple(names), pairs("skeleton"), pairs("symmetric_pairs"))
    except SkeletonError as e:
        field = "keypoints" if "name" in str(e) else "symmetric_pairs"
        raise FormatError(path, f"{where}.{field}", str(e).rstrip(".")) from e


def coco_annotation(path, number: int, ann, category_id: int, category_ids: set[int], image_ids: set[int],
                    skeleton: Skeleton) -> tuple[int, list[tuple[float, float, int]], list[int]] | None:
    """``(image id, (x, y, flag) per keypoint, 0-based absent keypoints)`` of an annotation of the
    keypoint category; None for one of another category (a plain box, say), which is not read."""
    where, k = f"annotations[{number}]", len(skeleton)
    _object(path, where, ann, "an annotation")
    if _whole(path, where, ann, "category_id") not in category_ids:
        raise FormatError(path, f"{where}.category_id", f"category_id {ann['category_id']} is not the id "
                                                         "of any category in 'categories'")
    if ann["category_id"] != category_id:
        return None
    _whole(path, where, ann, "id", optional=True)
    if _whole(path, where, ann, "image_id") not in image_ids:
        raise FormatError(path, f"{where}.image_id", f"image_id {ann['image_id']} is not the id of any image "
                                                      "in 'images'")
    for key, minimum in (("iscrowd", 0), ("num_keypoints", 0)):
        _whole(path, where, ann, key, minimum, optional=True)
    if ann.get("iscrowd", 0) not in (0, 1):
        raise FormatError(path, f"{where}.iscrowd", f"'iscrowd' must be 0 or 1; found {found(ann['iscrowd'])}")
    if "bbox" in ann and not (isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4
                              and all(is_number(v) for v in ann["bbox"])):
        raise FormatError(path, f"{where}.bbox", f"'bbox' must be 4 numbers (x, y, width, height); "
                                                  f"found {found(ann['bbox'])}")
    if "area" in ann and not is_number(ann["area"]):
        raise FormatError(path, f"{where}.area", f"'area' must be a number; found {found(ann['area'])}")
    flat, rule = ann.get("keypoints"), f"'keypoints' must be {3 * k} numbers (x, y, flag for each of {k})"
    if not isinstance(flat, list) or len(flat) != 3 * k:
        size = f"a list of {len(flat)}" if isinstance(flat, list) else found(flat)
        raise FormatError(path, f"{where}.keypoints", f"{rule}; found {size}")
    bad = next((i for i, v in enumerate(flat) if not is_number(v)), None)
    if bad is not None:
        value = flat[bad]
        infinite = ", not a finite one" if is_whole(value) or isinstance(value, float) else ""  # NaN, 1e999...
        raise FormatError(path, f"{where}.keypoints", f"{rule}; the {('x', 'y', 'flag')[bad % 3]} of keypoint "
                                                       f"'{skeleton.names[bad // 3]}' is {found(value)}{infinite}")
    points = []
    for i, name in enumerate(skeleton.names):
        x, y, flag = flat[3 * i:3 * i + 3]
        if flag not in (0, 1, 2):
            raise FormatError(path, f"{where}.keypoints", f"keypoint '{name}' has flag {flag:g}; "
                                                           f"flags are {_COCO_FLAGS}")
        points.append((float(x), float(y), int(flag)))
    absent = ann.get("absent", [])
    if not isinstance(absent, list) or not all(is_whole(a) and 1 <= a <= k for a in absent):
        raise FormatError(path, f"{where}.absent", f"'absent' must list keypoint numbers from 1 to {k}, "
                                                    f"like [1, 3]; found {found(absent)}")
    for position, a in enumerate(absent):
        if a in absent[:position]:
            raise FormatError(path, f"{where}.absent", f"keypoint {a} ('{skeleton.names[a - 1]}') is listed twice")
        if points[a - 1][2]:
            raise FormatError(path, f"{where}.absent", f"keypoint '{skeleton.names[a - 1]}' is both placed and absent")
    return ann["image_id"], points, [a - 1 for a in absent]
