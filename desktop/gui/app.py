"""The main window and starting the Qt application.

The window shows the start screen until a project is open, then the project's workspace. Menus
carry what the workspace offers (undo, layers, export) and the project-level actions.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QInputDialog, QMainWindow, QMenu, QMessageBox, QStackedWidget,
                               QToolButton, QVBoxLayout, QWidget)

from desktop import paths as app_paths  # add_images names its chosen files "paths"
from desktop.engine.errors import PointillistError
from desktop.engine.project.lock import ProjectInUse
from desktop.engine.service.loop import ENGINE_THREAD
from desktop.plural import plural

from .about_dialog import AboutDialog
from .banner import Banner
from .class_editor import edit_classes
from .file_filters import picture_filter
from .garbage import collect_garbage_on_the_gui_thread, set_aside_what_lives, take_back_what_was_set_aside
from .icons import app_icon, toolbar_icon
from .import_dialog import ImportDialog
from .keypoint_workspace import KeypointWorkspace, workspace_for
from .new_project import NewProjectDialog
from .predict_dialog import PredictDialog
from .shortcuts import ShortcutsDialog
from .start_screen import StartScreen
from .workspace import ProjectWorkspace


class MainWindow(QMainWindow):
    def __init__(self, project: Path | None = None, learner: str = "fast", demo_dir: Path | None = None,
                 **engine_options):
        super().__init__()
        collect_garbage_on_the_gui_thread()
        self.learner = learner
        self.demo_dir = demo_dir or app_paths.demo_dir()
        self.engine_options = engine_options
        self.workspace: ProjectWorkspace | None = None
        self.predict_dialog: PredictDialog | None = None
        self.start_screen = StartScreen()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_screen)
        self.banner = Banner()  # what must not vanish with a status-bar message: files left out
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.stack)
        self.setCentralWidget(central)
        self.start_screen.newRequested.connect(self.new_project)
        self.start_screen.openRequested.connect(self.choose_project)
        self.start_screen.importRequested.connect(self.import_project)
        self.start_screen.demoRequested.connect(self.open_demo)
        self.start_screen.recentChosen.connect(self.open_project)
        self._build_menus()
        self.resize(1400, 860)
        self._set_title()
        if project is not None:
            self.open_project(Path(project))

    # ----- menus -------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addAction("&New project...", QKeySequence.New, self.new_project)
        file.addAction("&Open project...", QKeySequence.Open, self.choose_project)
        file.addAction("Open the &demo", self.open_demo)
        self.import_action = file.addAction("&Import a DeepLabCut or COCO project...", self.import_project)
        file.addSeparator()
        self.export_masks_action = file.addAction("Export &masks...", self.export_masks)
        self.export_model_action = file.addAction("Export the m&odel...", self.export_model)
        self.export_slide_action = file.addAction("Export the &slide for QuPath (GeoJSON, OME-TIFF mask)...",
                                                  self.export_slide)
        self.predict_action = file.addAction("&Predict images or slides...", self.predict)
        self.add_images_action = file.addAction("&Add images or slides...", self.add_images)
        self.add_video_action = file.addAction("Add a &video...", self.add_video)
        self.export_dlc_action = file.addAction("Export keypoints as &DeepLabCut CSV...",
                                                lambda: self.export_keypoints("csv"))
        self.export_coco_action = file.addAction("Export keypoints as &COCO JSON...",
                                                 lambda: self.export_keypoints("json"))
        self.export_all_frames_action = file.addAction("Keypoint exports take a&ll frames, also unlabelled ones")
        self.export_all_frames_action.setCheckable(True)  # unticked: the labelled frames only
        self.close_action = file.addAction("&Close project", self.close_project)
        file.addSeparator()
        file.addAction("&Quit", QKeySequence.Quit, self.close)
        self.edit_menu = bar.addMenu("&Edit")
        self.view_menu = bar.addMenu("&View")
        help_menu = bar.addMenu("&Help")
        shortcuts = QAction("&Keyboard shortcuts", self, shortcut=QKeySequence("F1"))
        shortcuts.triggered.connect(lambda: ShortcutsDialog(self).exec())
        help_menu.addAction(shortcuts)
        help_menu.addAction("&About Pointillist", self.about)
        self._build_toolbar()
        self._project_actions_enabled(False)

    def _build_toolbar(self) -> None:
        """Icons for what the mouse hand does most: the two modes (M switches too), fit the image
        to the window, and the layers (the View menu's checkable actions)."""
        bar = self.addToolBar("Labelling")
        bar.setObjectName("labelling-toolbar")
        bar.setMovable(False)
        modes = QActionGroup(self)  # exclusive: one mode at a time
        self.mode_actions = {}
        for mode, text in (("query", "Answer the model's questions (M)"), ("free", "Click points freely (M)")):
            action = QAction(toolbar_icon(f"{mode}_mode"), text, modes, checkable=True)
            action.triggered.connect(lambda _checked=False, m=mode: self.workspace.session.set_mode(m))
            bar.addAction(action)
            self.mode_actions[mode] = action
        self.fit_action = bar.addAction(toolbar_icon("fit_window"), "Fit the image (Home, F)",
                                        lambda: self.workspace.zoom_actions["fit"].trigger())  # View > Fit
        self.layers_menu = QMenu("Layers", self)
        self.layers_button = QToolButton(icon=toolbar_icon("layers"), toolTip="Layers (I, P, H, L, Q)",
                                         popupMode=QToolButton.InstantPopup)
        self.layers_button.setMenu(self.layers_menu)
        self.toolbar_layers = bar.addWidget(self.layers_button)
        self.toolbar = bar

    def _show_mode(self, mode: str) -> None:
        self.mode_actions[mode].setChecked(True)

    def about(self) -> None:
        ws = self.workspace
        model = task = None
        names = []
        if ws is not None:
            learner = ws.training_panel.learner.currentText()
            model = next((m for m in reversed(ws.project.model_versions()) if m.published and m.learner == learner),
                         None)
            task, names = ws.project.task, [c.name for c in ws.classes]
        AboutDialog(model, task, names, parent=self).exec()

    def _project_actions_enabled(self, enabled: bool) -> None:
        for action in (self.export_masks_action, self.export_model_action, self.close_action,
                       self.add_images_action):
            action.setEnabled(enabled)
        keypoints = enabled and isinstance(self.workspace, KeypointWorkspace)
        self.export_masks_action.setEnabled(enabled and not keypoints)
        self.export_slide_action.setEnabled(enabled and not keypoints)
        self.predict_action.setEnabled(enabled and not keypoints)
        for action in (self.add_video_action, self.export_dlc_action, self.export_coco_action,
                       self.export_all_frames_action):
            action.setEnabled(keypoints)
        self.add_images_action.setText("&Add images..." if keypoints else "&Add images or slides...")
        for action in (*self.mode_actions.values(), self.fit_action, self.toolbar_layers):
            action.setEnabled(enabled)
        self.edit_menu.clear()
        self.view_menu.clear()
        self.layers_menu.clear()
        if enabled:
            self.edit_menu.addAction(self.workspace.undo_action)
            self.edit_menu.addAction(self.workspace.redo_action)
            self.edit_menu.addSeparator()
            classes = self.edit_menu.addAction("&Keypoints..." if keypoints else "&Classes...",
                                               lambda: edit_classes(self))
            classes.setEnabled(not self.workspace.read_only)
            for action in self.workspace.layer_actions.values():
                self.view_menu.addAction(action)
                self.layers_menu.addAction(action)
            self.view_menu.addSeparator()
            self.view_menu.addActions(list(self.workspace.zoom_actions.values()))
            self._show_mode(self.workspace.session.mode)
            self.workspace.session.modeChanged.connect(self._show_mode)

    def _set_title(self) -> None:
        name = f" - {self.workspace.folder.name}" if self.workspace else ""
        if self.workspace is not None and self.workspace.read_only:
            name += " [read-only]"
        self.setWindowTitle("Pointillist" + name)

    # ----- projects ----------------------------------------------------------------------------
    def open_project(self, folder: Path, read_only: bool = False) -> bool:
        """Open a project; when another window has it open for writing, offer to open it read-only."""
        self.close_project()
        try:
            self.workspace = workspace_for(folder)(folder, learner=self.learner, read_only=read_only,
                                                   **self.engine_options)
        except ProjectInUse as e:
            answer = QMessageBox.question(self, "The project is open elsewhere", f"{e}\n\nOpen it read-only?",
                                          QMessageBox.Open | QMessageBox.Cancel, QMessageBox.Cancel)
            return answer == QMessageBox.Open and self.open_project(folder, read_only=True)
        except PointillistError as e:
            QMessageBox.warning(self, "Cannot open the project", str(e))
            self.start_screen.refresh()  # a recent project that is gone since the list was shown leaves it
            return False
        self.workspace.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        if isinstance(self.workspace, KeypointWorkspace):
            self.workspace.exportFailed.connect(
                lambda text: QMessageBox.warning(self, "Cannot export the keypoints", text))
        self.workspace.lasting.connect(self.banner.add)
        # by its first queries the engine has imported and built what it keeps (garbage.py)
        self.workspace.bridge.queries.connect(lambda _event: set_aside_what_lives(), Qt.SingleShotConnection)
        problems = list(self.workspace.problems.values())
        if problems:  # each one is listed, with its reason, in the image list
            more = f" (and {plural(len(problems) - 1, 'other')}: see the image list)" if len(problems) > 1 else ""
            self.banner.add(problems[0] + more)
        self.stack.addWidget(self.workspace)
        self.stack.setCurrentWidget(self.workspace)
        self.workspace.viewer.setFocus()
        try:
            app_paths.remember_project(folder)
        except PointillistError as e:  # the project is open all the same; only the list is behind
            self.statusBar().showMessage(f"Not added to the recent projects: {e}", 15000)
        self._project_actions_enabled(True)
        self._set_title()
        if read_only:
            self.statusBar().showMessage("Read-only: the project is open for writing in another window. You can "
                                         "look at its images, labels and model; nothing you do here is saved.")
        return True

    def close_project(self) -> None:
        if self.workspace is None:
            return
        self.workspace.close_project()
        self.stack.removeWidget(self.workspace)
        self.workspace.deleteLater()
        self.workspace = None
        take_back_what_was_set_aside()
        self.banner.dismiss()  # its news was about that project's files
        self._project_actions_enabled(False)
        self.start_screen.refresh()
        self._set_title()

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder")
        if folder:
            self.open_project(Path(folder))

    def new_project(self) -> None:
        dialog = NewProjectDialog(self)
        if dialog.exec() and dialog.created is not None:
            self.open_project(dialog.created)

    def import_project(self) -> None:
        """A new keypoint project from a DeepLabCut project or a COCO file, opened when made."""
        dialog = ImportDialog(self)
        if dialog.exec() and dialog.created is not None and self.open_project(dialog.created):
            self.statusBar().showMessage(dialog.summary.replace("\n", " "), 15000)

    def open_demo(self) -> None:
        from desktop.engine.project.demo import create_demo_project

        self.statusBar().showMessage("Creating the demo project...")
        try:
            folder = create_demo_project(self.demo_dir)
        except PointillistError as e:
            self.statusBar().clearMessage()
            QMessageBox.warning(self, "Cannot create the demo", str(e))
            return
        if self.open_project(folder):
            self.statusBar().showMessage("The demo: four pictures of coins. Answer the ringed pixel's class.", 8000)

    def export_masks(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the masks")
        if folder and self.workspace:
            self.workspace.bridge.export(masks_dir=Path(folder))

    def export_slide(self, folder: Path | None = None) -> None:
        """The slide on screen: its labels and predicted regions, and its predicted mask."""
        if self.workspace is None:
            return
        if self.workspace.slides.image_id is None or self.workspace.viewer is not self.workspace.slides.viewer:
            self.statusBar().showMessage("Open a slide first: this export is for slides.", 8000)
            return
        folder = folder or QFileDialog.getExistingDirectory(self, "Folder for the slide export")
        if folder:
            self.workspace.slides.export(Path(folder))

    def export_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the model")
        if folder and self.workspace:
            self.workspace.bridge.export(model_dir=Path(folder))

    def predict(self) -> None:
        """The project's model over many images, slides or folders, in another process. The
        dialog is kept, with its choices, for this project, and while its run goes on."""
        if self.workspace is None:
            return
        dialog = self.predict_dialog
        if dialog is None or (dialog.project != self.workspace.folder and not dialog.running()):
            if dialog is not None:
                dialog.deleteLater()
            self.predict_dialog = PredictDialog(self.workspace.folder, [],
                                                self.workspace.training_panel.learner.currentText(), parent=self)
        if self.predict_dialog.project == self.workspace.folder:  # images may have been added since
            self.predict_dialog.images = [info.path for info in self.workspace.project.images()]
        self.predict_dialog.show()
        self.predict_dialog.raise_()
        self.predict_dialog.activateWindow()

    def add_images(self) -> None:
        """Keypoint projects take pictures only (their files' rules are in project_setup)."""
        keypoints = isinstance(self.workspace, KeypointWorkspace)
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images" if keypoints else "Add images and slides", "",
                                                picture_filter(slides=not keypoints))
        if paths and self.workspace is not None:
            self.workspace.add_images([Path(p) for p in paths])

    def add_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a video", "", "Videos (*.mp4 *.avi *.mov)")
        if not path or not isinstance(self.workspace, KeypointWorkspace):
            return
        frames, ok = QInputDialog.getInt(self, "Add a video", "Frames to sample:", 20, 1, 1000)
        if not ok:
            return
        sampling, ok = QInputDialog.getItem(self, "Add a video", "Sample frames:",
                                            ["evenly", "spread out in feature space (k-means)"], 0, False)
        if ok:
            self.workspace.add_video(Path(path), frames, "uniform" if sampling == "evenly" else "kmeans")

    def export_keypoints(self, suffix: str) -> None:
        kind = {"csv": "DeepLabCut CSV (*.csv)", "json": "COCO keypoints JSON (*.json)"}[suffix]
        path, _ = QFileDialog.getSaveFileName(self, "Export keypoints", f"keypoints.{suffix}", kind)
        if not path or not isinstance(self.workspace, KeypointWorkspace):
            return
        self.workspace.export_keypoints(Path(path).with_suffix(f".{suffix}"),  # in the background
                                        all_frames=self.export_all_frames_action.isChecked())

    def closeEvent(self, event) -> None:
        if self.predict_dialog is not None and not self.predict_dialog.close():  # the user keeps it running
            event.ignore()
            return
        self.close_project()
        super().closeEvent(event)


def make_application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QCoreApplication.setOrganizationName("Pointillist")
    QCoreApplication.setApplicationName("Pointillist")
    app.setWindowIcon(app_icon())
    return app


def run_app(project: Path | None = None) -> int:
    app = make_application()
    window = MainWindow(project)
    window.show()
    code = app.exec()
    if any(t.name == ENGINE_THREAD and t.is_alive() for t in threading.enumerate()):
        # A training slice outlived the time closing waits for it (loop.STOP_WAIT_S). Python's own
        # exit would kill that thread inside torch and abort the process ("terminate called");
        # every label is already committed and every model file is written whole or not at all,
        # so the process ends here instead.
        print("Pointillist: the engine was still training; it is stopped, every label is saved.", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
