"""Videos in keypoint projects: frames sampled from a video become project images.

A frame is referenced, never copied: the project stores (video file, frame index) and reads the
pixels through OpenCV when they are needed. Frames are sampled either evenly over the video or
spread out in encoder-feature space (k-means on pooled features of candidate frames, the frame
nearest each centre kept), as SLEAP and DeepLabCut users expect.

Torch is imported only by :func:`kmeans_frames`, so the GUI may use the rest of this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import check_regular_file, read_image
from desktop.engine.project.store import ImageInfo, Project

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
SAMPLING = ("uniform", "kmeans")
KMEANS_CANDIDATES = 200  # frames looked at (evenly spaced) before clustering
_FEATURE_SIDE = 160  # frames are shrunk to this short side before encoding: layout, not detail


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int
    width: int
    height: int
    fps: float


def _open(path: Path) -> cv2.VideoCapture:
    try:
        check_regular_file(path)  # a named pipe would keep OpenCV waiting for ever
    except (FileNotFoundError, NotADirectoryError) as e:
        raise ImageReadError(path, "the file does not exist") from e
    except OSError as e:
        raise ImageReadError(path, f"the file could not be read ({e.strerror or e})") from e
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageReadError(path, "OpenCV cannot decode this video (unknown format or damaged file)")
    return capture


def video_info(path: str | Path) -> VideoInfo:
    path = Path(path)
    capture = _open(path)
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if frames <= 0 or width <= 0 or height <= 0:
        raise ImageReadError(path, "the video has no readable frames")
    return VideoInfo(path, frames, width, height, fps)


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as uint8 RGB (H, W, 3)."""
    path = Path(path)
    capture = _open(path)
    try:
        frame = _frame_at(capture, index)
    finally:
        capture.release()
    if frame is None:
        raise ImageReadError(path, f"frame {index} cannot be read (the video is shorter or damaged)")
    return frame


def _frame_at(capture: cv2.VideoCapture, index: int) -> np.ndarray | None:
    """Frame ``index`` (RGB), or None when it cannot be decoded. OpenCV seeks by decoding from
    the keyframe before; where that fails (a damaged stretch) it stops short and quietly returns
    a frame from before the damage, which the position it reports gives away."""
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
    if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) != index:
        return None
    ok, frame = capture.read()
    if not ok or frame is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def read_pixels(info: ImageInfo) -> np.ndarray:
    """The pixels of a project image, whether a picture file or a video frame."""
    return read_frame(info.video, info.frame) if info.video is not None else read_image(info.path)


def uniform_frames(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames (each segment's middle)."""
    n = max(0, min(int(n), total))
    return sorted({int((i + 0.5) * total / n) for i in range(n)})


def frames_by_index(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames ``indices`` of a video (RGB) that it has, read in one pass: sequential reading
    is reliable everywhere, seeking is not, and one pass is far faster than a seek per frame."""
    wanted, out = set(indices), {}
    capture = _open(Path(path))
    try:
        for index in range(max(indices, default=-1) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    out[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    return out


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
    from desktop.engine.segmentation.selection import _kmeans

    info = video_info(path)
    wanted = uniform_frames(info.frames, candidates)
    read = frames_by_index(info.path, wanted)
    _refuse_unreadable(info.path, sorted(set(wanted) - set(read)), len(wanted))
    pool = sorted(read)
    if n >= len(pool):
        return pool
    x = pooled_features([read[i] for i in pool])
    centres, assign = _kmeans(x, n, np.random.default_rng(seed))
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
    capture = _open(path)
    try:  # the frame count in the header can overstate, and the middle can be damaged
        _refuse_unreadable(path, [i for i in indices if _frame_at(capture, i) is None], len(indices))
    finally:
        capture.release()
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
