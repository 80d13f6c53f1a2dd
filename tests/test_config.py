"""Data folder and size presets."""

import pytest

from nima_lessons import config


def test_data_dir_follows_environment(tmp_path, monkeypatch):
    target = tmp_path / "lesson-data"
    monkeypatch.setenv(config.DATA_ENV, str(target))
    assert config.data_dir() == target
    assert target.is_dir()


def test_data_dir_defaults_to_repository(monkeypatch):
    monkeypatch.delenv(config.DATA_ENV, raising=False)
    assert config.data_dir(create=False) == config.repository_root() / "data"


@pytest.mark.parametrize("name", sorted(config.SIZES))
def test_every_preset_has_the_same_keys(name):
    assert config.size_preset(name).keys() == config.SIZES["workshop"].keys()


def test_size_from_environment(monkeypatch):
    monkeypatch.setenv(config.SIZE_ENV, " Small ")
    assert config.size_name() == "small"
    monkeypatch.delenv(config.SIZE_ENV)
    assert config.size_name() == "workshop"


def test_unknown_size_names_the_setting(monkeypatch):
    monkeypatch.setenv(config.SIZE_ENV, "huge")
    with pytest.raises(ValueError, match=r"NIMA_LESSONS_SIZE.*'huge'.*large"):
        config.size_name()
    with pytest.raises(ValueError, match=r"unknown size 'tiny'"):
        config.size_preset("tiny")


def test_preset_is_a_copy():
    preset = config.size_preset("small")
    preset["timelapse"]["n_t"] = -1
    assert config.SIZES["small"]["timelapse"]["n_t"] != -1


@pytest.mark.parametrize(
    ("setting", "expected"), [("0", False), ("off", False), ("No", False), ("1", True), ("", True)]
)
def test_progress_follows_environment(monkeypatch, setting, expected):
    monkeypatch.setenv(config.PROGRESS_ENV, setting)
    assert config.progress_enabled() is expected
    assert config.progress_enabled(True) is True
    assert config.progress_enabled(False) is False
