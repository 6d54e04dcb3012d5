"""Frozen-encoder features for the fast learner, computed once per image and cached.

An image is padded (by reflection) to a multiple of 32 so that every encoder stage tiles it
exactly; the stride 8, 16 and 32 maps are resized onto the stride-4 grid and stacked, giving
one ``(H/4, W/4, C)`` float16 map per image, channels last so that gathering the features of
a few thousand labelled pixels reads whole rows. Beside it, ``fine`` holds a few fixed filters
at full resolution (``models.filters``) for detail finer than the 4-pixel grid. Pixel ``(y, x)`` of the image sits at
``((y + 0.5) / 4 - 0.5, (x + 0.5) / 4 - 0.5)`` on that grid, the same convention as
``F.interpolate(..., align_corners=False)``, so point sampling and dense prediction agree.
"""
from __future__ import annotations

import os
import shutil
import struct
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, MutableMapping

import numpy as np
import psutil
import torch
import torch.nn.functional as F
import zict

from desktop.engine.learning.allocation import give_back_freed_memory
from desktop.engine.learning.feature_tiles import FeatureTiles, is_tiled
from desktop.engine.learning.padding import pad_to_multiple, padded_size
from models.encoder import Encoder, normalize
from models.filters import PixelFilters

FEATURE_STRIDE = 4


@dataclass(frozen=True)
class FeatureMap:
    """Stacked multi-scale features of one image on the stride-4 grid."""

    values: torch.Tensor  # (h, w, C) float16, covering the padded image
    fine: torch.Tensor  # (H, W, F) float16, the image's own size
    height: int  # the image's own size, before padding
    width: int

    @property
    def channels(self) -> int:
        return self.values.shape[-1] + self.fine.shape[-1]

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.values, self.fine))


def sample_points(fmap: FeatureMap, yx: np.ndarray) -> torch.Tensor:
    """Features at image pixels ``yx`` (N, 2): returns (N, C + F) float32, the stride-4 features
    interpolated bilinearly and the fine filters at the nearest pixel.

    Written out by hand (gather of four neighbours) because ``grid_sample`` would need the whole
    float16 map converted to float32 first.
    """
    values = fmap.values
    h, w, c = values.shape
    fy = (torch.as_tensor(yx[:, 0], dtype=torch.float32) + 0.5) / FEATURE_STRIDE - 0.5
    fx = (torch.as_tensor(yx[:, 1], dtype=torch.float32) + 0.5) / FEATURE_STRIDE - 0.5
    fy = fy.clamp(0, h - 1)
    fx = fx.clamp(0, w - 1)
    y0 = fy.floor().long()
    x0 = fx.floor().long()
    y1 = (y0 + 1).clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    wy = (fy - y0).unsqueeze(1)
    wx = (fx - x0).unsqueeze(1)
    flat = values.reshape(h * w, c)

    def at(yy, xx):
        return flat[yy * w + xx].float()

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    py = torch.as_tensor(np.round(yx[:, 0]), dtype=torch.long).clamp(0, fmap.height - 1)
    px = torch.as_tensor(np.round(yx[:, 1]), dtype=torch.long).clamp(0, fmap.width - 1)
    return torch.cat([top * (1 - wy) + bottom * wy, fmap.fine[py, px].float()], dim=1)


class FeatureExtractor:
    """Runs the frozen pretrained encoder and stacks its scales."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.encoder = Encoder.pretrained().to(self.device).eval()
        self.filters = PixelFilters().to(self.device)
        self.coarse_channels = int(sum(self.encoder.channels))
        self.channels = self.coarse_channels + PixelFilters.channels

    @torch.inference_mode()
    def encode(self, picture: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The picture's stride-4 map (of the picture padded to a multiple of 32) and its fine
        filters, float16, channels last, encoded whole."""
        x = normalize(picture).to(self.device)
        fine = self.filters(x)[0].permute(1, 2, 0).to("cpu", torch.float16).contiguous()
        maps = self.encoder(pad_to_multiple(x))
        size = maps[0].shape[-2:]
        stacked = torch.cat([maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                         for m in maps[1:]], dim=1)
        return stacked[0].permute(1, 2, 0).to("cpu", torch.float16).contiguous(), fine

    def map_nbytes(self, height: int, width: int) -> int:
        """Bytes of the map of a picture of ``height`` x ``width`` (``FeatureMap.nbytes``)."""
        padded_h, padded_w = padded_size(height, width)
        cells = (padded_h // FEATURE_STRIDE) * (padded_w // FEATURE_STRIDE)
        return 2 * (cells * self.coarse_channels + height * width * PixelFilters.channels)  # float16

    def tiles(self, picture: np.ndarray) -> FeatureTiles:
        """The picture's map, to be computed a tile at a time (``feature_tiles.py``)."""
        return FeatureTiles(picture, self.encode, self.coarse_channels, PixelFilters.channels, FEATURE_STRIDE)

    def __call__(self, picture: np.ndarray) -> FeatureMap:
        """The picture's map; a large one (``is_tiled``) computed a tile at a time."""
        height, width = picture.shape[:2]
        if not is_tiled(height, width):
            return FeatureMap(*self.encode(picture), height, width)
        tiles = self.tiles(picture)
        tiles.finish()
        return _whole(tiles)


def _whole(tiles: FeatureTiles) -> FeatureMap:
    """The tiles' tensors as the picture's map (valid where they are done)."""
    return FeatureMap(tiles.values, tiles.fine, tiles.height, tiles.width)


def tile_map(tiles: FeatureTiles, tile: tuple[int, int]) -> FeatureMap:
    """One computed tile of ``tiles`` as a map of its own (its pixels, from its top-left corner;
    views of the tiles' tensors): a tile starts on every grid up to ``feature_tiles.ALIGN``, so
    the head gives its cells what it gives them on the whole map."""
    y0, x0, y1, x1 = tiles.box(tile)
    g0, h0, g1, h1 = tiles.cells(tile)
    return FeatureMap(tiles.values[g0:g1, h0:h1], tiles.fine[y0:y1, x0:x1], y1 - y0, x1 - x0)


def default_feature_budget() -> int:
    """Bytes of feature maps kept in memory: a twelfth of the machine's memory, within 256 MiB
    and 4 GiB (2 GiB on a 24 GiB machine, 1.3 GiB on a 16 GiB laptop). Training reads kept
    points, not maps (``point_features``), so the maps in memory serve prediction only; a map
    beyond the budget is read back from disk when the cache has a folder."""
    return int(min(4 << 30, max(256 << 20, psutil.virtual_memory().total // 12)))


def default_disk_budget(folder: Path) -> int:
    """Bytes of feature maps kept on disk: a quarter of the free space, at most 16 GiB."""
    folder.mkdir(parents=True, exist_ok=True)
    return int(min(16 << 30, shutil.disk_usage(folder).free // 4))


def own_spill_folder(parent: Path) -> Path:
    """A new, empty folder in ``parent`` for one cache's maps, named after the process; first
    removes what ``parent`` holds from processes that have ended (a crash, or a session closed),
    never another living process's folder: two engines on one project each emptied the shared
    folder when they opened, under the other's feet."""
    parent.mkdir(parents=True, exist_ok=True)
    for entry in parent.iterdir():
        pid = entry.name.split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and psutil.pid_exists(int(pid)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    own = parent / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    own.mkdir()
    return own


_HEADER = struct.Struct("<8q")  # values (h, w, C), fine (H, W, F), height, width


def _dump(fmap: FeatureMap) -> list[memoryview]:
    header = _HEADER.pack(*fmap.values.shape, *fmap.fine.shape, fmap.height, fmap.width)
    return [memoryview(header)] + [memoryview(t.numpy().reshape(-1).view(np.uint8)) for t in (fmap.values, fmap.fine)]


def _load(data: bytearray) -> FeatureMap:
    h, w, c, fh, fw, f, height, width = _HEADER.unpack_from(data)
    values = np.frombuffer(data, np.float16, h * w * c, _HEADER.size).reshape(h, w, c)
    fine = np.frombuffer(data, np.float16, fh * fw * f, _HEADER.size + values.nbytes).reshape(fh, fw, f)
    return FeatureMap(torch.from_numpy(values), torch.from_numpy(fine), height, width)


def _weight(_key: str, fmap: FeatureMap) -> int:
    return fmap.nbytes


class FeatureCache:
    """Feature maps by key: the most recently used in memory, within ``budget_bytes``.

    With a ``folder``, every map computed is also written there, raw float16 (a 360 x 480
    image's map is 14 MB: written in 7 ms, read back in 2 ms, computed in 0.3-1.8 s; lz4 saved
    2 % of it, zstd 15-22 % at 0.1 s a map), within ``disk_budget_bytes``, least recently used
    files deleted first. A map that has left memory is then read back instead of computed again:
    under cyclic access to more maps than memory holds (a benchmark round predicting every
    image), least-recently-used eviction alone recomputed every map every time. The files go to
    a folder of this cache's own inside ``folder`` (``own_spill_folder``): keys name images of
    one session.

    Thread-safe so the GUI can ask what is cached while the engine thread fills it.
    """

    def __init__(self, extractor: FeatureExtractor, budget_bytes: int | None = None, folder: Path | None = None,
                 disk_budget_bytes: int | None = None):
        self.extractor = extractor
        self.budget_bytes = default_feature_budget() if budget_bytes is None else budget_bytes
        self._memory = zict.LRU(self.budget_bytes, {}, weight=_weight)
        self._maps: MutableMapping[str, FeatureMap] = self._memory
        self._disk_budget = 0
        if folder is not None:
            folder = own_spill_folder(Path(folder))
            self._disk_budget = default_disk_budget(folder) if disk_budget_bytes is None else disk_budget_bytes
            disk = zict.LRU(self._disk_budget, zict.Func(_dump, _load, zict.File(folder)), weight=_weight)
            self._maps = zict.Cache(disk, self._memory)
        self._lock = threading.Lock()
        self._building: dict[str, FeatureTiles] = {}  # the engine thread's only (``building``)

    def get(self, key: str, load_image: Callable[[], np.ndarray]) -> FeatureMap:
        with self._lock:
            fmap = self._maps.get(key)
        if fmap is not None:
            give_back_freed_memory()  # read back from the folder, it may have pushed another out
            return fmap
        tiles = self._building.pop(key, None)
        if tiles is not None:  # its tiles are under way (``building``): the rest of them now
            tiles.finish()
            fmap = _whole(tiles)
        else:
            picture = load_image()
            self._make_room(self.extractor.map_nbytes(*picture.shape[:2]))
            fmap = self.extractor(picture)
        with self._lock:
            self._maps[key] = fmap
        give_back_freed_memory()  # a map may have left: else its memory stays in the heap (allocation.py)
        return fmap

    def building(self, key: str, load_image: Callable[[], np.ndarray]) -> FeatureTiles | None:
        """The map of a large picture (``is_tiled``: the caller knows its size) while it is
        computed a tile at a time, started here if need be; None once the map is kept. Why: the
        serving paints a large image's prediction tile by tile as its features come, instead of
        after the whole map (25-38 s at 4096 x 4096). One picture's tiles at a time: starting
        another's drops those of the one before (the expert left it) unless they are all done
        (then kept as its map). ``get`` completes them. None too for a map too large to keep
        (beyond both budgets): its tiles would be computed again and again."""
        if key in self:
            return None
        tiles = self._building.get(key)
        if tiles is not None and tiles.complete:  # kept from now on, like any map
            self.get(key, load_image)
            return None
        if tiles is None:
            for other in [k for k, t in self._building.items() if t.complete]:
                self.get(other, load_image)  # from ``_building``: ``load_image`` is not called
            tiles = self.extractor.tiles(load_image())
            if tiles.nbytes > max(self.budget_bytes, self._disk_budget):
                return None
            self._make_room(tiles.nbytes)
            self._building = {key: tiles}
        return tiles

    def _make_room(self, nbytes: int) -> None:
        """Evict maps from memory, least recently used first, until one of ``nbytes`` fits the
        budget: before it is computed, not after it is kept, so that memory holds at most the
        budget while the encoder runs (0.3 GB more at 2048 x 2048, 1.3 GB at 4096 x 4096). With
        a folder, an evicted map stays on disk."""
        with self._lock:
            while len(self._memory) and self._memory.total_weight + nbytes > self.budget_bytes:
                self._memory.evict()

    def under_way(self, key: str) -> bool:
        """Whether the map of ``key`` is being computed a tile at a time (``building``)."""
        tiles = self._building.get(key)
        return tiles is not None and not tiles.complete

    def done_at(self, key: str, yx: np.ndarray) -> np.ndarray:
        """At which pixels ``yx`` (N, 2) the map of ``key`` can be read (``sample_points``): all,
        unless it is under way (``building``)."""
        tiles = self._building.get(key)
        if tiles is None:
            return np.ones(len(yx), bool)
        return tiles.done_around(np.asarray(yx, np.float64), FEATURE_STRIDE)  # the cells read around them too

    def at_points(self, key: str, load_image: Callable[[], np.ndarray], yx: np.ndarray) -> FeatureMap:
        """A map good for ``sample_points`` at ``yx`` (N, 2): while it is computed a tile at a
        time, the tiles of those points only (the others' cells are not computed yet); else the
        whole map (``get``). Why: the expert clicks on what is painted, the tiles done; a round
        computed the whole of a 4096 x 4096 map (30 s more) before training on the click."""
        tiles = self._building.get(key) if self.under_way(key) else None
        if tiles is None:
            return self.get(key, load_image)
        for tile in tiles.covering(np.asarray(yx, np.float64).reshape(-1, 2), FEATURE_STRIDE):
            tiles.compute(tile)
        return _whole(tiles)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._maps

    def discard(self, key: str) -> None:
        self._building.pop(key, None)
        with self._lock:
            self._maps.pop(key, None)

    @property
    def nbytes(self) -> int:
        """Bytes of the maps held in memory."""
        with self._lock:
            return int(self._memory.total_weight)
