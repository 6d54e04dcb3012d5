"""A small full-resolution filter bank (as ilastik uses) to go with the stride-4 deep features.

Encoder features are coarse: a 4 x 4 block shares one feature vector, so thin membranes and
small nuclei blur. These few fixed filters keep each pixel's own intensity, local smoothness,
edges and blob response at full resolution. Plain torch ops, so an exported model carries them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = (1.0, 3.0)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class PixelFilters(nn.Module):
    """(1, 3, H, W) normalised image -> (1, 7, H, W): RGB, grey blurred at two scales, gradient
    magnitude, and the difference of the two blurs (a blob detector)."""

    channels = 7

    def __init__(self):
        super().__init__()
        for i, sigma in enumerate(SIGMAS):
            self.register_buffer(f"gauss{i}", _gaussian_kernel(sigma))
        self.register_buffer("sobel", torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8)

    @staticmethod
    def _blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(dim=1, keepdim=True)
        fine = self._blur(grey, self.gauss0)
        coarse = self._blur(grey, self.gauss1)
        padded = F.pad(fine, (1, 1, 1, 1), mode="replicate")
        gx = F.conv2d(padded, self.sobel.view(1, 1, 3, 3))
        gy = F.conv2d(padded, self.sobel.T.contiguous().view(1, 1, 3, 3))
        gradient = torch.sqrt(gx * gx + gy * gy + 1e-12)
        return torch.cat([x, fine, coarse, gradient, fine - coarse], dim=1)
