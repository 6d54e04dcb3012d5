"""Two real Pointillist windows on one project for minutes, clicking, training and exporting,
with ``pointillist export`` run beside them now and then (issue 14). Not part of the test run:

    xvfb-run -a python -m tests.two_windows run --seconds 300 --out OUT_DIR

Each window is its own process (``window`` below), driven by Qt mouse and key events: free-mode
clicks of the class a consistent expert would give, N now and then, File > Export masks every
15 s. The second window meets the first one's lock, and answers the question it is asked by
clicking "Open" (read-only). Children print one line per event:

    OPENED <read_only>          the project is open in the window
    TOLD <question>             the window was told the project is open elsewhere
    ACK <id> <image> <x> <y> <class>   a click's label, read back after the click returned
    REFUSED                     a click in the read-only window, not stored and said so
    SAVED <file> <sha256>       the engine wrote a model file with these bytes
    PUBLISHED <version>         the window was told of a new model version
    EXPORTED                    an export the window asked for ended

Afterwards the parent checks: no acknowledged label lost; every model version's file loads and
holds the bytes its engine saved under that name (no name written twice); the second window was
told of the first and stored nothing; every ``pointillist export`` gave a card whose label count
is its version's. It prints a JSON summary and exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from tests.driver_output import say

ROOT = Path(__file__).resolve().parents[1]
# ----- one window (a child process) -----------------------------------------------------------

def announce_model_files() -> None:
    """Have the engine say what bytes it writes under which model file name."""
    from desktop.engine.learning import task_engine as engine  # where model files are written

    original = engine.atomic_write_bytes

    def announced(target, data):
        original(target, data)
        if Path(target).parent.name == "models":
            say("SAVED", Path(target).name, hashlib.sha256(data).hexdigest())

    engine.atomic_write_bytes = announced


class WindowDriver:
    def __init__(self, window, project: Path, rng: np.random.Generator, seconds: float):
        from PySide6.QtCore import QTimer

        self.window, self.project, self.rng = window, project, rng
        self.ends_at = time.monotonic() + seconds
        self.last_export = time.monotonic()
        self.messages: list[str] = []  # what the window said since the last click
        self.timer = QTimer(singleShot=True)
        self.timer.timeout.connect(self.step)

    def open(self) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtTest import QTest

        QTimer.singleShot(300, self.answer_question)  # runs inside the question's own event loop
        self.window.open_project(self.project)
        ws = self.window.workspace
        say("OPENED", ws.read_only)
        ws.bridge.published.connect(lambda event: say("PUBLISHED", event.version))
        ws.bridge.exported.connect(lambda _text: say("EXPORTED"))
        ws.message.connect(self.messages.append)
        QTest.keyClick(ws.viewer, "m")  # free mode: every left click is a label
        self.timer.start(500)

    def answer_question(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication, QMessageBox

        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            say("TOLD", " ".join(box.text().split()))
            QTest.mouseClick(box.button(QMessageBox.Open), Qt.LeftButton)

    def step(self) -> None:
        from PySide6.QtTest import QTest

        if time.monotonic() > self.ends_at:
            self.window.close()
            return
        ws = self.window.workspace
        if time.monotonic() - self.last_export > 15:
            self.last_export = time.monotonic()
            self.window.export_masks_action.trigger()
        elif self.rng.random() < 0.02:
            QTest.keyClick(ws.viewer, "n")
        else:
            self.click()
        self.timer.start(int(self.rng.integers(40, 200)))

    def click(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        ws, viewer = self.window.workspace, self.window.workspace.viewer
        if ws.image_id is None:
            return
        info = ws.project.image(ws.image_id)
        x, y = int(self.rng.integers(0, info.width)), int(self.rng.integers(0, info.height))
        index = int(viewer.items["image"].image[y, x].mean() > 128)  # a bright disc: the second class
        QTest.keyClick(viewer, str(index + 1))
        before = {lab.id for lab in ws.project.labels(ws.image_id)}
        self.messages.clear()
        QTest.mouseClick(viewer.viewport(), Qt.LeftButton, Qt.NoModifier, viewer.widget_point(x, y))
        new = [lab for lab in ws.project.labels(ws.image_id) if lab.id not in before]
        if ws.read_only:  # the other window's labels arrive too: look for one where this click was
            here = [lab for lab in new if abs(lab.x - x) < 0.5 and abs(lab.y - y) < 0.5]
            said = any("open read-only here" in m for m in self.messages)
            say("REFUSED" if not here and said else f"BAD read-only click stored {here} said {said}")
        elif len(new) == 1:
            lab = new[0]
            say("ACK", lab.id, lab.image_id, repr(lab.x), repr(lab.y), lab.class_id)
        else:
            say("BAD", f"click at ({x}, {y}) stored {new}")


def window_main(project: Path, export_dir: Path, seed: int, seconds: float) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QFileDialog

    from desktop.gui.app import MainWindow, make_application
    from desktop.paths import HOME_VARIABLE

    announce_model_files()
    app = make_application()
    os.environ[HOME_VARIABLE] = str(export_dir / "home")  # recent projects: never the user's
    QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: str(export_dir))  # the folder "chosen"
    window = MainWindow(torch_threads=1)
    window.resize(1100, 700)
    window.move(250 * (seed - 1), 150 * (seed - 1))  # side by side enough to see both
    window.show()
    driver = WindowDriver(window, project, np.random.default_rng(seed), seconds)
    QTimer.singleShot(0, driver.open)
    code = app.exec()
    say("CLOSED")
    return code


# ----- the run (the parent) -------------------------------------------------------------------

class Child:
    def __init__(self, args: list[str], log: Path):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.two_windows", "window", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: list[list[str]] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            words = line.split()
            self.lines.append(words)
            self._queue.put(words)

    def wait_for(self, first: str, timeout: float) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                words = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if words and words[0] == first:
                return words
        raise TimeoutError(f"no {first} within {timeout} s")

    def of(self, kind: str) -> list[list[str]]:
        return [w for w in self.lines if w and w[0] == kind]


def run(seconds: float, out: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from desktop.engine.project.store import Project

    shutil.rmtree(out, ignore_errors=True)
    project = _make_project(out / "data", images=4)
    first = Child([str(project), str(out / "export-first"), "1", str(seconds)], out / "first.log")
    first.wait_for("OPENED", 180)
    second = Child([str(project), str(out / "export-second"), "2", str(seconds - 20)], out / "second.log")
    second.wait_for("OPENED", 180)
    cli_exports, shot = [], None
    files = ModelFiles(project, (first, second))
    started = time.monotonic()
    while first.proc.poll() is None or second.proc.poll() is None:
        time.sleep(1)
        files.check()
        if time.monotonic() - started > 30 and not shot and os.environ.get("DISPLAY") and shutil.which("import"):
            shot = subprocess.run(["import", "-window", "root", str(out / "screen.png")], check=False)
        if time.monotonic() - started > 60 * (len(cli_exports) + 1) and first.proc.poll() is None:
            cli_exports.append(_cli_export(project, out / f"cli-{len(cli_exports)}"))
        if time.monotonic() - started > seconds + 300:
            first.proc.kill()
            second.proc.kill()

    time.sleep(1)  # the last lines of the children's output
    files.check()
    with Project.open(project) as db:
        stored = {lab.id: lab for lab in db.labels()}
        versions = db.model_versions()
        integrity = db.integrity_ok()
    acks = first.of("ACK") + second.of("ACK")
    lost = [w for w in acks if int(w[1]) not in stored or stored[int(w[1])].image_id != int(w[2])
            or abs(stored[int(w[1])].x - float(w[3])) > 1e-6 or stored[int(w[1])].class_id != int(w[5])]
    file_problems = files.problems + [f"v{m.version} {m.path}: never checked" for m in versions
                                      if m.path and m.version not in files.verified]
    by_version = {m.version: m for m in versions}
    export_problems = [e for e in cli_exports if e["rc"] != 0 or e["card"]["training_label_count"]
                       != by_version[e["card"]["model_version"]].label_count]
    told = [("first", w) for w in first.of("TOLD")] + [("second", w) for w in second.of("TOLD")]
    summary = {
        "seconds": round(time.monotonic() - started),
        "acknowledged_labels": len(acks), "lost_labels": len(lost), "stored_labels": len(stored),
        "bad_clicks": first.of("BAD") + second.of("BAD"),
        "read_only_clicks_refused": len(second.of("REFUSED")),
        "second_window_told": [" ".join(w[1:]) for who, w in told if who == "second"],
        "first_window_told": len([w for who, w in told if who == "first"]),
        "second_opened_read_only": second.of("OPENED") == [["OPENED", "True"]],
        "model_versions": len(versions), "published": sum(m.published for m in versions),
        "model_files_checked": len(files.verified), "model_file_problems": file_problems,
        "names_saved_twice": files.saved_twice(),
        "exports_by_windows": [len(first.of("EXPORTED")), len(second.of("EXPORTED"))],
        "cli_exports": cli_exports, "cli_export_problems": len(export_problems),
        "integrity_ok": integrity,
        "exit_codes": [first.proc.returncode, second.proc.returncode],
    }
    summary["ok"] = (not lost and not summary["bad_clicks"] and not file_problems and not export_problems
                     and not summary["names_saved_twice"] and len(summary["second_window_told"]) == 1
                     and summary["first_window_told"] == 0 and summary["second_opened_read_only"]
                     and summary["read_only_clicks_refused"] > 0 and integrity and len(acks) > 0
                     and summary["published"] > 0)
    return summary


def _make_project(folder: Path, images: int) -> Path:
    """Pictures of dark ground with a few bright discs, and a project of them with two classes."""
    from PIL import Image, ImageDraw

    from desktop.engine.project.store import Project

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with Project.create(folder / "project", classes=[("ground", "#3050f0", "1"), ("disc", "#ff3030", "2")]) as db:
        for i in range(images):
            picture = Image.fromarray(rng.normal(50, 10, (192, 256, 3)).clip(0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(picture)
            for _ in range(5):
                x, y, r = int(rng.integers(30, 226)), int(rng.integers(30, 162)), int(rng.integers(10, 25))
                draw.ellipse((x - r, y - r, x + r, y + r), fill=(220, 190, 60))
            picture.save(folder / f"picture{i}.png")
            db.add_image(folder / f"picture{i}.png", 256, 192)
    return folder / "project"


class ModelFiles:
    """Checks, while the windows run (files beyond the newest three are removed), that each
    published version's file loads and holds the bytes its engine said it saved under that name."""

    def __init__(self, project: Path, children):
        self.project, self.children = project, children
        self.verified: set[int] = set()
        self.problems: list[str] = []

    def saved(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for child in self.children:
            for words in child.of("SAVED"):
                out.setdefault(words[1], []).append(words[2])
        return out

    def saved_twice(self) -> list[str]:
        return [name for name, digests in self.saved().items() if len(digests) > 1]

    def check(self) -> None:
        import torch

        from desktop.engine.project.store import Project

        saved = self.saved()
        with Project.open(self.project, read_only=True) as db:
            models = [m for m in db.model_versions() if m.published and m.path and m.version not in self.verified]
            folder = db.models_dir
        for model in models:
            try:
                data = (folder / model.path).read_bytes()
            except FileNotFoundError:
                continue  # removed since (the newest three are kept): checked before, or never in time
            if model.path not in saved:
                continue  # its line is on its way
            if saved[model.path] != [hashlib.sha256(data).hexdigest()]:
                self.problems.append(f"v{model.version} {model.path} holds other bytes than its engine saved")
            else:
                torch.load(folder / model.path, map_location="cpu", weights_only=True)
            self.verified.add(model.version)


def _cli_export(project: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "desktop.cli", "export", str(project), "--masks",
                           str(out / "masks"), "--model", str(out / "model")], cwd=ROOT, capture_output=True,
                          text=True)
    card_file = out / "model" / "model_card.json"
    card = json.loads(card_file.read_text()) if card_file.exists() else {}
    return {"rc": done.returncode, "said": done.stdout.strip().splitlines()[:1],
            "card": {k: card.get(k) for k in ("model_version", "training_label_count")}}


def main(argv: list[str]) -> int:
    if argv and argv[0] == "window":
        project, export_dir, seed, seconds = argv[1:5]
        return window_main(Path(project), Path(export_dir), int(seed), float(seconds))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", choices=["run"])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path("two-windows-out"))
    args = parser.parse_args(argv)
    summary = run(args.seconds, args.out.resolve())
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
