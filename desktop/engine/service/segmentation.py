"""The engine thread's work in a segmentation project: an image's class map and uncertainty,
pixel queries with the model's likeliest classes, ranking by uncertainty, mask and model export,
large images by their view (through ``ImageViews``) and slides (through ``SlideServing``)."""
from __future__ import annotations

import time

import numpy as np

from desktop.engine.segmentation import selection, strategies
from desktop.engine.segmentation.labelled_classes import likeliest
from desktop.engine.segmentation.slide_learning import NOT_PREDICTED
from desktop.engine.service.image_views import ImageViews
from desktop.engine.service.messages import (SLIDE_MESSAGES, Export, Exported, Predict, Prediction, PredictView,
                                             Progress, ProposeQueries, Queries, QueryPoint, ShowView)
from desktop.engine.service.serving import TaskServing
from desktop.engine.service.slides import SlideServing

MIN_DISTANCE = 8.0  # pixels between queries


class SegmentationServing(TaskServing):
    default_strategy = strategies.DEFAULT

    def __init__(self, engine, project, emit, options):
        super().__init__(engine, project, emit, options)
        self.slides = SlideServing(engine, project, emit, self.strategy)
        self.views = ImageViews(engine, project, emit, self.strategy)
        # a large image's queries, once its view is sent (a first question: once its features are)
        self._ask_later: ProposeQueries | None = None

    def checked_strategy(self, name: str) -> str:
        return strategies.strategy(name).name

    @property
    def busy(self) -> bool:
        return self.slides.busy or self.views.busy or self._ask_later is not None

    def handle(self, message) -> bool:
        if isinstance(message, SLIDE_MESSAGES):
            if isinstance(message, PredictView):
                self.current = None  # the expert left any ordinary image
                self._ask_later = None
            self.slides.receive(message)
        elif isinstance(message, ShowView):
            self.views.view_changed(message, self.current)
        elif isinstance(message, Export):
            self._export(message)
        else:
            return super().handle(message)
        return True

    def show(self, request: Predict) -> None:
        self.slides.leave()  # an ordinary image is on screen now
        if self._ask_later is not None and self._ask_later.image_id != request.image_id:
            self._ask_later = None  # the image it was for is no longer shown
        super().show(request)

    def serve(self) -> None:
        self.slides.serve()
        tiles = self._features_to_come(self._ask_later) if self._ask_later is not None else None
        if tiles is not None and not self.views.busy:  # no view to paint them in (no model yet)
            tiles.compute(tiles.missing()[0])
            self.emit(Progress("Computing the image's features", float(tiles.done.mean())))
        elif self._ask_later is not None and tiles is None and not self.views.view_pending:
            request, self._ask_later = self._ask_later, None
            self.propose(request)
        else:
            self.views.serve()

    def model_changed(self, ask: bool = True) -> None:
        self.slides.model_changed()
        super().model_changed(ask)

    def ask_afresh(self, request: ProposeQueries, reuse=None) -> None:
        """On a large image the queries wait until its view is sent (``serve``): choosing them
        takes about as long as a strip of the view, and the view is what the click waits for."""
        if self.views.is_large(request.image_id):
            self._ask_later = request
        else:
            self.propose(request, reuse)

    def idle(self, quiet_for, interrupted) -> None:
        self.slides.scan()
        # a model of one class ranks nothing (every image is sure of it); nor while work is queued:
        # ranking a large image would take over the tiles of the one in view (``building``)
        if self.engine.model.ready and not self.busy:
            super().idle(quiet_for, interrupted)

    def ranks(self, info) -> bool:
        return not self.slides.owns(info.id) and super().ranks(info)  # a slide is ranked by its tiles

    def extra_ranking(self) -> dict[int, float]:
        return self.slides.ranking()

    # ----- the task's work -----------------------------------------------------------------------
    def predict(self, request: Predict) -> np.ndarray | None:
        """Send the prediction of one image; returns its class probabilities for reuse. A model
        that cannot tell two classes apart yet (``LabelledModel.ready``) predicts nothing: it
        sends an empty prediction, all ``NOT_PREDICTED``, which clears what an earlier model
        painted. A large image is predicted by its view (``ImageViews``), and gives nothing to reuse."""
        if self.views.predict(request):
            return None
        if not self.engine.model.ready:
            if self.engine.learner.trained:
                info = self.project.image(request.image_id)
                self.emit(Prediction(request.image_id, request.generation, self.engine.version,
                                     np.full((info.height, info.width), NOT_PREDICTED, np.uint8),
                                     np.zeros((info.height, info.width), np.float32),
                                     np.full((info.height, info.width), np.nan, np.float32)))
            return None
        start = time.perf_counter()
        probs = self.engine.predict(request.image_id)
        uncertainty = self.engine.scores(request.image_id, self.strategy, probs)
        self.emit(Prediction(request.image_id, request.generation, self.engine.version,
                             probs.argmax(0).astype(np.uint8), probs.max(0).astype(np.float32),
                             np.array(uncertainty, np.float32), time.perf_counter() - start))
        return probs

    def propose(self, request: ProposeQueries, reuse: np.ndarray | None = None) -> None:
        """Make queries for an image unless it still has open queries, then send its open queries.
        A read-only project (open for writing elsewhere) shows the queries asked there."""
        image_id, probs = request.image_id, reuse
        name = self.checked_strategy(request.strategy) if request.strategy else self.strategy
        if self._features_to_come(request) is not None:
            self._ask_later = request  # its features first, a tile per ``serve``
            if not request.replace_open and self.project.query_count(image_id):
                self._emit_queries(image_id, None, with_classes=False)  # the rings now, their classes then
            return
        start, seconds = time.perf_counter(), float("nan")
        if not self.project.read_only:
            if request.replace_open:
                self.project.close_open_queries(image_id)
            if not self.project.query_count(image_id):
                if not self.engine.model.ready:
                    self.emit(Progress("Choosing first queries from image features", None))
                one_prediction = strategies.strategy(name).needs == strategies.PROBABILITIES
                self.engine.propose_queries(image_id, request.k, name, min_distance=MIN_DISTANCE,
                                            probs=probs if one_prediction else None)  # skip predicting again
                seconds = time.perf_counter() - start
        if probs is None and self.engine.model.ready and not self.views.is_large(image_id):
            probs = self.engine.predict(image_id)
        self._emit_queries(image_id, probs, seconds)

    def _features_to_come(self, request: ProposeQueries):
        """The tiles still to come of a large image's features (``FeatureCache.building``) when
        ``request`` needs them: to choose queries, or to tell the model's likeliest classes at the
        open ones; else None. Why: either reads the whole map, 25-38 s of encoder at 4096 x 4096
        when the image is opened; meanwhile the engine computes a tile per ``serve``, paints each
        (``ImageViews``) or shows how far it is, and still answers the expert (another image, a
        click)."""
        choosing = not self.project.read_only and (request.replace_open or not self.project.query_count(request.image_id))
        if not choosing and not self.engine.model.ready:
            return None
        return self.engine.feature_tiles(request.image_id)

    def image_uncertainty(self, image_id: int, interrupted) -> float | None:
        """A large image whose features are not kept is computed a tile at a time, giving way
        between tiles: ranking it took the engine for 45 s at 4096 x 4096, and an image the expert
        opened meanwhile waited that long for its first paint (seen in the window)."""
        tiles = self.engine.feature_tiles(image_id)
        while tiles is not None and not tiles.complete:
            if interrupted():
                return None
            tiles.compute(tiles.missing()[0])
        return selection.image_uncertainty(self.engine.scores(image_id, self.strategy))

    def _emit_queries(self, image_id: int, probs: np.ndarray | None, seconds: float = float("nan"),
                      with_classes: bool = True) -> None:
        """Send the image's open queries, each with the model's three likeliest classes (of those
        it was trained on: the others have no probability), read from ``probs`` (C, H, W) or, for
        a large image, predicted at the queries' pixels; without them unless ``with_classes``."""
        queries = self.project.queries(image_id)
        columns = None
        if queries and with_classes and probs is not None:
            yy = np.clip(np.round([q.y for q in queries]).astype(np.int64), 0, probs.shape[1] - 1)
            xx = np.clip(np.round([q.x for q in queries]).astype(np.int64), 0, probs.shape[2] - 1)
            columns = probs[:, yy, xx].T
        elif queries and with_classes and self.engine.model.ready:
            columns = self.engine.model.predict_points(self.engine.ref(image_id),
                                                       np.array([(q.y, q.x) for q in queries], np.float64))
        points = [QueryPoint(q.id, q.x, q.y, () if columns is None else likeliest(columns[i], self.engine.model.classes))
                  for i, q in enumerate(queries)]
        self.emit(Queries(image_id, self.engine.version, points, seconds))

    def _export(self, request: Export) -> None:
        from desktop.engine.segmentation.export import export_masks, export_model

        written = []
        if request.masks_dir is not None:
            self.emit(Progress("Exporting masks", None))
            result = export_masks(self.engine, request.masks_dir)
            written.append(f"{len(result.written)} masks in {request.masks_dir}")
            written += [f"skipped {name}: {reason}" for name, reason in result.skipped]
        if request.model_dir is not None:
            self.emit(Progress("Exporting the model", None))
            written.append(f"the model in {export_model(self.engine, request.model_dir)}")
        self.emit(Exported("Exported " + "; ".join(written) + "."))
        self.emit(Progress(f"Model version {self.engine.version}", 1.0))
