"""Predicting with a model folder (``model_dir.py``) and no project: pictures whole, slides tile
by tile with context, exactly as the app predicts them.

A slide is predicted on the tiles of ``SlideGrid`` at the working resolution the model card
names, every tile with tissue, through ``segmentation.slide_learning.predict_mask``, the same
function the app's slide export uses; glass is ``NOT_PREDICTED`` (255). The tile-level calls
(``slide_tiles``, ``predict_tiles``, ``stitch``) take and give plain paths, ints and arrays, so
that one slide's tiles can be spread over cluster workers and put together again.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import torch

from desktop.engine.errors import PointillistError, ProjectError
from desktop.engine.images.slides import open_image_source
from desktop.engine.learning.base import ImageRef, pick_device
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.predict.model_dir import WEIGHTS_FILE, ModelCard, read_model_card
from desktop.engine.segmentation.labelled_classes import LabelledModel
from desktop.engine.segmentation.slide_grid import SlideGrid, working_resolution
from desktop.engine.segmentation.slide_learning import (NOT_PREDICTED, class_map, mask_tiles, paste_tile, predict_mask,
                                                        tile_probabilities)

Tile = tuple[int, int]  # (col, row) on the working-resolution grid


@dataclass(frozen=True)
class SlideLayout:
    """Where a slide's mask lies, in plain numbers (they pickle to and from workers): its size at
    the working resolution, the tile size there, and the slide's own size and pixel size."""

    width: int  # working pixels
    height: int
    tile: int
    downsample: float  # level-0 pixels per working pixel
    mpp: float | None  # micrometres per working pixel, when the slide says
    source_width: int  # level 0
    source_height: int
    source_mpp: float | None


class SlidePrediction(NamedTuple):
    mask: np.ndarray  # (height, width) uint8 class indices at the working resolution, 255 = not predicted
    layout: SlideLayout  # its mpp: micrometres per mask pixel, when the slide says


def slide_layout(path: Path, card: ModelCard) -> SlideLayout:
    """A slide's layout at the card's working resolution; needs no weights (nor a GPU)."""
    with open_image_source(path) as source:
        return _layout(SlideGrid(0, source, working_resolution(source, card.slides)))


def slide_tiles(path: Path, card: ModelCard) -> list[Tile]:
    """The tiles a slide's mask is predicted on (``slide_learning.mask_tiles``); needs no weights."""
    with open_image_source(path) as source:
        return mask_tiles(SlideGrid(0, source, working_resolution(source, card.slides)))


def stitch(layout: SlideLayout, class_maps: Mapping[Tile, np.ndarray]) -> np.ndarray:
    """The slide's mask from its tiles' class maps (``predict_tiles``, from any workers), 255 where
    no tile was given: what ``predict_slide`` gives when every tile of ``slide_tiles`` is."""
    mask = np.full((layout.height, layout.width), NOT_PREDICTED, np.uint8)
    for (col, row), classes in class_maps.items():
        paste_tile(mask, layout.tile, col, row, classes)
    return mask


def _layout(grid: SlideGrid) -> SlideLayout:
    width, height = grid.source.dimensions[0]
    return SlideLayout(grid.grid.width, grid.grid.height, grid.tile, grid.downsample, grid.resolution.mpp,
                       width, height, grid.source.mpp)


class Predictor:
    """A model folder's learner on a device, ready to predict; see the module docstring."""

    _ids = itertools.count(1)

    def __init__(self, card: ModelCard, learner, device: torch.device):
        self.card = card
        self.learner = LabelledModel(learner, card.labelled_classes)  # predicts as the app paints
        self.device = device

    @classmethod
    def load(cls, model_dir: Path, device: str = "auto") -> "Predictor":
        """Read ``model_card.json`` and ``weights.pt`` from ``model_dir`` and build the learner the
        card names on ``device`` (auto, cpu, cuda, cuda:N, mps). ProjectError when the folder is
        not a model folder or its weights do not fit the card."""
        card = read_model_card(model_dir)
        try:
            where = pick_device(device)
        except RuntimeError as e:
            raise PointillistError(str(e)) from e
        num_classes = len(card.classes)
        if card.learner == "fast":
            # Each picture and tile is predicted once, so the cache keeps no map.
            learner = FastLearner(num_classes, FeatureCache(FeatureExtractor(where), budget_bytes=0))
        else:
            from desktop.engine.learning.deep import DeepLearner
            learner = DeepLearner(num_classes, device=where)
        path = Path(model_dir) / WEIGHTS_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            learner.load_state_dict(state)
        except FileNotFoundError as e:
            raise ProjectError(f"The model folder '{model_dir}' has no {WEIGHTS_FILE}.") from e
        except Exception as e:  # a damaged file, or weights for another learner or class count
            raise ProjectError(f"The {WEIGHTS_FILE} in '{model_dir}' is damaged or does not fit its model "
                               f"card ({e}).") from e
        return cls(card, learner, where)

    # ----- pictures --------------------------------------------------------------------------
    def predict_picture(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities (C, H, W) float32 of uint8 RGB ``pixels`` (H, W, 3)."""
        return self.learner.predict_proba(ImageRef(f"picture-{next(self._ids)}", lambda: pixels))

    # ----- slides ----------------------------------------------------------------------------
    def predict_slide(self, path: Path) -> SlidePrediction:
        """The whole slide's mask; see the module docstring. Raises ImageReadError."""
        with open_image_source(path) as source:
            grid = self._grid(source)
            mask = predict_mask(grid, lambda col, row: class_map(tile_probabilities(self.learner, grid, col, row)))
            layout = _layout(grid)
        return SlidePrediction(mask, layout)

    def slide_tiles(self, path: Path) -> list[Tile]:
        """The tiles ``predict_slide`` predicts (those with tissue), in reading order."""
        return slide_tiles(path, self.card)

    def predict_tiles(self, path: Path, tiles: list[Tile]) -> dict[Tile, np.ndarray]:
        """Class maps (h, w) uint8 of some of a slide's tiles, as ``predict_slide`` makes them."""
        with open_image_source(path) as source:
            grid = self._grid(source)
            return {(col, row): class_map(tile_probabilities(self.learner, grid, col, row)) for col, row in tiles}

    def layout(self, path: Path) -> SlideLayout:
        return slide_layout(path, self.card)

    stitch = staticmethod(stitch)

    def _grid(self, source) -> SlideGrid:
        # The id only keys the feature cache: a fresh one per slide opened, as no tile comes twice.
        return SlideGrid(next(self._ids), source, working_resolution(source, self.card.slides))
