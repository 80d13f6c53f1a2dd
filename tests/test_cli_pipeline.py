"""The ``nima-lessons pipeline`` command on a small synthetic data set."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from nima_lessons import cli
from nima_lessons.cli.pipeline import parse_channels
from nima_lessons.store import is_complete, open_result
from nima_lessons.course.synthetic import ratiometric_timelapse


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
