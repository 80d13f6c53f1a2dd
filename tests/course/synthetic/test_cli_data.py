"""Tests of ``nima-lessons data`` and of the data_scripts wrappers."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr

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


def test_data_all_says_kept_for_complete_datasets(tmp_path, capsys, monkeypatch):
    from nima_lessons.course import synthetic

    monkeypatch.setattr(synthetic, "DATASETS", {"timelapse": "timelapse"})
    argv = ["data", "all", "--size", "small", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    assert f"wrote {tmp_path / 'small' / 'timelapse'}" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "small" / "timelapse").iterdir()}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"kept {tmp_path / 'small' / 'timelapse'} (already complete)" in out
    assert "wrote" not in out
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "small" / "timelapse").iterdir()} == before


@pytest.mark.slow
def test_killed_generator_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    out = tmp_path / "n.zarr"
    main_code = "import sys; from nima_lessons.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", main_code, "data", "nuclei", "--shape", "4000", "4000",
            "--chunks", "100", "100", "--out", str(out), "--no-progress"]  # fmt: skip
    writer = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".n.zarr.partial-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers[0] == ".n.zarr.lock" and leftovers[1].startswith(".n.zarr.partial-")
    assert main(["data", "nuclei", "--shape", "200", "300", "--chunks", "100", "100",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.zarr"]


def test_clean_removes_leftovers_but_not_live_writes_or_resumable_saves(tmp_path, capsys):
    from nima_lessons._atomic import write_lock
    from nima_lessons.store import partial_path, save

    data = tmp_path / "data"
    (data / "small").mkdir(parents=True)
    killed = data / "small" / ".nuclei.zarr.partial-0a1b2c3d"
    killed.mkdir()
    (killed / "zarr.json").write_text("{}")
    stale_lock = data / "small" / ".nuclei.zarr.lock"
    stale_lock.write_text(json.dumps({"pid": 999_999_999, "host": socket.gethostname()}))
    busy = data / "busy.tif"
    busy_leftover = data / ".busy.tif.partial-00ff00ff"
    busy_leftover.write_text("being written")
    result = xr.Dataset({"v": (("T",), da.arange(4, chunks=1))})
    with pytest.raises(RuntimeError):
        failing = result["v"].data.map_blocks(_fail_at_2, dtype=int)
        save(result.assign(v=result["v"].copy(data=failing)), data / "result.zarr")
    assert partial_path(data / "result.zarr").exists()
    held, release = threading.Event(), threading.Event()

    def writer():  # another writer, busy with its output
        with write_lock(busy):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(60)
    try:
        assert main(["clean", str(data), "--dry-run"]) == 0
        listed = capsys.readouterr().out
        assert f"would remove {killed}" in listed and f"would remove {busy_leftover}" in listed
        assert killed.exists()
        assert main(["clean", str(data)]) == 0
        captured = capsys.readouterr()
    finally:
        release.set()
        thread.join()
    assert f"removed {killed}" in captured.out and not killed.exists()
    assert not stale_lock.exists()
    assert f"skipped {busy}" in captured.err and busy_leftover.exists()
    assert partial_path(data / "result.zarr").exists()  # resumable: kept by default
    assert main(["clean", str(data), "--resumable"]) == 0
    assert not partial_path(data / "result.zarr").exists() and not busy_leftover.exists()
    assert sorted(p.name for p in data.iterdir()) == ["small"]


def _fail_at_2(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 2:
        raise RuntimeError("interrupted")
    return block
