"""The segmentation strategies, one registry: the name, what the score needs and what it means.

The engine, the slide path, the service and the command line all read it, so a name means the
same everywhere, and a name that is unknown (or asks for what a path cannot give) is refused
with the choices, never quietly replaced by another.
"""
from __future__ import annotations

from dataclasses import dataclass

from desktop.engine.errors import PointillistError

PROBABILITIES = "one prediction's class probabilities"
MC_SAMPLES = "several predictions with dropout on (MC dropout)"
NOTHING = "nothing: no model"


@dataclass(frozen=True)
class Strategy:
    name: str
    needs: str  # PROBABILITIES, MC_SAMPLES or NOTHING
    meaning: str  # what a high score says about a pixel, in words


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("margin", PROBABILITIES, "the two likeliest classes are close (1 - their difference)"),
    Strategy("entropy", PROBABILITIES, "the probability is spread over the classes (Shannon entropy)"),
    Strategy("least_confidence", PROBABILITIES, "the likeliest class is not very likely (1 - its probability)"),
    Strategy("bald", MC_SAMPLES, "the model's own variations disagree (mutual information, BALD)"),
    Strategy("random", NOTHING, "nothing: a uniform random score, the baseline"),
)}
DEFAULT = "margin"


def strategy(name: str, *, needs: tuple[str, ...] | None = None, where: str = "") -> Strategy:
    """The registered strategy ``name``; a PointillistError naming the choices when it is unknown,
    or when ``needs`` (what the caller can give) does not hold what it needs."""
    found = STRATEGIES.get(name)
    if found is None:
        raise PointillistError(f"Unknown segmentation strategy '{name}': choose one of {', '.join(STRATEGIES)}.")
    if needs is not None and found.needs not in needs:
        usable = [s.name for s in STRATEGIES.values() if s.needs in needs]
        raise PointillistError(f"The strategy '{name}' needs {found.needs}, which {where or 'this path'} does not "
                               f"compute; choose one of {', '.join(usable)}.")
    return found
