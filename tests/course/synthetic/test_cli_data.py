"""Tests of ``nima-lessons data`` and of the data_scripts wrappers."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nima_lessons.cli import main
from nima_lessons.course.synthetic import (
    first_uniform_frame,
    mandelbrot_stack,
    nuclei_image,
    open_nuclei_zarr,
    open_ratiometric,
)

SCRIPTS = Path(__file__).resolve().parents[3] / "data_scripts"


def test_nuclei_command_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "n.zarr"
    args = ["data", "nuclei", "--shape", "200", "300", "--chunks", "100", "100"]
    args += ["--seed", "3", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    image, _, count = open_nuclei_zarr(out)
    expected = nuclei_image((200, 300), seed=3)
    np.testing.assert_array_equal(image.compute(), expected.image)
    assert count == expected.count
    assert main(args) == 3  # the output exists: refused
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_timelapse_and_ratiometric_commands_use_preset_and_overrides(tmp_path):
    lapse = tmp_path / "lapse"
    assert main(["data", "timelapse", "--size", "small", "--n-t", "2", "--n-z", "3",
                 "--shape", "64", "64", "--out", str(lapse), "--no-progress"]) == 0  # fmt: skip
    names = sorted(p.name for p in lapse.iterdir())
    assert names == ["t0000_c0.tif", "t0000_c1.tif", "t0001_c0.tif", "t0001_c1.tif"]
    assert tifffile.imread(lapse / "t0001_c1.tif").shape == (3, 64, 64)
    ratio = tmp_path / "ratio"
    assert main(["data", "ratiometric", "--n-t", "2", "--shape", "96", "96", "--n-cells",
                 "3", "--out", str(ratio), "--no-progress"]) == 0  # fmt: skip
    assert open_ratiometric(ratio).image.shape == (2, 3, 1, 96, 96)


def test_mandelbrot_command_reports_first_uniform_frame(tmp_path, capsys):
    out = tmp_path / "frames.tif"
    assert main(["data", "mandelbrot", "--n-frames", "5000", "--shape", "16", "16",
                 "--out", str(out), "--frames", "0:3000:1000", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    expected = first_uniform_frame(mandelbrot_stack(5000, (16, 16))).index
    assert f"first uniform frame: {expected}" in printed
    assert "1 graph layer" in printed
    frames = tifffile.imread(out)
    assert frames.shape == (3, 16, 16)
    np.testing.assert_array_equal(frames[2], mandelbrot_stack(5000, (16, 16))[2000].compute())


def test_bad_arguments_give_clean_errors(tmp_path, capsys):
    assert main(["data", "nuclei", "--shape", "100", "100", "--chunks", "200", "10",
                 "--out", str(tmp_path / "x.zarr")]) == 2  # fmt: skip
    assert "chunks[0]=200 is larger" in capsys.readouterr().err
    assert main(["data", "mandelbrot", "--n-frames", "10", "--frames", "20:30"]) == 2
    assert "selects no frame" in capsys.readouterr().err
    assert main(["data", "mandelbrot", "--n-frames", "3", "--shape", "8", "8"]) == 0
    assert "no uniform frame among the 3 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "nuclei", "--size", "enormous"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["nuclei", "timelapse", "ratiometric", "mandelbrot", "all"])
def test_scripts_have_help(name):
    script = SCRIPTS / f"make_{name}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for option in ("--out", "--seed", "--overwrite", "--size"):
        assert option in done.stdout


def test_script_writes_data(tmp_path):
    out = tmp_path / "lapse"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "make_timelapse.py"), "--n-t", "1", "--n-c", "1",
         "--n-z", "2", "--shape", "64", "64", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["t0000_c0.tif"]
