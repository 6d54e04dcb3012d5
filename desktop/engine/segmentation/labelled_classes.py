"""Predictions over the classes that have labels, and over no others.

A learner has an output for every class of the project, but an output that no label has taught
says nothing: left in, it painted most of an image with a class nobody had labelled. So what the
app paints, exports and scores uncertainty on gives such a class no probability: its output is
set to zero and the other classes' are renormalised.

With labels of one class only there is nothing to tell apart, and nothing is predicted: the
expert is asked to label a second class. ilastik and QuPath do the same (their pixel classifiers
train only once two classes have labels); painting the whole picture in the one class would say
nothing and would hide the picture.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

MIN_CLASSES = 2


def restrict(probs: np.ndarray, classes: Iterable[int], axis: int = 0) -> np.ndarray:
    """``probs`` with every class not in ``classes`` at zero and the others summing to one over
    ``axis`` (float32). Where the kept classes have no probability at all, they share it evenly."""
    probs = np.asarray(probs, np.float32)
    kept_classes = sorted(c for c in set(classes) if 0 <= c < probs.shape[axis])
    if len(kept_classes) == probs.shape[axis]:
        return probs  # every class has labels: nothing to take away
    kept = np.take(probs, kept_classes, axis=axis)
    total = kept.sum(axis, keepdims=True)
    np.divide(kept, total, out=kept, where=total > 0)
    np.copyto(kept, np.float32(1 / max(len(kept_classes), 1)), where=total == 0)
    out = np.zeros_like(probs)
    np.moveaxis(out, axis, 0)[kept_classes] = np.moveaxis(kept, axis, 0)
    return out


class LabelledModel:
    """A learner's predictions restricted to ``classes``: the classes its training labels had
    (``SegmentationEngine`` keeps them with the model in use). ``ready`` once the learner is
    trained and has two classes to tell apart; everything that paints, exports or asks with
    probabilities goes through this and not through the learner itself."""

    def __init__(self, learner, classes: Iterable[int] = ()):
        self.learner = learner
        self.classes = tuple(sorted(set(int(c) for c in classes)))

    @property
    def ready(self) -> bool:
        return self.learner.trained and len(self.classes) >= MIN_CLASSES

    def predict_proba(self, image) -> np.ndarray:
        return restrict(self.learner.predict_proba(image), self.classes)

    def predict_grid(self, image, stride: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        return restrict(self.learner.predict_grid(image, stride, window), self.classes)

    def predict_map(self, fmap, stride: int, window: tuple[int, int, int, int]) -> np.ndarray:
        return restrict(self.learner.predict_map(fmap, stride, window), self.classes)

    def predict_points(self, image, yx: np.ndarray) -> np.ndarray:
        return restrict(self.learner.predict_points(image, yx), self.classes, axis=1)

    def predict_labels(self, labels) -> list[np.ndarray]:
        return [restrict(p, self.classes, axis=1) for p in self.learner.predict_labels(labels)]

    def predict_mc(self, image, samples: int) -> np.ndarray:
        return restrict(self.learner.predict_mc(image, samples), self.classes, axis=1)

    def embed_points(self, image, yx: np.ndarray) -> np.ndarray:
        return self.learner.embed_points(image, yx)


def likeliest(column: np.ndarray, classes: Iterable[int], n: int = 3) -> tuple[tuple[int, float], ...]:
    """The ``n`` likeliest of ``classes`` at one pixel, ``(class, probability)`` most likely first,
    from its probabilities ``column`` (C,): a class with no labels is never "likeliest"."""
    labelled = set(classes)
    return tuple((int(i), float(column[i])) for i in np.argsort(column)[::-1] if i in labelled)[:n]


def no_model_words(engine) -> str:
    """Why ``engine`` (a ``SegmentationEngine`` whose model is not ready) has nothing to export."""
    if not engine.learner.trained:
        return "There is no trained model yet: label a few points first."
    names = [c.name for c in engine.project.classes() if c.index in engine.model.classes]
    return (f"The model has labels of one class only ({', '.join(names) or 'none'}): label a second class, "
            "let it train, then export.")


class RestrictedModule(torch.nn.Module):
    """An inference module (image in, class probabilities (1, C, H, W) out) whose output is
    ``restrict``-ed to ``classes``: what the app paints, as one TorchScript model."""

    def __init__(self, module: torch.nn.Module, num_classes: int, classes: Iterable[int]):
        super().__init__()
        self.module = module
        keep = torch.zeros(1, num_classes, 1, 1)
        keep[0, [c for c in classes if 0 <= c < num_classes], 0, 0] = 1.0
        self.register_buffer("keep", keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = self.module(x) * self.keep
        return kept / kept.sum(1, keepdim=True).clamp_min(1e-30)
