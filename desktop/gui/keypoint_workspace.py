"""The workspace of a keypoint project: the segmentation workspace with a keypoint session,
panel and overlay in place of the class ones. The image list, training panel, engine bridge,
layers, undo and the move to the next most uncertain image are shared.

Keys (besides the shared ones): Enter accepts the asked keypoint's proposal, Shift+Enter every
remaining proposal of the image, V marks the asked keypoint occluded, A absent.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal

from desktop.engine.errors import PointillistError
from desktop.engine.keypoints.formats import export_project_file
from desktop.engine.project.store import Project
from desktop.plural import plural

from .keypoint_overlay import KeypointOverlay
from .keypoint_panel import KeypointPanel
from .keypoint_session import KeypointSession
from .prediction_painter import REPAINT_MS
from .throttle import Throttle
from .workspace import ProjectWorkspace

ENTER_KEYS = (Qt.Key_Return, Qt.Key_Enter)


def workspace_for(folder: Path) -> type[ProjectWorkspace]:
    """The workspace class for the project's task (raises ProjectError as opening does)."""
    with Project.open(folder) as project:
        return KeypointWorkspace if project.task == "keypoints" else ProjectWorkspace


class KeypointWorkspace(ProjectWorkspace):
    exportFailed = Signal(str)  # why File > Export wrote nothing, for a warning box
    _exportDone = Signal(str, bool)  # from the export thread: (what was written or why not, ok)

    # ----- the task's parts ------------------------------------------------------------------
    def _make_session(self) -> KeypointSession:
        return KeypointSession(self.project, parent=self)

    def _make_label_panel(self) -> KeypointPanel:
        return KeypointPanel(self.project.skeleton())

    def _show_session_state(self) -> None:
        self.label_panel.show_mode(self.session.mode)
        self._show_mean_seconds()

    def _finished(self, image_id: int) -> bool:
        """Every keypoint labelled (a keypoint has one live label at most): counted by SQLite."""
        return self.project.label_count(image_id) >= len(self.session.skeleton)

    def next_image(self) -> int | None:
        image_id = super().next_image()
        if image_id is None:
            self.message.emit("No other image has a keypoint left to label.")
        return image_id

    def _connect_label_panel(self) -> None:
        s = self.session
        self.overlay = KeypointOverlay(self.viewer, s.skeleton, parent=self)
        self.overlay.dragged.connect(s.drag)
        s.proposalsChanged.connect(self._draw_labels)
        s.activeChanged.connect(self.label_panel.show_active)
        self.label_panel.keypointChosen.connect(s.set_active)
        self.label_panel.opacityChanged.connect(self.overlay.set_proposal_opacity)

    def _connect(self) -> None:
        super()._connect()
        self.bridge.videoAdded.connect(self._video_added)
        self._export: threading.Thread | None = None
        self._exportDone.connect(self._export_done)

    # ----- project-level actions -------------------------------------------------------------
    def add_video(self, path: Path, frames: int, sampling: str = "uniform") -> None:
        """Sample frames of a video into the project (on the engine thread: k-means needs the
        encoder); the image list updates when they are in."""
        self.message.emit(f"Adding {plural(frames, 'frame')} of {Path(path).name}...")
        self.bridge.add_video(path, frames, sampling)

    def _video_added(self, event) -> None:
        self.image_list.fill(self.project, self.problems)
        self.message.emit(f"Added {plural(len(event.image_ids), 'frame')} of {event.path.name}.")
        if self.image_id is None and event.image_ids:
            self.open_image(event.image_ids[0])

    def export_keypoints(self, path: Path, all_frames: bool = False) -> None:
        """Write the keypoint labels of the labelled images (``all_frames``: of every image) to a
        DeepLabCut CSV or COCO JSON file on a thread of its own: video frames are decoded and
        written as PNG files (2 s for 300 frames), and the export must not wait for training, nor
        need the engine thread at all. The status bar says what was written; a refusal comes as
        ``exportFailed``."""
        if self._export is not None and self._export.is_alive():
            self.exportFailed.emit("An export is still being written; try again when it is done.")
            return
        self.message.emit(f"Exporting the keypoints to {Path(path).name}...")
        self._export = threading.Thread(target=self._write_export, args=(Path(path), all_frames),
                                        name="keypoint-export", daemon=True)
        self._export.start()

    def _write_export(self, path: Path, all_frames: bool) -> None:
        try:
            self._exportDone.emit(export_project_file(self.folder, path, all_frames), True)
        except PointillistError as e:
            self._exportDone.emit(str(e), False)
        except Exception as e:  # noqa: BLE001 - whatever it was, the user is told, not left waiting
            self._exportDone.emit(f"The export failed: {e}", False)

    def close_project(self) -> None:
        """Let a running export finish (seconds at most) rather than lose it, then close as usual."""
        if self._export is not None:
            self._export.join()
        super().close_project()

    def _export_done(self, text: str, ok: bool) -> None:
        (self.message if ok else self.exportFailed).emit(text)

    # ----- input -----------------------------------------------------------------------------
    def _clicked(self, x: float, y: float, button) -> None:
        if button == Qt.LeftButton:
            self.session.click(x, y)

    def _task_action(self, event) -> Callable[[], object] | None:
        if event.key() in ENTER_KEYS:
            return self.session.accept_all if event.modifiers() & Qt.ShiftModifier else self.session.accept
        return {"V": lambda: self.session.mark("occluded"),
                "A": lambda: self.session.mark("absent")}.get(event.text().upper())

    # ----- drawing ---------------------------------------------------------------------------
    def _show_label_change(self) -> None:
        self._draw_labels()  # a few keypoints an image: drawn whole

    def _draw_labels(self) -> None:
        xy, visibility = self.session.labels()
        proposals = self.session.proposals()
        self.overlay.show(xy, visibility, proposals)
        self.label_panel.show_state(visibility, proposals)

    def _query_changed(self, query) -> None:
        self.overlay.asked = None if query is None else query.keypoint
        if query is None or query.score is None:  # asked with no model: nothing proposed, nowhere to point
            self.viewer.set_current_query(None, None)
        else:
            self.viewer.set_current_query(query.x, query.y, centre=self.session.mode == "query")
        _, visibility = self.session.labels()
        self.label_panel.show_query(query, int((visibility == "").sum()))
        self._draw_labels()
        self.image_list.refresh_counts(self.project, self.image_id)

    def _make_painter(self) -> KeypointPainting:
        return KeypointPainting(self._paint_prediction, parent=self)

    def _paint_prediction(self) -> None:
        event, self.painter.pending = self.painter.pending, None
        if event is not None and event.image_id == self.image_id:
            self.session.set_prediction(event.image_id, event.xy, event.confidence)
            self.viewer.overlay_version = event.version
            self.viewer.overlayShown.emit(event.version)

    def _show_layer(self, name: str, visible: bool) -> None:
        super()._show_layer(name, visible)
        self.overlay.set_layer_visible(name, visible)


class KeypointPainting(QObject):
    """The newest keypoint prediction, handed to ``paint`` at most every ``REPAINT_MS`` (older
    ones in between are never applied)."""

    def __init__(self, paint: Callable[[], None], parent: QObject | None = None):
        super().__init__(parent)
        self.pending = None
        self._throttle = Throttle(REPAINT_MS, paint, parent=self)

    def receive(self, event) -> None:
        self.pending = event
        self._throttle.request()

    def show_image(self, _image_id: int | None) -> None:
        self.pending = None

    def stop(self) -> None:
        self._throttle.stop()
