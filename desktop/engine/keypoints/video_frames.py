"""Sampling frames of a video into a keypoint project.

Frames are sampled either evenly over the video or spread out in encoder-feature space (k-means
on pooled features of candidate frames, the frame nearest each centre kept), as SLEAP and
DeepLabCut users expect. The project then refers to each frame by (video file, frame index);
``images/video.py`` reads them. Sampling lives with the keypoint task, not with the video
reader, because it adds rows to the project and clusters encoder features: the image readers
sit below the project and the learners.

Torch and the encoder are imported only by :func:`pooled_features`, so sampling evenly never
loads them.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from desktop.engine.errors import ImageReadError
from desktop.engine.images.video import VIDEO_SUFFIXES, frames_by_index, unreadable_frames, video_info
from desktop.engine.learning.clustering import kmeans
from desktop.engine.project.store import Project

SAMPLING = ("uniform", "kmeans")
KMEANS_CANDIDATES = 200  # frames looked at (evenly spaced) before clustering
_FEATURE_SIDE = 160  # frames are shrunk to this short side before encoding: layout, not detail


def uniform_frames(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames (each segment's middle)."""
    n = max(0, min(int(n), total))
    return sorted({int((i + 0.5) * total / n) for i in range(n)})


def pooled_features(frames: list[np.ndarray]) -> np.ndarray:
    """(N, C) average-pooled encoder features of small copies of ``frames``, every stage
    normalised to length one (so that colour and texture count as well as layout)."""
    import torch
    import torch.nn.functional as F

    from models.encoder import Encoder, normalize

    encoder = Encoder.pretrained()
    out = []
    with torch.inference_mode():
        for frame in frames:
            scale = _FEATURE_SIDE / min(frame.shape[:2])
            small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            maps = encoder(normalize(small))
            out.append(torch.cat([F.normalize(m.mean((2, 3)), dim=1) for m in maps], 1)[0].numpy())
    return np.stack(out).astype(np.float64)


def kmeans_frames(path: str | Path, n: int, seed: int = 0, candidates: int = KMEANS_CANDIDATES) -> list[int]:
    """``n`` frames spread out in feature space: the candidate nearest each k-means centre."""
    info = video_info(path)
    wanted = uniform_frames(info.frames, candidates)
    read = frames_by_index(info.path, wanted)
    _refuse_unreadable(info.path, sorted(set(wanted) - set(read)), len(wanted))
    pool = sorted(read)
    if n >= len(pool):
        return pool
    x = pooled_features([read[i] for i in pool])
    centres, assign = kmeans(x, n, np.random.default_rng(seed))
    chosen = set()
    for j, centre in enumerate(centres):
        members = np.flatnonzero(assign == j)
        if len(members):
            chosen.add(pool[members[((x[members] - centre) ** 2).sum(1).argmin()]])
    return sorted(chosen)


def add_video(project: Project, path: str | Path, n: int, method: str = "uniform", seed: int = 0) -> list[int]:
    """Sample ``n`` frames of a video into a keypoint project; returns their image ids.

    Every sampled frame is decoded first, as the project will read it. If any cannot be, the
    video is refused, naming those frames, and nothing is added: a user who asked for ``n``
    frames expects those ``n`` (not fewer, nor others chosen in silence), and a damaged video
    numbers its frames unreliably past the damage (OpenCV's seeking and its frame-by-frame
    reading, used for export, disagree there), so labels could land on other pictures than
    they were made on. A re-encoded copy (ffmpeg drops what cannot be decoded) adds cleanly.
    """
    if method not in SAMPLING:
        raise ValueError(f"unknown sampling {method!r}; choose one of {', '.join(SAMPLING)}")
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ImageReadError(path, f"videos are read from {', '.join(VIDEO_SUFFIXES)} files")
    info = video_info(path)
    indices = uniform_frames(info.frames, n) if method == "uniform" else kmeans_frames(path, n, seed)
    _refuse_unreadable(path, unreadable_frames(path, indices), len(indices))
    return [project.add_video_frame(path, i, info.width, info.height) for i in indices]


def _refuse_unreadable(path: Path, missing: list[int], sampled: int) -> None:
    """ImageReadError naming the frames (at most ten) of ``sampled`` that cannot be decoded."""
    if not missing:
        return
    names = [str(i) for i in missing[:10]] + ([f"{len(missing) - 10} more"] if len(missing) > 10 else [])
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise ImageReadError(path, f"{len(missing)} of the {sampled} frames sampled cannot be decoded "
                               f"(frame{'s' if len(missing) > 1 else ''} {listed}): the video is damaged "
                               "or shorter than it says. Nothing was added; re-encode it (for example "
                               "with ffmpeg) and add the copy")
