"""What the project store hands out: plain, frozen records of its rows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    colour: str
    key: str | None
    index: int  # position among the project's classes: the model's output channel


@dataclass(frozen=True)
class ImageInfo:
    id: int
    path: Path
    name: str
    width: int
    height: int
    levels: int
    checksum: str
    video: Path | None = None  # for a video frame: the video file, and the frame's index in it
    frame: int | None = None

    @property
    def source(self) -> Path:
        """The file the pixels come from."""
        return self.video or self.path


@dataclass(frozen=True)
class Label:
    id: int
    image_id: int
    x: float
    y: float
    class_id: int | None
    author: str
    created_at: float
    query_id: int | None
    seconds: float | None
    deleted: bool


@dataclass(frozen=True)
class KeypointLabel:
    id: int
    image_id: int
    keypoint: int  # index in the skeleton (the heatmap channel)
    x: float  # NaN when absent
    y: float
    visibility: str
    author: str
    created_at: float
    query_id: int | None
    seconds: float | None


@dataclass(frozen=True)
class Query:
    id: int
    image_id: int
    x: float
    y: float
    strategy: str
    score: float | None
    model_version: int | None
    status: str
    keypoint: int | None = None  # a keypoint query: the keypoint's index in the skeleton


@dataclass(frozen=True)
class ModelVersion:
    version: int
    learner: str
    path: str | None
    created_at: float
    label_count: int
    validation_count: int
    validation_accuracy: float | None
    published: bool
