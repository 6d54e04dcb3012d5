"""Stand-ins for ``pointillist predict``'s job and job function, for tests/engine/test_predict_cluster.py.

A module of its own, without pytest: Dask's worker processes import these functions by name, as
they import ``desktop.engine.predict.run`` in a real run. The job does real work, reading a
picture with the app's reader, so a damaged file fails as a real input would.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from desktop.engine.images.pictures import read_image


@dataclass(frozen=True)
class MeanJob:
    path: Path
    seconds: float = 0.0  # how long the job takes at least


@dataclass(frozen=True)
class MeanResult:
    path: Path
    mean: float


def image_mean(job: MeanJob) -> MeanResult:
    """The mean pixel value of the job's picture; ImageReadError if it cannot be read."""
    time.sleep(job.seconds)
    return MeanResult(job.path, float(read_image(job.path).mean()))


def refuse(job: MeanJob) -> MeanResult:
    """A job that refuses as command-line code does, with ``SystemExit``."""
    raise SystemExit(f"No model for '{job.path.name}'.")


def where_it_ran(job: MeanJob) -> dict:
    """The process that ran the job, its torch threads and the GPUs it may see."""
    import torch

    return {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
