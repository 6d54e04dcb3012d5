"""The resources loader (Qt-free): every file it names exists and loads, and a new project's
class colours come from it. The frozen layout (``sys._MEIPASS``) is checked in a child process."""
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from desktop import resources
from desktop.engine.project.setup import default_classes
from desktop.engine.project.store import Project

SVG = "{http://www.w3.org/2000/svg}svg"


def test_palette_has_ten_distinct_valid_colours():
    colours = resources.palette()
    assert len(colours) >= 10
    assert len({c.lower() for c in colours}) == len(colours)
    for colour in colours:
        assert len(colour) == 7 and resources.rgba(colour)[3] == 255  # '#rrggbb', as projects store them


OKABE_ITO = {"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"}
HAEMATOXYLIN, EOSIN = (77, 38, 101), (172, 117, 172)
"""Median colours of nuclei and of everything else in the 14 H&E tiles of MoNuSeg 2018's test set
(with their masks), measured once: the colours an overlay on H&E must not be mistaken for."""


def test_palette_keeps_okabe_ito_first_and_stain_like_colours_last():
    """A class colour that looks like a stain (at the default 45-50 % opacity the overlay takes on
    its hue) cannot be told from the tissue: the first classes get colours far from both."""
    from skimage.color import rgb2lab

    colours = resources.palette()
    assert OKABE_ITO <= set(colours[:9])

    def distance(colour, stain):
        rgb = np.array([resources.rgba(colour)[:3], stain], np.float64)[None] / 255
        lab = rgb2lab(rgb)[0]
        return float(np.linalg.norm(lab[0] - lab[1]))

    far = [min(distance(c, HAEMATOXYLIN), distance(c, EOSIN)) for c in colours]
    assert all(d > 35 for d in far[:8]), far  # the first eight classes
    assert colours[8:10] == ("#cc79a7", "#882255") and max(far[8:10]) < 35


def test_a_new_project_gets_the_palette(tmp_path):
    names = [f"class{i}" for i in range(12)]
    project = Project.create(tmp_path / "project", classes=default_classes(names))
    try:
        stored = [c.colour for c in project.classes()]
    finally:
        project.close()
    palette = resources.palette()
    assert stored == [palette[i % len(palette)] for i in range(len(names))]


def test_every_ui_colour_is_named_and_valid():
    for name in resources.UI_COLOURS:
        colour = resources.ui_colour(name)
        assert len(colour) == 4 and all(0 <= v <= 255 for v in colour)
    assert set(resources._colours()["ui"]) == set(resources.UI_COLOURS)  # nothing stored that no one reads


def test_rgba_reads_alpha_last():
    assert resources.rgba("#ffffffaa") == (255, 255, 255, 170)
    assert resources.rgba("#e57373") == (229, 115, 115, 255)
    with pytest.raises(ValueError):
        resources.rgba("white")


def test_colour_maps_have_256_rgba_entries():
    for name in resources.COLOUR_MAPS:
        table = resources.colour_map(name)
        assert table.shape == (256, 4) and table.dtype == np.uint8
        assert not table.flags.writeable  # shared by every caller
    uncertainty = resources.colour_map("uncertainty")
    assert uncertainty[0, 3] == 0 and uncertainty[-1, 3] == 220  # clear where the model is sure
    assert np.all(np.diff(uncertainty[:, 3].astype(int)) >= 0)


def test_unknown_names_fail_loudly():
    with pytest.raises(KeyError):
        resources.colour_map("viridis")
    with pytest.raises(KeyError):
        resources.toolbar_icon("zoom")
    with pytest.raises(KeyError):
        resources.app_icon_png(24)


def test_every_svg_parses():
    svgs = [resources.APP_ICON_SVG, resources.APP_ICON_SMALL_SVG] + [resources.toolbar_icon(n)
                                                                    for n in resources.TOOLBAR_ICONS]
    for path in svgs:
        root = ET.parse(path).getroot()
        assert root.tag == SVG and root.get("viewBox"), path


def test_app_icon_renders_decode_at_their_sizes():
    for size in resources.APP_ICON_SIZES:
        with Image.open(resources.app_icon_png(size)) as image:
            assert image.size == (size, size) and image.mode == "RGBA"
            assert image.getextrema()[3][1] == 255  # not blank
    with Image.open(resources.APP_ICON_ICO) as ico:
        assert ico.info["sizes"] == {(s, s) for s in resources.APP_ICON_SIZES}
    with Image.open(resources.APP_ICON_ICNS) as icns:
        assert icns.format == "ICNS" and (256, 256, 1) in icns.info["sizes"]


def test_the_frozen_app_reads_resources_from_meipass(tmp_path):
    """PyInstaller unpacks the spec's datas under ``sys._MEIPASS``: the loader must read there."""
    shutil.copytree(resources.ROOT, tmp_path / "resources")
    colours = tmp_path / "resources" / "colours.json"
    colours.write_text(colours.read_text(encoding="utf-8").replace("#0072b2", "#123456"), encoding="utf-8")
    code = (f"import sys; sys._MEIPASS = {str(tmp_path)!r}\n"
            "from desktop import resources\n"
            "print(resources.palette()[0], resources.toolbar_icon('layers').is_file())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["#123456", "True"]
