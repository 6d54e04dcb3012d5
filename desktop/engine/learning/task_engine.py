"""What every task's engine shares: the project's images, the publish-gated training round, and
the model files.

A task (segmentation, keypoints) subclasses ``TaskEngine`` and supplies its learner, its labelled
sets (what to train on and what to hold back) and its validation score. Training, the publish
gate, saving, pruning and restoring model files are the same for every task, so the app's
engine thread and the benchmarks drive one API whatever the task.
"""
from __future__ import annotations

import copy
import io
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np
import torch

from desktop.engine.errors import ProjectError
from desktop.engine.images.video import read_pixels
from desktop.engine.learning.base import ImageRef, Interrupted, pick_device
from desktop.engine.learning.publish_gate import PublishGate, held_back_signature
from desktop.engine.project.atomic import atomic_write_bytes
from desktop.engine.project.records import ModelVersion
from desktop.engine.project.store import Project

LEARNERS = ("fast", "deep")
KEPT_MODEL_FILES = 3
"""Model files kept per learner, the newest published versions: enough to fall back past a
damaged newest file, few enough not to fill the disk (a deep model with its optimizer state is
tens of megabytes)."""


@dataclass(frozen=True)
class TrainReport:
    version: int | None  # model version published by this round, None when refused or skipped
    loss: float
    train_labels: int
    validation_labels: int
    validation_accuracy: float | None
    published: bool
    seconds: float
    note: str | None = None  # what the learner gave up to keep training (FitReport.note)


class LabelledSets(NamedTuple):
    """A task's labels split for one round: what the learner fits and what is held back to
    validate on (each a list of the task's label groups), and how many labels each holds. A
    task may validate on a sample of the held-back labels (``validation_sample``); its count
    is then of them all, none of which is trained on."""

    train: list
    validation: list
    train_count: int
    validation_count: int


def is_validation(label_ids: np.ndarray, fraction: float) -> np.ndarray:
    """Deterministic hold-out: a label is for validation by a hash of its id, so it stays so."""
    if fraction <= 0:
        return np.zeros(len(label_ids), bool)
    h = (np.asarray(label_ids, np.uint64) * np.uint64(2654435761)) % np.uint64(1000)
    return h < np.uint64(int(round(fraction * 1000)))


VALIDATION_SAMPLE = 4096
"""A round scores a model on at most this many held-back labels (``validation_sample``)."""


def validation_sample(label_ids: np.ndarray, limit: int = VALIDATION_SAMPLE) -> np.ndarray:
    """Which of the held-back ``label_ids`` a round scores on (a mask): all of them up to
    ``limit``, else the ``limit`` whose ids hash lowest.

    Why: with 100,000 labels the 10,000 held back took 0.14 s a round to score, growing with the
    labels (issue 19). The sample stays sound for the publish gate: both models, the one in use
    and the new one, are scored on the same labels (the gate measures the model in use again
    whenever the sample changes, by its signature); the sample depends only on the label ids,
    so it is the same from round to round, and a new held-back label enters it only in place
    of one that hashes higher; and on 4,096 labels an accuracy of 0.9 has a standard error of
    0.005, a quarter of the gate's tolerance (0.02), less still for the difference of two
    models scored on the same labels. The hash is not ``is_validation``'s, so the sample is
    spread over the held-back labels, whatever their ids."""
    ids = np.asarray(label_ids, np.int64)
    chosen = np.ones(len(ids), bool)
    if len(ids) > limit:
        key = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(16)  # Fibonacci hashing
        chosen[:] = False
        chosen[np.lexsort((ids, key))[:limit]] = True
    return chosen


class TaskEngine:
    """The base of ``SegmentationEngine`` and ``KeypointEngine``. A subclass sets ``learner``
    (anything with ``fit``, ``trained``, ``state_dict`` and ``load_state_dict``) and implements
    ``labelled_sets``, ``held_back`` and ``validation_accuracy``; ``default_steps`` is a
    training round's length when the caller names none."""

    default_steps = 150

    def __init__(self, project: Project, learner: str, device: str, seed: int, validation_fraction: float,
                 save_models: bool, image_cache_items: int):
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
        self.project = project
        self.learner_name = learner
        self.device = pick_device(device)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.validation_fraction = validation_fraction
        self.save_models = save_models
        self.version: int | None = None
        self.problems: list[str] = []
        """What went wrong without stopping the engine (a damaged model file passed over, a model
        that could not be saved), in words for the user; whoever drives the engine shows these
        and clears the list."""
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._image_cache_items = image_cache_items
        self._gate = PublishGate()
        self._models_from = project.models_from_version()  # the classes or keypoints this learner is made for

    # ----- what a task supplies ------------------------------------------------------------------
    def labelled_sets(self) -> LabelledSets:
        raise NotImplementedError

    def held_back(self, validation: list) -> Iterable[tuple[str, np.ndarray]]:
        """(image key, label array) pairs that identify the held-back labels (see PublishGate)."""
        raise NotImplementedError

    def validation_accuracy(self, validation: list) -> float:
        raise NotImplementedError

    # ----- images ----------------------------------------------------------------------------
    def image(self, image_id: int) -> np.ndarray:
        """uint8 RGB pixels of a project image or video frame (small LRU cache); raises
        ImageReadError."""
        if image_id in self._images:
            self._images.move_to_end(image_id)
            return self._images[image_id]
        info = self.project.image(image_id)
        pixels = read_pixels(info.source, info.frame)
        self._images[image_id] = pixels
        while len(self._images) > self._image_cache_items:
            self._images.popitem(last=False)
        return pixels

    def training_on(self, train: list) -> None:
        """The round's training labels are known, before anything is scored: a task may adapt
        its model to them (segmentation: the classes they have). Nothing by default."""

    def ref(self, image_id: int) -> ImageRef:
        return ImageRef(f"image-{image_id}", lambda: self.image(image_id))

    # ----- training --------------------------------------------------------------------------
    def train(self, steps: int | None = None, interrupted: Interrupted | None = None) -> TrainReport:
        """One training round on the current labels; publish if validation did not get worse
        than the model in use, measured on today's held-back labels. A round that
        ``interrupted()`` stops (asked before it starts and between steps, once there is a model)
        publishes nothing and leaves the model as it was."""
        steps = self.default_steps if steps is None else steps
        if interrupted is not None and self.learner.trained and interrupted():
            return TrainReport(None, float("nan"), 0, 0, None, False, 0.0)
        if self.project.models_from_version() != self._models_from:  # changed under this learner: not its to fit
            return TrainReport(None, float("nan"), 0, 0, None, False, 0.0,
                               "The project's classes or keypoints changed: open the project again to train a "
                               "model for them")
        start = time.perf_counter()
        train, val, n_train, n_val = self.labelled_sets()
        if not train:
            return TrainReport(None, float("nan"), n_train, n_val, None, False, 0.0)
        self.training_on(train)
        signature = held_back_signature(self.held_back(val))
        before = copy.deepcopy(self.learner.state_dict()) if self.learner.trained else None
        in_use = (self._gate.score_in_use(signature, lambda: self.validation_accuracy(val))
                  if before is not None and val else None)
        report = self.learner.fit(train, steps, interrupted if before is not None else None)
        if report.interrupted:
            self.learner.load_state_dict(before)
            return TrainReport(None, report.loss, n_train, n_val, None, False, time.perf_counter() - start)
        note = getattr(report, "note", None)
        accuracy = self.validation_accuracy(val) if val else None
        if before is not None and not self._gate.allows(accuracy, in_use):
            self.learner.load_state_dict(before)
            self.project.add_model_version(self.learner_name, n_train, None, n_val, accuracy, published=False)
            return TrainReport(None, report.loss, n_train, n_val, accuracy, False, time.perf_counter() - start, note)
        self._gate.published(signature, accuracy)
        self._publish(n_train, n_val, accuracy)
        return TrainReport(self.version, report.loss, n_train, n_val, accuracy, True, time.perf_counter() - start,
                           note)

    # ----- model files -----------------------------------------------------------------------
    def _publish(self, n_train: int, n_val: int, accuracy: float | None) -> None:
        """Make the learner's weights the next model version: the version number and its file
        name are claimed together (see ``Project.reserve_model_version``), the file is written,
        then the version is published and old files are cleaned up."""
        if not self.save_models:
            self.version = self.project.add_model_version(self.learner_name, n_train, None, n_val, accuracy)
            return
        version, name = self.project.reserve_model_version(self.learner_name, n_train, n_val, accuracy)
        saved = self._save_weights(name)
        self.project.publish_model_version(version, saved)
        self.version = version
        if saved:
            self._delete_old_weights()

    def _save_weights(self, name: str) -> bool:
        """Write the weights to ``models/NAME`` atomically (see ``atomic.py``): one file per version,
        so that a damaged file leaves the one before it to fall back on. False when the disk
        refused it (said in ``problems``: the model stays in use, and training goes on)."""
        buffer = io.BytesIO()
        torch.save(self.learner.state_dict(), buffer)
        try:
            atomic_write_bytes(self.project.models_dir / name, buffer.getvalue())
        except ProjectError as e:
            self.problems.append(f"{e} The model in use is not affected; the next version will be saved "
                                 "again.")
            return False
        return True

    def _delete_old_weights(self) -> None:
        """Delete the files of this learner's published versions but the newest
        ``KEPT_MODEL_FILES``. Only files that the project records as written by the app are
        touched: anything else in ``models/`` (a user's ``fast-best-keep.pt``) is left alone.
        Best effort: a file that stays harms nothing."""
        ours = [m for m in self.project.model_versions()
                if m.learner == self.learner_name and m.path and m.published]
        removed = []
        for model in ours[:-KEPT_MODEL_FILES]:
            try:
                (self.project.models_dir / model.path).unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(model.version)
        if removed:
            self.project.forget_model_files(removed)

    def load_latest_weights(self) -> ModelVersion | None:
        """Restore this learner's newest published model whose file loads, and return its
        version; None when there is none, or when another learner published since (its labels
        are newer: better to train afresh), or when the project's classes or keypoints changed
        since (``Project.models_from_version``: a model's channels are those it was made for, so
        it is trained afresh, from scratch). A newer file that is missing, damaged or made for other
        classes is passed over and said so in ``problems``. Files load with ``weights_only``, so a
        tampered one cannot run code."""
        passed_over = []
        oldest = self.project.models_from_version()
        for model in reversed(self.project.model_versions()):
            if not model.published or model.path is None:
                continue
            if model.learner != self.learner_name or model.version < oldest:
                break
            path = self.project.models_dir / model.path
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                passed_over.append(f"'{path.name}' is missing")
                continue
            except Exception:  # whatever a damaged file makes the unpickler raise
                passed_over.append(f"'{path.name}' is damaged or incomplete")
                continue
            try:
                self.learner.load_state_dict(state)
            except Exception:
                passed_over.append(f"'{path.name}' does not fit this project (made for other classes or "
                                   "keypoints, or by an older version)")
                continue
            self.version = model.version
            if passed_over:
                self.problems.append(f"A saved model cannot be used: {'; '.join(passed_over)}. Using the "
                                     f"saved version {model.version} instead; your labels are safe.")
            return model
        if passed_over:
            self.problems.append(f"A saved model cannot be used: {'; '.join(passed_over)}. The model will "
                                 "be retrained from your labels, which are safe.")
        return None
