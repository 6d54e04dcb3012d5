import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """``../shared/data`` next to the repository; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def slides(shared_data):
    """The slide-reader fixtures in ``../shared/data/wsi_test_slides`` (engine and GUI tests)."""
    folder = shared_data / "wsi_test_slides"
    if not folder.is_dir():
        pytest.skip("../shared/data/wsi_test_slides is not present")
    return folder
