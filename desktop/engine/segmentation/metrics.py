"""Segmentation scores."""
from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int,
              ignore_index: int | None = None) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = truth, columns = prediction."""
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    keep &= (truth >= 0) & (truth < num_classes)
    t = truth[keep].astype(np.int64)
    p = predicted[keep].astype(np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for a class absent from both truth and prediction."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    return float(np.nanmean(iou_per_class(matrix)))
