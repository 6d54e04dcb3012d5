"""The model folder that ``pointillist predict`` predicts with: ``weights.pt`` and ``model_card.json``.

Why a folder and not the project: predicting needs the weights, the classes and the resolution
slides are worked at, nothing more. A folder holding just those can be sent to cluster workers
and to machines with no copy of the project, and predicting never opens the project's database,
which the app may be writing to at the same time. ``weights.pt`` is the project's model file byte
for byte (a learner's state dict, loaded with ``weights_only``, so a tampered file cannot run
code), and its sha256 tells one model from another when a run is resumed.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from desktop.engine.errors import ProjectError
from desktop.engine.learning.task_engine import KEPT_MODEL_FILES
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.project.records import ModelVersion
from desktop.engine.project.settings import ProjectSettings
from desktop.engine.project.store import Project
from desktop.engine.segmentation.labelled_classes import no_model_words
from models.encoder import MODEL_CARD

CARD_FILE = "model_card.json"
WEIGHTS_FILE = "weights.pt"
CARD_FORMAT = "pointillist-predict-1"
"""Written in every card, so that a folder from ``pointillist export --model`` (TorchScript) or
from a later, different layout is recognised and refused in words, not with a stack trace."""


@dataclass(frozen=True)
class CardClass:
    index: int  # the model's output channel, and the value in the masks
    name: str
    colour: str  # '#rrggbb'


@dataclass(frozen=True)
class ModelCard:
    learner: str
    model_version: int | None  # None: weights from a file the project does not list
    source: str  # the file the weights came from, e.g. 'fast-v7.pt'
    sha256: str  # of weights.pt
    classes: tuple[CardClass, ...]
    slides: ProjectSettings  # slide_mpp and slide_level, as the project works slides
    labelled_classes: tuple[int, ...]  # the classes with training labels; the others get no probability

    @property
    def label(self) -> str:
        """How summaries name the model: its version, or else its file."""
        return str(self.model_version) if self.model_version is not None else self.source


def read_model_card(model_dir: Path) -> ModelCard:
    """The card of a model folder; ProjectError, in words, for what is no such folder."""
    model_dir = Path(model_dir)
    try:
        card = json.loads((model_dir / CARD_FILE).read_text("utf-8"))
    except FileNotFoundError as e:
        raise ProjectError(f"'{model_dir}' holds no {CARD_FILE}: it is not a model folder.") from e
    except (OSError, ValueError) as e:
        raise ProjectError(f"The {CARD_FILE} in '{model_dir}' cannot be read: {e}.") from e
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        hint = (" It holds a TorchScript export ('pointillist export --model'); give the project's model "
                "version or its weights file instead." if (model_dir / "model.pt").exists() else "")
        raise ProjectError(f"'{model_dir}' is not a model folder written by 'pointillist predict'.{hint}")
    try:
        slides = ProjectSettings(slide_mpp=card["slides"]["mpp"], slide_level=card["slides"]["level"])
        classes = tuple(CardClass(int(c["index"]), str(c["name"]), str(c["colour"])) for c in card["classes"])
        labelled = tuple(int(i) for i in card.get("labelled_classes", [c.index for c in classes]))  # older: all
    except (KeyError, TypeError, ValueError) as e:
        raise ProjectError(f"The {CARD_FILE} in '{model_dir}' is incomplete or damaged ({e!r}).") from e
    if len(set(labelled) & {c.index for c in classes}) < 2:
        raise ProjectError(f"The {CARD_FILE} in '{model_dir}' is damaged: its labelled_classes name fewer than two "
                           "of its classes, and a model predicts only between classes that have labels.")
    return ModelCard(card["learner"], card["model_version"], card["source"], card["weights_sha256"], classes, slides,
                     labelled)


def model_choice(text: str | None) -> int | Path | None:
    """``--model``: a version number ('7' or 'v7') unless a file or folder of that name exists."""
    if text is None:
        return None
    if re.fullmatch(r"[vV]?\d+", text) and not Path(text).exists():
        return int(text.lstrip("vV"))
    return Path(text)


def learner_of(project: Project, choice: int | Path | None, default: str) -> str:
    """The learner that ``--model`` names: a version's own, a weights file's own, else ``default``."""
    if isinstance(choice, int):
        return project.model_version(choice).learner
    if isinstance(choice, Path) and choice.is_file():
        return _load(choice.read_bytes(), choice)["learner"]
    return default


def write_model_dir(engine, version: int | None, out_dir: Path, weights: Path | None = None) -> ModelCard:
    """Write ``weights.pt`` and ``model_card.json`` into ``out_dir`` for the model that predictions
    are to come from, and return the card.

    ``engine`` is a ``SegmentationEngine`` of the project, of the learner the model was made by.
    The model is ``weights`` (a weights file) when given, else model version ``version``, else
    the newest published model of the engine's learner whose file loads (the one the app would
    use; what was passed over is in ``engine.problems``). Whatever the source, the weights are
    loaded into the engine's learner first, so a file made for other classes is refused here
    and not on a worker hours later. ProjectError (exit status 2) when there is no such model.
    """
    project = engine.project
    if project.task != "segmentation":
        raise ProjectError(f"'pointillist predict' makes segmentation masks; '{project.folder.name}' is a "
                           f"{project.task} project.")
    if weights is not None:
        record = _record_of_file(project, Path(weights))
        data = _read(Path(weights))
        source = Path(weights).name
    else:
        record = _chosen_version(engine, version)
        path = project.models_dir / record.path
        data = _read(path)
        source = path.name
    state = _load(data, source)
    try:
        engine.learner.load_state_dict(state)
    except ValueError as e:
        raise ProjectError(f"'{source}' does not fit this project ({e}).") from e
    engine.model.classes = engine.training_classes()
    if not engine.model.ready:
        raise ProjectError(no_model_words(engine))
    settings = project.settings()
    card = {
        "format": CARD_FORMAT,
        "task": project.task,
        "learner": engine.learner_name,
        "model_version": record.version if record is not None else None,
        "source": source,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "classes": [{"index": c.index, "name": c.name, "colour": c.colour} for c in project.classes()],
        "slides": {"mpp": settings.slide_mpp, "level": settings.slide_level},
        "labelled_classes": list(engine.model.classes),  # as the app predicts: the others get no probability
        "training_label_count": record.label_count if record is not None else None,
        "validation_label_count": record.validation_count if record is not None else None,
        "input": MODEL_CARD["input"],
        "encoder": {"name": MODEL_CARD["name"], "weights": MODEL_CARD["weights"]["package"]},
    }
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProjectError(f"Cannot make the model folder '{out_dir}': {e.strerror or e}.") from e
    atomic_write_bytes(out_dir / WEIGHTS_FILE, data)
    atomic_write_bytes(out_dir / CARD_FILE, json.dumps(card, indent=2).encode())
    return read_model_card(out_dir)


def _chosen_version(engine, version: int | None) -> ModelVersion:
    project, learner = engine.project, engine.learner_name
    if version is None:
        record = engine.load_latest_weights()
        if record is None:
            raise ProjectError(f"The project '{project.folder.name}' has no saved {learner} model to predict with: "
                               f"train one in the app first, or choose another with --learner or --model.")
        return record
    record = project.model_version(version)
    if record.learner != learner:
        raise ProjectError(f"Model version {version} was made by the {record.learner} learner, not {learner}.")
    if not record.published or record.path is None:
        raise ProjectError(f"Model version {version} was not saved: it did not validate better than the model "
                           f"before it, or the disk refused it. Saved versions: {_saved(project, learner)}.")
    if not (project.models_dir / record.path).is_file():
        raise ProjectError(f"The file of model version {version} is gone: the project keeps the newest "
                           f"{KEPT_MODEL_FILES} of each learner. Saved versions: {_saved(project, learner)}.")
    return record


def _saved(project: Project, learner: str) -> str:
    versions = [str(m.version) for m in project.model_versions() if m.learner == learner and m.published
                and m.path is not None and (project.models_dir / m.path).is_file()]
    return ", ".join(versions) or "none"


def _record_of_file(project: Project, path: Path) -> ModelVersion | None:
    """The model version whose file ``path`` is, when it is one of the project's."""
    for record in project.model_versions():
        if record.path is not None and _same_file(project.models_dir / record.path, path):
            return record
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ProjectError(f"The model file '{path}' does not exist.") from e
    except OSError as e:
        raise ProjectError(f"Cannot read the model file '{path}': {e.strerror or e}.") from e


def _load(data: bytes, source: str | Path) -> dict:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # whatever a damaged or foreign file makes the unpickler raise
        raise ProjectError(f"'{Path(source).name}' is not a Pointillist model file, or it is damaged.") from e
    if not isinstance(state, dict) or state.get("learner") not in ("fast", "deep"):
        raise ProjectError(f"'{Path(source).name}' is not a Pointillist model file.")
    return state
