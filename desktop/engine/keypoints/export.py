"""A keypoint project's model as TorchScript (``model.pt``) with a JSON model card.

The exported module takes the normalised image at its own size and gives the heatmaps the app
decodes, on the image's own stride-4 grid, so that another program finds the app's keypoints
without knowing how the app pads, crops or projects. Its outer part is scripted, not traced:
the padding, the crop and the fast head's position channels depend on the image size, which a
trace would freeze. Only the encoder (and the deep learner's network), which see sizes that are
multiples of 32 only, are traced.
"""
from __future__ import annotations

import copy
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from desktop.engine.errors import ProjectError, write_refusal
from desktop.engine.keypoints.learners import locate
from desktop.engine.keypoints.uncertainty import off_peak_mass
from desktop.engine.learning.padding import PAD_MULTIPLE
from desktop.engine.project.atomic import atomic_write_bytes
from models.encoder import MODEL_CARD, normalize
from models.keypoint_head import STRIDE, FastHeatmapHead, spatial_softmax

_TRACE_SIZE = (256, 256)  # the encoder is traced at this size; any multiple of 32 runs the same
_CHECK_SIZE = (150, 203)  # the whole module is checked at a size that needs padding and a crop

DECODING = (
    "Per keypoint: take the cell (i, j) = (row, column) of the largest value; refine the column j "
    "(and likewise the row i) by the vertex of a parabola through the log-values of the cell and its "
    "left and right neighbours (the values themselves when any is <= 1e-6), shift = 0.5 (l - r) / "
    "(l - 2 c + r), clamped to [-0.5, 0.5], none where l - 2 c + r >= -1e-9 or the cell is on the "
    "border; then x = (j + shift + 0.5) * 4 - 0.5 image pixels (the same for y). The app's "
    "confidence is the heatmap's mass within one cell (3 x 3) of that largest cell.")


def _padded(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (1, 3, H, W) on the bottom and right to a multiple of ``multiple``, as the app does
    (``learning.padding.pad_to_multiple``), in a form TorchScript compiles."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, [0, pw, 0, ph], mode=mode)


def _grid(x: torch.Tensor) -> tuple[int, int]:
    """The image's own stride-4 grid: ``ceil(H / 4), ceil(W / 4)`` (``learners.grid_size``)."""
    return (x.shape[-2] + 3) // 4, (x.shape[-1] + 3) // 4


class FastKeypointInference(nn.Module):
    """The frozen encoder, its scales stacked on the stride-4 grid, the fixed projection and the
    fast head. The app keeps stacked and projected features as float16; they are rounded the same
    way here, so that the heatmaps are the app's to within float error."""

    def __init__(self, encoder: nn.Module, head: FastHeatmapHead):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.register_buffer("mean", head.mean.detach().clone()[None, :, None, None])
        self.register_buffer("projection", head.projection.detach().clone()[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = _grid(x)
        maps = self.encoder(_padded(x, 32))  # PAD_MULTIPLE
        size = [maps[0].shape[-2], maps[0].shape[-1]]
        stacked = [maps[0]]
        for m in maps[1:]:
            stacked.append(F.interpolate(m, size=size, mode="bilinear", align_corners=False))
        features = torch.cat(stacked, 1)[:, :, :h, :w].half().float()
        projected = F.conv2d(features - self.mean, self.projection).half().float()
        return spatial_softmax(self.head(projected))


class DeepKeypointInference(nn.Module):
    """The fine-tuned network on the padded image, cropped to the image's own grid."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = _grid(x)
        return spatial_softmax(self.net(_padded(x, 32))[:, :, :h, :w])  # PAD_MULTIPLE


def _traced(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, still the
        return torch.jit.trace(module, torch.zeros(1, 3, *_TRACE_SIZE), check_trace=False, strict=False)


def inference_module(learner) -> nn.Module:
    """The learner's prediction as one module: normalised (1, 3, H, W) in, (1, K, ceil(H/4),
    ceil(W/4)) heatmaps out, each summing to one."""
    if learner.name == "fast":
        head = copy.deepcopy(learner.head).cpu().float().eval()
        return FastKeypointInference(_traced(copy.deepcopy(learner.cache.extractor.encoder).cpu().eval()), head).eval()
    return DeepKeypointInference(_traced(copy.deepcopy(learner.net).cpu().float().eval())).eval()


def scripted(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(module)


def exported_keypoints(model_path: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an exported model on an RGB uint8 image as its card says: ``(xy (K, 2) image pixels,
    confidence (K,))``, decoded as the app decodes its own heatmaps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(model_path), map_location="cpu")
    with torch.inference_mode():
        heatmaps = model(normalize(pixels))[0].numpy()
    return locate(heatmaps)[0], 1.0 - off_peak_mass(heatmaps)


def model_card(engine) -> dict:
    """What a program needs to feed the exported model and read its answer."""
    project = engine.project
    skeleton = engine.skeleton
    trained_on = project.model_version(engine.version)  # as it was when this version was trained
    return {
        "format": "TorchScript (torch.jit.load)",
        "task": "keypoints",
        "learner": engine.learner_name,
        "model_version": engine.version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bodyparts": list(skeleton.names),
        "skeleton": [[skeleton.names[a], skeleton.names[b]] for a, b in skeleton.edges],
        "symmetric_pairs": [[skeleton.names[a], skeleton.names[b]] for a, b in skeleton.symmetry],
        "training_label_count": trained_on.label_count,
        "validation_label_count": trained_on.validation_count,
        "input": {**MODEL_CARD["input"],
                  "size": "any height H and width W: the module pads to a multiple of "
                          f"{PAD_MULTIPLE} itself, as the app does",
                  "shape": "(1, 3, H, W)"},
        "output": {"what": "heatmaps, float32 (1, keypoints, ceil(H / 4), ceil(W / 4)): one per bodypart, in "
                           "the order of 'bodyparts', each a probability map summing to one",
                   "stride": STRIDE,
                   "cell_centre": "cell (i, j) is centred on image pixel x = 4 j + 1.5, y = 4 i + 1.5",
                   "decoding": DECODING},
        "encoder": {"name": MODEL_CARD["name"], "weights": MODEL_CARD["weights"]["package"]},
    }


def export_model(engine, out_dir: Path) -> Path:
    """``model.pt`` (TorchScript) and ``model_card.json`` of the engine's model in ``out_dir``.
    The scripted module is checked against the learner itself before anything is written."""
    if not engine.learner.trained:
        raise ProjectError("There is no trained model yet: label a few keypoints first.")
    if engine.version is None:
        raise ProjectError("The model in use has no version yet: let it train once, then export.")
    card = model_card(engine)
    module = inference_module(engine.learner)
    program = scripted(module)
    with torch.inference_mode():
        check = torch.randn(1, 3, *_CHECK_SIZE)
        if not torch.allclose(program(check), module(check), atol=1e-5):
            raise ProjectError("The exported model does not reproduce the app's predictions; not written.")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(program, buffer)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / "model.pt", buffer.getvalue())
        atomic_write_bytes(out_dir / "model_card.json", json.dumps(card, indent=2).encode())
    except OSError as e:
        raise ProjectError(f"Cannot write the model to '{out_dir}': {write_refusal(e)}.") from e
    return out_dir / "model.pt"
