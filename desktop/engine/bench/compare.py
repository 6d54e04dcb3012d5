"""``pointillist bench compare``: strategies side by side, at equal annotation cost.

Benchmark runs of different strategies do not end at the same cost: in the keypoint benchmark
an uncertain image needs more corrections than a typical one, so after the same number of
images the uncertainty strategies have paid more clicks than ``random``. Comparing their last
rounds would flatter whichever clicked more. This reads the JSON files that ``bench
segmentation`` and ``bench keypoints`` write, puts every run's score on the same cost (linear
interpolation between the rounds either side of it; never extrapolated), and averages each
strategy over its seeds.

Runs of one algorithm differ from seed to seed by more than strategies differ from each other
(on MoNuSeg about 0.015 mIoU; on the mirror-mouse keypoints 4 px or more), so a mean alone can
mislead. Each strategy is therefore also set against ``random`` on the seeds both ran (the
same seed gives both the same start and test split): the mean difference, its standard error,
and on how many seeds it was better.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from desktop.engine.errors import PointillistError

# What each benchmark pays with and what it scores, and whether lower is better.
_KINDS = {
    "keypoints": ("clicks", "rmse_px", True),
    "segmentation": ("labelled_pixels", "miou", False),
}


@dataclass(frozen=True)
class Run:
    path: Path
    strategy: str
    learner: str
    seed: int
    cost: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class StrategyResult:
    strategy: str
    scores: list[float]  # one per run, at the common cost
    seeds: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def _kind(rounds: list[dict], path: Path) -> str:
    for kind, (cost, score, _) in _KINDS.items():
        if all(cost in r and score in r for r in rounds):
            return kind
    raise PointillistError(f"{path}: not a segmentation or keypoint benchmark result (no per-round cost and score).")


def load_runs(paths: list[Path]) -> tuple[str, list[Run]]:
    """Read result files; all must come from the same benchmark."""
    runs, kinds = [], set()
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            rounds = data["rounds"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PointillistError(f"{path}: cannot read a benchmark result ({e}).") from e
        if not rounds:
            raise PointillistError(f"{path}: has no rounds (a --dense result has nothing to compare).")
        kind = _kind(rounds, Path(path))
        kinds.add(kind)
        cost_key, score_key, _ = _KINDS[kind]
        try:
            cost = np.array([r[cost_key] for r in rounds], float)
            score = np.array([r[score_key] for r in rounds], float)
            run = Run(Path(path), str(data.get("strategy")), str(data.get("learner")), int(data.get("seed") or 0),
                      cost, score)
        except (TypeError, ValueError) as e:
            raise PointillistError(f"{path}: cannot read a benchmark result ({e}).") from e
        if (np.diff(cost) < 0).any() or not np.isfinite(cost).all():
            raise PointillistError(f"{path}: its {cost_key} do not grow from round to round.")
        runs.append(run)
    if len(kinds) != 1:
        raise PointillistError("These files mix segmentation and keypoint results: compare one benchmark at a time.")
    if len({r.learner for r in runs}) > 1:
        raise PointillistError("These files mix learners (" + ", ".join(sorted({r.learner for r in runs})) +
                               "): compare one learner at a time.")
    seen: dict[tuple[str, int], Path] = {}
    for run in runs:
        other = seen.setdefault((run.strategy, run.seed), run.path)
        if other != run.path:
            raise PointillistError(f"{run.path} and {other} are both {run.strategy}, seed {run.seed}: "
                                   "give each run once.")
    return kinds.pop(), runs


def score_at(run: Run, cost: float) -> float:
    """The run's score at ``cost``, interpolated between its rounds; an error outside them."""
    if cost < run.cost[0] or cost > run.cost[-1]:
        raise PointillistError(f"{run.path}: its rounds cover {run.cost[0]:g} to {run.cost[-1]:g}, not {cost:g}.")
    return float(np.interp(cost, run.cost, run.score))


def compare(paths: list[Path], at: float | None = None) -> dict:
    """Each strategy's mean score at cost ``at`` (default: the most that every run reached)."""
    kind, runs = load_runs(paths)
    cost_key, score_key, lower_is_better = _KINDS[kind]
    if at is None:
        at = float(min(run.cost[-1] for run in runs))
        start = max(run.cost[0] for run in runs)
        if start > at:
            raise PointillistError(f"These runs share no {cost_key}: one starts at {start:g}, another ends at "
                                   f"{at:g}.")
    by_strategy: dict[str, StrategyResult] = {}
    for run in sorted(runs, key=lambda r: (r.strategy, r.seed)):
        entry = by_strategy.setdefault(run.strategy, StrategyResult(run.strategy, [], []))
        entry.scores.append(score_at(run, at))
        entry.seeds.append(run.seed)
    ranked = sorted(by_strategy.values(), key=lambda s: s.mean if lower_is_better else -s.mean)
    baseline = by_strategy.get("random")
    return {"benchmark": kind, "cost": cost_key, "at": at, "score": score_key,
            "lower_is_better": lower_is_better, "learners": sorted({r.learner for r in runs}),
            "strategies": [{"strategy": s.strategy, "mean": s.mean, "seeds": s.seeds, "scores": s.scores,
                            "vs_random": None if baseline is None or s is baseline
                            else paired_with(s, baseline, lower_is_better)}
                           for s in ranked]}


def paired_with(result: StrategyResult, baseline: StrategyResult, lower_is_better: bool) -> dict | None:
    """How much better ``result`` did than ``baseline`` on the seeds both ran (positive: better),
    with the standard error of that mean; None when they share no seed."""
    theirs = dict(zip(baseline.seeds, baseline.scores))
    gains = [(theirs[seed] - v) if lower_is_better else (v - theirs[seed])
             for seed, v in zip(result.seeds, result.scores) if seed in theirs]
    if not gains:
        return None
    error = float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else None
    return {"seeds": len(gains), "better_by": float(np.mean(gains)), "standard_error": error,
            "better_on": int(sum(g > 0 for g in gains))}


def format_table(result: dict) -> str:
    better = "lower" if result["lower_is_better"] else "higher"
    lines = [f"{result['score']} at {result['at']:g} {result['cost']} ({better} is better; "
             f"learner {', '.join(result['learners'])}):"]
    for s in result["strategies"]:
        runs = ", ".join(f"seed {seed}: {v:.4g}" for seed, v in zip(s["seeds"], s["scores"]))
        lines.append(f"  {s['strategy']:<17} mean {s['mean']:.4g}  ({runs})")
        paired = s.get("vs_random")
        if paired:
            error = "" if paired["standard_error"] is None else f" +- {paired['standard_error']:.2g} (standard error)"
            seeds = f"{paired['seeds']} seed" + ("s" if paired["seeds"] != 1 else "")
            lines.append(f"  {'':<17} vs random on the same {seeds}: better by {paired['better_by']:.3g}{error}, "
                         f"better on {paired['better_on']} of {paired['seeds']}")
    return "\n".join(lines)
