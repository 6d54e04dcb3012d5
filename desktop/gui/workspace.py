"""One open project: the viewer in the middle, the image list on the left, labelling and
training panels on the right, the labelling session and the bridge to the engine thread.

It owns the GUI thread's ``Project`` connection; labels are written through it at click time.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget

from desktop.engine.errors import ImageReadError
from desktop.engine.images.video import read_pixels
from desktop.engine.project.lock import ProjectLock
from desktop.engine.project.store import Project
from desktop.engine.service.messages import ShowView
from desktop.plural import plural

from .bridge import EngineBridge
from .fading_label import FadingLabel
from .image_list import ImageList, ImageListPanel
from .key_route import KeyRoute
from .label_layer import LabelLayer
from .label_panel import LabelPanel
from .label_tally import LabelTally
from .overlay_guess import with_overlay_guess
from .prediction_painter import PredictionPainter
from .session import LabellingSession
from .shortcuts import LAYER_KEYS
from .slide_controller import SlideController, is_slide
from .training_panel import TrainingPanel
from .viewer import ImageViewer

SIDE_WIDTH = 300  # px of the labelling and training panels, fixed: see _build_layout
LIST_WIDTH = 230  # px of the image list at first
KEYS_WAIT_AFTER_MOVE_S = 0.6  # labelling keys are ignored this long after the move to the next image
GUI_BUSY_TIMEOUT_S = 0.5
"""How long a click's write waits when another program holds the database's write lock (a
backup tool, a hand edit), before it is refused and said so: the window must not freeze, as it
did for SQLite's usual 10 s per click. The engine thread's own writes take milliseconds."""


class ProjectWorkspace(QWidget):
    message = Signal(str)  # for the status bar
    lasting = Signal(str)  # news that stays on screen until dismissed (files left out)

    def __init__(self, folder: Path, learner: str = "fast", start_engine: bool = True, parent=None,
                 read_only: bool = False, **engine_options):
        """Raises ProjectInUse when another window has the project open for writing (unless
        ``read_only``), and ProjectError when it cannot be opened."""
        super().__init__(parent)
        self.folder = Path(folder)
        self.lock = ProjectLock(self.folder)
        if not read_only:
            self.lock.acquire()
        try:
            self.project = Project.open(self.folder, read_only=read_only, busy_timeout=GUI_BUSY_TIMEOUT_S)
        except BaseException:
            self.lock.release()
            raise
        self.classes = self.project.classes()
        self.problems = {info.id: problem for info in self.project.images()
                         if (problem := self.project.image_problem(info)) is not None}
        self.ranking: dict[int, float] = {}
        self.image_id: int | None = None
        self._ringed_query: int | None = None  # the query the viewer rings now (``_query_changed``)
        self.session = self._make_session()
        self.bridge = EngineBridge(self.folder, learner=learner, parent=self, read_only=read_only, **engine_options)

        self.viewer = self.image_viewer = ImageViewer()  # self.viewer: the one showing now
        self.slides = SlideController(self.project, self.bridge, parent=self)
        for viewer in (self.image_viewer, self.slides.viewer):
            viewer.set_classes([c.colour for c in self.classes])
        self.tally = LabelTally(self.project)  # label counts and the mean answer time, by what changed
        self.image_list = ImageList(self.tally)
        self.image_list.fill(self.project, self.problems)
        self.label_panel = self._make_label_panel()
        self.training_panel = TrainingPanel()
        self.training_panel.learner.setCurrentText(learner)
        self._build_layout()
        self._build_actions()
        self.painter = self._make_painter()
        self._connect()

        self.label_layer = LabelLayer(self.project, self.classes)
        self.key_route = KeyRoute(self, self.handle_key)
        self.image_names = {viewer: FadingLabel(viewer) for viewer in (self.image_viewer, self.slides.viewer)}
        self._keys_resume_at = 0.0  # after a move to the next image, labelling keys wait until then
        self.layer_actions["uncertainty"].setChecked(False)  # H shows it; it hides the image otherwise
        self._show_session_state()
        for model in self.project.model_versions():
            if model.published:
                self.training_panel.add_model(model.version, float("nan"), model.validation_accuracy,
                                              model.label_count + model.validation_count, model.validation_count)
        if start_engine:
            self.bridge.start()
        readable = [i.id for i in self.project.images() if i.id not in self.problems]
        last = self.project.settings().last_image
        if readable:
            self.open_image(last if last in readable else readable[0])

    @property
    def read_only(self) -> bool:
        return self.project.read_only

    # ----- what a task changes (``KeypointWorkspace`` overrides these) --------------------------
    def _make_session(self) -> LabellingSession:
        return LabellingSession(self.project, parent=self)

    def _make_painter(self):
        """What receives the task's predictions and paints them: ``receive``, ``show_image``, ``stop``."""
        return PredictionPainter(self.image_viewer, self._prediction_painted, parent=self)

    def _make_label_panel(self) -> LabelPanel:
        return LabelPanel(self.classes)

    def _finished(self, image_id: int) -> bool:
        """Whether an image has nothing left to label (N passes it over); a segmentation image never."""
        return False

    def _show_session_state(self) -> None:
        self.label_panel.show_mode(self.session.mode)
        self._show_mean_seconds()
        if self.session.active_class is not None:
            self.label_panel.show_active_class(self.session.active_class)

    def _connect_label_panel(self) -> None:
        """The label panel and the signals of this task's session."""
        self.session.activeClassChanged.connect(self.label_panel.show_active_class)
        self.label_panel.classChosen.connect(self.session.set_active_class)
        self.label_panel.opacityChanged.connect(self.viewer.set_prediction_opacity)
        self.session.notice.connect(self.message)
        self.session.pendingChanged.connect(
            lambda image_id: self.label_layer.redraw(self.viewer, self.session.pending_labels(image_id))
            if image_id == self.image_id else None)

    def _task_action(self, event) -> Callable[[], object] | None:
        """What a key that answers a query does: a class's key, U (unsure) and S (skip)."""
        text = event.text()
        info = self.session.class_for_key(text) if text else None
        if info is not None:
            if self.session.mode == "query" and self.session.current is not None:
                return lambda: self.session.answer(info)
            return lambda: self.session.set_active_class(info)
        if text.upper() in ("U", "S"):
            return lambda: self.session.mark_current("unsure" if text.upper() == "U" else "skipped")
        return None

    def _build_layout(self) -> None:
        """The image first: the viewer takes what the panels leave. The side panel has a fixed
        width and its texts wrap inside it, so a changing text never moves the viewer's edge (and
        rescales the image under the cursor); the image list can be widened by its handle."""
        side = QTabWidget()
        side.addTab(self.label_panel, "Labelling")
        side.addTab(self.training_panel, "Training")
        side.setFixedWidth(SIDE_WIDTH)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(ImageListPanel(self.image_list))
        self.viewers = QStackedWidget()
        self.viewers.addWidget(self.image_viewer)
        self.viewers.addWidget(self.slides.viewer)
        splitter.addWidget(self.viewers)
        splitter.addWidget(side)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(1, False)
        splitter.setSizes([LIST_WIDTH, 1400 - LIST_WIDTH - SIDE_WIDTH, SIDE_WIDTH])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def _build_actions(self) -> None:
        self.undo_action = self.session.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.Undo)
        self.redo_action = self.session.undo_stack.createRedoAction(self, "Redo")
        # Spelled out: the platform's Redo is Ctrl+Shift+Z on Linux desktops, and the same key
        # twice on one action is an 'ambiguous shortcut' that does nothing.
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.layer_actions = {}
        for key, name in LAYER_KEYS.items():
            # The key is shown, not bound: handle_key decides, so a class may own the same key.
            action = QAction(f"{name.title()}\t{key}", self, checkable=True, checked=True)
            action.toggled.connect(lambda on, n=name: self._show_layer(n, on))
            self.layer_actions[name] = action
        # View > Fit and 1:1: their keys are shown, not bound, for the same reason.
        self.zoom_actions = {"fit": QAction("&Fit the image\tHome, F", self),
                             "one_to_one": QAction("&1:1 (one image pixel per screen pixel)\t0", self)}
        self.zoom_actions["fit"].triggered.connect(lambda: self.viewer.view.fit())
        self.zoom_actions["one_to_one"].triggered.connect(lambda: self.viewer.view.one_to_one())

    def _show_layer(self, name: str, visible: bool) -> None:
        if self.viewer.layer_visible(name) != visible:
            self.viewer.toggle_layer(name)

    def _connect(self) -> None:
        s, b = self.session, self.bridge
        self.image_viewer.clicked.connect(self._clicked)
        self.slides.viewer.clicked.connect(self._clicked)
        self.slides.message.connect(self.message)
        # another region of the slide: a fresh batch there, the query that was on screen let go
        self.slides.regionChosen.connect(lambda _event: self.session.set_image(self.image_id))
        self.label_panel.opacityChanged.connect(self.slides.viewer.set_prediction_opacity)
        self.image_list.imageChosen.connect(self.open_image)
        s.labelsChanged.connect(self._labels_changed)
        s.queryChanged.connect(self._query_changed)
        s.imageDone.connect(self._image_done)
        s.imageNeeded.connect(self.open_image)
        s.storeFailed.connect(self.message)
        s.modeChanged.connect(self.label_panel.show_mode)
        s.modeChanged.connect(self._ask_on_slide)
        self._connect_label_panel()
        self.training_panel.pausedChanged.connect(lambda paused: b.pause() if paused else b.resume())
        self.training_panel.learnerChanged.connect(b.set_learner)
        b.prediction.connect(self._prediction)
        self.image_viewer.viewSettled.connect(self._view_settled)
        b.queries.connect(lambda event: s.set_queries(event.image_id, event.points))
        b.published.connect(self._published)
        b.ranking.connect(self._ranking)
        b.progress.connect(lambda p: self.training_panel.show_progress(p.text, p.fraction))
        b.failed.connect(self.message)
        b.exported.connect(self.message)
        b.imagesAdded.connect(self._images_added)

    # ----- images ----------------------------------------------------------------------------
    def add_images(self, paths: list[Path]) -> None:
        """Add image or slide files; the engine thread checks each file and the image list
        updates when they are in."""
        self.message.emit(f"Checking {plural(len(paths), 'file')}...")
        self.bridge.add_images(paths)

    def _images_added(self, event) -> None:
        self.image_list.fill(self.project, self.problems)
        if self.image_id is not None:
            self.image_list.select_image(self.image_id)
        text = f"Added {plural(len(event.image_ids), 'image')}."
        if event.already:
            text += f" {plural(event.already, 'was', 'were')} in the project already."
        self.message.emit(text)
        if event.unreadable:
            left_out = "; ".join(f"{Path(path).name}: {reason}" for path, reason in event.unreadable[:5])
            more = len(event.unreadable) - 5
            self.lasting.emit(f"Left out {plural(len(event.unreadable), 'file')} that cannot be read ({left_out}"
                              + (f"; and {more} more)." if more > 0 else ")."))
        if self.image_id is None and event.image_ids:
            self.open_image(event.image_ids[0])

    def open_image(self, image_id: int) -> bool:
        info = self.project.image(image_id)
        try:
            slide = is_slide(info)
            if slide:
                # tiles are read as the view needs them; first queries asked on the tissue in view
                self.slides.open(info, first_queries=self.session.batch if self.session.mode == "query" else 0)
            else:
                pixels = read_pixels(info.source, info.frame)  # a picture, or a frame of a video
        except ImageReadError as e:
            self.problems[image_id] = str(e)
            self.image_list.fill(self.project, self.problems)
            self.message.emit(str(e))
            return False
        self.image_id = image_id
        self._keys_resume_at = 0.0  # an image chosen, or undone back to, was seen: keys act at once
        self._show_viewer(self.slides.viewer if slide else self.image_viewer)
        if not slide:
            self.slides.close_source()
            self.viewer.set_image(pixels)
        self.painter.show_image(None if slide else image_id)
        self.session.set_image(image_id)
        self._draw_labels()
        if not slide:
            self.bridge.show_image(image_id, k=self.session.batch)
        self.image_list.select_image(image_id)
        self.image_names[self.viewer].flash(info.name)
        self.viewer.setFocus()  # keys answer queries again after a click in the list
        if not self.read_only:
            self.project.update_settings(last_image=image_id)
        self.message.emit(f"{info.name}: {info.width} x {info.height}")
        return True

    def _show_viewer(self, viewer) -> None:
        """Make ``viewer`` (for images or for slides) the one shown, its layers as the View menu says."""
        self.viewer = viewer
        self.viewers.setCurrentWidget(viewer)
        for name, action in self.layer_actions.items():
            self._show_layer(name, action.isChecked())

    def next_place(self) -> None:
        """``N``: on a slide, the most uncertain region not yet seen; else the next image."""
        if self.viewer is self.slides.viewer:
            self.slides.next_region(self.session.batch)
        else:
            self.next_image()

    def _ask_on_slide(self, mode: str) -> None:
        """Back to answering queries on a slide with none open: ask some on the tissue in view."""
        if mode == "query" and self.viewer is self.slides.viewer:
            self.slides.ask_in_view(self.session.batch)

    def next_image(self) -> int | None:
        """The most uncertain other image (by the last ranking), else the one with fewest labels;
        never one with nothing left to label (``_finished``)."""
        candidates = [i for i in self.image_list.image_ids()
                      if i not in self.problems and i != self.image_id and not self._finished(i)]
        if not candidates:
            return None
        if self.ranking:
            candidates.sort(key=lambda i: -self.ranking.get(i, -1.0))
        else:
            candidates.sort(key=lambda i: len(self.project.labels(i)))
        for image_id in candidates:
            if self.open_image(image_id):
                return image_id
        return None

    # ----- input -----------------------------------------------------------------------------
    def _clicked(self, x: float, y: float, button) -> None:
        if button == Qt.LeftButton:
            self.session.add_point(x, y)
        elif button == Qt.RightButton:
            self.session.delete_nearest(x, y)

    def _image_done(self, _image_id: int) -> None:
        """The image's queries are answered: move on, and hold the labelling keys for a moment.
        A fast typist's next key was meant for the image just left; applied to the new image's
        first query it would answer a question nobody has looked at yet."""
        before = self.image_id
        self.next_place()
        if self.image_id != before:
            self._keys_resume_at = time.monotonic() + KEYS_WAIT_AFTER_MOVE_S

    def handle_key(self, event) -> bool:
        """Keyboard-first labelling; see ``shortcuts.SHORTCUTS``. True when the key was used, or
        ignored on purpose just after a move to the next image (the status bar says so)."""
        action = self._key_action(event)
        if action is None:
            return False
        if time.monotonic() < self._keys_resume_at:
            self.message.emit(f"Key {QKeySequence(event.key()).toString()} ignored: "
                              f"{self.project.image(self.image_id).name} has only just been shown.")
        else:
            action()
        return True

    def _key_action(self, event) -> Callable[[], object] | None:
        """What a key does, or None when it is not a labelling key. A class's own key wins over
        every other key here; the keys ``1``..``9`` that classes get by position never clash."""
        if event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier):
            return None
        action = self._task_action(event)
        if action is not None:
            return action
        key = event.text().upper()
        if key == "M":
            return lambda: self.session.set_mode("free" if self.session.mode == "query" else "query")
        if key == "N":
            return self.next_place
        if key in LAYER_KEYS:
            return self.layer_actions[LAYER_KEYS[key]].toggle
        if key in ("[", "]"):
            step = -10 if key == "[" else 10
            return lambda: self.label_panel.opacity.setValue(self.label_panel.opacity.value() + step)
        if key == "T":
            return self.training_panel.run_button.toggle
        if key == "F" or event.key() == Qt.Key_Home:
            return self.zoom_actions["fit"].trigger
        if key == "0":
            return self.zoom_actions["one_to_one"].trigger
        return None

    # ----- drawing ---------------------------------------------------------------------------
    def _labels_changed(self, image_id: int) -> None:
        """A label edit is saved: draw what changed, count, and tell the engine."""
        self.tally.catch_up()
        if image_id == self.image_id:
            self._show_label_change()
        self.image_list.refresh_counts(self.project, image_id)
        self._show_mean_seconds()
        self.bridge.labels_changed()

    def _show_mean_seconds(self) -> None:
        self.label_panel.show_mean_seconds(self.tally.mean_seconds())

    def _show_label_change(self) -> None:
        self.label_layer.update(self.viewer, self.session.pending_labels(self.image_id))

    def _draw_labels(self) -> None:
        """The image's stored labels, and those still waiting to be saved (hollow)."""
        self.label_layer.reload(self.viewer, self.image_id, self.session.pending_labels(self.image_id))

    def _query_changed(self, query) -> None:
        queries = self.session.queries
        self.viewer.set_queries(np.array([q.x for q in queries]), np.array([q.y for q in queries]))
        if query is None:
            self.viewer.set_current_query(None, None)
        else:  # centred when it is a new question, not when the same comes again with its classes
            fresh = query.query_id != self._ringed_query
            self.viewer.set_current_query(query.x, query.y, centre=fresh and self.session.mode == "query")
        self._ringed_query = None if query is None else query.query_id
        self._show_query_panel(query)
        self.image_list.refresh_counts(self.project, self.image_id)

    def _show_query_panel(self, query) -> None:
        self.label_panel.show_query(with_overlay_guess(query, self.painter.painted()), len(self.session.queries), self._no_guess())

    def _no_guess(self) -> str:
        """What "Likeliest" says of a query the model has given no classes, agreeing with the
        overlay: a model of one labelled class paints nothing (segmentation/labelled_classes.py)."""
        if self.tally.labelled_classes() == 1:
            return ("(label a second class: M for free clicking, its key, then a click on it. Until then the model "
                    "has nothing to tell apart, and paints nothing)")
        return "(waiting for the model)" if self.training_panel.history else "(no model yet)"

    def _prediction(self, event) -> None:
        self.painter.receive(event)

    def _prediction_painted(self) -> None:
        if self.session.current is not None and not self.session.current.candidates:
            self._show_query_panel(self.session.current)

    def _view_settled(self, rect: tuple[float, float, float, float], pixels_per_screen_pixel: float) -> None:
        """Tell the engine what of the image is on screen: a large image is predicted by its view."""
        if self.image_id is not None and self.viewer is self.image_viewer:
            self.bridge.send(ShowView(self.image_id, self.bridge.generation, rect, pixels_per_screen_pixel))

    def _published(self, event) -> None:
        self.training_panel.add_model(event.version, event.loss, event.validation_accuracy, event.label_count,
                                      event.validation_count)

    def _ranking(self, event) -> None:
        self.ranking = event.uncertainty
        self.image_list.set_uncertainty(self.ranking)
        self.image_list.select_image(self.image_id)

    # ----- closing ---------------------------------------------------------------------------
    def close_project(self) -> None:
        """Stop the engine thread (waiting for it), then close the database."""
        self.painter.stop()
        self.key_route.remove()
        self.slides.shutdown()
        self.bridge.stop()
        self.project.close()
        self.lock.release()
