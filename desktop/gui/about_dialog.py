"""Help > About: the app's version, the card of the model in use, and the licences of the
libraries that ship with the app, read from their installed metadata (nothing is fetched)."""
from __future__ import annotations

import re
import time
from html import escape
from importlib import metadata

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from desktop.engine.project.records import ModelVersion
from desktop.plural import plural

DISTRIBUTION = "pointillist"


def app_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def licence(name: str) -> str:
    """One library's licence as its metadata states it: the SPDX expression, else a one-line
    License field, else the licence classifiers."""
    meta = metadata.metadata(name)
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= 80 and field.upper() != "UNKNOWN":
        return field
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers) or "not stated in its metadata"


def bundled_libraries() -> list[tuple[str, str, str]]:
    """(name, version, licence) of each library the app requires to run (not the test or
    packaging extras); a requirement that is not installed says so."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    rows = []
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
        try:
            rows.append((name, metadata.version(name), licence(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed", "-"))
    return rows


def model_card(model: ModelVersion | None, task: str | None, class_names: list[str]) -> str:
    """What the model in use is, in a few lines of HTML."""
    if model is None:
        return "<p>No model yet: it is trained from your labels, in the background.</p>"
    accuracy = "-" if model.validation_accuracy is None else f"{model.validation_accuracy:.1%}"
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(model.created_at))
    rows = [("Task", task or "-"), ("Learner", model.learner), ("Version", str(model.version)),
            ("File", model.path or "-"), ("Saved", saved),
            ("Trained on", plural(model.label_count, "label")),
            ("Held-out accuracy", f"{accuracy} on {plural(model.validation_count, 'label')}"),
            ("Predicts", ", ".join(class_names) or "-")]
    return _table(rows)


def _table(rows) -> str:
    cells = "".join("<tr>" + "".join(f"<td style='padding-right:12px'>{escape(str(c))}</td>" for c in row) + "</tr>"
                    for row in rows)
    return f"<table>{cells}</table>"


class AboutDialog(QDialog):
    def __init__(self, model: ModelVersion | None = None, task: str | None = None,
                 class_names: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About Pointillist")
        libraries = bundled_libraries()
        html = (f"<h2>Pointillist {escape(app_version())}</h2>"
                "<p>Teach a segmentation or keypoint model by clicking points, offline.</p>"
                "<h3>The model in use</h3>" + model_card(model, task, class_names or []) +
                "<h3>Bundled libraries</h3>" +
                (_table([("Library", "Version", "Licence"), *libraries]) if libraries
                 else "<p>Not installed as a package: the library list is unknown.</p>"))
        self.text = QTextBrowser()
        self.text.setHtml(html)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(640, 560)
