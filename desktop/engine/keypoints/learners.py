"""Keypoint learners: labelled keypoint positions in, one heatmap per keypoint out.

Both learners predict ``(K, h, w)`` heatmaps on the stride-4 grid of the image
(``h = ceil(H / 4)``), each a probability map over positions (it sums to one); :func:`locate` turns them into sub-pixel
positions. Labels are ``(K, 2)`` positions with NaN where a keypoint gives no loss: absent and
unlabelled ones. Occluded keypoints have a position and are trained on it.

- ``fast``: frozen cached encoder features, projected once per image to a few channels, a
  small conv head on top and a coarse second stage that reads all keypoints' heatmaps at once
  (``models.keypoint_head.FastHeatmapHead``); a retrain takes seconds.
- ``deep``: encoder + decoder fine-tuned together, warm-started every round, on whole images
  augmented with horizontal flips (left/right partners swap channels), rotation and scale.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from desktop.engine.learning.base import (FineTunes, FitReport, ImageRef, Interrupted, LoadedImages,
                                          ShrinksOnOutOfMemory, autocast, fine_tune_optimizer)
from desktop.engine.learning.features import FeatureCache
from desktop.engine.learning.padding import pad_to_multiple
from desktop.engine.project.skeleton import Skeleton
from models.encoder import normalize
from models.keypoint_head import (STRIDE, FastHeatmapHead, KeypointNet, cells_to_pixels, decode_peaks,
                                  heatmap_cross_entropy, heatmap_loss, pixels_to_cells, spatial_softmax,
                                  target_distribution)

SIGMA_CELLS = 1.5  # target Gaussian width on the stride-4 grid (6 image pixels)
_TARGET_BYTES = 256 << 20  # loss targets a fit keeps ready (about 200 frames of 640 x 480, 17 keypoints)
_PROJECTION_SAMPLES = 2048  # feature vectors per image for the projection, from at most 32 images


@dataclass(frozen=True)
class KeypointLabels:
    image: ImageRef
    xy: np.ndarray  # (K, 2) image pixels; NaN = no loss (absent or unlabelled)


def grid_size(height: int, width: int) -> tuple[int, int]:
    return math.ceil(height / STRIDE), math.ceil(width / STRIDE)


def locate(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peaks of (K, h, w) heatmaps: ``(xy image pixels (K, 2), peak value (K,))``."""
    cells, value = decode_peaks(torch.from_numpy(np.ascontiguousarray(heatmaps, np.float32)))
    return cells_to_pixels(cells).numpy().astype(np.float64), value.numpy().astype(np.float64)


def flipped(image: ImageRef) -> ImageRef:
    """The image mirrored left to right (for flip tests), cached under its own key."""
    return ImageRef(f"{image.key}|flip", lambda: np.ascontiguousarray(image.load()[:, ::-1]))


def _known_cells(labels: KeypointLabels) -> torch.Tensor:
    return pixels_to_cells(torch.as_tensor(np.asarray(labels.xy, np.float32)))


class _LossTargets:
    """Each labelled image's :func:`target_distribution`, built the first time the fit draws the
    image and kept for the rest of the fit while they fit in ``_TARGET_BYTES``: building one
    costs as much as a layer of the head, at every step."""

    def __init__(self, cells: list[torch.Tensor], shapes: list[tuple[int, int]]):
        self._cells = cells
        self._shapes = shapes
        self._kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._room = _TARGET_BYTES

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i not in self._kept:
            target = target_distribution(self._cells[i], *self._shapes[i], SIGMA_CELLS)
            if target[0].nbytes > self._room:
                return target
            self._kept[i] = target
            self._room -= target[0].nbytes
        return self._kept[i]


class FastKeypointLearner:
    name = "fast"

    def __init__(self, skeleton: Skeleton, cache: FeatureCache, dims: int = 64, hidden: int = 64,
                 lr: float = 3e-3, batch: int = 4, seed: int = 0):
        self.skeleton = skeleton
        self.cache = cache
        self.batch = batch
        torch.manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self.head = FastHeatmapHead(cache.extractor.coarse_channels, len(skeleton), dims, hidden)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=lr, weight_decay=1e-4)
        self._projected: dict[str, torch.Tensor] = {}  # key -> (dims, h, w) float16
        self._projection_ready = False
        self._trained = False

    @property
    def trained(self) -> bool:
        return self._trained

    def _fit_projection(self, images: list[ImageRef]) -> None:
        samples = []
        for image in images[:32]:
            values = self.cache.get(image.key, image.load).values
            flat = values.reshape(-1, values.shape[-1])
            pick = self._rng.choice(len(flat), min(_PROJECTION_SAMPLES, len(flat)), replace=False)
            samples.append(flat[torch.from_numpy(pick)].float())
        self.head.fit_projection(torch.cat(samples))
        self._projection_ready = True

    @torch.no_grad()
    def projected(self, image: ImageRef) -> torch.Tensor:
        """(dims, h, w) float32 projected features on the image's own stride-4 grid."""
        if image.key not in self._projected:
            fmap = self.cache.get(image.key, image.load)
            h, w = grid_size(fmap.height, fmap.width)
            self._projected[image.key] = self.head.project(fmap.values[:h, :w]).half()
        return self._projected[image.key].float()

    def fit(self, labels: list[KeypointLabels], steps: int = 150, interrupted: Interrupted | None = None
            ) -> FitReport:
        """Continue training (warm start) on images with at least one known keypoint."""
        start = time.perf_counter()
        labels = [lab for lab in labels if np.isfinite(lab.xy).all(1).any()]
        if not labels:
            return FitReport(float("nan"), 0, 0.0)
        if not self._projection_ready:
            self._fit_projection([lab.image for lab in labels])
        inputs = [self.projected(lab.image) for lab in labels]
        targets = _LossTargets([_known_cells(lab)[None] for lab in labels], [x.shape[-2:] for x in inputs])
        self.head.train()
        loss_value, stopped = float("nan"), False
        for _ in range(steps):
            if interrupted is not None and (stopped := interrupted()):
                break
            chosen = self._rng.choice(len(labels), min(self.batch, len(labels)), replace=False)
            first, final = zip(*(self._stage_losses(inputs[i], targets[i]) for i in chosen))
            loss = (sum(first) + sum(final)) / len(chosen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_value = sum(final).item() / len(chosen)  # the prediction's loss, as the deep learner reports
        self.head.eval()
        self._trained = True
        return FitReport(loss_value, steps, time.perf_counter() - start, interrupted=stopped)

    def describe(self, image: ImageRef) -> np.ndarray:
        """(dims,) the image's projected features averaged over the map: where it sits among
        the others, for spreading a batch out (:func:`keypoint_uncertainty.spread_images`)."""
        return self.projected(image).mean(dim=(1, 2)).numpy()

    def _stage_losses(self, projected: torch.Tensor, target: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Both stages carry the loss, so that the first stays a heatmap the second can read."""
        first, final = self.head.stages(projected[None])
        return heatmap_cross_entropy(first, *target), heatmap_cross_entropy(final, *target)

    @torch.inference_mode()
    def predict_heatmaps(self, image: ImageRef) -> np.ndarray:
        if not self._projection_ready:
            raise RuntimeError("the fast keypoint learner has not been trained yet")
        self.head.eval()
        return spatial_softmax(self.head(self.projected(image)[None])[0]).numpy()

    def state_dict(self) -> dict:
        return {"learner": self.name, "keypoints": list(self.skeleton.names), "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "projection_ready": self._projection_ready,
                "trained": self._trained}

    def load_state_dict(self, state: dict) -> None:
        if state.get("learner") != self.name or state.get("keypoints") != list(self.skeleton.names):
            raise ValueError("these weights belong to a different learner or skeleton")
        shapes = {key: tuple(value.shape) for key, value in self.head.state_dict().items()}
        if {key: tuple(value.shape) for key, value in state["head"].items()} != shapes:
            raise ValueError("these weights were made by another version of the fast keypoint head")
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._projection_ready = bool(state["projection_ready"])
        self._trained = bool(state["trained"])
        self._projected.clear()


class DeepKeypointLearner(FineTunes, ShrinksOnOutOfMemory):
    name = "deep"

    def __init__(self, skeleton: Skeleton, device: torch.device | str = "cpu", seed: int = 0, batch: int = 4,
                 lr_encoder: float = 1e-4, lr_decoder: float = 1e-3, max_rotation: float = 25.0,
                 scale_range: tuple[float, float] = (0.8, 1.25)):
        self.skeleton = skeleton
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self.batch = batch
        self.max_rotation = max_rotation
        self.scale_range = scale_range
        self._flip = skeleton.flip_permutation()
        self.net = KeypointNet(len(skeleton)).to(self.device)
        self.optimizer = fine_tune_optimizer(self.net, lr_encoder, lr_decoder)
        self._pixels = LoadedImages()

    def augment(self, pixels: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Random left/right flip (partners swap channels), rotation and scale about the centre."""
        h, w = pixels.shape[:2]
        xy = np.asarray(xy, np.float64).copy()
        if self._rng.random() < 0.5:
            pixels = pixels[:, ::-1]
            xy[:, 0] = w - 1 - xy[:, 0]
            xy = xy[self._flip]
        angle = self._rng.uniform(-self.max_rotation, self.max_rotation)
        scale = math.exp(self._rng.uniform(*np.log(self.scale_range)))
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
        pixels = cv2.warpAffine(np.ascontiguousarray(pixels), matrix, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
        xy = xy @ matrix[:, :2].T + matrix[:, 2]  # NaN rows stay NaN
        return pixels, xy

    def fit(self, labels: list[KeypointLabels], steps: int = 30, interrupted: Interrupted | None = None
            ) -> FitReport:
        start = time.perf_counter()
        labels = [lab for lab in labels if np.isfinite(lab.xy).all(1).any()]
        if not labels:
            return FitReport(float("nan"), 0, 0.0)
        self._train_mode()
        loss_value, stopped = self._run_steps(steps, lambda: self._step(labels), interrupted)
        self.net.eval()
        self._trained = True
        return FitReport(loss_value, steps, time.perf_counter() - start, self.note, stopped)

    def _step(self, labels: list[KeypointLabels]) -> float:
        """One optimizer step on up to ``self.batch`` augmented images."""
        chosen = self._rng.choice(len(labels), min(self.batch, len(labels)), replace=False)
        pairs = [self.augment(self._pixels(labels[i].image), labels[i].xy) for i in chosen]
        x = _batch([normalize(p) for p, _ in pairs]).to(self.device)
        cells = pixels_to_cells(torch.as_tensor(np.stack([xy for _, xy in pairs]), dtype=torch.float32))
        with autocast(self.device):
            heatmaps = self.net(x).float()
        loss = heatmap_loss(heatmaps, cells.to(self.device), SIGMA_CELLS)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def _input(self, pixels: np.ndarray) -> torch.Tensor:
        """(1, 3, H', W') the normalised image, padded to the encoder's multiple, on the device."""
        return pad_to_multiple(normalize(pixels)).to(self.device)

    @torch.inference_mode()
    def predict_heatmaps(self, image: ImageRef) -> np.ndarray:
        pixels = image.load()
        self.net.eval()
        with autocast(self.device):
            heatmaps = self.net(self._input(pixels)).float()[0]
        h, w = grid_size(*pixels.shape[:2])
        return spatial_softmax(heatmaps[:, :h, :w]).cpu().numpy()

    @torch.inference_mode()
    def describe(self, image: ImageRef) -> np.ndarray:
        """(C,) the encoder's deepest features averaged over the image (see the fast learner's)."""
        self.net.eval()
        pixels = image.load()
        with autocast(self.device):
            deepest = self.net.encoder(self._input(pixels))[-1].float()
        stride = self.net.encoder.strides[-1]
        h, w = (math.ceil(side / stride) for side in pixels.shape[:2])  # not the padding
        return deepest[..., :h, :w].mean(dim=(0, 2, 3)).cpu().numpy()

    def state_dict(self) -> dict:
        return {"learner": self.name, "keypoints": list(self.skeleton.names), "net": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "trained": self._trained}

    def load_state_dict(self, state: dict) -> None:
        if state.get("learner") != self.name or state.get("keypoints") != list(self.skeleton.names):
            raise ValueError("these weights belong to a different learner or skeleton")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._trained = bool(state["trained"])


def _batch(images: list[torch.Tensor]) -> torch.Tensor:
    """(1, 3, H, W) inputs padded (reflect, then zeros) to one common multiple-of-32 size."""
    padded = [pad_to_multiple(x) for x in images]
    h = max(x.shape[-2] for x in padded)
    w = max(x.shape[-1] for x in padded)
    return torch.cat([torch.nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2])) for x in padded])
