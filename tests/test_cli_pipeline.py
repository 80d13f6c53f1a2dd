"""The ``nima-lessons pipeline`` command on a small synthetic data set."""

import argparse
import dataclasses

import numpy as np
import pandas as pd
import pytest
import tifffile

from nima_lessons import cli
from nima_lessons.cli import EXIT_CODES
from nima_lessons.cli.pipeline import add_parser, build_config, parse_channels
from nima_lessons.course.synthetic import ratiometric_timelapse
from nima_lessons.pipeline import PipelineConfig
from nima_lessons.pipeline.run import PRESETS
from nima_lessons.store import is_complete, open_result


@pytest.fixture(scope="module")
def data():
    return ratiometric_timelapse(n_t=2, shape=(96, 96), n_cells=4, seed=5)


@pytest.fixture
def tiff_folder(data, tmp_path):
    folder = tmp_path / "lapse"
    folder.mkdir()
    for t in range(2):
        for c in range(3):
            tifffile.imwrite(folder / f"t{t:04d}_c{c}.tif", data.image.values[t, c])
    tifffile.imwrite(tmp_path / "dark.tif", data.dark.values, photometric="minisblack")
    tifffile.imwrite(tmp_path / "flat.tif", data.flat.values, photometric="minisblack")
    return folder


def test_pipeline_command_saves_the_result_and_table(data, tiff_folder, tmp_path, capsys):
    out, table = tmp_path / "out.zarr", tmp_path / "cells.csv"
    argv = [
        "pipeline", str(tiff_folder), str(out), "--channels", "0=G,1=R,2=C",
        "--dark", str(tmp_path / "dark.tif"), "--flat", str(tmp_path / "flat.tif"),
        "--scheduler", "synchronous", "--table", str(table), "--no-progress",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    assert is_complete(out)
    result = open_result(out)
    assert result["C"].values.tolist() == ["G", "R", "C"]
    assert int(result["labels"].isel(T=0).max()) == 4
    cells = pd.read_csv(table)
    assert len(cells) == 8
    truth = data.truth.sort_values("ratio")["ratio"].to_numpy()
    np.testing.assert_allclose(np.sort(cells["ratio"]), truth, rtol=0.02)
    assert "saved" in capsys.readouterr().out
    assert cli.main(argv) == 3  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


def test_pipeline_command_errors_are_clean(tiff_folder, tmp_path, capsys):
    status = cli.main(["pipeline", str(tmp_path / "none_*.tif"), str(tmp_path / "o.zarr")])
    assert status == 2 and "none_" in capsys.readouterr().err
    status = cli.main(["pipeline", str(tiff_folder), str(tmp_path / "o.zarr"), "--channels", "Q"])
    assert status == 2 and "available" in capsys.readouterr().err
    status = cli.main(
        ["pipeline", str(tiff_folder), str(tmp_path / "o.zarr"), "--scheduler", "fast"]
    )
    assert status == 2 and "scheduler" in capsys.readouterr().err


def test_parse_channels():
    assert parse_channels(None) is None
    assert parse_channels("G, C") == ["G", "C"]
    assert parse_channels("0=G,1=C") == {"0": "G", "1": "C"}
    with pytest.raises(ValueError, match="not both"):
        parse_channels("0=G,C")


# ------------------------------------------- options generated from PipelineConfig


def pipeline_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser


def parse_config(*options: str):
    args = pipeline_parser().parse_args(["pipeline", "in.zarr", "out.zarr", *options])
    return build_config(args)


def option_words(field: dataclasses.Field, value) -> list[str]:
    """Command-line words that set ``field`` to ``value``, written independently of the
    generator: what a user would type."""
    name = "--" + field.name.replace("_", "-")
    if isinstance(value, bool):
        return [name if value else "--no-" + name[2:]]
    if value is None or value == ():
        return [name, "none"]
    if isinstance(value, tuple):
        return [name, *map(str, value)]
    return [name, str(value)]


def test_every_config_field_has_an_option_with_its_default():
    actions = {
        action.dest: action
        for action in pipeline_parser()._subparsers._group_actions[0].choices["pipeline"]._actions
    }
    defaults = PipelineConfig()
    assert parse_config() == defaults == PRESETS["default"]
    for field in dataclasses.fields(PipelineConfig):
        assert field.name in actions, f"PipelineConfig.{field.name} has no option"
        default = getattr(defaults, field.name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else str(default)
        shown = shown or "none"  # an empty list is typed and shown as "none"
        assert f"(default: {shown})" in actions[field.name].help
        # Typing the default explicitly gives the default back, whatever the type.
        assert getattr(parse_config(*option_words(field, default)), field.name) == default


def test_option_help_comes_from_the_docstring():
    help_text = pipeline_parser()._subparsers._group_actions[0].choices["pipeline"].format_help()
    assert "Shape of the median neighbourhood" in help_text
    assert "--median-footprint {disk,square}" in help_text
    assert "``" not in help_text and ":func:" not in help_text
    for status in EXIT_CODES:
        assert f"  {status:>3}  " in help_text


def test_explicit_options_override_the_preset():
    for name, preset in PRESETS.items():
        assert parse_config("--preset", name) == preset
        changed = parse_config("--preset", name, "--min-size", str(preset.min_size + 7))
        assert changed == dataclasses.replace(preset, min_size=preset.min_size + 7)
    with pytest.raises(SystemExit):
        parse_config("--preset", "no-such-preset")


def test_option_values_are_validated_and_named(tiff_folder, tmp_path, capsys):
    assert parse_config("--segment", "otsu", "--background", "sigma") == PipelineConfig(
        segment_method="otsu", background_method="sigma"
    )  # the names of earlier versions
    assert parse_config("--watershed").watershed is True
    assert parse_config("--ratio-smooth-radius", "none").ratio_smooth_radius is None
    with pytest.raises(SystemExit):
        parse_config("--median-footprint", "hexagon")
    assert "invalid choice: 'hexagon'" in capsys.readouterr().err
    status = cli.main(["pipeline", str(tiff_folder), str(tmp_path / "o.zarr"), "--min-size", "-3"])
    assert status == 2
    err = capsys.readouterr().err
    assert "--min-size must be >= 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.zarr").exists()
