"""The tiled slide viewer: the same layers, clicks and keys as ``viewer.ImageViewer``, for images
far too large to hold, in level-0 pixel coordinates.

Only the tiles that the view touches are read, at the pyramid level that matches the zoom
(``tiles.level_for_view``), on worker threads, nearest the view's centre first, into a
memory-budgeted ``TileCache``; zooming and panning only look into that cache and queue reads,
so they never wait on the disk or the model. A tile read for a view that has moved on is kept in
the cache but not drawn; reads still queued for it are cancelled. The slide's thumbnail lies
under the tiles, so nothing is ever blank while tiles arrive.

Prediction tiles (at the engine's working resolution) come from the engine thread and are drawn
where they belong, the newest model version of each kept; ``overview`` is the minimap.
"""
from __future__ import annotations

import queue
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal

from desktop.engine.errors import ImageReadError
from desktop.engine.images.slides import ImageSource
from desktop.engine.images.tiles import TileCache, TileGrid, TileKey, level_for_view
from desktop.resources import colour_map

from .slide_overview import SlideOverview
from .viewer import ViewerCommon, _clamp_centre, class_lut
from .zoom import ZoomBox

READ_THREADS = 2
MAX_VIEW_TILES = 256  # image tiles drawn at once (a slide without small levels, zoomed out)
MAX_OVERLAY_TILES = 400  # prediction tiles kept on screen items, least recently updated dropped
POLL_MS = 15  # how often arrived tiles are collected while reads are under way
SETTLE_MS = 250  # the view counts as settled (predict it, maybe record it as seen) after this still
THUMBNAIL = 1024
EDGE = 0.05  # of the view's width and height: a query this near an edge is not on screen


class SlideViewer(ViewerCommon, pg.GraphicsView):
    clicked = Signal(float, float, object)  # x, y in level-0 pixels, Qt.MouseButton
    overlayShown = Signal(int)  # model version of the newest prediction tile drawn
    viewSettled = Signal(object)  # (x, y, w, h) level-0 view rectangle, after SETTLE_MS without change
    tileFailed = Signal(str)

    def __init__(self, parent=None, cache_bytes: int = 256 << 20):
        super().__init__(parent)
        self.setFocusPolicy(Qt.StrongFocus)
        self.view = ZoomBox()
        self.setCentralItem(self.view)
        self._stack_layers({name: pg.ItemGroup() for name in ("image", "prediction", "uncertainty")})
        self._thumbnail = pg.ImageItem()
        self._thumbnail.setParentItem(self.items["image"])
        self._thumbnail.setZValue(-1)
        self._heat = colour_map("uncertainty")
        self._class_lut = class_lut([])
        self._brushes: list = []
        self.overview = SlideOverview(self)
        self.overview.jumpRequested.connect(self.centre_on)

        self.source: ImageSource | None = None
        self.image_id: int | None = None
        self.image_shape: tuple[int, int] | None = None
        self.overlay_version: int | None = None
        self.cache = TileCache(cache_bytes)
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="pointillist-tiles")
        self._reads: dict[TileKey, Future] = {}
        self._wanted: list[TileKey] = []
        self._grid: TileGrid | None = None
        self._shown: dict[TileKey, pg.ImageItem] = {}
        self._overlays: OrderedDict[tuple[float, float], tuple[int, pg.ImageItem, pg.ImageItem]] = OrderedDict()
        self._update_timer = QTimer(self, singleShot=True, interval=0)
        self._update_timer.timeout.connect(self._update_tiles)
        self._settle_timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle_timer.timeout.connect(lambda: self.viewSettled.emit(self.view_rect()))
        self.view.sigRangeChanged.connect(self._range_changed)
        # Worker threads hand tiles over through a queue that a GUI-thread timer drains while
        # reads are under way: no signals cross threads (PySide 6.12 miscounts references when
        # they do), and tiles that arrive together are drawn together.
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._poll = QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self._drain)
        self.scene().sigMouseClicked.connect(self._on_click)

    # ----- the slide -------------------------------------------------------------------------
    def set_source(self, source: ImageSource, image_id: int) -> None:
        """Show another slide: forget every tile and overlay of the last one, fit the slide."""
        self._forget()
        self.source, self.image_id = source, image_id
        width, height = source.dimensions[0]
        self.image_shape = (height, width)
        self._thumbnail.clear()
        self._submit(TileKey(image_id, -1, 0, 0), self._read_thumbnail, source)
        self.overview.set_slide(width, height)
        self.view.show_image(width, height)
        self._update_timer.start()

    def clear(self) -> None:
        """Show nothing; returns once no thread reads the old source any more (it may be closed)."""
        running = [f for f in self._reads.values() if not f.cancel()]
        self._forget()
        wait(running)
        self.source = self.image_id = self.image_shape = None
        self._thumbnail.clear()

    def shutdown(self) -> None:
        """Stop the reading threads (queued reads are dropped); call before closing the source."""
        for timer in (self._update_timer, self._settle_timer, self._poll):
            timer.stop()
        self._forget()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.source = None

    def _forget(self) -> None:
        for future in self._reads.values():
            future.cancel()
        self._reads.clear()
        for item in self._shown.values():
            self.scene().removeItem(item)
        self._shown.clear()
        for _, prediction, heat in self._overlays.values():
            self.scene().removeItem(prediction)
            self.scene().removeItem(heat)
        self._overlays.clear()
        self._wanted = []
        self.overlay_version = None
        for name in ("labels", "queries"):
            self.items[name].clear()
        self.current_ring.clear()

    # ----- tiles -----------------------------------------------------------------------------
    def view_rect(self) -> tuple[float, float, float, float]:
        rect = self.view.viewRect()
        return rect.x(), rect.y(), rect.width(), rect.height()

    def screen_scale(self) -> float:
        """Level-0 pixels per screen pixel at the current zoom."""
        rect = self.view.viewRect()
        size = self.view.size() if self.view.width() > 0 else self.viewport().size()
        return max(rect.width() / max(1.0, size.width()), rect.height() / max(1.0, size.height()))

    def _range_changed(self, *_) -> None:
        rect = self.view.viewRect()
        self.overview.set_view_rect(rect)
        self._update_timer.start()
        self._settle_timer.start()

    def _update_tiles(self) -> None:
        """Draw what the cache holds for the view, queue reads for the rest, drop the others."""
        if self.source is None:
            return
        x, y, w, h = self.view_rect()
        size = self.viewport().size()
        level = level_for_view(self.source, w, h, max(1, size.width()), max(1, size.height()))
        self._grid = grid = TileGrid.for_level(self.source, level)
        self._wanted = [TileKey(self.image_id, level, c, r) for c, r in grid.tiles_in_view(x, y, w, h)]
        self._wanted = self._wanted[:MAX_VIEW_TILES]
        wanted = set(self._wanted)
        for key in [k for k in self._shown if k not in wanted]:
            self.scene().removeItem(self._shown.pop(key))
        for key in [k for k in self._reads if k.level >= 0 and k not in wanted]:
            if self._reads[key].cancel():
                del self._reads[key]
        for key in self._wanted:
            if key in self._shown or key in self._reads:
                continue
            tile = self.cache.get(key)
            if tile is not None:
                self._show_tile(key, tile)
            else:
                self._submit(key, self._read_tile, grid)
        # Under the tiles, the thumbnail only costs painting time: shown only while tiles are missing.
        self._thumbnail.setVisible(len(self._shown) < len(self._wanted))

    def _submit(self, key: TileKey, read, *args) -> None:
        self._reads[key] = self._pool.submit(self._run, key, read, *args)
        if not self._poll.isActive():
            self._poll.start()

    def _run(self, key: TileKey, read, *args) -> None:
        """On a worker thread: pixels, or the reason they cannot be read, go to the queue."""
        try:
            self._done.put((key, read(key, *args)))
        except ImageReadError as e:
            self._done.put((key, str(e)))
        except Exception as e:  # a decoder's own error: still answer, or the tile waits forever
            self._done.put((key, f"Cannot read this part of the slide ({type(e).__name__}: {e})."))

    def _read_tile(self, key: TileKey, grid: TileGrid) -> np.ndarray:
        tile = self.source.read_region(key.level, *grid.region(key.col, key.row))
        self.cache.put(key, tile)
        return tile

    @staticmethod
    def _read_thumbnail(_key: TileKey, source: ImageSource) -> np.ndarray:
        return source.thumbnail(THUMBNAIL)

    def _drain(self) -> None:
        while True:
            try:
                key, tile = self._done.get_nowait()
            except queue.Empty:
                break
            self._tile_arrived(key, tile)
        if not self._reads:
            self._poll.stop()

    def _tile_arrived(self, key: TileKey, tile) -> None:
        """On the GUI thread: draw a tile unless its view or slide has moved on."""
        self._reads.pop(key, None)
        if key.source != self.image_id:
            return
        if isinstance(tile, str):
            self.tileFailed.emit(tile)
        elif key.level < 0:
            height, width = self.image_shape
            self._thumbnail.setImage(np.ascontiguousarray(tile), levels=(0, 255), autoLevels=False)
            self._thumbnail.setRect(QRectF(0, 0, width, height))
            self.overview.set_thumbnail(tile)
        elif key in self._wanted and key not in self._shown:
            self._show_tile(key, tile)
            self._thumbnail.setVisible(len(self._shown) < len(self._wanted))

    def _show_tile(self, key: TileKey, tile: np.ndarray) -> None:
        x, y, w, h = self._grid.region(key.col, key.row)
        ds = self._grid.downsample
        item = pg.ImageItem(np.ascontiguousarray(tile), levels=(0, 255), autoLevels=False)
        item.setRect(QRectF(x, y, w * ds, h * ds))
        item.setParentItem(self.items["image"])
        self._shown[key] = item

    @property
    def tiles_shown(self) -> int:
        return len(self._shown)

    @property
    def tiles_wanted(self) -> int:
        return len(self._wanted)

    # ----- prediction tiles ------------------------------------------------------------------
    def set_prediction_tile(self, rect: tuple[float, float, float, float], class_map: np.ndarray,
                            uncertainty: np.ndarray, version: int) -> None:
        """Draw one prediction tile where it belongs, unless a newer version is there already."""
        where = (rect[0], rect[1])
        known = self._overlays.get(where)
        if known is not None and known[0] > version:
            return
        if known is None:
            prediction, heat = pg.ImageItem(), pg.ImageItem()
            prediction.setParentItem(self.items["prediction"])
            heat.setParentItem(self.items["uncertainty"])
        else:
            _, prediction, heat = known
            self._overlays.move_to_end(where)
        prediction.setImage(np.ascontiguousarray(class_map, np.uint8), lut=self._class_lut, levels=(0, 255),
                            autoLevels=False)
        heat.setImage(np.ascontiguousarray(uncertainty, np.uint8), lut=self._heat, levels=(0, 255),
                      autoLevels=False)
        for item in (prediction, heat):
            item.setRect(QRectF(*rect))
        self._overlays[where] = (version, prediction, heat)
        while len(self._overlays) > MAX_OVERLAY_TILES:
            _, (_, old_prediction, old_heat) = self._overlays.popitem(last=False)
            self.scene().removeItem(old_prediction)
            self.scene().removeItem(old_heat)
        if self.overlay_version is None or version > self.overlay_version:
            self.overlay_version = version
        self.overlayShown.emit(version)

    def prediction_tiles(self) -> dict[tuple[float, float], tuple[int, np.ndarray]]:
        """Level-0 top-left corner -> (model version, class map) of every prediction tile drawn."""
        return {where: (version, prediction.image) for where, (version, prediction, _) in self._overlays.items()}

    # ----- the same content calls as ImageViewer -----------------------------------------------
    def set_classes(self, colours: list[str]) -> None:
        self._class_lut = class_lut(colours)
        self._brushes = [pg.mkBrush(c) for c in colours]

    def set_labels(self, xs: np.ndarray, ys: np.ndarray, class_indices: np.ndarray,
                   pending: np.ndarray | None = None) -> None:
        brushes, pens = self._label_style(class_indices, pending)
        self.items["labels"].setData(x=np.asarray(xs) + 0.5, y=np.asarray(ys) + 0.5, brush=brushes, pen=pens)
        self.overview.set_labels(np.asarray(xs), np.asarray(ys), [self._brushes[i] for i in class_indices])

    def add_labels(self, xs: np.ndarray, ys: np.ndarray, class_indices: np.ndarray) -> None:
        super().add_labels(xs, ys, class_indices)
        self.overview.add_labels(np.asarray(xs), np.asarray(ys), [self._brushes[i] for i in class_indices])

    def set_queries(self, xs: np.ndarray, ys: np.ndarray) -> None:
        self.items["queries"].setData(x=np.asarray(xs) + 0.5, y=np.asarray(ys) + 0.5)

    def set_current_query(self, x: float | None, y: float | None, centre: bool = True) -> None:
        """Highlight the query being asked; with ``centre``, pan (never zoom) to a new one that is
        not on screen: the view moving after every answer would make the expert look for the
        slide again each time, and one asked already stays where the expert has panned away."""
        if x is None:
            self.current_ring.clear()
            return
        shown = self.current_ring.data
        new = not (len(shown) == 1 and shown[0]["x"] == x + 0.5 and shown[0]["y"] == y + 0.5)
        self.current_ring.setData(x=[x + 0.5], y=[y + 0.5])
        if centre and new and not self.on_screen(x, y):
            self.centre_on(x + 0.5, y + 0.5)

    def on_screen(self, x: float, y: float) -> bool:
        """Whether level-0 ``(x, y)`` is in view, clear of the edges (``EDGE`` of the view) and of
        the minimap and its legend, which cover the view's corner."""
        point = self.widget_point(x, y)
        area = self.viewport().rect()
        margin_x, margin_y = int(area.width() * EDGE), int(area.height() * EDGE)
        inside = area.adjusted(margin_x, margin_y, -margin_x, -margin_y).contains(point)
        covered = self.overview.geometry().united(self.overview.legend.geometry()).contains(point)
        return inside and not covered

    def centre_on(self, x: float, y: float) -> None:
        """Pan so that level-0 ``(x, y)`` is in the middle, as far as the slide reaches."""
        if self.image_shape is None:
            return
        rect = self.view.viewRect()
        height, width = self.image_shape
        cx = _clamp_centre(x, rect.width() / 2, width)
        cy = _clamp_centre(y, rect.height() / 2, height)
        self.view.translateBy(x=cx - rect.center().x(), y=cy - rect.center().y())

    def show_region(self, rect: tuple[float, float, float, float]) -> None:
        """Zoom and pan so that a level-0 rectangle fills the view."""
        self.view.setRange(QRectF(*rect), padding=0.05)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if hasattr(self, "overview"):  # pyqtgraph resizes once before __init__ has made it
            self.overview.move(self.width() - self.overview.width() - 8, 8)
