"""The padding every encoder input gets: to a multiple of the encoder's coarsest stride (32), so
that each of its stages tiles the picture exactly. One place for the arithmetic, which the
features, their tiles and the cache's sizing all need to agree on."""
from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MULTIPLE = 32


def padded_size(height: int, width: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """``height`` and ``width`` rounded up to a multiple of ``multiple``."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_to_multiple(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad a (1, 3, H, W) tensor on the bottom and right to a multiple of ``multiple``: by
    reflection, or by repeating the edge where the picture is too small to reflect."""
    h, w = image.shape[-2:]
    padded_h, padded_w = padded_size(h, w, multiple)
    if (padded_h, padded_w) == (h, w):
        return image
    ph, pw = padded_h - h, padded_w - w
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode)
