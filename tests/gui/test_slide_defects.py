"""Slide defects of issue 17 (items 5 and 11), each driven by real keys, wheel turns and the real
engine thread on a generated slide: the first queries come without ``N`` and on the tissue in
view, the view stays put while the next query is on screen, and the minimap (legend, heat, view
marker) stays on its thumbnail at any zoom."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRectF
from PySide6.QtTest import QTest

from desktop.engine.images.slides import open_image_source
from desktop.engine.images.synthetic_slide import generate_ome_tiff
from desktop.engine.project.store import Project
from desktop.engine.segmentation.slide_grid import SlideGrid, working_resolution
from desktop.engine.service.messages import RegionChosen, RegionScores
from desktop.gui.app import MainWindow
from desktop.gui.slide_overview import MIN_FRAME

from .conftest import click
from .test_slides import SETTLE_WAIT_MS, drag, slide_project, wait_for_tiles, wheel

SIDE = 2600  # not a whole number of working tiles (512 level-0 pixels): the last ones reach past the slide


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "slide.ome.tif"
    levels = generate_ome_tiff(path, SIDE)
    return path, (SIDE, SIDE, levels)


def in_view(viewer, x: float, y: float) -> bool:
    vx, vy, vw, vh = viewer.view_rect()
    return vx <= x <= vx + vw and vy <= y <= vy + vh


def on_slide(rect: QRectF, tolerance: float = 1e-6) -> bool:
    return (rect.left() >= -tolerance and rect.top() >= -tolerance
            and rect.right() <= SIDE + tolerance and rect.bottom() <= SIDE + tolerance)


def test_opening_a_slide_asks_on_the_tissue_in_view_and_n_moves_on(show, qtbot, tmp_path, synthetic):
    folder = slide_project(tmp_path / "p", synthetic)
    win = show(MainWindow(folder))
    ws = win.workspace
    viewer = ws.viewer
    chosen = []
    ws.bridge.slide.connect(lambda e: isinstance(e, RegionChosen) and chosen.append(e))
    wait_for_tiles(qtbot, viewer)
    opened_at = viewer.view_rect()
    # No key pressed: the engine's first questions arrive by themselves, with no model yet.
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=120_000)
    assert "no open query" not in ws.label_panel.query.text()
    assert len(ws.session.queries) == ws.session.batch
    with open_image_source(synthetic[0]) as source:
        grid = SlideGrid(1, source, working_resolution(source))
        for q in ws.session.queries:  # on tissue, not glass, and where the expert is looking
            assert grid.tissue.fraction(q.x - 8, q.y - 8, 16, 16) > 0
            assert in_view(viewer, q.x, q.y)
    assert viewer.view_rect() == pytest.approx(opened_at)  # the view was left where it was
    first = {q.query_id for q in ws.session.queries}

    QTest.keyClick(viewer, "n")  # the expert asks to go elsewhere: the view goes there, so do the questions
    qtbot.waitUntil(lambda: len(chosen) == 2, timeout=60_000)
    x, y, w, h = chosen[-1].rect
    qtbot.waitUntil(lambda: ws.session.current is not None and ws.session.current.query_id not in first,
                    timeout=10_000)
    current = ws.session.current
    assert x - 1 <= current.x <= x + w + 1 and y - 1 <= current.y <= y + h + 1
    vx, vy, vw, vh = viewer.view_rect()
    assert vw < SIDE / 2 and vx <= x + w / 2 <= vx + vw and vy <= y + h / 2 <= vy + vh
    win.close()


def test_the_view_stays_while_the_next_query_is_on_screen_and_goes_to_one_that_is_not(show, qtbot, tmp_path,
                                                                                        synthetic):
    folder = slide_project(tmp_path / "p", synthetic)
    with Project.open(folder) as project:  # two queries close together, a third in a far corner
        project.add_queries(1, np.array([[1300.0, 1300.0], [1250.0, 1380.0], [2450.0, 150.0]]), "random")
    win = show(MainWindow(folder, start_engine=False))
    viewer = win.workspace.viewer
    wait_for_tiles(qtbot, viewer)
    wheel(viewer, viewer.widget_point(1300, 1300), 5)  # a closer look around the first two
    qtbot.wait(SETTLE_WAIT_MS)
    before = viewer.view_rect()
    assert before[2] < SIDE / 2 and in_view(viewer, 1380, 1250) and not in_view(viewer, 150, 2450)

    QTest.keyClick(viewer, "2")  # answers the first; the second is on screen
    assert win.workspace.session.current.x == 1380
    assert viewer.view_rect() == pytest.approx(before)

    QTest.keyClick(viewer, "1")  # answers the second; the third is not on screen: the view goes there
    assert win.workspace.session.current.x == 150
    assert viewer.view_rect()[2] == pytest.approx(before[2])  # panned, not zoomed
    assert in_view(viewer, 150, 2450)

    centre = viewer.viewport().rect().center()
    drag(viewer, centre, centre + QPoint(-300, 200))  # the expert looks elsewhere with the question open
    qtbot.wait(SETTLE_WAIT_MS)
    away = viewer.view_rect()
    assert not in_view(viewer, 150, 2450)
    x, y, w, h = away
    click(viewer, x + w / 2, y + h / 2)  # and adds a point there
    assert len(win.workspace.session.queries) == 1  # the same query is asked again: the view stays
    assert viewer.view_rect() == pytest.approx(away)
    win.close()


def test_the_minimap_stays_on_its_thumbnail_with_a_legend_at_any_zoom(show, qtbot, tmp_path, synthetic):
    folder = slide_project(tmp_path / "p", synthetic)
    win = show(MainWindow(folder, start_engine=False))
    viewer = win.workspace.viewer
    overview = viewer.overview
    wait_for_tiles(qtbot, viewer)
    centre = viewer.viewport().rect().center()

    wheel(viewer, centre, 40)  # as close as the zoom goes
    qtbot.wait(SETTLE_WAIT_MS)
    marker = overview.view.mapViewToDevice(overview.frame.rect()).boundingRect()
    assert marker.width() >= MIN_FRAME - 0.5 and marker.height() >= MIN_FRAME - 0.5  # a rectangle, not a dot
    assert overview.frame.rect().contains(QRectF(*viewer.view_rect()).center())

    wheel(viewer, centre, -80)  # as far out as it goes: the view is larger than the slide
    qtbot.wait(SETTLE_WAIT_MS)
    x, y, w, h = viewer.view_rect()
    assert w > SIDE or h > SIDE
    assert on_slide(overview.frame.rect())

    # The engine's scan of the tissue: its tiles reach past the slide's edge; the heat does not.
    with open_image_source(synthetic[0]) as source:
        grid = SlideGrid(1, source, working_resolution(source))
    rows, columns = grid.grid.rows, grid.grid.columns
    span = grid.tile * grid.downsample
    assert columns * span > SIDE
    scores = np.linspace(0, 1, rows * columns, dtype=np.float32).reshape(rows, columns)
    win.workspace.bridge.slide.emit(RegionScores(1, 1, span, scores))
    heat = overview.heat
    assert on_slide(heat.mapRectToView(heat.boundingRect()), tolerance=span / 100)
    assert heat.image[-1, -1] == 255 and heat.image[0, 0] == 1  # the last tile still shows, the first too

    legend = overview.legend
    assert legend.isVisible() and viewer.rect().contains(legend.geometry())
    assert legend.geometry().top() >= overview.geometry().bottom()  # under the minimap, not over it
    words = " ".join(label.text() for label in legend.findChildren(type(legend.frame)))
    for meaning in ("view", "labels", "sure", "unsure"):
        assert meaning in words
    win.close()


def test_back_to_answering_queries_on_a_slide_with_none_open_asks_in_view(show, qtbot, tmp_path, synthetic):
    picture = tmp_path / "picture.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(picture)
    folder = slide_project(tmp_path / "p", (picture, (64, 64, 1)), synthetic)
    win = show(MainWindow(folder))
    ws = win.workspace
    QTest.keyClick(ws.viewer, "m")  # free clicking, on the picture
    QTest.keyClick(ws.viewer, "n")  # the next image: the slide, where nothing is asked in free clicking
    viewer = ws.slides.viewer
    assert ws.viewer is viewer
    wait_for_tiles(qtbot, viewer)
    qtbot.wait(SETTLE_WAIT_MS)
    assert ws.session.current is None
    QTest.keyClick(viewer, "m")  # back to answering queries: they come, in view
    qtbot.waitUntil(lambda: ws.session.current is not None, timeout=120_000)
    assert all(in_view(viewer, q.x, q.y) for q in ws.session.queries)
    win.close()
