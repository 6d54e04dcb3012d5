"""What the engine thread does differently in a keypoint project, and the messages for it.

``EngineService`` runs the same loop for both tasks; for a keypoint project it hands
prediction, queries, ranking and adding videos to the functions here, which drive a
``KeypointEngine``. Like ``service.py``, importing this module does not import torch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from desktop.engine.keypoints.uncertainty import KEYPOINT_STRATEGIES

DEFAULT_STRATEGY = "confidence"


# ----- messages in ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AddVideo:
    path: Path
    frames: int = 20
    sampling: str = "uniform"  # or "kmeans"


# ----- events out -----------------------------------------------------------------------------
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
    confidence: float | None  # None: asked before there was a model, nothing is proposed


@dataclass(frozen=True)
class VideoAdded:
    path: Path
    image_ids: list[int]


def keypoint_strategy(name: str) -> str:
    """A segmentation strategy (the service's default is one) means the keypoint default."""
    return name if name in KEYPOINT_STRATEGIES else DEFAULT_STRATEGY


# ----- the work, on the engine thread ---------------------------------------------------------
def predict(service, request) -> np.ndarray | None:
    """Send the predicted keypoints of one image; returns its heatmaps for reuse."""
    engine = service._engine
    if not engine.learner.trained:
        return None
    start = time.perf_counter()
    heatmaps = engine.predict(request.image_id)
    xy, confidence = engine.keypoints(request.image_id, heatmaps)
    uncertainty = engine.scores(request.image_id, keypoint_strategy(service.strategy), heatmaps)
    service._emit(KeypointPrediction(request.image_id, request.generation, engine.version, xy.copy(),
                                     confidence.copy(), np.array(uncertainty, np.float64),
                                     time.perf_counter() - start))
    return heatmaps


def propose(service, request, heatmaps: np.ndarray | None = None) -> None:
    """Ask about every unlabelled keypoint unless the image still has open queries; then send
    the image's open queries (``Queries`` with ``KeypointQuery`` points)."""
    from desktop.engine.service.loop import Queries

    engine, project = service._engine, service._project
    if request.replace_open:
        project.close_open_queries(request.image_id)
    if not project.queries(request.image_id):
        engine.propose_queries(request.image_id, keypoint_strategy(request.strategy), heatmaps)
    # open queries of a model, least certain first; cold-start ones in skeleton order
    asked = sorted(project.queries(request.image_id),
                   key=lambda q: (q.score is None, -(q.score or 0.0), q.keypoint))
    confidence = None
    if engine.learner.trained:
        confidence = engine.keypoints(request.image_id, heatmaps)[1]
    points = [KeypointQuery(q.id, q.keypoint, q.x, q.y,
                            None if confidence is None or q.score is None else float(confidence[q.keypoint]))
              for q in asked if q.keypoint is not None]
    service._emit(Queries(request.image_id, engine.version, points))


def image_uncertainty(service, image_id: int) -> float:
    return service._engine.image_uncertainty(image_id, keypoint_strategy(service.strategy))


def add_video(service, request: AddVideo) -> None:
    from desktop.engine.service.loop import Progress
    from desktop.engine.keypoints.video_frames import add_video as sample

    service._emit(Progress(f"Sampling {request.frames} frames of {Path(request.path).name}", None))
    ids = sample(service._project, request.path, request.frames, request.sampling, seed=service.seed)
    service._emit(VideoAdded(Path(request.path), ids))
    service._emit(Progress(f"Added {len(ids)} frames of {Path(request.path).name}", 1.0))
