"""``pointillist --self-test`` and ``pointillist --time-to-window``: checks of an installed or
frozen build that need no display (one is used where there is one) and no network.

The self-test goes through what a user's first minutes need, each step timed: the pretrained
weights classify a known picture, the demo project is made, the fast learner trains and
predicts, masks are exported and read back, and the real main window opens offscreen (in a
frozen build this proves that the Qt platform plugins were bundled). It works in a temporary
folder and keeps the app's own folders there too (``desktop.paths``), so the user's
recent-projects list and demo are left alone.

Offscreen is not what a user gets: where there is a display, the window also opens on the real
platform (xcb, Wayland, Windows, Cocoa), in a child process, since a platform plugin that cannot
load aborts the process that tries. On Linux, missing system libraries of the xcb plugin are
named first, with the command that installs them (``desktop.qt_platform``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from desktop import paths, qt_platform

ESPRESSO = 967  # the ImageNet class that skimage's coffee picture shows
TRAIN_STEPS = 100
LABELS = 40  # clicks on the first demo image
MIN_AGREEMENT = 0.8  # share of pixels where the prediction follows the labelling rule
WINDOW_TIMEOUT_S = 60.0
WINDOW_CHECK = "--window-check"  # the hidden option of 'pointillist' that runs window_check()


def _offscreen() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class _Context:
    """What the steps hand on to each other."""

    def __init__(self, folder: Path, platform: str | None = None):
        self.folder = folder
        self.platform = platform  # QT_QPA_PLATFORM as the user had it: what a real window gets
        self.project_dir: Path | None = None
        self.project = None
        self.engine = None
        self.image_id: int | None = None  # the labelled image
        self.mask: np.ndarray | None = None  # its classes by the labelling rule


def _libraries(ctx: _Context) -> str:
    """Import the heavy libraries first, so that the later steps time their own work."""
    import cv2
    import skimage
    import timm
    import torch

    cuda = "CUDA available" if torch.cuda.is_available() else "no CUDA device"
    return f"torch {torch.__version__} ({cuda}), timm {timm.__version__}, OpenCV {cv2.__version__}, " \
           f"scikit-image {skimage.__version__}"


def _espresso(ctx: _Context) -> str:
    import skimage.data
    import torch

    from models.encoder import centre_crop_224, load_classifier, normalize

    with torch.inference_mode():
        probs = load_classifier()(normalize(centre_crop_224(skimage.data.coffee()))).softmax(1)[0]
    top = int(probs.argmax())
    if top != ESPRESSO:
        raise AssertionError(f"the classifier puts class {top} first for the coffee picture, not {ESPRESSO} "
                             "(espresso): the pretrained weights are wrong or missing")
    return f"espresso {float(probs[ESPRESSO]):.2f}"


def _demo(ctx: _Context) -> str:
    from desktop.engine.project.demo import create_demo_project
    from desktop.engine.project.store import Project

    ctx.project_dir = create_demo_project(ctx.folder / "demo")
    ctx.project = Project.open(ctx.project_dir)
    return f"{len(ctx.project.images())} images"


def _rule_mask(pixels: np.ndarray) -> np.ndarray:
    """Class 1 (object) where a pixel is brighter than Otsu's threshold, else 0: a consistent
    annotator whom the model can learn from on the demo's pictures."""
    import cv2

    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (grey > threshold).astype(np.int64)


def _train(ctx: _Context) -> str:
    from desktop.engine.segmentation.engine import SegmentationEngine

    ctx.engine = SegmentationEngine(ctx.project, learner="fast", device="cpu")
    class_ids = [c.id for c in ctx.project.classes()]
    rng = np.random.default_rng(0)
    info = ctx.project.images()[0]
    ctx.image_id, ctx.mask = info.id, _rule_mask(ctx.engine.image(info.id))
    ys, xs = rng.integers(0, info.height, LABELS), rng.integers(0, info.width, LABELS)
    ctx.project.add_labels(info.id, [(float(x), float(y), class_ids[ctx.mask[y, x]]) for y, x in zip(ys, xs)],
                           author="self-test")
    report = ctx.engine.train(TRAIN_STEPS)
    if not report.published:
        raise AssertionError(f"training on {report.train_labels} labels published no model")
    return f"{TRAIN_STEPS} steps on {report.train_labels} labels, loss {report.loss:.3f}"


def _predict(ctx: _Context) -> str:
    mask = ctx.mask
    probs = ctx.engine.predict(ctx.image_id)
    classes = len(ctx.project.classes())
    if probs.shape != (classes, *mask.shape) or not np.isfinite(probs).all():
        raise AssertionError(f"prediction of shape {probs.shape} (finite: {np.isfinite(probs).all()}), "
                             f"expected {(classes, *mask.shape)}")
    agreement = float((probs.argmax(0) == mask).mean())
    if agreement < MIN_AGREEMENT:
        raise AssertionError(f"the prediction follows the labels on only {agreement:.0%} of the pixels")
    return f"{agreement:.0%} of pixels as labelled"


def _export(ctx: _Context) -> str:
    from PIL import Image

    from desktop.engine.segmentation.export import export_masks

    out = ctx.folder / "masks"
    result = export_masks(ctx.engine, out)
    if result.skipped:
        raise AssertionError("not exported: " + "; ".join(f"{name}: {why}" for name, why in result.skipped))
    images = ctx.project.images()
    for info in images:
        path = out / f"{Path(info.name).stem}.png"
        with Image.open(path) as mask:
            if mask.mode != "P" or mask.size != (info.width, info.height):
                raise AssertionError(f"{path.name} is {mask.mode} {mask.size}, expected P "
                                     f"{(info.width, info.height)}")
            mask.load()
        with Image.open(out / f"{Path(info.name).stem}_preview.png") as preview:
            preview.load()
    return f"{len(images)} masks and previews"


def _show(window, app) -> None:
    """Show ``window`` and return once the platform has exposed it and it has painted."""
    window.show()
    deadline = time.monotonic() + WINDOW_TIMEOUT_S
    while not (window.windowHandle() and window.windowHandle().isExposed()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the main window was not shown within {WINDOW_TIMEOUT_S:.0f} s")
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()  # the first paint


def _window(ctx: _Context) -> str:
    ctx.project.close()  # the window opens the project itself
    ctx.project = None
    from desktop.gui.app import MainWindow, make_application

    app = make_application()
    window = MainWindow(ctx.project_dir)
    try:
        if window.workspace is None:
            raise AssertionError("the main window did not open the demo project")
        _show(window, app)
        platform = app.platformName()
    finally:
        window.close()
    return f"Qt platform '{platform}'"


def _display(ctx: _Context) -> str:
    """The main window on the display the user has, opened by a child ``pointillist``."""
    if ctx.platform in ("offscreen", "minimal"):
        return f"QT_QPA_PLATFORM is '{ctx.platform}': no display to check"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here (DISPLAY and WAYLAND_DISPLAY are unset): not checked"
    environ = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    if ctx.platform is not None:
        environ["QT_QPA_PLATFORM"] = ctx.platform
    problem = qt_platform.xcb_problem(environ)
    if problem:
        raise RuntimeError(problem)
    done = subprocess.run(_pointillist(WINDOW_CHECK), env=environ, capture_output=True, text=True,
                          timeout=2 * WINDOW_TIMEOUT_S)
    shown = [line for line in done.stdout.splitlines() if line.startswith("platform ")]
    if done.returncode != 0 or not shown:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        said = [line.split(": ", 1)[-1] for line in lines if line.startswith("qt.qpa")] or lines[-1:]
        raise RuntimeError(f"the window did not open on this display (exit status {done.returncode}): "
                           + ("; ".join(said) or "it said nothing"))
    return f"Qt platform '{shown[-1].split(' ', 1)[1]}'"


def _pointillist(*arguments: str) -> list[str]:
    """This app's own command: the frozen executable is ``pointillist``, else this Python runs it."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *arguments]
    return [sys.executable, "-m", "desktop.cli", *arguments]


def window_check() -> int:
    """``pointillist --window-check``: open the main window on the platform Qt picks, print
    ``platform NAME`` once it is shown, and close it; run by ``_display`` in a child process."""
    from desktop.gui.app import MainWindow, make_application

    app = make_application()
    window = MainWindow()
    try:
        _show(window, app)
        print(f"platform {app.platformName()}", flush=True)
    finally:
        window.close()
    return 0


Step = tuple[str, Callable[[_Context], str], tuple[str, ...]]  # name, check, the steps it needs

STEPS: list[Step] = [
    ("libraries", _libraries, ()),
    ("pretrained weights", _espresso, ("libraries",)),
    ("demo project", _demo, ("libraries",)),
    ("train fast learner", _train, ("demo project",)),
    ("predict", _predict, ("train fast learner",)),
    ("export masks", _export, ("train fast learner",)),
    ("main window", _window, ("demo project",)),
    ("window on the display", _display, ()),
]


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def run(write: Callable[[str], None] = print, steps: list[Step] = STEPS) -> int:
    """Run the steps, writing one line each; 0 when all pass, 1 otherwise."""
    platform = os.environ.get("QT_QPA_PLATFORM")
    _offscreen()
    failed: set[str] = set()
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pointillist-self-test-") as tmp, paths.home_at(Path(tmp) / "home"):
        ctx = _Context(Path(tmp), platform)
        try:
            for name, check, needs in steps:
                missing = [n for n in needs if n in failed]
                if missing:
                    failed.add(name)
                    write(f"FAIL {name}: skipped, needs '{missing[0]}'")
                    continue
                start = time.perf_counter()
                try:
                    detail = check(ctx)
                except Exception as e:  # noqa: BLE001 - each failure is reported, then the next step runs
                    failed.add(name)
                    write(f"FAIL {name} ({time.perf_counter() - start:.2f} s): {_reason(e)}")
                else:
                    write(f"ok   {name} ({time.perf_counter() - start:.2f} s): {detail}")
        finally:
            if ctx.project is not None:
                ctx.project.close()
    verdict = f"{len(failed)} of {len(steps)} steps failed" if failed else "all steps passed"
    write(f"self-test: {verdict} in {time.perf_counter() - total:.2f} s")
    return 1 if failed else 0


_IMPORTED = time.perf_counter()


def process_age() -> tuple[float, str]:
    """Seconds since this process started, and since what: on Linux, the kernel's record of the
    process creation (so interpreter start-up and, in a frozen build, the bootloader count);
    elsewhere, since this module was imported, which leaves out start-up and says so."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - started, "process start"
    except (OSError, ValueError, AttributeError, IndexError):
        return time.perf_counter() - _IMPORTED, "start-up (not counted: process start is read on Linux only)"


def time_to_window() -> int:
    """Open the main window offscreen on a fresh demo project in a temporary folder, print how
    long after the process start it was shown, and close it."""
    _offscreen()
    with tempfile.TemporaryDirectory(prefix="pointillist-time-to-window-") as tmp, paths.home_at(Path(tmp) / "home"):
        from desktop.engine.project.demo import create_demo_project

        start = time.perf_counter()
        project = create_demo_project(Path(tmp) / "demo")
        demo_s = time.perf_counter() - start
        from desktop.gui.app import MainWindow, make_application

        app = make_application()
        window = MainWindow(project)
        try:
            _show(window, app)
            seconds, since = process_age()
        finally:
            window.close()
    print(f"main window shown {seconds:.2f} s after {since} (of which {demo_s:.2f} s making the demo project)",
          flush=True)
    return 0
