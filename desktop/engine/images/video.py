"""Reading videos: their size, single frames, and many frames in one pass.

A keypoint project refers to a frame, never copies it: it stores (video file, frame index) and
the pixels are read here, through OpenCV, when they are needed. Choosing which frames join a
project is the keypoint task's business (``keypoints/video_frames.py``); this module knows
files and frame numbers only, so that it sits below the project store like every image reader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from desktop.engine.errors import ImageReadError
from desktop.engine.images.pictures import check_regular_file, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")


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


def read_pixels(path: str | Path, frame: int | None = None) -> np.ndarray:
    """The pixels of a project image: the picture file ``path``, or frame ``frame`` of the video
    file ``path``. Callers holding a store row pass ``info.source, info.frame``."""
    return read_image(path) if frame is None else read_frame(path, frame)


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


def unreadable_frames(path: str | Path, indices: list[int]) -> list[int]:
    """Those of ``indices`` that cannot be decoded the way a project reads a frame (seeking to
    each), in order: the frame count in a header can overstate, and the middle can be damaged."""
    capture = _open(Path(path))
    try:
        return [i for i in indices if _frame_at(capture, i) is None]
    finally:
        capture.release()
