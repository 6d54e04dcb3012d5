"""Keypoint heatmap networks on the shared encoder, Gaussian targets and sub-pixel peaks.

Networks output logits; a keypoint's heatmap is their softmax over the map (it sums to one),
trained by cross-entropy against a Gaussian around the labelled position.

Heatmaps live on the stride-4 grid of the (padded) image, one channel per keypoint. Cell
``(i, j)`` is centred on image pixel ``(4 i + 1.5, 4 j + 1.5)``, the convention of the feature
maps (``F.interpolate(..., align_corners=False)``); :func:`cells_to_pixels` converts.

The heads are written so that ``torch.jit.script`` compiles them (no ``*`` unpacking of
shapes): a keypoint model is exported as TorchScript (``desktop/engine/keypoints/export.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import Encoder
from .segmenter import FPNDecoder

STRIDE = 4


def pixels_to_cells(xy: torch.Tensor) -> torch.Tensor:
    return (xy + 0.5) / STRIDE - 0.5


def cells_to_pixels(xy: torch.Tensor) -> torch.Tensor:
    return (xy + 0.5) * STRIDE - 0.5


def gaussian_targets(xy_cells: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """(B, K, h, w) Gaussians with peak 1 at ``xy_cells`` (B, K, 2); NaN rows give zeros."""
    ys = torch.arange(height, dtype=torch.float32, device=xy_cells.device).view(1, 1, -1, 1)
    xs = torch.arange(width, dtype=torch.float32, device=xy_cells.device).view(1, 1, 1, -1)
    x = xy_cells[..., 0, None, None]
    y = xy_cells[..., 1, None, None]
    g = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return torch.nan_to_num(g, nan=0.0)


def target_distribution(xy_cells: torch.Tensor, height: int, width: int,
                        sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`heatmap_loss` compares with: ``(target (B, K, h * w), inside (B, K))``, each
    keypoint's Gaussian normalised to sum to one, and which keypoints give loss at all.
    Building it costs as much as a layer of the fast head, so a fit builds it once per image."""
    b, k = xy_cells.shape[:2]
    inside = (torch.isfinite(xy_cells).all(-1) & (xy_cells[..., 0] > -0.5) & (xy_cells[..., 1] > -0.5)
              & (xy_cells[..., 0] < width - 0.5) & (xy_cells[..., 1] < height - 0.5))
    target = gaussian_targets(xy_cells, height, width, sigma).reshape(b, k, -1)
    return target / target.sum(-1, keepdim=True).clamp_min(1e-12), inside


def heatmap_cross_entropy(logits: torch.Tensor, target: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """:func:`heatmap_loss` against a prepared :func:`target_distribution`."""
    if not inside.any():
        return logits.sum() * 0.0
    b, k = logits.shape[:2]
    log_p = torch.log_softmax(logits.reshape(b, k, -1), dim=-1)
    return -(target * log_p).sum(-1)[inside].mean()


def heatmap_loss(logits: torch.Tensor, xy_cells: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cross-entropy between each keypoint's spatial softmax and its normalised Gaussian target.

    A softmax over the whole map, rather than per-pixel regression, punishes every competing
    peak at once (the left paw where the right one is), which is what few labels need most.
    Keypoints without a position (NaN: absent, unlabelled) or outside the map give no loss.
    """
    return heatmap_cross_entropy(logits, *target_distribution(xy_cells, *logits.shape[-2:], sigma))


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(..., h, w) logits -> per-channel probability maps summing to one over the map."""
    return torch.softmax(logits.flatten(-2), dim=-1).reshape(logits.shape)


def decode_peaks(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel peaks of (K, h, w) heatmaps: ``(xy in cells (K, 2), peak value (K,))``.

    The maximum cell is refined in x and y separately by the vertex of a parabola through it
    and its two neighbours, fitted to the log of the values when all three are positive (exact
    for a Gaussian peak) and to the values themselves otherwise; the shift is at most half a
    cell either way. On the border of the map the maximum cell itself is the answer.
    """
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    value, index = flat.max(dim=1)
    iy, ix = index // w, index % w
    padded = F.pad(heatmaps[None], (1, 1, 1, 1), mode="replicate")[0]
    rows = torch.arange(k)

    def shift(before, centre, after):
        logs = (before > 1e-6) & (centre > 1e-6) & (after > 1e-6)
        b = torch.where(logs, before.clamp_min(1e-6).log(), before)
        c = torch.where(logs, centre.clamp_min(1e-6).log(), centre)
        a = torch.where(logs, after.clamp_min(1e-6).log(), after)
        curvature = b - 2 * c + a
        safe = torch.where(curvature < -1e-9, curvature, torch.full_like(curvature, -1.0))
        return torch.where(curvature < -1e-9, 0.5 * (b - a) / safe, torch.zeros_like(c)).clamp(-0.5, 0.5)

    # A peak on the border has a neighbour on one side only: it is not refined across that axis.
    dx = shift(padded[rows, iy + 1, ix], padded[rows, iy + 1, ix + 1], padded[rows, iy + 1, ix + 2])
    dx = torch.where((ix > 0) & (ix < w - 1), dx, torch.zeros_like(dx))
    dy = shift(padded[rows, iy, ix + 1], padded[rows, iy + 1, ix + 1], padded[rows, iy + 2, ix + 1])
    dy = torch.where((iy > 0) & (iy < h - 1), dy, torch.zeros_like(dy))
    return torch.stack([ix.float() + dx, iy.float() + dy], dim=1), value


def _position_channels(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(batch, 2, height, width): x and y, each from -1 to 1 across the map."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy")).expand(batch, -1, -1, -1)


class SkeletonContext(nn.Module):
    """Second stage: corrects every keypoint's logits from where *all* keypoints' first-stage
    heatmaps put them, on a grid 8 cells coarser (32 image pixels a cell), where three layers
    reach 8 coarse cells (256 image pixels) either way: a whole mirror-mouse frame from its
    middle.

    A head on frozen features scores each place by how it looks, so two places that look alike
    compete (a left paw and the right one, seen from above). Where the other keypoints are
    settles it: the front paws sit beside the nose, and each paw seen from above is straight
    over its reflection in the mirror. On the mirror-mouse frames, a fast head trained on 35
    frames had a test RMSE of 17.8 / 23.4 / 24.9 px on three splits without this stage, and
    11.8 / 12.0 / 18.0 px with it (the last with a first version), because most of its gross
    errors went. It sees only the heatmaps, not the features, so it has few inputs to memorise.
    Its last layer starts at zero: untrained, it leaves the first stage as it is.
    """

    def __init__(self, num_keypoints: int, width: int = 32, pool: int = 8, kernel: int = 5):
        super().__init__()
        self.pool = pool
        self.gather = nn.Conv2d(num_keypoints + 2, width, kernel, padding=kernel // 2)
        self.spread = nn.Conv2d(width, width, kernel, padding=kernel // 2 * 2, dilation=2)
        self.correct = nn.Conv2d(width, num_keypoints, kernel, padding=kernel // 2)
        nn.init.zeros_(self.correct.weight)
        nn.init.zeros_(self.correct.bias)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        b, _, h, w = logits.shape
        # Zeros pad the map to whole coarse cells, so that coarse cell j covers fine cells
        # 8j..8j+7 on every map size, and the correction is scaled back up by exactly 8.
        p = F.pad(spatial_softmax(logits), (0, -w % self.pool, 0, -h % self.pool))
        coarse = F.avg_pool2d(p, self.pool)
        coarse = coarse / coarse.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        x = torch.cat([coarse, _position_channels(b, coarse.shape[-2], coarse.shape[-1], logits.device)], 1)
        x = F.relu(self.spread(F.relu(self.gather(x))))
        correction = F.interpolate(self.correct(x), scale_factor=float(self.pool), mode="bilinear", align_corners=False)
        return logits + correction[..., :h, :w]


class FastHeatmapHead(nn.Module):
    """Small conv head on frozen features that were first projected to ``dims`` channels, then
    :class:`SkeletonContext`.

    The projection (centring, PCA, whitening) is fixed from the first labelled images, so each
    image's projected map is computed once and training touches only ``dims`` channels: that is
    what makes a retrain take seconds on a CPU. Wide context comes from the encoder's coarse
    scales, already stacked into the features, and where each cell is from two position
    channels (see ``first_stage``); the first stage's 3x3 output layer smooths the peaks. Dropping
    whole projected channels while training is the regulariser that helped most on the
    mirror-mouse frames (an extra 3x3 layer on the features only memorised the training frames).
    """

    def __init__(self, in_channels: int, num_keypoints: int, dims: int = 64, hidden: int = 64,
                 dropout: float = 0.2):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_channels))
        self.register_buffer("projection", torch.eye(in_channels)[:dims].clone())  # (dims, in)
        self.drop = nn.Dropout2d(dropout)
        self.inp = nn.Conv2d(dims + 2, hidden, 1)  # + where in the image (see ``first_stage``)
        self.out = nn.Conv2d(hidden, num_keypoints, 3, padding=1)
        self.context = SkeletonContext(num_keypoints)

    def fit_projection(self, samples: torch.Tensor) -> None:
        """PCA-whitening from feature vectors ``samples`` (N, in_channels)."""
        mean = samples.mean(0)
        cov = torch.cov((samples - mean).T)
        values, vectors = torch.linalg.eigh(cov)
        top = torch.argsort(values, descending=True)[:self.projection.shape[0]]
        self.mean.copy_(mean)
        self.projection.copy_(vectors[:, top].T / values[top].clamp_min(1e-6).sqrt()[:, None])

    def project(self, values: torch.Tensor) -> torch.Tensor:
        """(h, w, in_channels) features -> (dims, h, w) float32."""
        h, w, c = values.shape
        out = (values.reshape(-1, c).float() - self.mean) @ self.projection.T
        return out.T.reshape(-1, h, w).contiguous()

    def first_stage(self, projected: torch.Tensor) -> torch.Tensor:
        """Logits from projected features and two position channels: with frozen features
        alone, the head cannot tell two places that look alike (a paw seen from above and its
        reflection in the mirror below); position lets it learn where each keypoint tends to be
        in a fixed camera's view."""
        b, _, h, w = projected.shape
        where = _position_channels(b, h, w, projected.device)
        return self.out(F.relu(self.inp(torch.cat([self.drop(projected), where], 1))))

    def stages(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both stages' logits (training puts the loss on each)."""
        first = self.first_stage(projected)
        return first, self.context(first)

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        return self.stages(projected)[1]


class KeypointNet(nn.Module):
    """Encoder + the segmentation FPN decoder + one heatmap channel per keypoint, at stride 4."""

    def __init__(self, num_keypoints: int, width: int = 64, pretrained: bool = True):
        super().__init__()
        self.encoder = Encoder.pretrained() if pretrained else Encoder()
        self.decoder = FPNDecoder(self.encoder.channels, width)
        self.out = nn.Conv2d(width, num_keypoints, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.decoder(self.encoder(x)))
