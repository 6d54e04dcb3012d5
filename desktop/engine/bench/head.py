"""``pointillist bench head --image-size N``: what one prediction of the fast learner costs on an
N x N tissue picture, the whole image at full resolution (before: one pass over the image; now:
strips) beside what a view costs now (the fitted view of a 900-pixel window, and a 1:1 view of
900 x 700 pixels), with the resident memory the process reached.

Figures (JSON, seconds unless said): ``features_s`` (once per image, cached after),
``full_before_s`` and ``full_now_s`` with ``..._s_per_megapixel``, ``fitted_view_s`` (its stride
beside it), ``one_to_one_view_s``, ``query_grid_s`` (the scores the queries are chosen from), and
``peak_rss_mb`` after each step (``ru_maxrss``: it only grows).
"""
from __future__ import annotations

import resource
import time

import cv2
import numpy as np
import torch
from skimage import data

from desktop.engine.learning.base import ImageRef, PointLabels
from desktop.engine.learning.fast import FastLearner
from desktop.engine.learning.features import FeatureCache, FeatureExtractor
from desktop.engine.segmentation import view_grid

WINDOW = (900, 700)  # screen pixels of the viewer


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    out = work()
    return round(time.perf_counter() - start, 3), out


def run(image_size: int, threads: int = 1, seed: int = 0) -> dict:
    torch.set_num_threads(threads)
    pixels = cv2.resize(data.immunohistochemistry(), (image_size, image_size), interpolation=cv2.INTER_CUBIC)
    ref = ImageRef("bench", lambda: pixels)
    learner = FastLearner(2, FeatureCache(FeatureExtractor(), budget_bytes=8 << 30), seed=seed)
    result: dict = {"image_size": image_size, "torch_threads": threads}
    result["features_s"], _ = _timed(lambda: learner.features(ref))
    rng = np.random.default_rng(seed)
    yx = rng.integers(0, image_size, (200, 2))
    grey = pixels.mean(axis=2)
    learner.fit([PointLabels(ref, yx.astype(np.float64), (grey[yx[:, 0], yx[:, 1]] < np.median(grey)).astype(np.int64))],
                steps=100)
    result["peak_rss_mb_after_features"] = _peak_mb()
    megapixels = image_size * image_size / 1e6
    result["fitted_view_stride"] = stride = view_grid.view_stride(image_size / min(WINDOW))
    result["fitted_view_s"], _ = _timed(lambda: learner.predict_grid(ref, stride))  # pools the levels once
    result["fitted_view_again_s"], _ = _timed(lambda: learner.predict_grid(ref, stride))
    y0 = x0 = max(0, image_size // 2 - 400)
    window = (y0, x0, min(image_size, y0 + WINDOW[1]), min(image_size, x0 + WINDOW[0]))
    result["one_to_one_view_s"], _ = _timed(lambda: learner.predict_grid(ref, 1, window))
    query = view_grid.query_stride(image_size, image_size)
    result["query_grid_stride"] = query
    result["query_grid_s"], _ = _timed(lambda: learner.predict_grid(ref, query))
    result["peak_rss_mb_after_views"] = _peak_mb()
    result["full_now_s"], _ = _timed(lambda: learner.predict_proba(ref))
    result["full_now_s_per_megapixel"] = round(result["full_now_s"] / megapixels, 3)
    result["peak_rss_mb_after_full_now"] = _peak_mb()

    def before():
        with torch.inference_mode():
            hidden = learner.head.hidden_map(learner.features(ref))
            return torch.softmax(learner.head.classify(hidden), dim=-1).permute(2, 0, 1).contiguous().numpy()

    result["full_before_s"], _ = _timed(before)
    result["full_before_s_per_megapixel"] = round(result["full_before_s"] / megapixels, 3)
    result["peak_rss_mb_after_full_before"] = _peak_mb()
    return result
