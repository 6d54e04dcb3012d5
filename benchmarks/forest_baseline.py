"""The baseline an ilastik user would pick: a random forest on a filter bank, beside Pointillist.

Both learn from the same K random labelled pixels per training image, drawn exactly as round 1
of ``pointillist bench segmentation --strategy random --seed S`` draws them, and both are scored
by mIoU on every pixel of the test images. The forest is ilastik's pixel classifier as
scikit-image has it: 100 trees on ``multiscale_basic_features`` (intensity, edges, texture; sigma
1 to 16), grey images as one channel. Pointillist is the real bench run, one round.

Needs the bench extra (``pip install -e .[bench]``: scikit-learn). Not part of the test run.

    python benchmarks/forest_baseline.py --train-images T/image --train-masks T/label \\
        --test-images V/image --test-masks V/label --pixels 10 100 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage.feature import multiscale_basic_features
from sklearn.ensemble import RandomForestClassifier

from desktop.engine.bench import segmentation as bench
from desktop.engine.errors import PointillistError
from desktop.engine.images.pictures import read_image, read_mask
from desktop.engine.segmentation.metrics import confusion, iou_per_class


def filter_bank(path: Path) -> np.ndarray:
    """(H, W, F) float32 ilastik-style features; a grey picture (read as RGB) counts once."""
    image = read_image(path)
    if (image[..., :1] == image).all():
        image = image[..., 0]
    return multiscale_basic_features(image, channel_axis=-1 if image.ndim == 3 else None,
                                     sigma_min=1, sigma_max=16).astype(np.float32)


def bench_pixels(masks: list[np.ndarray], k: int, seed: int, ignore_index: int | None) -> list[np.ndarray]:
    """The (K, 2) pixels per image that the bench's round 1 labels, in the bench's order."""
    rng = np.random.default_rng(seed)
    return [bench._random_pixels(m != ignore_index if ignore_index is not None else np.ones(m.shape, bool), k, rng)
            for m in masks]


def forest_mious(args, train, test, runs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """mIoU of a forest for each (K, seed) in ``runs``; each image's filters are computed once."""
    masks = [read_mask(p.mask) for p in train]
    picks = {run: bench_pixels(masks, *run, args.ignore_index) for run in runs}
    x = {run: [] for run in runs}
    for i, pair in enumerate(train):
        features = filter_bank(pair.image)
        for run in runs:
            x[run].append(features[picks[run][i][:, 0], picks[run][i][:, 1]])
    forests = {}
    for k, seed in runs:
        y = np.concatenate([m[p[:, 0], p[:, 1]] for m, p in zip(masks, picks[k, seed])])
        forests[k, seed] = RandomForestClassifier(100, random_state=seed, n_jobs=args.threads).fit(
            np.concatenate(x[k, seed]), y)
    truths = [read_mask(p.mask) for p in test]
    num_classes = max(2, max(int(m[m != args.ignore_index].max(initial=0)) for m in masks + truths) + 1)
    matrices = {run: 0 for run in runs}
    for pair, truth in zip(test, truths):
        features = filter_bank(pair.image)
        flat = features.reshape(-1, features.shape[-1])
        for run, forest in forests.items():
            predicted = forest.predict(flat).reshape(truth.shape)
            matrices[run] = matrices[run] + confusion(truth, predicted, num_classes, args.ignore_index)
    return {run: float(np.nanmean(iou_per_class(m))) for run, m in matrices.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("train-images", "train-masks", "test-images", "test-masks"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--ignore-index", type=int)
    parser.add_argument("--pixels", type=int, nargs="+", default=[10, 100], help="K, labelled pixels per image")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="the forest's n_jobs")
    args = parser.parse_args()
    try:
        train = bench.pair_by_stem(args.train_images, args.train_masks)
        test = bench.pair_by_stem(args.test_images, args.test_masks)
    except PointillistError as e:  # a folder missing or unreadable: say so, no traceback
        raise SystemExit(str(e)) from None
    runs = [(k, seed) for k in args.pixels for seed in args.seeds]

    start = time.perf_counter()
    forest = forest_mious(args, train, test, runs)
    print(f"forest: {time.perf_counter() - start:.0f} s for {len(runs)} runs, filters included")
    ours = {}
    for k, seed in runs:
        result = bench.run(args.train_images, args.train_masks, args.test_images, args.test_masks,
                           pixels_per_round=k, rounds=1, strategy="random", seed=seed,
                           ignore_index=args.ignore_index, device="cpu", log=lambda _: None)
        ours[k, seed] = result["rounds"][0]["miou"]
        print(f"K={k:4d} seed {seed}: forest {forest[k, seed]:.4f}  pointillist {ours[k, seed]:.4f}  "
              f"(fit {result['rounds'][0]['train_seconds']:.1f} s, features included)", flush=True)
    for k in args.pixels:
        f = np.mean([forest[k, s] for s in args.seeds])
        o = np.mean([ours[k, s] for s in args.seeds])
        print(f"K={k:4d} mean of {len(args.seeds)} seeds: forest {f:.4f}  pointillist {o:.4f}  ({o - f:+.4f})")


if __name__ == "__main__":
    main()
