"""``pointillist bench ui``: the real window, offscreen, clicked through Qt events while the
engine trains, timed.

Figures:
- ``click_to_store_ms``: mouse press to the label committed in SQLite and drawn (the click's
  handler does both before it returns);
- ``click_to_overlay_ms``: mouse press to the viewer showing a model version whose training
  saw that click (the engine reports the label revision each version was trained on);
- ``max_event_loop_stall_ms``: the worst lateness of a 10 ms timer on the GUI thread while
  the clicks, training and predictions run;
- ``first_overlay_in_view_ms``: the first click to the first overlay that paints a prediction
  over the view (a new user's wait to see anything; a model of one class paints nothing);
- ``overlay_in_view_ms_p50/p95``: a click to an overlay over the whole view from a model that
  saw the click. An image up to 1024 x 1024 is painted whole at full resolution; a larger one's
  view first, at about one class per screen pixel (``service/image_views.py``), and that is what
  is timed, its first look (twice as coarse as the screen) included; ``overlay_sharp_in_view_ms``
  times the overlay at the screen's resolution, whose cells cover ``view_stride`` image pixels a
  side (``pixels_per_screen_pixel`` of the fitted view beside it);
- ``query_ms_p50``: the engine's time to choose an image's queries after a new model version
  (its prediction of the image reused).

``image_size`` makes the project itself: one tissue picture (scikit-image's
immunohistochemistry sample) resized to N x N, so that sizes can be compared back to back.

The benchmark works on a copy of the project (its images are referenced, not copied), so the
user's labels are never touched, and with the app's folders in its temporary folder
(``desktop.paths.home_at``), so the copy never joins the user's recent projects. Each click's
class follows a fixed rule (brighter or darker than the image's median), as a consistent expert
would, so models improve and get published.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from desktop.engine.errors import PointillistError
from desktop.engine.segmentation import view_grid

WAIT_OVERLAY_S = 10.0


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


class _StallMeter:
    """A 10 ms timer on the GUI thread; how late it fires is how long the event loop stalled."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.worst = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(self.timer.timerType().PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self._last - self.interval)
        self._last = now


def _sized_project(folder: Path, size: int) -> Path:
    """A project of one real tissue picture (IHC, 512 x 512) resized to ``size`` x ``size``."""
    import cv2
    from PIL import Image
    from skimage import data

    from desktop.engine.project.store import Project

    if size < 64:
        raise PointillistError(f"--image-size must be at least 64 pixels, not {size}.")
    folder.mkdir(parents=True)
    picture = folder / f"tissue-{size}.png"
    pixels = cv2.resize(data.immunohistochemistry(), (size, size), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(pixels).save(picture, compress_level=1)
    # Clicks brighter than the median take key 2: the pale background of the slide.
    project = Project.create(folder / "project", classes=[("tissue", "#8e3b9a", "1"), ("background", "#f2e8c9", "2")])
    project.add_image(picture, size, size)
    project.close()
    return folder / "project"


def _copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("cache"))
    return target


def _wait(app, condition, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.002)
    return False


def run(project_dir: Path | None = None, clicks: int = 20, learner: str = "fast", seed: int = 0,
        torch_threads: int | None = None, screenshot: Path | None = None, image_size: int | None = None) -> dict:
    """Click ``clicks`` times and time it; ``screenshot`` saves the window as it ends (for the
    README: a picture made by the app itself). ``image_size`` (instead of ``project_dir``):
    a project of one N x N tissue picture."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from desktop.engine.images.pictures import read_image
    from desktop.paths import home_at

    from .app import MainWindow, make_application

    app = make_application()
    with tempfile.TemporaryDirectory(prefix="pointillist-bench-ui-") as tmp, home_at(Path(tmp) / "home"):
        if image_size is not None:
            folder = _sized_project(Path(tmp) / "sized", image_size)
        elif project_dir is None:
            from desktop.engine.project.demo import create_demo_project

            folder = create_demo_project(Path(tmp) / "demo")
        else:
            folder = _copy_project(Path(project_dir), Path(tmp) / "project")
        window = MainWindow(folder, learner=learner, torch_threads=torch_threads)
        window.show()
        try:
            result = _measure(app, window, clicks, seed, read_image, Qt, QTest)
            if screenshot is not None:
                window.workspace.viewer.setFocus()
                if not window.grab().save(str(screenshot)):
                    raise OSError(f"Cannot write the screenshot '{screenshot}'.")
                result["screenshot"] = str(screenshot)
            return result
        finally:
            window.close()


def _measure(app, window, clicks, seed, read_image, Qt, QTest) -> dict:
    ws = window.workspace
    project = ws.project
    # the largest image: the target is 512 x 512
    target = max((i for i in project.images() if i.id not in ws.problems), key=lambda i: i.width * i.height)
    ws.open_image(target.id)
    if not _wait(app, lambda: ws.session.current is not None, 120):
        raise RuntimeError("the engine did not start within two minutes")
    gray = read_image(target.path).mean(axis=2)
    threshold = float(np.median(gray))
    published: dict[int, int] = {}  # model version -> label revision it was trained on
    engine_ms: dict[str, list[float]] = {"train": [], "predict": [], "query": []}

    def on_published(event) -> None:
        published[event.version] = event.label_revision
        engine_ms["train"].append(event.seconds * 1000)

    ws.bridge.published.connect(on_published)
    painting: set[int] = set()  # model versions whose prediction paints something

    def on_prediction(event) -> None:
        if not np.isnan(event.seconds):  # the empty prediction of a model of one class takes none
            engine_ms["predict"].append(event.seconds * 1000)
            painting.add(event.version)

    ws.bridge.prediction.connect(on_prediction)
    ws.bridge.queries.connect(lambda e: np.isnan(e.seconds) or engine_ms["query"].append(e.seconds * 1000))
    shown: list[tuple[float, int]] = []
    sharp: list[tuple[float, int]] = []  # overlays at the view's stride (the screen's resolution)
    screen_stride = view_grid.view_stride(ws.image_viewer.pixels_per_screen_pixel())

    def on_shown(version: int) -> None:
        shown.append((time.perf_counter(), version))
        if ws.image_viewer.painted_stride <= screen_stride:
            sharp.append(shown[-1])

    ws.viewer.overlayShown.connect(on_shown)
    QTest.keyClick(ws.viewer, "m")  # free clicking: every click is a label

    rng = np.random.default_rng(seed)
    margin = 8
    stall = _StallMeter()
    stall.start()
    store_ms, overlay_ms, sharp_ms, missed, click_starts = [], [], [], 0, []
    try:
        for _ in range(clicks):
            x = int(rng.integers(margin, target.width - margin))
            y = int(rng.integers(margin, target.height - margin))
            brighter = gray[y, x] > threshold
            QTest.keyClick(ws.viewer, "2" if brighter else "1")
            before = project.label_count()
            start = time.perf_counter()
            click_starts.append(start)
            QTest.mouseClick(ws.viewer.viewport(), Qt.LeftButton, Qt.NoModifier, ws.viewer.widget_point(x, y))
            store_ms.append((time.perf_counter() - start) * 1000)
            if project.label_count() != before + 1:
                raise RuntimeError(f"the click at ({x}, {y}) did not store a label")
            revision = project.label_revision()

            def after_click(overlays: list[tuple[float, int]]) -> list[float]:
                """When overlays of a model that saw this click were shown."""
                return [t for t, v in overlays if t >= start and published.get(v, -1) >= revision]

            if _wait(app, lambda: bool(after_click(shown)), WAIT_OVERLAY_S):
                overlay_ms.append((min(after_click(shown)) - start) * 1000)
                if _wait(app, lambda: bool(after_click(sharp)), WAIT_OVERLAY_S):  # the next click waits for it
                    sharp_ms.append((min(after_click(sharp)) - start) * 1000)
            else:
                missed += 1  # no model was published for this click (validation refused it) in time
    finally:
        stall.stop()
    first_click = click_starts[0] if click_starts else None
    first_overlay = min((t for t, v in shown if first_click is not None and t >= first_click and v in painting),
                        default=None)
    return {
        "image": target.name,
        "image_size": [target.width, target.height],
        "learner": ws.bridge.learner,
        "clicks": clicks,
        "click_to_store_ms_p50": _percentile(store_ms, 50),
        "click_to_store_ms_p95": _percentile(store_ms, 95),
        "click_to_overlay_ms_p50": _percentile(overlay_ms, 50),
        "click_to_overlay_ms_p95": _percentile(overlay_ms, 95),
        "overlay_missed": missed,
        "first_overlay_in_view_ms": None if first_overlay is None else round((first_overlay - first_click) * 1000, 1),
        "overlay_in_view_ms_p50": _percentile(overlay_ms, 50),
        "overlay_in_view_ms_p95": _percentile(overlay_ms, 95),
        "overlay_sharp_in_view_ms_p50": _percentile(sharp_ms, 50),
        "overlay_sharp_in_view_ms_p95": _percentile(sharp_ms, 95),
        "query_ms_p50": _percentile(engine_ms["query"], 50),
        "view_stride": screen_stride,
        "pixels_per_screen_pixel": round(ws.image_viewer.pixels_per_screen_pixel(), 2),
        "max_event_loop_stall_ms": round(stall.worst * 1000, 1),
        # where the overlay time goes: one training slice, then predicting the image shown
        "engine_train_slice_ms_p50": _percentile(engine_ms["train"], 50),
        "engine_predict_ms_p50": _percentile(engine_ms["predict"], 50),
        "cpu_count": os.cpu_count(),
        "torch_threads": ws.bridge.service.torch_threads,
    }
