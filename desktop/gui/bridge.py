"""The one object through which the GUI talks to the engine thread.

It owns the ``EngineService`` (whose module imports torch only once the thread runs), sends it
messages, and turns its callback, called on the engine thread, into Qt signals delivered on the
GUI thread through a queued connection. Predictions made for an older view generation (the
user has moved to another image since) are dropped here, so the GUI never draws them.

If the GIL ever makes the GUI stutter, only this class changes: the same service can run in a
child process behind the same messages.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from desktop.engine.service import messages
from desktop.engine.service.loop import EngineService


class EngineBridge(QObject):
    published = Signal(object)  # ModelPublished
    prediction = Signal(object)  # Prediction of the current generation only
    queries = Signal(object)  # Queries
    ranking = Signal(object)  # ImageRanking
    progress = Signal(object)  # Progress
    failed = Signal(str)
    exported = Signal(str)
    videoAdded = Signal(object)  # messages.VideoAdded
    imagesAdded = Signal(object)  # service.ImagesAdded
    slide = Signal(object)  # messages.SlideEvent: the slide controller checks its image
    _arrived = Signal(object)

    def __init__(self, folder: Path, learner: str = "fast", device: str = "auto", parent: QObject | None = None,
                 **service_options):
        super().__init__(parent)
        self.folder = Path(folder)
        self.learner, self.device = learner, device
        self.service_options = service_options
        self.generation = 0
        self.image_id: int | None = None
        self.service: EngineService | None = None
        self._arrived.connect(self._deliver, Qt.QueuedConnection)

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self.service = EngineService(self.folder, self._arrived.emit, learner=self.learner,
                                              device=self.device, **self.service_options)
        self.service.start()

    def stop(self) -> None:
        """End the engine thread and wait for it; safe to call twice."""
        if self.service is not None:
            self.service.stop()
            self.service = None

    def _send(self, message) -> None:
        if self.service is not None:
            self.service.send(message)

    # ----- requests ----------------------------------------------------------------------------
    def show_image(self, image_id: int, k: int = 8, strategy: str | None = None) -> int:
        """A new view: predict this image and make sure it has queries. Returns the generation."""
        self.generation += 1
        self.image_id = image_id
        self._send(messages.Predict(image_id, self.generation))
        self._send(messages.ProposeQueries(image_id, k, strategy))
        return self.generation

    def show_slide(self, image_id: int) -> None:
        """A slide in view: its tiles are asked for per view (``send`` of slide_service messages),
        never the whole image; older generations' results are dropped as for images."""
        self.generation += 1
        self.image_id = image_id

    def send(self, message) -> None:
        self._send(message)

    def labels_changed(self) -> None:
        self._send(messages.LabelsChanged())

    def pause(self) -> None:
        self._send(messages.Pause())

    def resume(self) -> None:
        self._send(messages.Resume())

    def set_learner(self, learner: str, device: str) -> None:
        self.learner, self.device = learner, device
        self._send(messages.SetLearner(learner, device))

    def add_images(self, paths: list[Path]) -> None:
        """Check and add image or slide files (or folders of them) to the project, on the engine thread."""
        self._send(messages.AddImages(tuple(Path(p) for p in paths)))

    def add_video(self, path: Path, frames: int, sampling: str = "uniform") -> None:
        """Sample frames of a video into the (keypoint) project, on the engine thread."""
        self._send(messages.AddVideo(Path(path), frames, sampling))

    def export(self, masks_dir: Path | None = None, model_dir: Path | None = None) -> None:
        self._send(messages.Export(masks_dir, model_dir))

    # ----- results, on the GUI thread ------------------------------------------------------------
    def _deliver(self, event) -> None:
        if self.service is None:
            return  # stopped: what was still queued belongs to a closed project
        if isinstance(event, (messages.Prediction, messages.KeypointPrediction)):
            if event.generation == self.generation:
                self.prediction.emit(event)
        elif isinstance(event, messages.Queries):
            if event.image_id == self.image_id:
                self.queries.emit(event)
        elif isinstance(event, messages.ModelPublished):
            self.published.emit(event)
        elif isinstance(event, messages.ImageRanking):
            self.ranking.emit(event)
        elif isinstance(event, messages.Progress):
            self.progress.emit(event)
        elif isinstance(event, messages.Failed):
            self.failed.emit(event.message)
        elif isinstance(event, messages.Exported):
            self.exported.emit(event.text)
        elif isinstance(event, messages.ImagesAdded):
            self.imagesAdded.emit(event)
        elif isinstance(event, messages.VideoAdded):
            self.videoAdded.emit(event)
        elif isinstance(event, messages.SlideEvent):
            self.slide.emit(event)
