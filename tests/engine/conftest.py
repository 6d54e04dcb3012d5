import pytest


@pytest.fixture
def slides(shared_data):
    """The slide-reader fixtures in ``../shared/data/wsi_test_slides``."""
    folder = shared_data / "wsi_test_slides"
    if not folder.is_dir():
        pytest.skip("../shared/data/wsi_test_slides is not present")
    return folder
