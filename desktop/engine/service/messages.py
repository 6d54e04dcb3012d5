"""Every message the engine thread takes and every event it sends, for all tasks.

Messages come from whoever drives the engine (the GUI's bridge, a test); events go back through
the service's one callback, on the engine thread, carrying fresh numpy arrays that the engine
never touches again. Nothing here imports torch, so the GUI builds messages from this module
without pulling torch into its own imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ----- messages in: every task --------------------------------------------------------------


@dataclass(frozen=True)
class LabelsChanged:
    """A hint that labels changed; the service checks ``label_revision()`` itself."""


@dataclass(frozen=True)
class Predict:
    image_id: int
    generation: int


@dataclass(frozen=True)
class ProposeQueries:
    image_id: int
    k: int = 8
    strategy: str | None = None  # None: the service's (see ServingOptions)
    replace_open: bool = False  # close the image's open queries first


@dataclass(frozen=True)
class SetLearner:
    name: str
    device: str = "auto"


@dataclass(frozen=True)
class Export:
    """Write masks (and previews) and/or the model as TorchScript with its model card."""

    masks_dir: Path | None = None
    model_dir: Path | None = None


@dataclass(frozen=True)
class AddImages:
    """Image or slide files (or folders of them) to add to the open project."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Stop:
    pass


# ----- messages in: keypoint projects --------------------------------------------------------
@dataclass(frozen=True)
class AddVideo:
    path: Path
    frames: int = 20
    sampling: str = "uniform"  # or "kmeans"


@dataclass(frozen=True)
class ShowView:
    """The part of an ordinary image on screen, and how finely: the engine predicts a large image
    (``segmentation/view_grid.py``) by its view, at about one class per screen pixel."""

    image_id: int
    generation: int
    rect: tuple[float, float, float, float]  # x, y, width, height in image pixels
    pixels_per_screen_pixel: float


# ----- messages in: slides ----------------------------------------------------------------------
@dataclass(frozen=True)
class PredictView:
    """Predict the tiles of this level-0 view rectangle of a slide, for view generation N."""

    image_id: int
    generation: int
    rect: tuple[float, float, float, float]


@dataclass(frozen=True)
class NextRegion:
    """Go to the most uncertain region of a slide not yet seen, and ask ``k`` queries there; with
    ``within`` (a level-0 x, y, w, h: the view), a region in that rectangle if it has tissue."""

    image_id: int
    k: int = 8
    within: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class ExportSlide:
    """QuPath GeoJSON (labels and predicted regions) and the OME-TIFF mask of one slide."""

    image_id: int
    folder: Path


SLIDE_MESSAGES = (PredictView, NextRegion, ExportSlide)


# ----- events out: every task ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelPublished:
    version: int
    loss: float
    validation_accuracy: float | None
    label_count: int
    learner: str = "fast"
    label_revision: int = -1  # the project's label revision this model was trained on
    seconds: float = float("nan")  # how long the training slice took
    validation_count: int = 0  # of label_count, the labels held back to score validation_accuracy on


@dataclass(frozen=True)
class Prediction:
    image_id: int
    generation: int
    version: int
    class_map: np.ndarray  # (H, W) uint8 class index; 255 everywhere: nothing predicted (one class labelled)
    confidence: np.ndarray  # (H, W) float32, probability of the chosen class
    uncertainty: np.ndarray  # (H, W) float32, higher = less sure; NaN where nothing is predicted
    seconds: float = float("nan")  # how long predicting and scoring took
    stride: int = 1  # each cell of the maps covers stride x stride image pixels (a large image's view)...
    origin: tuple[int, int] = (0, 0)  # ...from this image pixel (y, x) on: the maps may cover a window only

    def covers_image(self, height: int, width: int) -> bool:
        rows, cols = self.class_map.shape
        return self.origin == (0, 0) and rows * self.stride >= height and cols * self.stride >= width


@dataclass(frozen=True)
class QueryPoint:
    query_id: int
    x: float
    y: float
    candidates: tuple[tuple[int, float], ...]  # (class index, probability), most likely first


@dataclass(frozen=True)
class Queries:
    image_id: int
    version: int | None
    points: list[QueryPoint] = field(default_factory=list)
    seconds: float = float("nan")  # how long choosing them took (nan: only the open ones sent)


@dataclass(frozen=True)
class ImageRanking:
    version: int
    uncertainty: dict[int, float]  # image id -> mean of its top uncertainties


@dataclass(frozen=True)
class Progress:
    text: str
    fraction: float | None = None  # None: busy without a known end


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass(frozen=True)
class Exported:
    text: str  # what was written, for the user


@dataclass(frozen=True)
class ImagesAdded:
    image_ids: list[int]  # new to the project
    already: int  # files the project had already
    unreadable: list[tuple[Path, str]]  # left out, with the reason


@dataclass(frozen=True)
class Stopped:
    """The last event the service sends."""


# ----- events out: keypoint projects --------------------------------------------------------------
@dataclass(frozen=True)
class KeypointPrediction:
    image_id: int
    generation: int
    version: int
    xy: np.ndarray  # (K, 2) float64 image pixels
    confidence: np.ndarray  # (K,) in [0, 1], higher = surer
    uncertainty: np.ndarray  # (K,) under the service's strategy, higher = less sure
    seconds: float = float("nan")


@dataclass(frozen=True)
class KeypointQuery:
    query_id: int
    keypoint: int
    x: float
    y: float
    confidence: float | None  # the model's confidence in its proposal, 0..1; None: nothing is proposed
    strategy: str | None = None  # the strategy that asked (None: asked before there was a model)
    score: float | None = None  # that strategy's score, in its unit (keypoints/strategies.py)


@dataclass(frozen=True)
class VideoAdded:
    path: Path
    image_ids: list[int]


# ----- events out: slides ----------------------------------------------------------------------
class SlideEvent:
    """Base of the slide events, so a receiver can route them together."""


@dataclass(frozen=True)
class TilePrediction(SlideEvent):
    image_id: int
    generation: int
    version: int
    rect: tuple[float, float, float, float]  # level-0 rectangle the tile covers
    class_map: np.ndarray  # (h, w) uint8 class index, at the working resolution
    uncertainty: np.ndarray  # (h, w) uint8, 0 = sure .. 255 = least sure


@dataclass(frozen=True)
class RegionScores(SlideEvent):
    """The background scan so far: one uncertainty score (0..1) per working tile, NaN where
    none was computed; tile (col, row) covers level-0 ``[col * span, (col + 1) * span)``."""

    image_id: int
    version: int
    span: float
    scores: np.ndarray  # (rows, cols) float32


@dataclass(frozen=True)
class RegionChosen(SlideEvent):
    image_id: int
    rect: tuple[float, float, float, float]  # level-0
    score: float | None  # None: chosen with no model yet
