"""Export: indexed PNG masks with colour previews, and the model as TorchScript + model card."""
from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.encoder import MODEL_CARD, normalize

from .atomic import atomic_write_bytes
from .errors import ImageReadError, ProjectError, write_refusal
from .features import PAD_MULTIPLE, pad_to_multiple

_TRACE_SIZE = (256, 256)
_CHECK_SIZE = (192, 320)


@dataclass
class MaskExport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image name, reason)


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


def export_masks(engine, out_dir: Path, preview_opacity: float = 0.5) -> MaskExport:
    """One indexed PNG per image (pixel value = class index, palette = class colours) plus
    ``NAME_preview.png``, the image with the prediction blended over it."""
    out_dir = _prepare(out_dir)
    project = engine.project
    classes = project.classes()
    palette = np.zeros((256, 3), np.uint8)
    for c in classes:
        palette[c.index] = _rgb(c.colour)
    result = MaskExport()
    if not engine.learner.trained:
        raise ProjectError("There is no trained model yet: label a few points first.")
    for info in project.images():
        try:
            pixels = engine.image(info.id)
        except ImageReadError as e:
            result.skipped.append((info.name, e.reason))
            continue
        mask = engine.predict(info.id).argmax(0).astype(np.uint8)
        indexed = Image.fromarray(mask, mode="P")
        indexed.putpalette(palette.ravel().tolist())
        stem = Path(info.name).stem
        target = out_dir / f"{stem}.png"
        atomic_write_bytes(target, _png_bytes(indexed))
        preview = (pixels * (1 - preview_opacity) + palette[mask] * preview_opacity).astype(np.uint8)
        atomic_write_bytes(out_dir / f"{stem}_preview.png", _png_bytes(Image.fromarray(preview)))
        result.written.append(target)
    return result


def export_model(engine, out_dir: Path) -> Path:
    """``model.pt`` (TorchScript) and ``model_card.json`` describing how to feed it."""
    if not engine.learner.trained:
        raise ProjectError("There is no trained model yet: label a few points first.")
    out_dir = _prepare(out_dir)
    module = engine.learner.inference_module()
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
        "training_label_count": project.label_count(),
        "input": {**MODEL_CARD["input"], "size": f"any height and width that are multiples of {PAD_MULTIPLE}; "
                  "pad other sizes by reflection on the bottom and right, then crop the output",
                  "traced_at": list(_TRACE_SIZE)},
        "output": "class probabilities, float32 (1, classes, height, width); argmax gives the mask",
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
