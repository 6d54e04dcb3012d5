"""Export: indexed PNG masks with colour previews, and the model as TorchScript + model card."""
from __future__ import annotations

import csv
import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from desktop.engine.errors import ImageReadError, PointillistError, ProjectError, write_refusal
from desktop.engine.learning.padding import PAD_MULTIPLE, pad_to_multiple
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.segmentation.export_names import export_stems
from desktop.engine.segmentation.labelled_classes import RestrictedModule, no_model_words
from models.encoder import MODEL_CARD, normalize

_TRACE_SIZE = (256, 256)
_CHECK_SIZE = (192, 320)


MAPPING_FILE = "masks.csv"
"""Written beside the masks: which file came from which image, and why an image has none."""
_MAPPING_COLUMNS = ("mask", "preview", "image_id", "image_name", "image_path", "status")


@dataclass
class MaskExport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image name, reason)
    mapping: Path | None = None  # the CSV that maps each mask back to its image


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _prepare(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProjectError(f"Cannot write the export to '{out_dir}': {write_refusal(e)}.") from e
    return out_dir


def palette(classes) -> np.ndarray:
    """(256, 3) uint8: the colour of each class index (``classes``: anything with ``index`` and
    ``colour``), black for the indices no class has."""
    out = np.zeros((256, 3), np.uint8)
    for c in classes:
        out[c.index] = _rgb(c.colour)
    return out


def mask_png(mask: np.ndarray, colours: np.ndarray) -> bytes:
    """An indexed PNG of class indices (H, W) uint8 with ``colours`` (``palette``) as its palette."""
    indexed = Image.fromarray(mask, mode="P")
    indexed.putpalette(colours.ravel().tolist())
    return _png_bytes(indexed)


def preview_png(pixels: np.ndarray, mask: np.ndarray, colours: np.ndarray, opacity: float = 0.5) -> bytes:
    """The picture with the class colours of ``mask`` blended over it, as an RGB PNG."""
    preview = (pixels * (1 - opacity) + colours[mask] * opacity).astype(np.uint8)
    return _png_bytes(Image.fromarray(preview))


def export_masks(engine, out_dir: Path, preview_opacity: float = 0.5) -> MaskExport:
    """One indexed PNG per image (pixel value = class index, palette = class colours) plus
    ``NAME_preview.png``, the image with the prediction blended over it, and ``masks.csv``.

    Names are unique within the export (see ``export_names``). An image that cannot be read or
    written is reported in ``skipped`` and in the CSV, and the others are exported all the same."""
    if not engine.model.ready:
        raise ProjectError(no_model_words(engine))
    out_dir = _prepare(out_dir)
    project = engine.project
    colours = palette(project.classes())
    images = project.images()
    stems = export_stems(images, ("", "_preview"))
    result = MaskExport()
    rows = []
    for info in images:
        mask_name, preview_name = f"{stems[info.id]}.png", f"{stems[info.id]}_preview.png"
        try:
            pixels = engine.image(info.id)
            mask = engine.predict(info.id).argmax(0).astype(np.uint8)
            atomic_write_bytes(out_dir / mask_name, mask_png(mask, colours))
            atomic_write_bytes(out_dir / preview_name, preview_png(pixels, mask, colours, preview_opacity))
        except ImageReadError as e:
            reason = e.reason
        except (PointillistError, MemoryError) as e:
            reason = str(e) if isinstance(e, PointillistError) else "not enough free memory to predict it"
        else:
            result.written.append(out_dir / mask_name)
            rows.append((mask_name, preview_name, info.id, info.name, str(info.source), "ok"))
            continue
        result.skipped.append((info.name, reason))
        rows.append(("", "", info.id, info.name, str(info.source), reason))
    if result.skipped and not result.written:  # e.g. a full disk: say why, and leave the old CSV as it was
        name, reason = result.skipped[0]
        raise ProjectError(reason if name in reason else f"Cannot export the mask of '{name}': {reason}.")
    result.mapping = out_dir / MAPPING_FILE
    atomic_write_bytes(result.mapping, _csv_bytes(_MAPPING_COLUMNS, rows))
    return result


def _csv_bytes(header: tuple[str, ...], rows: list[tuple]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def export_model(engine, out_dir: Path) -> Path:
    """``model.pt`` (TorchScript) and ``model_card.json`` describing how to feed it."""
    if not engine.model.ready:
        raise ProjectError(no_model_words(engine))
    if engine.version is None:
        raise ProjectError("The model in use has no version yet: let it train once, then export.")
    trained_on = engine.project.model_version(engine.version)  # as it was when this version was trained
    out_dir = _prepare(out_dir)
    module = RestrictedModule(engine.learner.inference_module(), engine.learner.num_classes, engine.model.classes)
    example = torch.zeros(1, 3, *_TRACE_SIZE)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, still the
        traced = torch.jit.trace(module, example, check_trace=False)  # format other tools load
        check = torch.randn(1, 3, *_CHECK_SIZE)
        if not torch.allclose(traced(check), module(check), atol=1e-4):
            raise ProjectError("The exported model does not reproduce the app's predictions; not written.")
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    atomic_write_bytes(out_dir / "model.pt", buffer.getvalue())
    project = engine.project
    card = {
        "format": "TorchScript (torch.jit.load)",
        "task": project.task,
        "learner": engine.learner_name,
        "model_version": engine.version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "classes": [{"index": c.index, "name": c.name, "colour": c.colour} for c in project.classes()],
        "training_label_count": trained_on.label_count,
        "validation_label_count": trained_on.validation_count,
        "input": {**MODEL_CARD["input"], "size": f"any height and width that are multiples of {PAD_MULTIPLE}; "
                  "pad other sizes by reflection on the bottom and right, then crop the output",
                  "traced_at": list(_TRACE_SIZE)},
        "output": "class probabilities, float32 (1, classes, height, width); argmax gives the mask",
        "labelled_classes": list(engine.model.classes),  # the others were never labelled: probability 0
        "encoder": {"name": MODEL_CARD["name"], "weights": MODEL_CARD["weights"]["package"]},
    }
    atomic_write_bytes(out_dir / "model_card.json", json.dumps(card, indent=2).encode())
    return out_dir / "model.pt"


def scripted_predict(model_path: Path, pixels: np.ndarray) -> np.ndarray:
    """Run an exported model on an image the way its card says (for checks and for users)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(model_path), map_location="cpu")
    x = pad_to_multiple(normalize(pixels))
    with torch.inference_mode():
        probs = model(x)[0, :, :pixels.shape[0], :pixels.shape[1]]
    return probs.numpy()
