"""``pointillist``: the desktop app, and the headless commands beside it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="measure speed and label efficiency")
    kinds = bench.add_subparsers(dest="bench", required=True)
    seg = kinds.add_parser("segmentation", help="PixelPick-style active-learning benchmark")
    seg.add_argument("--train-images", type=Path, required=True)
    seg.add_argument("--train-masks", type=Path, required=True)
    seg.add_argument("--test-images", type=Path, required=True)
    seg.add_argument("--test-masks", type=Path, required=True)
    seg.add_argument("--ignore-index", type=int, default=None)
    seg.add_argument("--pixels-per-round", type=int, required=True)
    seg.add_argument("--rounds", type=int, required=True)
    seg.add_argument("--strategy", required=True,
                     choices=["random", "entropy", "least_confidence", "margin", "bald"])
    seg.add_argument("--learner", choices=["fast", "deep"], default="fast")
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--dense", action="store_true", help="train once on every mask pixel (the ceiling)")
    seg.add_argument("--max-images", type=int, default=None)
    seg.add_argument("--steps", type=int, default=None, help="training steps per round")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    seg.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def _bench_segmentation(args) -> int:
    import json

    from desktop.engine import bench_segmentation

    result = bench_segmentation.run(
        args.train_images, args.train_masks, args.test_images, args.test_masks,
        pixels_per_round=args.pixels_per_round, rounds=args.rounds, strategy=args.strategy,
        learner=args.learner, seed=args.seed, ignore_index=args.ignore_index, dense=args.dense,
        max_images=args.max_images, steps=args.steps, device=args.device,
        log=lambda line: print(line, flush=True))
    bench_segmentation.write_json(result, args.out)
    print(json.dumps(result))
    return 0


def _gui(args) -> int:
    from desktop.gui.app import run_app

    return run_app(project=args.project)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = argparse.ArgumentParser(prog="pointillist", description=__doc__)
    sub = commands.add_subparsers(dest="command", required=True)
    _add_bench(sub)
    if argv and argv[0] in sub.choices:
        args = commands.parse_args(argv)
        return {"segmentation": _bench_segmentation}[args.bench](args)
    gui = argparse.ArgumentParser(prog="pointillist", description=__doc__,
                                  epilog=f"commands: {', '.join(sub.choices)} (see 'pointillist COMMAND -h')")
    gui.add_argument("project", nargs="?", type=Path, help="a project folder to open")
    return _gui(gui.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
