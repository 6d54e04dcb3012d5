"""The workspace's slide half: opens a slide in the tiled viewer, asks the engine for the tiles
of each settled view, draws what comes back, records the regions the expert has looked at
closely, and sends ``N`` (next region), the first queries on the tissue in view, and slide
exports.

A region counts as seen when the view settles at a zoom where working-resolution pixels are at
least screen-pixel size (so the expert could judge what the model sees); the rectangle goes to
the project database at once, on the GUI thread, like labels.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.engine.errors import ProjectError
from desktop.engine.images.slides import ImageSource, is_slide_file, open_image_source
from desktop.engine.project.records import ImageInfo
from desktop.engine.project.store import Project
from desktop.engine.segmentation.slide_grid import working_resolution
from desktop.engine.service.messages import (ExportSlide, NextRegion, PredictView, RegionChosen, RegionScores,
                                             TilePrediction)

from .bridge import EngineBridge
from .slide_viewer import SlideViewer


def is_slide(info: ImageInfo) -> bool:
    """Whether a project image is shown tile by tile; raises ImageReadError for a missing file."""
    return getattr(info, "video", None) is None and is_slide_file(info.path)


class SlideController(QObject):
    message = Signal(str)
    regionChosen = Signal(object)  # RegionChosen: the engine asks about another region now

    def __init__(self, project: Project, bridge: EngineBridge, parent: QObject | None = None):
        super().__init__(parent)
        self.project, self.bridge = project, bridge
        self.viewer = SlideViewer()
        self.source: ImageSource | None = None
        self.image_id: int | None = None
        self.downsample = 1.0  # level-0 pixels per working pixel
        self.generation = 0
        self._failed_reported = False
        self._ask_when_settled = 0  # queries to ask in view once a newly opened slide's view settles
        self._in_view: list[bool] = []  # per NextRegion sent, in order: was it asked in view (ask_in_view)?
        self.viewer.viewSettled.connect(self._settled)
        self.viewer.tileFailed.connect(self._tile_failed)
        bridge.slide.connect(self.receive)

    def open(self, info: ImageInfo, first_queries: int = 0) -> None:
        """Show a slide; raises ImageReadError (naming the file) when it cannot be opened. With
        ``first_queries``, that many are asked on the tissue in view (``ask_in_view``) once the
        view has settled."""
        source = open_image_source(info.path)
        self.close_source()
        self.source, self.image_id = source, info.id
        self.downsample = working_resolution(source, self.project.settings()).downsample
        self._failed_reported = False
        self._ask_when_settled, self._in_view = first_queries, []
        self.bridge.show_slide(info.id)
        self.viewer.set_source(source, info.id)

    def close_source(self) -> None:
        if self.source is not None:
            self.viewer.clear()
            self.source.close()
            self.source, self.image_id = None, None

    def shutdown(self) -> None:
        self.viewer.shutdown()
        if self.source is not None:
            self.source.close()
            self.source = None

    # ----- requests --------------------------------------------------------------------------
    def next_region(self, k: int = 8) -> None:
        if self.image_id is not None:
            self._in_view.append(False)
            self.bridge.send(NextRegion(self.image_id, k))

    def ask_in_view(self, k: int) -> None:
        """Unless the slide has open queries, ask ``k`` in a region on the tissue in view, leaving
        the view where it is: the cold start, so that the first questions do not wait for ``N``."""
        if self.image_id is None or self.project.read_only or self.project.queries(self.image_id):
            return
        self._in_view.append(True)
        self.bridge.send(NextRegion(self.image_id, k, within=self.viewer.view_rect()))

    def export(self, folder: Path) -> None:
        if self.image_id is not None:
            self.message.emit("Exporting the slide (GeoJSON and OME-TIFF mask)...")
            self.bridge.send(ExportSlide(self.image_id, Path(folder)))

    def _settled(self, rect: tuple[float, float, float, float]) -> None:
        if self.image_id is None:
            return
        self.generation += 1
        self.bridge.send(PredictView(self.image_id, self.generation, rect))
        if self.viewer.screen_scale() <= self.downsample and not self.project.read_only:
            try:
                self.project.add_seen_region(self.image_id, *rect)
            except ProjectError as e:  # a full disk: say so; the labels are not affected
                self.message.emit(str(e))
        if self._ask_when_settled:
            k, self._ask_when_settled = self._ask_when_settled, 0
            self.ask_in_view(k)

    # ----- results ---------------------------------------------------------------------------
    def receive(self, event) -> None:
        if getattr(event, "image_id", None) != self.image_id:
            return  # for a slide no longer shown
        if isinstance(event, TilePrediction):
            self.viewer.set_prediction_tile(event.rect, event.class_map, event.uncertainty, event.version)
        elif isinstance(event, RegionScores):
            self.viewer.overview.set_scores(event.scores, event.span)
        elif isinstance(event, RegionChosen):
            in_view = self._in_view.pop(0) if self._in_view else False  # answered in the order asked
            if not in_view:  # N: go there; asked in view, the view stays (the queries are centred if need be)
                self.viewer.show_region(event.rect)
            self.regionChosen.emit(event)

    def _tile_failed(self, text: str) -> None:
        if not self._failed_reported:  # once per slide: a damaged area fails every tile in it
            self._failed_reported = True
            self.message.emit(f"{text}. The rest of the slide can still be used.")
