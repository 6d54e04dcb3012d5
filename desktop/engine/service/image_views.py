"""What the engine thread sends for a large ordinary image (``view_grid.is_large``): its view
first, on a grid twice as coarse as the screen's (a first look at a quarter of the cost), then at
about one class per screen pixel, then the whole image at the overview's stride for what lies
outside the view. The first look is sent at once; the others are computed a strip of at most
``STRIP_CELLS`` cells per step of ``serve`` (about 0.1 s on one thread), so that a click waits for
a strip, not for a whole view, before its round trains; each is sent when whole. A new model
version, a new view (``ShowView``) and a new image each ask again; nothing outside the view is
computed before the view is sent.

Smaller images are predicted whole at full resolution (``SegmentationServing.predict``): that is
what their view shows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from desktop.engine.learning.feature_tiles import FeatureTiles
from desktop.engine.learning.features import FEATURE_STRIDE
from desktop.engine.learning.grid_head import grid_shape
from desktop.engine.segmentation import strategies, uncertainty, view_grid
from desktop.engine.segmentation.slide_learning import NOT_PREDICTED
from desktop.engine.service.messages import Predict, Prediction, ShowView

STRIP_CELLS = 1 << 16  # grid cells a step of ``serve`` computes


@dataclass
class _Step:
    """One prediction to send: ``stride`` over ``window``, computed a strip of rows at a time."""

    request: Predict
    version: int  # of the model it was asked of: a step of another (left queued when no image was shown) is dropped
    stride: int
    window: tuple[int, int, int, int]
    of_view: bool  # part of the view (not the overview behind it)
    parts: list[np.ndarray] = field(default_factory=list)  # the strips computed so far, (C, rows, cols) each
    seconds: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        """Grid rows and columns over the window (which lies inside the image)."""
        return grid_shape(self.window[2], self.window[3], self.stride, self.window)

    @property
    def window_cells(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def strips(self, cells: int) -> list[tuple[int, int, int, int]]:
        """The window as strips of whole rows of at most ``cells`` cells (one row at least)."""
        y0, x0, y1, x1 = self.window
        rows, cols = self.shape
        per = max(1, cells // cols) * self.stride
        return [(top, x0, min(y1, top + per), x1) for top in range(y0, y0 + rows * self.stride, per)]


@dataclass
class _TiledStep:
    """A prediction to send while the image's features are computed a tile at a time
    (``FeatureCache.building``): ``serve`` computes one tile, nearest ``near`` among those in
    ``window`` first, paints every computed tile's cells of the grid and sends the grid with
    the cells still to come unpainted; the tiles outside the window are computed after it."""

    request: Predict
    version: int
    stride: int
    window: tuple[int, int, int, int]
    of_view: bool
    tiles: FeatureTiles
    near: tuple[float, float]
    probs: np.ndarray | None = None  # (C, rows, cols) over the window, NaN where nothing is painted yet
    painted: set = field(default_factory=set)
    seconds: float = 0.0


class ImageViews:
    def __init__(self, engine, project, emit: Callable[[object], None], strategy: str):
        self.engine, self.project, self.emit = engine, project, emit
        # the uncertainty painted: the strategy's own when it scores probabilities, else margin
        self.shown_strategy = strategy if strategies.strategy(strategy).needs == strategies.PROBABILITIES else "margin"
        self.view: ShowView | None = None
        self._due: list[_Step | _TiledStep] = []  # what serve computes and sends next, in order
        self._sent: set[tuple] = set()  # (stride, window) sent of the image, view generation and version in _for
        self._for: tuple | None = None

    def is_large(self, image_id: int) -> bool:
        info = self.project.image(image_id)
        return view_grid.is_large(info.height, info.width)

    @property
    def busy(self) -> bool:
        return bool(self._due)

    @property
    def view_pending(self) -> bool:
        """Part of the view is still to be sent (the overview behind it may be, too)."""
        return any(step.of_view for step in self._due)

    def predict(self, request: Predict) -> bool:
        """For a large image, send the first of the steps for ``request``'s image and queue the
        others for ``serve``: the view (when the GUI has said what it is) coarse, then as fine as
        the screen, then the overview; with no view known yet, the overview alone. False, and
        nothing done, for an image that is not large."""
        self._due = []  # whatever was queued was for the image shown before, or an older request
        info = self.project.image(request.image_id)
        if not view_grid.is_large(info.height, info.width):
            return False
        if not self.engine.model.ready:
            if self.engine.learner.trained:  # a model of one class: clear what an earlier model painted
                stride = view_grid.overview_stride(info.height, info.width)
                rows, cols = grid_shape(info.height, info.width, stride)
                self.emit(Prediction(request.image_id, request.generation, self.engine.version,
                                     np.full((rows, cols), NOT_PREDICTED, np.uint8), np.zeros((rows, cols), np.float32),
                                     np.full((rows, cols), np.nan, np.float32), stride=stride))
            return True
        whole = (0, 0, info.height, info.width)
        overview = view_grid.overview_stride(info.height, info.width)
        view = self.view if self.view is not None and self.view.image_id == request.image_id else None
        tiles = self.engine.feature_tiles(request.image_id)  # None once the image's map is whole
        steps = [(overview, whole, False)]
        if view is not None:
            stride = min(overview, view_grid.view_stride(view.pixels_per_screen_pixel))
            window = view_grid.aligned_window(view.rect, stride, info.height, info.width)
            first_look = [] if self._was_sent(request, stride, window) or tiles is not None else \
                [(2 * stride, view_grid.aligned_window(view.rect, 2 * stride, info.height, info.width), True)]
            steps = first_look + [(stride, window, True)] + ([] if window == whole else steps)
        steps = [step for step in steps if not self._was_sent(request, *step[:2])]
        if tiles is not None and steps:  # the first step's cells as the tiles come, the view's first
            rect = view.rect if view is not None else (0, 0, info.width, info.height)
            near = (rect[1] + rect[3] / 2, rect[0] + rect[2] / 2)
            stride, window, of_view = steps[0]
            if stride < FEATURE_STRIDE:  # finer than the features: a tile's own map lacks the cells past
                stride = FEATURE_STRIDE  # its edges that the resize reads, so that grid waits for the whole
                window = view_grid.aligned_window(rect, stride, info.height, info.width)
            else:
                steps = steps[1:]
            self._due = [_TiledStep(request, self.engine.version, stride, window, of_view, tiles, near)]
            self._due += [_Step(request, self.engine.version, *step) for step in steps]
            self._serve_tiles(self._due[0])
        elif steps:
            self._send(request, *steps[0][:2])
            self._due = [_Step(request, self.engine.version, *step) for step in steps[1:]]
        return True

    def view_changed(self, message: ShowView, current: Predict | None) -> None:
        """The expert panned or zoomed: predict the new view of the image in view."""
        self.view = message
        if current is not None and current.image_id == message.image_id:
            self.predict(current)

    def serve(self) -> None:
        """The next strip of the next queued step; the step is sent once its last strip is done."""
        if not self._due or not self.engine.model.ready:
            return
        step = self._due[0]
        if step.version != self.engine.version or self._was_sent(step.request, step.stride, step.window):
            self._due.pop(0)
            return
        if isinstance(step, _TiledStep):
            self._serve_tiles(step)
            return
        # a learner that predicts whole images only (deep) would run its network once a strip: one strip
        strips = step.strips(STRIP_CELLS if self.engine.learner.windows_cost_their_cells else step.window_cells)
        start = time.perf_counter()
        try:
            step.parts.append(self.engine.predict_grid(step.request.image_id, step.stride, strips[len(step.parts)]))
        except Exception:
            self._due.pop(0)  # not again at every turn of the loop: the error is reported once
            raise
        step.seconds += time.perf_counter() - start
        if len(step.parts) == len(strips):
            self._due.pop(0)
            self._emit(step.request, step.stride, step.window, np.concatenate(step.parts, axis=1), step.seconds)

    def _serve_tiles(self, step: _TiledStep) -> None:
        """Paint the tiles done that the step has not painted yet (a new view or model version
        finds some) or, when there are none in its window, compute the next tile and paint it;
        send the step's grid with every tile painted so far when it gained one. Once every tile
        is done the map is whole (``FeatureCache.building`` keeps it) and the step is sent whole."""
        start = time.perf_counter()
        fresh = self._paint_done(step)  # first what is done already (a new view, a new model version)
        missing = step.tiles.missing(step.near, step.window)
        if not fresh and missing:
            step.tiles.compute(missing[0])
            fresh = self._paint_done(step)
        step.seconds += time.perf_counter() - start
        if step.tiles.complete:
            self._due.remove(step)
        if fresh:
            self._emit(step.request, step.stride, step.window, step.probs, step.seconds)

    def _paint_done(self, step: _TiledStep) -> bool:
        """Paint the tiles done and not painted yet; whether any lay in the step's window."""
        fresh = False
        for tile in map(tuple, np.argwhere(step.tiles.done).tolist()):
            if tile not in step.painted:
                step.painted.add(tile)
                fresh |= self._paint_tile(step, tile)
        return fresh

    def _paint_tile(self, step: _TiledStep, tile: tuple[int, int]) -> bool:
        """Paint ``tile``'s cells of the step's grid; False when it lies outside the window."""
        y0, x0, y1, x1 = step.window
        top, left, bottom, right = step.tiles.box(tile)
        a0, b0, a1, b1 = max(y0, top), max(x0, left), min(y1, bottom), min(x1, right)
        if a0 >= a1 or b0 >= b1:
            return False
        part = self.engine.predict_tile(step.tiles, tile, step.stride, (a0 - top, b0 - left, a1 - top, b1 - left))
        if step.probs is None:
            step.probs = np.full((len(part), *grid_shape(y1, x1, step.stride, step.window)), np.nan, np.float32)
        r, c = (a0 - y0) // step.stride, (b0 - x0) // step.stride
        step.probs[:, r:r + part.shape[1], c:c + part.shape[2]] = part
        return True

    def _was_sent(self, request: Predict, stride: int, window: tuple[int, int, int, int]) -> bool:
        if self._for != (request.image_id, request.generation, self.engine.version):
            self._for, self._sent = (request.image_id, request.generation, self.engine.version), set()
        return (stride, window) in self._sent

    def _send(self, request: Predict, stride: int, window: tuple[int, int, int, int]) -> None:
        """Compute and send one step whole, now."""
        if self._was_sent(request, stride, window):
            return
        start = time.perf_counter()
        probs = self.engine.predict_grid(request.image_id, stride, window)
        self._emit(request, stride, window, probs, time.perf_counter() - start)

    def _emit(self, request: Predict, stride: int, window: tuple[int, int, int, int], probs: np.ndarray,
              seconds: float) -> None:
        """Send ``probs`` (C, rows, cols) over ``window``; cells that are NaN (tiles whose
        features are still to come) go as ``NOT_PREDICTED``, and the step is sent only without any."""
        waiting = np.isnan(probs[0])
        ready = np.where(waiting, 0.0, probs)
        classes = ready.argmax(0).astype(np.uint8)
        classes[waiting] = NOT_PREDICTED
        scores = uncertainty.score(self.shown_strategy, ready).astype(np.float32)
        scores[waiting] = np.nan
        self.emit(Prediction(request.image_id, request.generation, self.engine.version, classes,
                             np.where(waiting, 0.0, ready.max(0)).astype(np.float32), scores,
                             seconds, stride, window[:2]))
        if not waiting.any():
            self._sent.add((stride, window))
