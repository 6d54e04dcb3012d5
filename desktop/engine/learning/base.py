"""What every learner takes and gives: sparse point labels in, class probabilities out."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from desktop.engine.errors import PointillistError


@dataclass(frozen=True)
class ImageRef:
    """An image a learner can see: a cache key and a way to load its uint8 RGB pixels."""

    key: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PointLabels:
    """The labelled pixels of one image: ``yx`` (N, 2) in image pixels, ``classes`` (N,), and
    when they are a project's labels their ``ids`` (N,): a learner may keep what it computed for
    a label by its id from one round to the next (a label's place never changes)."""

    image: ImageRef
    yx: np.ndarray
    classes: np.ndarray
    ids: np.ndarray | None = None


@dataclass(frozen=True)
class FitReport:
    loss: float
    steps: int
    seconds: float
    note: str | None = None  # what the learner gave up to keep training (see ShrinksOnOutOfMemory)
    interrupted: bool = False  # stopped early because ``interrupted()`` said so: the weights are half-trained


Interrupted = Callable[[], bool]
"""Asked between training steps: True stops the fit early (newer labels came, so the round's
model would be stale on arrival, or the project is closing; the caller then restores the
weights it had)."""


class Learner(Protocol):
    name: str
    num_classes: int
    windows_cost_their_cells: bool  # whether predict_grid over part of an image costs only that part

    @property
    def trained(self) -> bool: ...

    def fit(self, labels: list[PointLabels], steps: int, interrupted: Interrupted | None = None) -> FitReport: ...

    def predict_proba(self, image: ImageRef) -> np.ndarray: ...

    def predict_grid(self, image: ImageRef, stride: int, window: tuple[int, int, int, int] | None = None
                     ) -> np.ndarray: ...

    def predict_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray: ...

    def predict_labels(self, labels: list[PointLabels]) -> list[np.ndarray]: ...

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


def autocast(device: torch.device):
    """bfloat16 autocast on CUDA; full precision everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class FineTunes:
    """A learner that fine-tunes ``net``, a pretrained ``encoder`` and a head, on a few images a
    batch: the encoder's batch norms keep their statistics (a few images cannot estimate them)."""

    _trained = False

    @property
    def trained(self) -> bool:
        return self._trained

    def _train_mode(self) -> None:
        self.net.train()
        for module in self.net.encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


class ShrinksOnOutOfMemory:
    """Keeps a fine-tuning learner (``net``, ``optimizer``, ``device``, ``batch``) training when
    its device runs out of memory, as a GPU shared with other programs does: the batch is
    halved, and once a batch of one does not fit either, training moves to the CPU with the
    batch it started with (the GPU's memory was the limit, not the CPU's). ``note`` then tells
    the user, and stays, since the learner stays that way."""

    note: str | None = None
    _start_batch: int | None = None

    def _run_steps(self, steps: int, step: Callable[[], float], interrupted: Interrupted | None = None
                   ) -> tuple[float, bool]:
        """Run ``step`` (one optimizer step on ``self.batch`` samples; returns the loss) ``steps``
        times, using less memory whenever it runs out, until ``interrupted()``; returns the last
        loss and whether it was interrupted."""
        loss = float("nan")
        for _ in range(steps):
            if interrupted is not None and interrupted():
                return loss, True
            while (value := _unless_out_of_memory(step)) is None:
                self._use_less_memory()
            loss = value
        return loss, False

    def _use_less_memory(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        where = "CPU" if self.device.type == "cpu" else "GPU"
        if self.batch > 1:
            self._start_batch = self._start_batch or self.batch
            self.batch //= 2
            self.note = (f"The {where} ran out of memory: training goes on with {self.batch} "
                         f"picture{'s' if self.batch > 1 else ''} at a time.")
        elif self.device.type != "cpu":
            self.device = torch.device("cpu")
            self.net.to(self.device)
            self.optimizer.load_state_dict(self.optimizer.state_dict())  # moves its state beside the weights
            self.batch = self._start_batch or self.batch
            self.note = ("The GPU ran out of memory even with one picture at a time: training goes on "
                         "on the CPU, which is slower.")
        else:
            raise PointillistError("There is not enough memory to train the deep learner even with one "
                                   "picture at a time. Close other programs, or use the fast learner.")


def _unless_out_of_memory(step: Callable[[], float]) -> float | None:
    """``step()``, or None when it ran out of memory. Returning, rather than handling the error
    here, lets the failed step's tensors go (its frames live on in the traceback) before the
    caller frees the cache and tries again."""
    try:
        return step()
    except torch.OutOfMemoryError:
        return None
