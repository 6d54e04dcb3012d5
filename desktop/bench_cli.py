"""``pointillist bench ...``: the benchmarks' command line, apart from the app's own commands.

Each benchmark's module is imported only when it runs, so ``pointillist --help`` stays quick.
"""
from __future__ import annotations

import json
from pathlib import Path

from desktop.engine.errors import PointillistError
from desktop.engine.keypoints.strategies import STRATEGIES as KEYPOINT_STRATEGIES
from desktop.engine.segmentation.strategies import STRATEGIES as SEGMENTATION_STRATEGIES


def add_bench(sub) -> None:
    """``pointillist bench KIND ...``: the parser of every benchmark."""
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
    seg.add_argument("--strategy", required=True, choices=list(SEGMENTATION_STRATEGIES))
    seg.add_argument("--learner", choices=["fast", "deep"], default="fast")
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--dense", action="store_true", help="train once on every mask pixel (the ceiling)")
    seg.add_argument("--max-images", type=int, default=None)
    seg.add_argument("--steps", type=int, default=None, help="training steps per round")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    seg.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ui = kinds.add_parser("ui", help="click and overlay latency of the real window, offscreen")
    ui.add_argument("--project", type=Path, default=None, help="a project (default: a fresh demo project)")
    ui.add_argument("--clicks", type=int, default=20)
    ui.add_argument("--image-size", type=int, default=None, metavar="N",
                    help="instead of --project: a project of one N x N tissue picture, to compare sizes")
    ui.add_argument("--screenshot", type=Path, default=None, help="save the window as a PNG when done")
    kp = kinds.add_parser("keypoints", help="active learning of keypoints with a simulated annotator")
    kp.add_argument("--labels", type=Path, required=True, help="DeepLabCut CSV or COCO JSON")
    kp.add_argument("--images-root", type=Path, required=True, help="the folder image paths are relative to")
    kp.add_argument("--test-fraction", type=float, default=0.2)
    kp.add_argument("--initial-images", type=int, required=True)
    kp.add_argument("--images-per-round", type=int, required=True)
    kp.add_argument("--rounds", type=int, required=True)
    kp.add_argument("--strategy", required=True, choices=list(KEYPOINT_STRATEGIES))
    kp.add_argument("--learner", choices=["fast", "deep"], default="fast")
    kp.add_argument("--correct-threshold", type=float, default=3.0, help="pixels")
    kp.add_argument("--seed", type=int, default=0)
    kp.add_argument("--steps", type=int, default=None, help="training steps per round")
    kp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    kp.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (1 is fastest on a machine busy with other jobs)")
    kp.add_argument("--symmetric", default=None, help="left/right pairs, e.g. paw1LH_top:paw4RH_top,...")
    kp.add_argument("--edges", default=None, help="skeleton edges (default for plausibility: every pair)")
    kp.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    cmp = kinds.add_parser("compare", help="strategies side by side at equal annotation cost, over seeds")
    cmp.add_argument("results", type=Path, nargs="+", help="JSON files written by bench segmentation/keypoints --out")
    cmp.add_argument("--at", type=float, default=None,
                     help="the cost to compare at: clicks (keypoints) or labelled pixels (segmentation); "
                          "default: the most that every run reached")
    slides = kinds.add_parser("slides", help="slide open, first view, tile read and prediction speed")
    which = slides.add_mutually_exclusive_group(required=True)
    which.add_argument("--slide", type=Path, help="a slide or image file to measure")
    which.add_argument("--generate-ome-tiff", type=int, metavar="SIZE",
                       help="write a SIZE x SIZE pyramidal OME-TIFF to a temporary folder and measure it")
    head = kinds.add_parser("head", help="one fast-learner prediction: the whole image, a view, the query grid")
    head.add_argument("--image-size", type=int, required=True, metavar="N", help="an N x N tissue picture")
    head.add_argument("--threads", type=int, default=1, help="torch threads (the app's engine uses 1)")
    pred = kinds.add_parser("predict", help="pointillist predict's speed and memory on 1, 2, ... local workers")
    pred.add_argument("--project", type=Path, required=True, help="its newest saved model predicts")
    pred.add_argument("--inputs", type=Path, nargs="+", required=True,
                      help="image or slide files, folders or .txt lists, as pointillist predict takes them")
    pred.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,4 (1, the baseline, is always run)")
    pred.add_argument("--learner", choices=["fast", "deep"], default="fast")
    pred.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    pred.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def _bench_ui(args) -> int:
    from desktop.gui.bench_ui import run

    if args.image_size is not None and args.project is not None:
        raise PointillistError("Give --project or --image-size, not both.")
    print(json.dumps(run(args.project, clicks=args.clicks, screenshot=args.screenshot, image_size=args.image_size)))
    return 0


def _bench_head(args) -> int:
    from desktop.engine.bench import head as bench_head

    if args.image_size < 64:
        raise PointillistError(f"--image-size must be at least 64 pixels, not {args.image_size}.")
    print(json.dumps(bench_head.run(args.image_size, args.threads)))
    return 0


def _bench_slides(args) -> int:
    from desktop.engine.bench import slides as bench_slides

    print(json.dumps(bench_slides.run(args.slide, args.generate_ome_tiff)))
    return 0


def _bench_segmentation(args) -> int:
    from desktop.engine.bench import segmentation as bench_segmentation

    result = bench_segmentation.run(
        args.train_images, args.train_masks, args.test_images, args.test_masks,
        pixels_per_round=args.pixels_per_round, rounds=args.rounds, strategy=args.strategy,
        learner=args.learner, seed=args.seed, ignore_index=args.ignore_index, dense=args.dense,
        max_images=args.max_images, steps=args.steps, device=args.device,
        log=lambda line: print(line, flush=True))
    _write_json(result, args.out)
    print(json.dumps(result))
    return 0


def _bench_compare(args) -> int:
    from desktop.engine.bench import compare as bench_compare

    print(bench_compare.format_table(bench_compare.compare(args.results, args.at)))
    return 0


def _bench_keypoints(args) -> int:
    from desktop.engine.bench import keypoints as bench_keypoints

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = bench_keypoints.run(
        args.labels, args.images_root, initial_images=args.initial_images,
        images_per_round=args.images_per_round, rounds=args.rounds, strategy=args.strategy,
        learner=args.learner, test_fraction=args.test_fraction, correct_threshold=args.correct_threshold,
        seed=args.seed, steps=args.steps, device=args.device, symmetric=args.symmetric, edges=args.edges,
        log=lambda line: print(line, flush=True))
    _write_json(result, args.out)
    print(json.dumps(result))
    return 0


def _bench_predict(args) -> int:
    from desktop.engine.bench import predict as bench_predict

    try:
        counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        raise SystemExit(f"--workers {args.workers}: give worker counts separated by commas, e.g. 1,2,4") from None
    result = bench_predict.run(args.project, args.inputs, counts, learner=args.learner, device=args.device,
                               log=lambda line: print(line, flush=True))
    _write_json(result, args.out)
    print(json.dumps(result))
    return 0


def _write_json(result: dict, out: Path | None) -> None:
    """``--out``: the results as JSON, for ``pointillist bench compare``."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


def run_bench(args) -> int:
    """Run the benchmark ``args.bench`` names."""
    return {"segmentation": _bench_segmentation, "ui": _bench_ui, "slides": _bench_slides, "head": _bench_head,
            "keypoints": _bench_keypoints, "compare": _bench_compare, "predict": _bench_predict}[args.bench](args)
