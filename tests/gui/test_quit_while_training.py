"""Quitting while the engine is still in a long training slice: the process ends cleanly.

Seen under Xvfb on an imported DeepLabCut project: Ctrl+Q within the first minute (the first
slice computes the features of 90 labelled frames) ended in "terminate called without an active
exception" and exit status 134, because Python's exit killed the engine thread inside torch.
The child below makes the window's wait for the engine as short as it can be, so that the
slice is surely still running when the app returns from its event loop.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.gui.conftest import make_blob_project

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from PySide6.QtCore import QTimer
    from desktop.engine.service import loop
    from desktop.gui import app as gui_app

    loop.STOP_WAIT_S = 0.0  # the window does not wait for the slice at all
    application = gui_app.make_application()
    seen = []

    def quit_once_training() -> None:
        window = application.activeWindow() or next(w for w in application.topLevelWidgets()
                                                     if isinstance(w, gui_app.MainWindow))
        window.workspace.bridge.progress.connect(lambda p: seen.append(p.text))
        def check():
            if any("training" in text for text in seen):
                window.close()
            else:
                QTimer.singleShot(20, check)
        check()

    QTimer.singleShot(0, quit_once_training)
    sys.exit(gui_app.run_app(Path(sys.argv[1])))
""")


def test_quitting_during_a_training_slice_ends_the_process_cleanly(tmp_path):
    folder = make_blob_project(tmp_path / "data", images=2)
    from desktop.engine.project.store import Project

    with Project.open(folder) as project:
        classes = project.classes()
        rng = np.random.default_rng(0)
        for image in project.images():
            project.add_labels(image.id, [(float(x), float(y), classes[int(x > 80)].id)
                                          for x, y in rng.uniform(5, 155, (40, 2))])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert "terminate called" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    with Project.open(folder) as project:
        assert project.label_count() == 80  # every label is there; nothing half-written stops the open
