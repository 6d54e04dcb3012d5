"""The architecture rules of pyproject.toml's ``[tool.importlinter]`` hold, and are noticed when broken.

``lint-imports`` runs in a subprocess: it finds the packages it checks through the import
system, and for the planted cases it must find a temporary copy of the source rather than the
installed (editable) ``desktop`` that this process has imported already. A run takes a fraction
of a second. ``--no-cache`` keeps import-linter from writing its cache into the checkout.
"""
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = {"engine-without-qt", "models-standalone", "gui-without-torch", "tasks-independent", "engine-layers",
             "engine-acyclic"}


def lint_imports(folder: Path, *contracts: str) -> subprocess.CompletedProcess:
    """``lint-imports`` on ``folder``'s pyproject.toml, the packages imported from ``folder``."""
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
               "--no-cache", "--no-logo"] + [f"--contract={c}" for c in contracts]
    env = {**os.environ, "PYTHONPATH": str(folder), "COLUMNS": "1000"}  # wide: one line per finding
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def test_the_rules_are_all_there():
    """Dropping a contract from pyproject.toml is a decision, not an accident."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_packages"] == ["desktop", "models"] and config["include_external_packages"]
    assert {c["id"] for c in config["contracts"]} == CONTRACTS


def test_the_contracts_hold():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


# One violation per contract, each in new modules named ``planted*`` so the report can be
# matched to it: (contract, {file: source}, text the report must contain).
PLANTED = {
    "engine-without-qt": ({"desktop/engine/images/planted.py": "import pyqtgraph\n"},
                          "desktop.engine.images.planted -> pyqtgraph"),
    "models-standalone": ({"models/planted.py": "from desktop.engine import errors\n"},
                          "models.planted -> desktop.engine.errors"),
    # Through the engine, as a real regression would come: the GUI imports a torch-free-looking
    # engine module that imports torch at its top.
    "gui-without-torch": ({"desktop/engine/project/planted.py": "import torch\n",
                           "desktop/gui/planted.py": "from desktop.engine.project import planted\n"},
                          "desktop.engine.project.planted -> torch"),
    "tasks-independent": ({"desktop/engine/keypoints/planted.py": "from desktop.engine.segmentation import selection\n"},
                          "desktop.engine.keypoints.planted -> desktop.engine.segmentation.selection"),
    "engine-layers": ({"desktop/engine/images/planted.py": "from desktop.engine.project import store\n"},
                      "desktop.engine.images.planted -> desktop.engine.project.store"),
    "engine-acyclic": ({"desktop/engine/images/planted_a.py": "from desktop.engine.images import planted_b\n",
                        "desktop/engine/images/planted_b.py": "from desktop.engine.images import planted_a\n"},
                       "No cycles are allowed in desktop.engine.images"),
}


@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_a_planted_violation_breaks_its_contract(tmp_path, contract):
    """The real configuration on a copy of the real source with one violation added: the
    contract reports it, so a green run above means the rule was checked."""
    assert set(PLANTED) == CONTRACTS
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for package in ("desktop", "models"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    files, reported = PLANTED[contract]
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    run = lint_imports(tmp_path, contract)
    output = run.stdout + run.stderr
    assert run.returncode == 1 and "BROKEN" in output and reported in output, output
