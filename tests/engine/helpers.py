"""Small real pictures for engine tests, written to disk like a user's files, a trained project,
and the fixture that keeps torch to one thread (import it into a test module to apply it there)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two threads on two cores shared with other jobs run several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blob_image(path: Path, size: int = 128, seed: int = 0) -> np.ndarray:
    """A textured dark background with a few bright discs; returns the disc mask (0/1)."""
    rng = np.random.default_rng(seed)
    image = (rng.normal(40, 8, (size, size))).clip(0, 255)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(4):
        cy, cx = rng.integers(20, size - 20, 2)
        cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(8, 16)), 1, -1)
    image[mask == 1] = rng.normal(200, 10, int(mask.sum())).clip(0, 255)
    cv2.imwrite(str(path), image.astype(np.uint8))
    return mask


def clicks_from_mask(mask: np.ndarray, per_class: int, seed: int = 0) -> list[tuple[float, float, int]]:
    """``(x, y, class index)`` clicks drawn at random inside each class of a mask."""
    rng = np.random.default_rng(seed)
    clicks = []
    for c in np.unique(mask):
        ys, xs = np.nonzero(mask == c)
        for i in rng.choice(len(ys), min(per_class, len(ys)), replace=False):
            clicks.append((float(xs[i]), float(ys[i]), int(c)))
    return clicks


def black_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit black PNG of any size, built by hand and compressed a row at a time, so that
    even 30,000 x 30,000 pixels take well under a megabyte on disk and in memory here."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey
    stream = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    idat = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def trained_project(root: Path, pictures: int = 3, size: int = 64) -> Path:
    """A segmentation project of blob pictures in ``root/images`` with clicks, and one saved fast
    model (version 1): what ``pointillist predict`` needs. Slides are worked at 4 µm a pixel, so a
    2048-pixel slide at 0.5 µm (``generate_ome_tiff``) is one working tile."""
    from desktop.cli import main
    from desktop.engine.project.store import Project
    from desktop.engine.segmentation.engine import SegmentationEngine

    images = root / "images"
    images.mkdir(parents=True)
    masks = [blob_image(images / f"cells{i}.png", size=size, seed=i) for i in range(pictures)]
    assert main(["new", "--images", str(images), "--classes", "background,cell", "--dir", str(root / "p")]) == 0
    with Project.open(root / "p") as opened:
        ids = [c.id for c in opened.classes()]
        for info, mask in zip(opened.images(), masks):
            opened.add_labels(info.id, [(x, y, ids[c]) for x, y, c in clicks_from_mask(mask, 8)])
        opened.update_settings(slide_mpp=4.0)
        assert SegmentationEngine(opened).train(20).version == 1
    return root / "p"
