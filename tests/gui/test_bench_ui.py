"""``pointillist bench ui --image-size N``: the real window on a project it makes of one N x N picture."""
import pytest

from desktop.engine.errors import PointillistError
from desktop.gui.bench_ui import run


def test_a_sized_project_is_clicked_and_timed():
    result = run(clicks=3, image_size=192, torch_threads=1)
    assert result["image_size"] == [192, 192]
    assert result["image"] == "tissue-192.png"
    assert result["click_to_store_ms_p50"] is not None
    # every click was answered by an overlay of a model that saw it, and the first overlay came
    assert result["overlay_missed"] == 0
    assert result["first_overlay_in_view_ms"] > 0
    assert result["query_ms_p50"] is not None and result["query_ms_p50"] > 0


def test_a_size_too_small_to_click_is_refused():
    with pytest.raises(PointillistError, match="at least 64"):
        run(clicks=1, image_size=10)
