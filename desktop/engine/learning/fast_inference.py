"""The fast learner's export: the frozen encoder and the trained head as one torch module,
for users' own scripts (``segmentation/export.py``). It encodes a picture whole."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from desktop.engine.learning.features import FEATURE_STRIDE
from models.filters import PixelFilters


class FastInference(nn.Module):
    """Encoder + head as one module for export: normalised (1, 3, H, W) in, probabilities out.

    H and W must be multiples of 32 (pad by reflection first), as during training.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module):
        """``head``: the fast learner's ``PixelHead`` (its ``inp``, ``out``, ``mean`` and ``std``)."""
        super().__init__()
        self.encoder = encoder
        self.filters = PixelFilters()
        w = head.inp.weight / head.std
        coarse = w.shape[1] - PixelFilters.channels
        self.first = nn.Conv2d(coarse, w.shape[0], 1)
        self.first.weight.data.copy_(w[:, :coarse, None, None])
        self.first.bias.data.copy_(head.inp.bias - w @ head.mean)
        self.first_fine = nn.Conv2d(PixelFilters.channels, w.shape[0], 1, bias=False)
        self.first_fine.weight.data.copy_(w[:, coarse:, None, None])
        self.last = nn.Conv2d(head.out.in_features, head.out.out_features, 1)
        self.last.weight.data.copy_(head.out.weight[:, :, None, None])
        self.last.bias.data.copy_(head.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.first_fine(self.filters(x))
        maps = self.encoder(x)
        size = maps[0].shape[-2:]
        stacked = torch.cat([maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                         for m in maps[1:]], dim=1)
        hidden = F.interpolate(self.first(stacked), scale_factor=FEATURE_STRIDE, mode="bilinear",
                               align_corners=False)
        return torch.softmax(self.last(F.relu(hidden + fine)), dim=1)
