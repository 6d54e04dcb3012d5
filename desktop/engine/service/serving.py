"""A task's side of the engine thread: what the loop asks of a project's task, whatever it is.

``EngineService`` (``loop.py``) owns the inbox, pausing and stopping, and the training slice. All
else is the task's: showing an image's prediction, asking queries, ranking the images, and the
messages only that task understands. Each task subclasses ``TaskServing``, built from the
engine, the project and the callback that sends events; nothing here reaches into the loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from desktop.engine.project.records import ImageInfo
from desktop.engine.service.messages import (AddImages, ImageRanking, ImagesAdded, Predict, Progress, ProposeQueries,
                                             ShowView)

RANK_AFTER_S = 2.0  # rank images only once the labels have been still this long


@dataclass(frozen=True)
class ServingOptions:
    strategy: str | None = None  # how uncertainty is scored; None: the task's default
    queries_per_image: int = 8


class TaskServing:
    """The interface the loop drives. ``checked_strategy``, ``predict``, ``propose`` and
    ``image_uncertainty`` are the task's, and ``default_strategy`` its strategy when none is named;
    ``handle`` takes the messages the loop does not know, returning False for those the task
    does not know either."""

    default_strategy = ""

    def __init__(self, engine, project, emit: Callable[[object], None], options: ServingOptions):
        self.engine, self.project, self.emit, self.options = engine, project, emit, options
        self.strategy = self.checked_strategy(options.strategy or self.default_strategy)
        self.current: Predict | None = None  # the image the expert looks at, and its view generation
        self._ranked_version: int | None = None

    # ----- what a task supplies ------------------------------------------------------------------
    def checked_strategy(self, name: str) -> str:
        """``name`` when the task has that strategy; a PointillistError with the choices if not."""
        raise NotImplementedError

    def predict(self, request: Predict):
        """Send the prediction of one image; return what ``propose`` may reuse (or None)."""
        raise NotImplementedError

    def propose(self, request: ProposeQueries, reuse=None) -> None:
        """Ask about an image unless it has open queries, then send its open queries."""
        raise NotImplementedError

    def image_uncertainty(self, image_id: int, interrupted: Callable[[], bool]) -> float | None:
        """How unsure the model is of an image, for ranking; None when it gave way to
        ``interrupted()`` before it knew (a task asks it where an image costs long)."""
        raise NotImplementedError

    # ----- what the loop calls -----------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether the task has work queued that the loop should not wait for messages before."""
        return False

    def show(self, request: Predict) -> None:
        """The expert looks at this image now: predict it."""
        self.current = request
        self.predict(request)

    def handle(self, message) -> bool:
        if isinstance(message, AddImages):
            self._add_images(message)
            return True
        return isinstance(message, ShowView)  # a task that predicts whole images has no use for the view

    def serve(self) -> None:
        """Queued work, a slice at a time (slide tiles); nothing for most tasks."""

    def model_changed(self, ask: bool = True) -> None:
        """A new model version: predict the image in view again and, with ``ask``, ask about it
        afresh (not while newer labels wait for the next round: its model will ask)."""
        if self.current is not None:
            reuse = self.predict(self.current)
            if ask:
                self.ask_afresh(ProposeQueries(self.current.image_id, self.options.queries_per_image,
                                               replace_open=True), reuse)

    def ask_afresh(self, request: ProposeQueries, reuse=None) -> None:
        """A new model's queries about the image in view: now, unless the task has reason to wait."""
        self.propose(request, reuse)

    def idle(self, quiet_for: float, interrupted: Callable[[], bool]) -> None:
        """Nothing is asked: rank the images once per model version, once the expert has stopped
        clicking for ``RANK_AFTER_S`` (so that the engine stays free for them), giving way as
        soon as ``interrupted()``."""
        version = self.engine.version
        if version is None or version == self._ranked_version or quiet_for < RANK_AFTER_S:
            return
        ranking = {}
        for info in self.project.images():
            if interrupted():
                return  # the expert wants something: rank later
            if self.ranks(info):
                score = self.image_uncertainty(info.id, interrupted)
                if score is None:
                    return  # given way within the image
                ranking[info.id] = score
        self._ranked_version = version
        self.emit(ImageRanking(version, {**ranking, **self.extra_ranking()}))

    def ranks(self, info: ImageInfo) -> bool:
        """Whether ``idle`` ranks this image itself (not one that is missing or changed)."""
        return self.project.image_problem(info) is None

    def extra_ranking(self) -> dict[int, float]:
        """Uncertainties the task ranks in its own way (slides, by their scanned tiles)."""
        return {}

    # ----- shared work ---------------------------------------------------------------------------
    def _add_images(self, request: AddImages) -> None:
        """Scan (decode) the files here, off the GUI thread: a folder of large TIFFs takes a while."""
        from desktop.engine.project.setup import add_images

        self.emit(Progress(f"Adding {len(request.paths)} files", None))
        ids, already, scan = add_images(self.project, list(request.paths))
        self._ranked_version = None  # rank the new images too, without waiting for a new model
        self.emit(ImagesAdded(ids, already, scan.unreadable))
        self.emit(Progress(f"Added {len(ids)} images", 1.0))
