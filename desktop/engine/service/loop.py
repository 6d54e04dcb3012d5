"""The engine thread: one plain thread that owns the project connection, the model and the device.

Messages (``messages.py``) come in through a queue; results leave through one callback,
``on_event``, called on this thread with events that carry fresh numpy arrays. Whoever receives
them (the GUI bridge, a test, a benchmark) moves them to its own thread. The engines, and torch
with them, are imported only once the thread runs, so importing this module does not import
torch: the GUI builds the service from here without pulling torch into its own imports.

The loop owns the inbox, pausing and stopping, and the training slice; everything else is the
task's (``serving.py``): drain the inbox -> show the newest image asked for, dropping older
generations -> answer query requests -> serve queued task work (slide tiles, a large image's
view), unless new labels wait to be trained on (the work was for the model they will replace) ->
if the labels changed since the last training slice, train one short slice. A follow-up slice, on
labels already trained on, waits until the queued work is done (the view of the model in use
comes first) and stops as soon as newer labels come, or the loop is asked to stop: a click waits
for its own round, not for a stale one -> when a new model
version is published, let the task show and ask afresh -> when idle, let the task rank its images.
"""
from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from desktop.engine.errors import PointillistError
from desktop.engine.project.store import Project
from desktop.engine.service.messages import (Failed, LabelsChanged, ModelPublished, Pause, Predict, Progress,
                                             ProposeQueries, Resume, SetLearner, Stop, Stopped)
from desktop.engine.service.serving import ServingOptions, TaskServing

ENGINE_THREAD = "pointillist-engine"
STOP_WAIT_S = 30.0
"""How long closing a project waits for a training slice in progress (the first one computes
every labelled image's features, which takes minutes on a slow machine with many images)."""

STEPS = {"fast": 150, "deep": 4}
# deep keeps improving for a while after a change; fast needs a second round so that a correction
# where the model was sure is not held back by anchors drawn before it (see FastLearner.anchor_points)
ROUNDS_AFTER_CHANGE = {"fast": 2, "deep": 20}


def set_up_engine_thread(torch_threads: int) -> None:
    """Torch's settings for the calling thread: its number of threads, and numbers too small for
    a float32 (denormals) read and written as zero. Why the second: now and then a model's head
    computed with denormals, which the processor handles many times slower; on a 4096 x 4096
    image three clicks in a row (the 11th to the 13th of ``bench ui``, every run) waited 0.7-2.0 s
    for their overlay and up to 6.5 s for the sharp one, against 0.5 s and 0.8 s for the others.
    Flushed, every click of 16 took at most 0.53 s (sharp 0.85 s). The flag is the thread's own."""
    import torch  # here, on the engine's thread: the GUI never imports torch

    torch.set_num_threads(torch_threads)
    torch.set_flush_denormal(True)


class EngineService(threading.Thread):
    """Runs a project's task engine on its own thread, driven by messages."""

    def __init__(self, folder: str | os.PathLike, on_event: Callable[[object], None], *,
                 learner: str = "fast", device: str = "auto", strategy: str | None = None,
                 queries_per_image: int = 8, torch_threads: int | None = None, seed: int = 0,
                 read_only: bool = False):
        super().__init__(name=ENGINE_THREAD, daemon=True)
        self.folder = Path(folder)
        self.on_event = on_event
        self.learner = learner
        self.device = device
        self.options = ServingOptions(strategy, queries_per_image)
        # Leave a core to the GUI thread on small machines: intra-op threads compete with it.
        self.torch_threads = torch_threads or max(1, (os.cpu_count() or 2) - 1)
        self.seed = seed
        self.read_only = read_only  # the project is open for writing elsewhere: show its model, never train
        self.inbox: queue.Queue = queue.Queue()
        self._stopping = threading.Event()  # set by stop(): a follow-up round need not finish
        self.paused = False
        self.task: TaskServing | None = None
        self._project: Project | None = None
        self._trained_revision = -1
        self._rounds_left = 0
        self._changed_at = 0.0  # when the labels last changed

    # ----- called from any thread ---------------------------------------------------------------
    def send(self, message) -> None:
        self.inbox.put(message)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end and wait for it (a first training slice on new labels in progress
        finishes first; a follow-up slice stops), at most ``timeout`` seconds (``STOP_WAIT_S``
        unless given)."""
        self.inbox.put(Stop())
        self._stopping.set()
        if self.is_alive():
            self.join(STOP_WAIT_S if timeout is None else timeout)

    # ----- the thread -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._project = Project.open(self.folder, read_only=self.read_only)
            self._build()
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
        slides = getattr(self.task.engine, "slides", None) if self.task is not None else None
        if slides is not None:
            slides.close()
        self.task = None

    def _emit(self, event) -> None:
        try:
            self.on_event(event)
        except Exception:  # a broken receiver must not kill the engine
            traceback.print_exc()

    def _build(self) -> None:
        """The task's engine and serving, with the newest saved model when there is one."""
        set_up_engine_thread(self.torch_threads)
        self._close_engine()
        self._emit(Progress(f"Starting the {self.learner} learner", None))
        engine_class, serving_class = _task(self._project.task)
        try:
            engine = engine_class(self._project, learner=self.learner, device=self.device, seed=self.seed)
        except RuntimeError as e:  # the device asked for is not on this machine
            self._emit(Failed(f"{e} Using the CPU instead."))
            self.device = "cpu"
            engine = engine_class(self._project, learner=self.learner, device="cpu", seed=self.seed)
        self.task = serving_class(engine, self._project, self._emit, self.options)
        self._trained_revision = -1
        loaded = engine.load_latest_weights()
        self._report_problems()
        if loaded:
            seen = loaded.label_count + loaded.validation_count
            if seen == self._project.label_count():  # else labels changed after it: train again
                self._trained_revision = self._project.label_revision()
            self._emit(ModelPublished(loaded.version, float("nan"), loaded.validation_accuracy, seen,
                                      self.learner, self._trained_revision, validation_count=loaded.validation_count))
        self._emit(Progress("Ready", 1.0))

    def _report_problems(self) -> None:
        """Pass on what the engine put up with (``TaskEngine.problems``)."""
        problems = self.task.engine.problems
        while problems:
            self._emit(Failed(problems.pop(0)))

    def _step(self) -> bool:
        """One turn of the loop; False when it is time to stop."""
        task = self.task
        idle = (self.paused or not self._wants_training()) and not task.busy
        show, propose = None, {}
        for message in self._drain(wait=0.05 if idle else 0.0):
            if isinstance(message, Stop):
                return False
            if isinstance(message, Pause):
                self.paused = True
            elif isinstance(message, Resume):
                self.paused = False
            elif isinstance(message, Predict):
                show = message  # newer generations replace older ones
            elif isinstance(message, ProposeQueries):
                propose[message.image_id] = message
            elif isinstance(message, SetLearner):
                self.learner, self.device = message.name, message.device
                self._guarded(self._build)
                task = self.task
            elif not isinstance(message, LabelsChanged):  # that one needs nothing: the revision check sees it
                self._guarded(self._handle, message)
        if self._project.label_revision() != self._trained_revision:
            self._rounds_left = ROUNDS_AFTER_CHANGE.get(self.learner, 1)
            self._changed_at = time.monotonic()
        if show is not None:
            self._guarded(task.show, show)
        for request in propose.values():
            self._guarded(task.propose, request)
        if not self._labels_waiting():  # what is queued was asked of the model the new labels will replace
            self._guarded(task.serve)
        if not self.paused and self._wants_training():
            # a follow-up round waits for the queued work: view, overview, queries, slide tiles
            if not (task.busy and self._project.label_revision() == self._trained_revision):
                self._guarded(self._train_slice)
        elif not self.paused and show is None and not propose and self.inbox.empty():
            self._guarded(task.idle, time.monotonic() - self._changed_at, lambda: not self.inbox.empty())
        return True

    def _handle(self, message) -> None:
        if not self.task.handle(message):
            raise PointillistError(f"The engine does not know the message {type(message).__name__} in a "
                                   f"{self._project.task} project.")

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

    def _labels_waiting(self) -> bool:
        """Labels came since the last round, and a round will train on them now."""
        return (not self.paused and self._wants_training()
                and self._project.label_revision() != self._trained_revision)

    def _wants_training(self) -> bool:
        return (not self.read_only and self._rounds_left > 0 and self.task is not None
                and self._project.label_count() > 0)

    def _train_slice(self) -> None:
        engine = self.task.engine
        revision = self._project.label_revision()
        if engine.version is None:
            self._emit(Progress("Computing image features and training the first model", None))
        self._rounds_left -= 1
        follow_up = revision == self._trained_revision  # these labels have a model already: it may stop
        report = engine.train(STEPS.get(self.learner, 150), (lambda: self._stopping.is_set() or
                                                             self._project.label_revision() != revision)
                              if follow_up else None)
        self._trained_revision = revision
        self._report_problems()
        if report.published:
            self._emit(ModelPublished(report.version, report.loss, report.validation_accuracy,
                                      report.train_labels + report.validation_labels, self.learner, revision,
                                      report.seconds, report.validation_labels))
            self.task.model_changed(ask=not self._labels_waiting())  # clicks came while it trained: train on first
        note = f". {report.note}" if report.note else ""  # e.g. the GPU ran out of memory
        self._emit(Progress(f"Model version {engine.version}{note}", 1.0))


def _task(task: str) -> tuple[type, type]:
    """The engine and serving classes of a task, imported here, on the engine thread."""
    if task == "keypoints":
        from desktop.engine.keypoints.engine import KeypointEngine
        from desktop.engine.service.keypoints import KeypointServing
        return KeypointEngine, KeypointServing
    from desktop.engine.segmentation.engine import SegmentationEngine
    from desktop.engine.service.segmentation import SegmentationServing
    return SegmentationEngine, SegmentationServing


def _describe(e: Exception) -> str:
    if isinstance(e, PointillistError):
        return str(e)
    return f"The engine stopped: {type(e).__name__}: {e}"
