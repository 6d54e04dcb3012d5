"""Encoder + light FPN decoder for the deep learner: per-pixel class logits at stride 4.

The decoder is deliberately small (64 channels, GroupNorm so batches of one or two crops
train well) because it is fine-tuned continuously on a workstation, often on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import Encoder


class FPNDecoder(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], width: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.smooth = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.GroupNorm(8, width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.GroupNorm(8, width), nn.ReLU(inplace=True))

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](maps[-1])
        for lateral, skip in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            x = lateral(skip) + F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.smooth(x)


class SegmentationNet(nn.Module):
    """``features`` then ``classify``: split so MC dropout reruns only the cheap last step."""

    def __init__(self, num_classes: int, width: int = 64, dropout: float = 0.2, pretrained: bool = True):
        super().__init__()
        self.encoder = Encoder.pretrained() if pretrained else Encoder()
        self.decoder = FPNDecoder(self.encoder.channels, width)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
