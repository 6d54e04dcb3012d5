"""The layer rule of docs/architecture.md, checked in clean interpreters: the GUI never imports torch,
the engine and the models never import Qt."""
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(package: str) -> list[str]:
    """``package`` and every module below it, sub-packages included (walk_packages descends into
    a sub-package only when given the prefix that makes it importable)."""
    folder = ROOT.joinpath(*package.split("."))
    return [package] + [m.name for m in pkgutil.walk_packages([str(folder)], f"{package}.")
                        if not m.name.rsplit(".", 1)[-1].startswith("_")]


def loaded_after_import(names: list[str]) -> set[str]:
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""})
    return set(out.stdout.split())


def test_the_listing_finds_the_modules():
    assert "desktop.gui.viewer" in modules("desktop.gui")
    listed = modules("desktop.engine")
    assert {"desktop.engine.service.loop", "desktop.engine.learning.fast",
            "desktop.engine.keypoints.learners"} <= set(listed)


def test_gui_modules_do_not_import_torch():
    names = modules("desktop.gui")
    loaded = loaded_after_import(names)
    assert set(names) <= loaded and "PySide6.QtWidgets" in loaded
    assert not {m for m in loaded if m == "torch" or m.startswith("torch.")}


def test_engine_and_models_do_not_import_qt():
    names = modules("desktop.engine") + modules("models")
    loaded = loaded_after_import(names)
    assert "desktop.engine.segmentation.engine" in loaded and "torch" in loaded
    assert not {m for m in loaded if m.startswith(("PySide6", "pyqtgraph", "PyQt"))}
