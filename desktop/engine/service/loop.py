"""The engine thread: one plain thread that owns the project connection, the model and the device.

Messages come in through a queue; results leave through one callback, ``on_event``, called on
this thread with event objects that carry fresh numpy arrays. Whoever receives them (the GUI
bridge, a test, a benchmark) moves them to its own thread. The engine itself is imported only
when the thread starts, so importing this module does not import torch: the GUI builds messages
from here without pulling torch into its own imports.

The loop, as in DESIGN.md: drain the inbox -> serve the newest prediction request, dropping
older generations -> answer query requests -> if the labels changed since the last training
slice, train one short slice -> when a new model version is published, re-predict the image
last asked for and replace its open queries -> when idle, rank the images by uncertainty.
"""
from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from desktop.engine.errors import PointillistError
from desktop.engine.service import keypoints as keypoint_service
from desktop.engine.segmentation import selection
from desktop.engine.service import slides as slide_service
from desktop.engine.service.keypoints import AddVideo
from desktop.engine.project.store import Project

# ----- messages in ----------------------------------------------------------------------------


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
    strategy: str = "margin"
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


# ----- events out -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPublished:
    version: int
    loss: float
    validation_accuracy: float | None
    label_count: int
    learner: str = "fast"
    label_revision: int = -1  # the project's label revision this model was trained on
    seconds: float = float("nan")  # how long the training slice took


@dataclass(frozen=True)
class Prediction:
    image_id: int
    generation: int
    version: int
    class_map: np.ndarray  # (H, W) uint8 class index
    confidence: np.ndarray  # (H, W) float32, probability of the chosen class
    uncertainty: np.ndarray  # (H, W) float32, higher = less sure
    seconds: float = float("nan")  # how long predicting and scoring took


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


STEPS = {"fast": 150, "deep": 4}
PROBABILITY_STRATEGIES = ("entropy", "least_confidence", "margin")  # scored from one prediction alone
MIN_DISTANCE = 8.0  # pixels between queries
RANK_AFTER_S = 2.0  # rank images only once the labels have been still this long
# deep keeps improving for a while after a change; fast needs a second round so that a correction
# where the model was sure is not held back by anchors drawn before it (see FastLearner.anchor_points)
ROUNDS_AFTER_CHANGE = {"fast": 2, "deep": 20}


class EngineService(threading.Thread):
    """Runs a ``SegmentationEngine`` on its own thread, driven by messages."""

    def __init__(self, folder: str | os.PathLike, on_event: Callable[[object], None], *,
                 learner: str = "fast", device: str = "auto", strategy: str = "margin",
                 queries_per_image: int = 8, torch_threads: int | None = None, seed: int = 0,
                 read_only: bool = False):
        super().__init__(name="pointillist-engine", daemon=True)
        self.folder = Path(folder)
        self.on_event = on_event
        self.learner = learner
        self.device = device
        self.strategy = strategy
        self.queries_per_image = queries_per_image
        # Leave a core to the GUI thread on small machines: intra-op threads compete with it.
        self.torch_threads = torch_threads or max(1, (os.cpu_count() or 2) - 1)
        self.seed = seed
        self.read_only = read_only  # the project is open for writing elsewhere: show its model, never train
        self.inbox: queue.Queue = queue.Queue()
        self.paused = False
        self._engine = None
        self._project: Project | None = None
        self._trained_revision = -1
        self._rounds_left = 0
        self._current: Predict | None = None  # the image the user looks at, and its generation
        self._ranked_version: int | None = None
        self._changed_at = 0.0  # when the labels last changed
        self._slides = slide_service.SlideServing(self)  # tile predictions, N and export on slides

    # ----- called from any thread ---------------------------------------------------------------
    def send(self, message) -> None:
        self.inbox.put(message)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the loop to end and wait for it (a training slice in progress finishes first)."""
        self.inbox.put(Stop())
        if self.is_alive():
            self.join(timeout)

    # ----- the thread -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._project = Project.open(self.folder, read_only=self.read_only)
            self._build_engine()
            while self._step():
                pass
        except Exception as e:  # the thread must report, never die silently
            self._emit(Failed(_describe(e)))
        finally:
            self._close_engine()
            if self._project is not None:
                self._project.close()
            self._emit(Stopped())

    def _close_engine(self) -> None:
        """Let go of the engine and the slide files it holds open (Windows locks open files)."""
        slides = getattr(self._engine, "slides", None)
        if slides is not None:
            slides.close()
        self._engine = None

    def _emit(self, event) -> None:
        try:
            self.on_event(event)
        except Exception:  # a broken receiver must not kill the engine
            traceback.print_exc()

    def _build_engine(self) -> None:
        import torch

        if self._keypoints:  # the same loop drives the keypoint engine (see keypoint_service)
            from desktop.engine.keypoints.engine import KeypointEngine as SegmentationEngine
        else:
            from desktop.engine.segmentation.engine import SegmentationEngine

        torch.set_num_threads(self.torch_threads)
        self._close_engine()
        self._emit(Progress(f"Starting the {self.learner} learner", None))
        try:
            self._engine = SegmentationEngine(self._project, learner=self.learner, device=self.device,
                                              seed=self.seed)
        except RuntimeError as e:  # the device asked for is not on this machine
            self._emit(Failed(f"{e} Using the CPU instead."))
            self.device = "cpu"
            self._engine = SegmentationEngine(self._project, learner=self.learner, device="cpu", seed=self.seed)
        self._trained_revision = -1
        loaded = self._engine.load_latest_weights()
        self._report_problems()
        if loaded:
            seen = loaded.label_count + loaded.validation_count
            if seen == self._project.label_count():  # else labels changed after it: train again
                self._trained_revision = self._project.label_revision()
            self._emit(ModelPublished(loaded.version, float("nan"), loaded.validation_accuracy, seen,
                                      self.learner, self._trained_revision))
        self._emit(Progress("Ready", 1.0))

    def _report_problems(self) -> None:
        """Pass on what the engine put up with (``SegmentationEngine.problems``)."""
        while self._engine.problems:
            self._emit(Failed(self._engine.problems.pop(0)))

    def _step(self) -> bool:
        """One turn of the loop; False when it is time to stop."""
        idle = (self.paused or not self._wants_training()) and not self._slides.busy
        predict, propose = None, {}
        for message in self._drain(wait=0.05 if idle else 0.0):
            if isinstance(message, Stop):
                return False
            if isinstance(message, Pause):
                self.paused = True
            elif isinstance(message, Resume):
                self.paused = False
            elif isinstance(message, Predict):
                predict = message  # newer generations replace older ones
                self._slides.leave()  # an ordinary image is on screen now
            elif isinstance(message, ProposeQueries):
                propose[message.image_id] = message
            elif isinstance(message, SetLearner):
                self.learner, self.device = message.name, message.device
                self._guarded(self._build_engine)
            elif isinstance(message, AddImages):
                self._guarded(self._add_images, message)
            elif isinstance(message, AddVideo):
                self._guarded(keypoint_service.add_video, self, message)
            elif isinstance(message, Export):
                self._guarded(self._export, message)
            elif isinstance(message, slide_service.MESSAGES):
                self._guarded(self._slides.receive, message)
            # LabelsChanged needs nothing: the revision check below sees the change
        if self._project.label_revision() != self._trained_revision:
            self._rounds_left = ROUNDS_AFTER_CHANGE.get(self.learner, 1)
            self._changed_at = time.monotonic()
        if predict is not None:
            self._current = predict
            self._guarded(self._predict, predict)
        for request in propose.values():
            self._guarded(self._propose, request)
        self._guarded(self._slides.serve)
        if not self.paused and self._wants_training():
            self._guarded(self._train_slice)
        elif not self.paused and predict is None and not propose and self.inbox.empty():
            self._guarded(self._slides.scan)
            self._guarded(self._rank_images)
        return True

    @property
    def _keypoints(self) -> bool:
        return self._project.task == "keypoints"

    def _drain(self, wait: float) -> list:
        """Every waiting message, after waiting up to ``wait`` seconds for the first."""
        messages = []
        try:
            messages.append(self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait())
            while True:
                messages.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        return messages

    def _guarded(self, work, *args) -> None:
        """Run one piece of work; a bad image or file is reported and the loop goes on."""
        try:
            work(*args)
        except PointillistError as e:
            self._emit(Failed(str(e)))

    def _wants_training(self) -> bool:
        return (not self.read_only and self._rounds_left > 0 and self._engine is not None
                and self._project.label_count() > 0)

    def _train_slice(self) -> None:
        revision = self._project.label_revision()
        if self._engine.version is None:
            self._emit(Progress("Computing image features and training the first model", None))
        self._rounds_left -= 1
        report = self._engine.train(STEPS.get(self.learner, 150))
        self._trained_revision = revision
        self._report_problems()
        if report.published:
            self._emit(ModelPublished(report.version, report.loss, report.validation_accuracy,
                                      report.train_labels + report.validation_labels, self.learner, revision,
                                      report.seconds))
            self._slides.model_changed()
            if self._current is not None:
                probs = self._predict(self._current)
                self._propose(ProposeQueries(self._current.image_id, self.queries_per_image, self.strategy,
                                             replace_open=True), probs)
        note = f". {report.note}" if report.note else ""  # e.g. the GPU ran out of memory
        self._emit(Progress(f"Model version {self._engine.version}{note}", 1.0))

    def _predict(self, request: Predict) -> np.ndarray | None:
        """Send the prediction of one image; returns its class probabilities for reuse."""
        if self._keypoints:
            return keypoint_service.predict(self, request)
        if not self._engine.learner.trained:
            return None
        start = time.perf_counter()
        probs = self._engine.predict(request.image_id)
        uncertainty = self._engine.scores(request.image_id, self.strategy, probs)
        self._emit(Prediction(request.image_id, request.generation, self._engine.version,
                              probs.argmax(0).astype(np.uint8), probs.max(0).astype(np.float32),
                              np.array(uncertainty, np.float32), time.perf_counter() - start))
        return probs

    def _propose(self, request: ProposeQueries, probs: np.ndarray | None = None) -> None:
        """Make queries for an image unless it still has open ones, then send its open queries."""
        if self._keypoints:
            return None if self.read_only else keypoint_service.propose(self, request, probs)
        image_id = request.image_id
        if self.read_only:  # show what is asked there; asking anew would write
            return self._emit_queries(image_id, probs)
        if request.replace_open:
            self._project.close_open_queries(image_id)
        if not self._project.queries(image_id):
            if not self._engine.learner.trained:
                self._emit(Progress("Choosing first queries from image features", None))
            reuse = probs if request.strategy in PROBABILITY_STRATEGIES else None  # skip predicting again
            self._engine.propose_queries(image_id, request.k, request.strategy, min_distance=MIN_DISTANCE,
                                         probs=reuse)
        if probs is None and self._engine.learner.trained:
            probs = self._engine.predict(image_id)
        self._emit_queries(image_id, probs)

    def _emit_queries(self, image_id: int, probs: np.ndarray | None) -> None:
        """Send the image's open queries, each with the model's three likeliest classes."""
        points = []
        for q in self._project.queries(image_id):
            candidates: tuple = ()
            if probs is not None:
                y = int(np.clip(round(q.y), 0, probs.shape[1] - 1))
                x = int(np.clip(round(q.x), 0, probs.shape[2] - 1))
                column = probs[:, y, x]
                order = np.argsort(column)[::-1][:3]
                candidates = tuple((int(i), float(column[i])) for i in order)
            points.append(QueryPoint(q.id, q.x, q.y, candidates))
        self._emit(Queries(image_id, self._engine.version, points))

    def _add_images(self, request: AddImages) -> None:
        """Scan (decode) the files here, off the GUI thread: a folder of large TIFFs takes a while."""
        from desktop.engine.project.setup import add_images

        self._emit(Progress(f"Adding {len(request.paths)} files", None))
        ids, already, scan = add_images(self._project, list(request.paths))
        self._ranked_version = None  # rank the new images too, without waiting for a new model
        self._emit(ImagesAdded(ids, already, scan.unreadable))
        self._emit(Progress(f"Added {len(ids)} images", 1.0))

    def _export(self, request: Export) -> None:
        from desktop.engine.segmentation.export import export_masks, export_model

        written = []
        if request.masks_dir is not None:
            self._emit(Progress("Exporting masks", None))
            result = export_masks(self._engine, request.masks_dir)
            written.append(f"{len(result.written)} masks in {request.masks_dir}")
            written += [f"skipped {name}: {reason}" for name, reason in result.skipped]
        if request.model_dir is not None:
            self._emit(Progress("Exporting the model", None))
            written.append(f"the model in {export_model(self._engine, request.model_dir)}")
        self._emit(Exported("Exported " + "; ".join(written) + "."))
        self._emit(Progress(f"Model version {self._engine.version}", 1.0))

    def _rank_images(self) -> None:
        """Rank images by uncertainty once per model version, giving way to any new message."""
        version = self._engine.version
        if version is None or version == self._ranked_version or time.monotonic() - self._changed_at < RANK_AFTER_S:
            return  # nothing new, or the expert is busy clicking: the engine stays free for them
        ranking = {}
        for info in self._project.images():
            if not self.inbox.empty():
                return  # the user wants something: rank later
            if self._project.image_problem(info) is None and not self._slides.owns(info.id):
                ranking[info.id] = (keypoint_service.image_uncertainty(self, info.id) if self._keypoints else
                                    selection.image_uncertainty(self._engine.scores(info.id, self.strategy)))
        self._ranked_version = version
        self._emit(ImageRanking(version, {**ranking, **self._slides.ranking()}))


def _describe(e: Exception) -> str:
    if isinstance(e, PointillistError):
        return str(e)
    return f"The engine stopped: {type(e).__name__}: {e}"
