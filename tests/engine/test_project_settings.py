"""Typed project settings: defaults, validation, the round trip through the project database, and
reading what older versions wrote into the ``meta`` table as a free JSON dict."""
import json
import math
import re
import sqlite3

import pytest

from desktop.engine.errors import ProjectError
from desktop.engine.project.settings import MAX_SLIDE_LEVEL, MAX_SLIDE_MPP, MIN_SLIDE_MPP, ProjectSettings
from desktop.engine.project.store import DB_NAME, Project


@pytest.fixture
def folder(tmp_path):
    Project.create(tmp_path / "p", classes=[("background", "#000000", "1")]).close()
    return tmp_path / "p"


def write_raw_settings(folder, value):
    """The ``settings`` row as an older version left it, written past the store."""
    with sqlite3.connect(folder / DB_NAME) as conn:
        conn.execute("INSERT INTO meta(key, value) VALUES ('settings', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (value,))
    conn.close()


def raw_settings(folder):
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        return json.loads(conn.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()[0])
    finally:
        conn.close()


def test_defaults(folder):
    settings = ProjectSettings()
    assert (settings.last_image, settings.slide_mpp, settings.slide_level, settings.unknown) == (None, 1.0, 0, ())
    assert json.loads(settings.to_json()) == {"last_image": None, "slide_level": 0, "slide_mpp": 1.0}
    with Project.open(folder) as project:  # a new project has stored none
        assert project.settings() == settings


def test_round_trip_through_json_and_the_project(folder):
    settings = ProjectSettings(last_image=3, slide_mpp=0.5, slide_level=2)
    assert ProjectSettings.from_json(settings.to_json()) == settings
    assert ProjectSettings(slide_mpp=2).slide_mpp == 2.0 and isinstance(ProjectSettings(slide_mpp=2).slide_mpp, float)
    with Project.open(folder) as project:
        assert project.update_settings(slide_mpp=0.5, slide_level=2).last_image is None
        assert project.update_settings(last_image=3) == settings  # the others are kept
    with Project.open(folder) as project:
        assert project.settings() == settings
    with Project.open(folder, read_only=True) as project:  # reading is allowed there
        assert project.settings() == settings


BAD_VALUES = [
    ("last_image", 0, "whole number from 1"), ("last_image", -4, "whole number from 1"),
    ("last_image", "3", "not '3'"), ("last_image", True, "not True"), ("last_image", 2.0, "not 2.0"),
    ("slide_mpp", 0, "from 0.1 to 100 micrometres per pixel, not 0"), ("slide_mpp", -1.0, "not -1.0"),
    ("slide_mpp", math.nan, "not nan"), ("slide_mpp", math.inf, "not inf"),
    ("slide_mpp", MIN_SLIDE_MPP / 2, "not 0.05"), ("slide_mpp", MAX_SLIDE_MPP * 10, "not 1000.0"),
    ("slide_mpp", "1", "not '1'"), ("slide_mpp", None, "not None"), ("slide_mpp", True, "not True"),
    ("slide_level", -1, "whole number from 0 to 31, not -1"), ("slide_level", MAX_SLIDE_LEVEL + 1, "not 32"),
    ("slide_level", 1.5, "not 1.5"), ("slide_level", "1", "not '1'"), ("slide_level", None, "not None"),
]


@pytest.mark.parametrize(("field", "value", "says"), BAD_VALUES)
def test_bad_values_are_refused_with_a_clear_message(folder, field, value, says):
    with pytest.raises(ProjectError, match=re.escape(says)):
        ProjectSettings(**{field: value})
    with Project.open(folder) as project:
        project.update_settings(last_image=1)
        with pytest.raises(ProjectError):
            project.update_settings(**{field: value})
        assert project.settings() == ProjectSettings(last_image=1)  # nothing was written


def test_a_read_only_project_refuses_to_change_its_settings(folder):
    with Project.open(folder) as project:
        project.update_settings(last_image=2)
    with Project.open(folder, read_only=True) as project:
        with pytest.raises(ProjectError, match="open read-only here, so this change was not saved"):
            project.update_settings(last_image=1)
    assert raw_settings(folder)["last_image"] == 2


def test_an_old_projects_settings_are_read_as_old_versions_read_them(folder):
    # Old versions passed slide_mpp through float() and slide_level through int(), so text and
    # whole floats worked; a key this version does not know is kept for the version that wrote it.
    write_raw_settings(folder, json.dumps({"last_image": 2, "slide_mpp": "0.5", "slide_level": 2.0,
                                           "viewer": {"zoom": 3, "layers": ["labels"]}}))
    with Project.open(folder) as project:
        settings = project.settings()
        assert (settings.last_image, settings.slide_mpp, settings.slide_level) == (2, 0.5, 2)
        project.update_settings(last_image=1)
    assert raw_settings(folder) == {"last_image": 1, "slide_mpp": 0.5, "slide_level": 2,
                                    "viewer": {"zoom": 3, "layers": ["labels"]}}


MALFORMED = [
    "not json at all", "", "[1, 2]", "null", '"text"', "{" * 100_000 + "}" * 100_000,
    b"\xff\xfe\x00{",  # bytes that are no text, as a BLOB
    '{"last_image": "two", "slide_mpp": -1, "slide_level": "deep"}',
    '{"last_image": true, "slide_mpp": 0, "slide_level": 1.7}',  # 0: old versions' "use the level"
    '{"last_image": 0, "slide_mpp": NaN, "slide_level": -3}',
    '{"last_image": 1e400, "slide_mpp": 1e400, "slide_level": 99999999999999999999}',
    '{"last_image": [1], "slide_mpp": {"mpp": 1}, "slide_level": null}',
    '{"slide_mpp": "inf", "slide_level": "2.5"}',
]


@pytest.mark.parametrize("stored", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_old_settings_fall_back_to_defaults(folder, stored):
    write_raw_settings(folder, stored)
    with Project.open(folder) as project:
        settings = project.settings()
        assert (settings.last_image, settings.slide_mpp, settings.slide_level) == (None, 1.0, 0)
        project.update_settings(slide_level=1)  # and the next change writes a whole object
    stored_now = raw_settings(folder)
    assert {k: stored_now[k] for k in ("last_image", "slide_mpp", "slide_level")} == {
        "last_image": None, "slide_mpp": 1.0, "slide_level": 1}


def test_one_malformed_value_leaves_the_good_ones():
    settings = ProjectSettings.from_json('{"last_image": 7, "slide_mpp": -2, "slide_level": 3}')
    assert (settings.last_image, settings.slide_mpp, settings.slide_level) == (7, 1.0, 3)
