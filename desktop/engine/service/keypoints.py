"""The engine thread's work in a keypoint project: an image's predicted keypoints with their
confidence, one query per unlabelled keypoint (least certain first), ranking by uncertainty,
frames sampled from a video, and the model exported as TorchScript (labels are exported by the
window on a thread of its own: they need no model)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from desktop.engine.errors import PointillistError
from desktop.engine.keypoints import strategies
from desktop.engine.service.messages import (AddVideo, Export, Exported, KeypointPrediction, KeypointQuery, Predict,
                                             Progress, ProposeQueries, Queries, VideoAdded)
from desktop.engine.service.serving import TaskServing


class KeypointServing(TaskServing):
    default_strategy = strategies.DEFAULT

    def checked_strategy(self, name: str) -> str:
        return strategies.strategy(name, in_app=True).name

    def handle(self, message) -> bool:
        if isinstance(message, AddVideo):
            self._add_video(message)
        elif isinstance(message, Export):
            self._export(message)
        else:
            return super().handle(message)
        return True

    def predict(self, request: Predict) -> np.ndarray | None:
        """Send the predicted keypoints of one image; returns its heatmaps for reuse."""
        engine = self.engine
        if not engine.learner.trained:
            return None
        start = time.perf_counter()
        heatmaps = engine.predict(request.image_id)
        xy, confidence = engine.keypoints(request.image_id, heatmaps)
        uncertainty = engine.scores(request.image_id, self.strategy, heatmaps)
        self.emit(KeypointPrediction(request.image_id, request.generation, engine.version, xy.copy(),
                                     confidence.copy(), np.array(uncertainty, np.float64),
                                     time.perf_counter() - start))
        return heatmaps

    def propose(self, request: ProposeQueries, reuse: np.ndarray | None = None) -> None:
        """Ask about every unlabelled keypoint unless the image still has open queries (not in a
        read-only project); then send the image's open queries (``KeypointQuery`` points)."""
        engine, project = self.engine, self.project
        if project.read_only:
            return
        if request.replace_open:
            project.close_open_queries(request.image_id)
        if not project.query_count(request.image_id):
            name = self.checked_strategy(request.strategy) if request.strategy else self.strategy
            engine.propose_queries(request.image_id, name, reuse)
        # open queries of a model, least certain first; cold-start ones in skeleton order
        asked = sorted(project.queries(request.image_id),
                       key=lambda q: (q.score is None, -(q.score or 0.0), q.keypoint))
        confidence = None
        if engine.learner.trained:
            confidence = engine.keypoints(request.image_id, reuse)[1]
        points = [KeypointQuery(q.id, q.keypoint, q.x, q.y,
                                None if confidence is None or q.score is None else float(confidence[q.keypoint]),
                                None if q.score is None else q.strategy, q.score)
                  for q in asked if q.keypoint is not None]
        self.emit(Queries(request.image_id, engine.version, points))

    def image_uncertainty(self, image_id: int, interrupted) -> float:
        return self.engine.image_uncertainty(image_id, self.strategy)

    def _add_video(self, request: AddVideo) -> None:
        from desktop.engine.keypoints.video_frames import add_video as sample

        name = Path(request.path).name
        self.emit(Progress(f"Sampling {request.frames} frames of {name}", None))
        ids = sample(self.project, request.path, request.frames, request.sampling, seed=self.engine.seed)
        self._ranked_version = None  # rank the new frames too
        self.emit(VideoAdded(Path(request.path), ids))
        self.emit(Progress(f"Added {len(ids)} frames of {name}", 1.0))

    def _export(self, request: Export) -> None:
        from desktop.engine.keypoints.export import export_model

        if request.masks_dir is not None or request.model_dir is None:
            raise PointillistError("A keypoint project exports its model, and its labels as DeepLabCut CSV or "
                                   "COCO JSON; it has no masks.")
        self.emit(Progress("Exporting the model", None))
        path = export_model(self.engine, request.model_dir)
        self.emit(Exported(f"Exported model version {self.engine.version} to {path} with its model_card.json."))
        self.emit(Progress(f"Model version {self.engine.version}", 1.0))
