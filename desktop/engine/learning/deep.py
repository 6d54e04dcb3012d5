"""The deep learner: encoder and decoder fine-tuned together on sparse point labels.

Training never restarts: each ``fit`` continues from the current weights and optimizer state
(PixelPick retrains from scratch every round; an interactive tool cannot afford that). Batches
are random crops around labelled pixels with flips, quarter turns and brightness/contrast
jitter; the loss is cross-entropy at the labelled pixels only. The encoder's BatchNorm
statistics stay frozen: crops come in batches far too small to estimate them.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from desktop.engine.learning.base import (FineTunes, FitReport, ImageRef, Interrupted, LoadedImages, PointLabels,
                                          ShrinksOnOutOfMemory, autocast, fine_tune_optimizer)
from desktop.engine.learning.features import FEATURE_STRIDE
from desktop.engine.learning.grid_head import cells_of
from desktop.engine.learning.padding import pad_to_multiple
from models.encoder import normalize
from models.segmenter import SegmentationNet


def sample_logits(logits: torch.Tensor, yx: torch.Tensor) -> torch.Tensor:
    """Bilinear logits (N, C) at pixels ``yx`` of a (C, h, w) stride-4 map (the features' rule)."""
    _, h, w = logits.shape
    gy = ((yx[:, 0] + 0.5) / FEATURE_STRIDE) / h * 2 - 1
    gx = ((yx[:, 1] + 0.5) / FEATURE_STRIDE) / w * 2 - 1
    grid = torch.stack([gx, gy], dim=1).view(1, -1, 1, 2).to(logits.dtype)
    return F.grid_sample(logits[None], grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0, :, :, 0].T


class DeepLearner(FineTunes, ShrinksOnOutOfMemory):
    name = "deep"
    windows_cost_their_cells = False  # predict_grid runs the network over the whole image, whatever the window

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", seed: int = 0,
                 crop: int = 256, batch: int = 4, lr_encoder: float = 1e-4, lr_decoder: float = 1e-3):
        self.num_classes = num_classes
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self.crop = crop
        self.batch = batch
        self.net = SegmentationNet(num_classes).to(self.device)
        self.optimizer = fine_tune_optimizer(self.net, lr_encoder, lr_decoder)
        self._pixels = LoadedImages()

    def _crop(self, labels: PointLabels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A random crop containing at least one labelled pixel, augmented, with its labels."""
        pixels = self._pixels(labels.image)
        h, w = pixels.shape[:2]
        size = self.crop
        centre = labels.yx[self._rng.integers(len(labels.yx))]
        top = int(np.clip(centre[0] - self._rng.integers(size), 0, max(h - size, 0)))
        left = int(np.clip(centre[1] - self._rng.integers(size), 0, max(w - size, 0)))
        patch = pixels[top:top + size, left:left + size]
        yx = labels.yx - (top, left)
        inside = (yx[:, 0] >= 0) & (yx[:, 0] < patch.shape[0]) & (yx[:, 1] >= 0) & (yx[:, 1] < patch.shape[1])
        yx, cls = yx[inside], labels.classes[inside]
        if self._rng.random() < 0.5:
            patch = patch[:, ::-1]
            yx = np.stack([yx[:, 0], patch.shape[1] - 1 - yx[:, 1]], 1)
        if self._rng.random() < 0.5:
            patch = patch[::-1]
            yx = np.stack([patch.shape[0] - 1 - yx[:, 0], yx[:, 1]], 1)
        for _ in range(self._rng.integers(4)):  # quarter turns, counter-clockwise
            patch = np.rot90(patch)
            yx = np.stack([patch.shape[0] - 1 - yx[:, 1], yx[:, 0]], 1)
        if patch.shape[0] < size or patch.shape[1] < size:
            padded = np.zeros((size, size, 3), np.uint8)
            padded[:patch.shape[0], :patch.shape[1]] = patch
            patch = padded
        return np.ascontiguousarray(patch), yx, cls

    def fit(self, labels: list[PointLabels], steps: int = 60, interrupted: Interrupted | None = None) -> FitReport:
        start = time.perf_counter()
        labels = [lab for lab in labels if len(lab.yx)]
        if not labels:
            return FitReport(float("nan"), 0, 0.0)
        weights = np.array([len(lab.yx) for lab in labels], np.float64)
        self._train_mode()
        loss_value, stopped = self._run_steps(steps, lambda: self._step(labels, weights / weights.sum()), interrupted)
        self.net.eval()
        self._trained = True
        return FitReport(loss_value, steps, time.perf_counter() - start, self.note, stopped)

    def _step(self, labels: list[PointLabels], p: np.ndarray) -> float:
        """One optimizer step on ``self.batch`` crops, images drawn with probabilities ``p``."""
        chosen = self._rng.choice(len(labels), self.batch, p=p)
        crops = [self._crop(labels[i]) for i in chosen]
        x = torch.cat([normalize(c[0]) for c in crops]).to(self.device)
        x = x * float(self._rng.uniform(0.8, 1.2)) + float(self._rng.uniform(-0.2, 0.2))
        with autocast(self.device):
            logits = self.net(x).float()
        picked = [sample_logits(logits[i], torch.as_tensor(c[1], dtype=torch.float32, device=self.device))
                  for i, c in enumerate(crops)]
        target = torch.as_tensor(np.concatenate([c[2] for c in crops]), device=self.device)
        loss = F.cross_entropy(torch.cat(picked), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.inference_mode()
    def _features(self, image: ImageRef) -> tuple[torch.Tensor, tuple[int, int]]:
        pixels = image.load()
        x = pad_to_multiple(normalize(pixels)).to(self.device)
        self.net.eval()
        with autocast(self.device):
            return self.net.features(x), pixels.shape[:2]

    def _probs(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.net.classify(features).float()
        full = F.interpolate(logits, scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False)
        return torch.softmax(full[0, :, :size[0], :size[1]], dim=0)

    @torch.inference_mode()
    def predict_proba(self, image: ImageRef) -> np.ndarray:
        features, size = self._features(image)
        return self._probs(features, size).cpu().numpy()

    def predict_grid(self, image: ImageRef, stride: int, window: tuple[int, int, int, int] | None = None
                     ) -> np.ndarray:
        """Class probabilities on the grid of ``stride`` over ``window`` (as ``FastLearner``'s),
        from the whole image's: the network sees the whole image either way."""
        return cells_of(self.predict_proba(image), stride, window)

    def predict_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) at pixels ``yx`` (from the full map: the encoder needs context)."""
        probs = self.predict_proba(image)
        iy = np.clip(np.round(yx[:, 0]).astype(np.int64), 0, probs.shape[1] - 1)
        ix = np.clip(np.round(yx[:, 1]).astype(np.int64), 0, probs.shape[2] - 1)
        return probs[:, iy, ix].T

    def predict_labels(self, labels: list[PointLabels]) -> list[np.ndarray]:
        """``predict_points`` at each entry's pixels (the network sees each image whole)."""
        return [self.predict_points(lab.image, np.asarray(lab.yx, np.float64).reshape(-1, 2)) for lab in labels]

    @torch.inference_mode()
    def embed_points(self, image: ImageRef, yx: np.ndarray) -> np.ndarray:
        """Decoder features (N, width) at pixels ``yx``, sampled bilinearly on the stride-4 map."""
        features, _ = self._features(image)
        points = torch.as_tensor(np.asarray(yx, np.float32).reshape(-1, 2), device=features.device)
        return sample_logits(features[0].float(), points).cpu().numpy()

    @torch.inference_mode()
    def predict_mc(self, image: ImageRef, samples: int = 8) -> np.ndarray:
        features, size = self._features(image)
        self.net.dropout.train()
        try:
            return torch.stack([self._probs(features, size) for _ in range(samples)]).cpu().numpy()
        finally:
            self.net.dropout.eval()

    def inference_module(self) -> torch.nn.Module:
        return DeepInference(copy.deepcopy(self.net).cpu().float()).eval()

    def state_dict(self) -> dict:
        return {"learner": self.name, "num_classes": self.num_classes, "net": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "trained": self._trained}

    def load_state_dict(self, state: dict) -> None:
        if state.get("learner") != self.name or state.get("num_classes") != self.num_classes:
            raise ValueError("these weights belong to a different learner or class count")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._trained = bool(state["trained"])


class DeepInference(torch.nn.Module):
    """The fine-tuned network as one module for export: probabilities at full resolution."""

    def __init__(self, net: SegmentationNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = F.interpolate(self.net(x), scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False)
        return torch.softmax(logits, dim=1)
