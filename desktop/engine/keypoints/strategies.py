"""The keypoint strategies, one registry: the name, what the score needs, its unit and what it means.

The engine, the service, the benchmark, the command line and the keypoint panel all read it, so
a name means the same everywhere, an unknown one is refused with the choices, and a score is
shown in its own unit (a flip disagreement is pixels, not a share of anything).
"""
from __future__ import annotations

from dataclasses import dataclass

from desktop.engine.errors import PointillistError

HEATMAPS = "the image's heatmaps"
MIRRORED = "the heatmaps of the image and of its mirror image"
POSES = "the heatmaps and the labelled poses"
NOTHING = "nothing: no model"
BATCH = "every unlabelled image's heatmaps and descriptor"


@dataclass(frozen=True)
class Strategy:
    name: str
    needs: str
    unit: str  # "share" (0..1), "px" or "z" (robust z-score); "" for random
    meaning: str  # what a high score says about a keypoint, in words
    in_app: bool = True  # False: a benchmark strategy that picks a batch of images, not one keypoint's score


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("confidence", HEATMAPS, "share", "little of the heatmap lies at its peak"),
    Strategy("entropy", HEATMAPS, "share", "the heatmap is spread out (entropy over its maximum)"),
    Strategy("flip", MIRRORED, "px", "the prediction on the mirror image lands elsewhere"),
    Strategy("plausibility", POSES, "z", "its bones are unlike those in the labelled frames"),
    Strategy("random", NOTHING, "", "nothing: a uniform random score, the baseline"),
    Strategy("spread", BATCH, "share", "unsure images that are also unlike each other and the labelled ones",
             in_app=False),
)}
DEFAULT = "confidence"
SPREAD_SCORE = "confidence"  # the per-keypoint score that ``spread`` ranks images by before spreading them out
APP_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if s.in_app)


def strategy(name: str, *, in_app: bool = False) -> Strategy:
    """The registered strategy ``name``; with ``in_app``, only one that scores one image's
    keypoints. A PointillistError naming the choices otherwise."""
    choices = APP_STRATEGIES if in_app else tuple(STRATEGIES)
    if name not in choices:
        raise PointillistError(f"Unknown keypoint strategy '{name}'"
                               f"{' for the app (spread is a benchmark strategy)' if name == 'spread' else ''}"
                               f": choose one of {', '.join(choices)}.")
    return STRATEGIES[name]


def confidence_from_score(name: str, score: float) -> float | None:
    """The model's confidence in a proposal, when the strategy's score says it: ``confidence``
    scores the heatmap mass away from the peak, so one minus it is the confidence the engine
    reports; no other score says anything of it."""
    return float(min(max(1.0 - score, 0.0), 1.0)) if name == "confidence" else None


def describe_score(name: str, score: float) -> str:
    """A strategy's score for the person at the screen, in its unit."""
    unit = STRATEGIES[name].unit
    if unit == "px":
        return f"{name}: {score:.0f} px apart"
    if unit == "z":
        return f"{name}: {score:.1f} spreads from the usual bone lengths"
    if unit == "share":
        return f"{name}: {score:.0%} uncertain"
    return name
