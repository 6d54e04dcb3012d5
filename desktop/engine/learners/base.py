"""What every learner takes and gives: sparse point labels in, class probabilities out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class ImageRef:
    """An image a learner can see: a cache key and a way to load its uint8 RGB pixels."""

    key: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PointLabels:
    """The labelled pixels of one image: ``yx`` (N, 2) in image pixels, ``classes`` (N,)."""

    image: ImageRef
    yx: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class FitReport:
    loss: float
    steps: int
    seconds: float


class Learner(Protocol):
    name: str
    num_classes: int

    @property
    def trained(self) -> bool: ...

    def fit(self, labels: list[PointLabels], steps: int) -> FitReport: ...

    def predict_proba(self, image: ImageRef) -> np.ndarray: ...

    def predict_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray: ...

    def predict_mc(self, image: ImageRef, samples: int) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class LoadedImages:
    """The pixels of the images a deep learner trains on, loaded once: random crops come back
    to the same few images hundreds of times per round."""

    def __init__(self):
        self._pixels: dict[str, np.ndarray] = {}

    def __call__(self, image: ImageRef) -> np.ndarray:
        if image.key not in self._pixels:
            self._pixels[image.key] = image.load()
        return self._pixels[image.key]


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for, but no CUDA GPU is available on this machine.")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("MPS was asked for, but this machine has no Apple GPU available.")
    return torch.device(preference)


def concat_labels(labels: list[PointLabels]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten per-image labels to ``(image index, yx, class)`` arrays."""
    if not labels:
        return np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, np.int64)
    owner = np.concatenate([np.full(len(lab.yx), i, np.int64) for i, lab in enumerate(labels)])
    yx = np.concatenate([np.asarray(lab.yx, np.float64).reshape(-1, 2) for lab in labels])
    cls = np.concatenate([np.asarray(lab.classes, np.int64) for lab in labels])
    return owner, yx, cls


def fine_tune_optimizer(net: torch.nn.Module, lr_encoder: float, lr_decoder: float) -> torch.optim.Optimizer:
    """AdamW with a small learning rate for the pretrained ``net.encoder`` and a larger one for
    everything trained from scratch: fine-tuning must not wash out the ImageNet features."""
    return torch.optim.AdamW([
        {"params": net.encoder.parameters(), "lr": lr_encoder},
        {"params": [p for n, p in net.named_parameters() if not n.startswith("encoder.")], "lr": lr_decoder}],
        weight_decay=1e-4)
