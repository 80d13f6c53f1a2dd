"""``nima-lessons pipeline`` keeps data safe: one writer, same-run resumes, protected
inputs and foreign files, checked input, one-line errors with documented statuses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr
from scipy import ndimage as ndi

from nima_lessons import cli
from nima_lessons._atomic import find_leftovers, lock_path
from nima_lessons.course.synthetic import ratiometric_timelapse
from nima_lessons.store import is_complete, open_result, partial_path, save_progress

N_T = 3
MAIN = "import sys; from nima_lessons.cli import main; sys.exit(main(sys.argv[1:]))"


def tree_bytes(store: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(store)): path.read_bytes()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included, with its content."""
    return tree_bytes(folder)


@pytest.fixture(scope="module")
def data():
    return ratiometric_timelapse(n_t=N_T, shape=(96, 96), n_cells=4, seed=2)


def write_inputs(data, folder: Path, image=None) -> dict[str, Path]:
    """A TIFF folder (one file per time point and channel), dark and flat TIFFs."""
    image = data.image.values if image is None else image
    lapse = folder / "lapse"
    lapse.mkdir(parents=True)
    for t in range(image.shape[0]):
        for c in range(image.shape[1]):
            tifffile.imwrite(lapse / f"t{t:04d}_c{c}.tif", image[t, c])
    tifffile.imwrite(folder / "dark.tif", data.dark.values, photometric="minisblack")
    tifffile.imwrite(folder / "flat.tif", data.flat.values, photometric="minisblack")
    return {"lapse": lapse, "dark": folder / "dark.tif", "flat": folder / "flat.tif"}


@pytest.fixture
def inputs(data, tmp_path):
    return write_inputs(data, tmp_path / "in")


def command(inputs, output, *extra) -> list[str]:
    return [
        "pipeline", str(inputs["lapse"]), str(output), "--channels", "0=G,1=R,2=C",
        "--dark", str(inputs["dark"]), "--flat", str(inputs["flat"]),
        "--scheduler", "synchronous", "--no-progress", *map(str, extra),
    ]  # fmt: skip


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def interrupting(at_t: int, make_error):
    """Wrap run_pipeline so that computing time point ``at_t`` raises ``make_error()``."""
    from nima_lessons.pipeline import run_pipeline as original

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)

        def stop(block, block_info=None):
            if block_info[0]["chunk-location"][0] == at_t:
                raise make_error()
            return block

        ratio = result["ratio"].data.map_blocks(stop, dtype=result["ratio"].dtype)
        return result.assign(ratio=result["ratio"].copy(data=ratio))

    return wrapped


# ----------------------------------------------------------- one writer at a time

GATED_CLI = """
import os, sys, time
import nima_lessons.pipeline as pipeline
original = pipeline.run_pipeline


def gated(*args, **kwargs):
    result = original(*args, **kwargs)

    def wait(block, block_info=None):
        # Time points after the first wait for the test's signal.
        while block_info[0]["chunk-location"][0] > 0 and not os.path.exists({gate!r}):
            time.sleep(0.01)
        return block

    ratio = result["ratio"].data.map_blocks(wait, dtype=result["ratio"].dtype)
    return result.assign(ratio=result["ratio"].copy(data=ratio))


pipeline.run_pipeline = gated
from nima_lessons.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_gated(argv: list[str], gate: Path) -> subprocess.Popen:
    script = textwrap.dedent(GATED_CLI.format(gate=str(gate)))
    return subprocess.Popen(
        [sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_until_one_region_is_saved(output: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        progress = save_progress(output)
        if progress and progress[0] >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"no region saved (exit {process.poll()}): {process.stderr.read()}")


@pytest.mark.slow
def test_second_run_on_the_same_output_fails_at_once_and_the_first_completes(inputs, tmp_path):
    output, gate = tmp_path / "out.zarr", tmp_path / "gate"
    first = start_gated(command(inputs, output, "--scheduler", "threads"), gate)
    try:
        wait_until_one_region_is_saved(output, first)
        same = [sys.executable, "-c", MAIN, *command(inputs, output)]
        other = [*same, "--median-radius", "2", "--overwrite"]
        # The first run cannot finish before the gate opens, after these return:
        # they fail at once rather than wait for it.
        refused = [
            subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
            for argv in (same, other)
        ]
        assert first.poll() is None
    finally:
        gate.touch()
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    for done in refused:
        assert done.returncode == 4, done.stderr
        assert f"process {first.pid} on host {socket.gethostname()}" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not lock_path(output).exists() and not find_leftovers(output)
    # The first run's result is that of a single, undisturbed run.
    assert cli.main(command(inputs, tmp_path / "single.zarr")) == 0
    assert tree_bytes(output) == tree_bytes(tmp_path / "single.zarr")


# ---------------------------------------------------------- resume the same run only


def test_resume_with_other_settings_is_refused_naming_the_option(
    inputs, tmp_path, capsys, monkeypatch
):
    output = tmp_path / "out.zarr"
    with monkeypatch.context() as patch:
        patch.setattr("nima_lessons.pipeline.run_pipeline", interrupting(1, KeyboardInterrupt))
        assert cli.main(command(inputs, output)) == 130
    line = one_error_line(capsys)
    assert f"1 of {N_T} regions are saved in {partial_path(output)}" in line
    assert "--resume" in line
    kept = tree_bytes(partial_path(output))
    assert cli.main(command(inputs, output, "--resume", "--median-radius", "2")) == 3
    line = one_error_line(capsys)
    assert "(--median-radius was 1, now 2)" in line  # that setting alone is named
    assert cli.main(command(inputs, output, "--resume", "--preset", "default", "--watershed")) == 3
    assert "--watershed was False, now True" in one_error_line(capsys)
    assert tree_bytes(partial_path(output)) == kept and not output.exists()
    # Without --resume, the interrupted run is kept too.
    assert cli.main(command(inputs, output)) == 3
    assert "--resume" in one_error_line(capsys)
    assert cli.main(command(inputs, output, "--resume")) == 0
    assert cli.main(command(inputs, tmp_path / "single.zarr")) == 0
    assert tree_bytes(output) == tree_bytes(tmp_path / "single.zarr")
    finished = tree_bytes(output)
    capsys.readouterr()
    # Complete: the same settings have nothing to do, other settings are refused.
    assert cli.main(command(inputs, output, "--resume")) == 0
    assert "already complete with these inputs and settings" in capsys.readouterr().out
    assert cli.main(command(inputs, output, "--resume", "--median-radius", "2")) == 3
    line = one_error_line(capsys)
    assert "already complete but was made differently" in line and "--median-radius" in line
    assert tree_bytes(output) == finished


def test_resume_with_another_dark_frame_is_refused(inputs, tmp_path, capsys, monkeypatch):
    output = tmp_path / "out.zarr"
    with monkeypatch.context() as patch:
        patch.setattr("nima_lessons.pipeline.run_pipeline", interrupting(1, KeyboardInterrupt))
        assert cli.main(command(inputs, output)) == 130
    one_error_line(capsys)
    dark = tifffile.imread(inputs["dark"])
    dark[0, 0, 0] += 1
    tifffile.imwrite(inputs["dark"], dark, photometric="minisblack")
    assert cli.main(command(inputs, output, "--resume")) == 3
    assert "--dark.values was" in one_error_line(capsys)


# ---------------------------------------------------- overwrite only what is ours


@pytest.mark.parametrize(
    ("output_of", "how"),
    [
        (lambda i: i["lapse"], "is INPUT"),
        (lambda i: i["lapse"] / "out.zarr", "lies inside INPUT"),
        (lambda i: i["lapse"].parent, "contains INPUT"),
        (lambda i: i["dark"], "is --dark"),
    ],
    ids=["equal", "inside", "containing", "dark"],
)
def test_output_over_an_input_is_refused_before_anything_is_written(
    inputs, tmp_path, capsys, output_of, how
):
    before = snapshot(tmp_path)
    assert cli.main(command(inputs, output_of(inputs), "--overwrite")) == 3
    assert how in one_error_line(capsys)
    assert snapshot(tmp_path) == before


def test_table_never_replaces_an_input_or_a_foreign_file(inputs, tmp_path, capsys):
    before = snapshot(tmp_path)
    output = tmp_path / "out.zarr"
    assert cli.main(command(inputs, output, "--table", inputs["dark"], "--overwrite")) == 3
    assert "is --dark" in one_error_line(capsys)
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\n1,2\n")
    before = snapshot(tmp_path)
    assert cli.main(command(inputs, output, "--table", notes, "--overwrite")) == 3
    assert "not a table written by nima-lessons" in one_error_line(capsys)
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_only_a_result_of_this_package(inputs, tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    assert cli.main(command(inputs, folder, "--overwrite")) == 3
    assert "did not write" in one_error_line(capsys)
    assert (folder / "chapter1.tex").read_text() == "precious"
    output, table = tmp_path / "out.nc", tmp_path / "cells.csv"
    assert cli.main(command(inputs, output, "--table", table)) == 0
    again = command(inputs, output, "--table", table, "--overwrite", "--min-size", "5")
    assert cli.main(again) == 0
    assert is_complete(output) and len(pd.read_csv(table)) >= N_T


# ------------------------------------------------------- input is not trusted


def test_non_finite_input_is_reported_per_plane_and_marked_in_the_table(data, tmp_path, capsys):
    image = data.image.values.astype(np.float32)
    cell = data.labels.values[0] == 2
    cy, cx = (round(v) for v in ndi.center_of_mass(cell))
    image[1, 2, 0, cy - 1 : cy + 2, cx - 1 : cx + 2] = np.inf  # 9 pixels of channel C
    image[2, 0, 0, 0, 0] = np.nan  # one pixel of channel G, in the background
    inputs = write_inputs(data, tmp_path / "in", image)
    table = tmp_path / "cells.csv"
    argv = command(inputs, tmp_path / "out.zarr", "--table", table, "--median-radius", "0")
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "9 NaN or infinite values in plane T=1, C=C, Z=0" in err
    assert "1 NaN or infinite values in plane T=2, C=G, Z=0" in err
    cells = pd.read_csv(table)
    measured = ["mean_G", "mean_R", "mean_C", "ratio"]
    assert not np.isinf(cells[measured].to_numpy()).any()
    assert not (cells["ratio"] == 0).any()
    spoiled = cells[cells["nonfinite_px"] > 0]
    # The one cell holding the infinite pixels, by its position, independently of labels.
    stored = open_result(tmp_path / "out.zarr")
    label_there = int(stored["labels"].isel(T=1, Z=0).values[cy, cx])
    assert spoiled[["T", "label", "nonfinite_px"]].values.tolist() == [[1, label_there, 9]]
    assert spoiled[measured].isna().all(axis=None)
    clean = cells[cells["nonfinite_px"] == 0]
    assert len(clean) == len(cells) - 1 and np.isfinite(clean[measured].to_numpy()).all()


def test_bad_frames_are_refused_naming_option_and_file(inputs, tmp_path, capsys):
    output = tmp_path / "out.zarr"
    flat = tifffile.imread(inputs["flat"])
    tifffile.imwrite(tmp_path / "zero_flat.tif", np.zeros_like(flat), photometric="minisblack")
    partly = flat.copy()
    partly[1, 5, 7] = -0.5
    tifffile.imwrite(tmp_path / "negative_flat.tif", partly, photometric="minisblack")
    dark = tifffile.imread(inputs["dark"]).astype(np.float32)
    dark[0, 3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan_dark.tif", dark, photometric="minisblack")
    (tmp_path / "dark.txt").write_text("0 0 0\n")
    tifffile.imwrite(tmp_path / "small.tif", np.ones((8, 8), np.float32))
    cases = [
        ("--flat", tmp_path / "zero_flat.tif", f"{flat.size} of {flat.size} pixels are zero"),
        (
            "--flat",
            tmp_path / "negative_flat.tif",
            "1 of 27648 pixels are zero or negative (first at C=1, Y=5, X=7)",
        ),
        ("--dark", tmp_path / "nan_dark.tif", "1 of 27648 pixels are NaN or infinite"),
        ("--dark", tmp_path / "dark.txt", "is not a readable TIFF file"),
        ("--dark", tmp_path / "small.tif", "has shape (8, 8); expected (Y, X) = (96, 96)"),
        ("--dark", tmp_path / "missing.tif", "no such file"),
    ]
    for option, path, expected in cases:
        argv = command(inputs, output)
        argv[argv.index(option) + 1] = str(path)
        assert cli.main(argv) == 2, (option, path)
        line = one_error_line(capsys)
        assert f"{option} {path}" in line and expected in line, line
    assert not output.exists() and not lock_path(output).exists()


# ------------------------------------------------------- one-line errors, statuses


def test_output_below_a_file_is_a_clear_error(inputs, tmp_path, capsys):
    (tmp_path / "results").write_text("a file")
    assert cli.main(command(inputs, tmp_path / "results" / "out.zarr")) == 2
    assert "results is a file, not a folder" in one_error_line(capsys)


def test_ctrl_c_on_a_netcdf_output_says_that_nothing_was_kept(
    inputs, tmp_path, capsys, monkeypatch
):
    output = tmp_path / "out.nc"
    monkeypatch.setattr("nima_lessons.pipeline.run_pipeline", interrupting(1, KeyboardInterrupt))
    assert cli.main(command(inputs, output)) == 130
    line = one_error_line(capsys)
    assert "netCDF file is written whole, so nothing was kept" in line
    assert "leaves nothing behind" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_unexpected_errors_are_one_line_with_status_1(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "nima_lessons.pipeline.run_pipeline", interrupting(0, lambda: ZeroDivisionError("oops"))
    )
    assert cli.main(command(inputs, tmp_path / "out.zarr")) == 1
    line = one_error_line(capsys)
    assert "unexpected ZeroDivisionError: oops" in line and "NIMA_LESSONS_TRACEBACK=1" in line
    monkeypatch.setenv("NIMA_LESSONS_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(command(inputs, tmp_path / "out.zarr", "--overwrite"))


@pytest.mark.slow
def test_ctrl_c_keeps_the_saved_part_and_prints_the_resume_hint(inputs, tmp_path):
    output, gate = tmp_path / "out.zarr", tmp_path / "gate"
    run = start_gated(command(inputs, output, "--scheduler", "threads"), gate)
    try:
        wait_until_one_region_is_saved(output, run)
        run.send_signal(signal.SIGINT)
        time.sleep(0.5)
    finally:
        gate.touch()  # the tasks already running finish; the rest is cancelled
        _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "interrupted;" in lines[0] and "run the same command with --resume" in lines[0]
    assert not lock_path(output).exists() and not output.exists()
    assert cli.main(command(inputs, output, "--resume")) == 0
    assert cli.main(command(inputs, tmp_path / "single.zarr")) == 0
    assert tree_bytes(output) == tree_bytes(tmp_path / "single.zarr")


# ------------------------------------------------------- documented options work


def test_progress_follows_the_setting(inputs, tmp_path, capsys, monkeypatch):
    argv = [word for word in command(inputs, tmp_path / "a.zarr") if word != "--no-progress"]
    monkeypatch.setenv("NIMA_LESSONS_PROGRESS", "0")
    assert cli.main(argv) == 0
    assert "region" not in capsys.readouterr().err
    monkeypatch.setenv("NIMA_LESSONS_PROGRESS", "1")
    argv[argv.index(str(tmp_path / "a.zarr"))] = str(tmp_path / "b.zarr")
    assert cli.main(argv) == 0
    assert f"{N_T}/{N_T}" in capsys.readouterr().err


def test_dashboard_needs_a_distributed_scheduler(inputs, tmp_path, capsys):
    assert cli.main(command(inputs, tmp_path / "out.zarr", "--dashboard")) == 2
    assert "--dashboard needs --scheduler distributed" in one_error_line(capsys)


@pytest.mark.distributed
def test_dashboard_is_served_on_the_loopback_interface(inputs, tmp_path, capsys):
    argv = command(inputs, tmp_path / "out.zarr", "--dashboard", "--scheduler", "distributed")
    argv += ["--workers", "1"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "dask dashboard: http://127.0.0.1:" in out and ":8787/" not in out


# ------------------------------------------------------------- a lost scheduler

SCHEDULER = """
import logging, os, sys, time
from distributed import LocalCluster
cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                       host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL,
                       scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
with open(sys.argv[1] + ".tmp", "w") as file:
    file.write(cluster.scheduler_address)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


@pytest.mark.distributed
@pytest.mark.slow
def test_lost_scheduler_is_one_line_with_a_resume_hint(inputs, tmp_path, capsys, monkeypatch):
    address_file = tmp_path / "address"
    scheduler = subprocess.Popen([sys.executable, "-c", SCHEDULER, str(address_file)])
    try:
        deadline = time.monotonic() + 120
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = address_file.read_text()

        def kill_the_cluster():
            # Runs on the cluster's own worker, in the scheduler's process.
            os.kill(os.getpid(), signal.SIGKILL)
            return RuntimeError("unreachable")

        monkeypatch.setattr("nima_lessons.pipeline.run_pipeline", interrupting(1, kill_the_cluster))
        output = tmp_path / "out.zarr"
        argv = command(inputs, output, "--scheduler", address)
        assert cli.main(argv) == 6
    finally:
        scheduler.kill()
        scheduler.wait()
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"lost the connection to the dask scheduler at {address}" in err
    assert "run the same command with --resume" in err
    monkeypatch.undo()
    assert cli.main(command(inputs, output, "--resume")) == 0
    assert cli.main(command(inputs, tmp_path / "single.zarr")) == 0
    assert tree_bytes(output) == tree_bytes(tmp_path / "single.zarr")


def test_result_of_the_command_matches_the_library(data, inputs, tmp_path):
    """The command's stored image equals run_pipeline on the same arrays."""
    from nima_lessons.pipeline import run_pipeline

    assert cli.main(command(inputs, tmp_path / "out.zarr")) == 0
    stored = open_result(tmp_path / "out.zarr")
    image = data.image.assign_coords(C=["G", "R", "C"])
    expected = run_pipeline(image, data.dark.values, data.flat.values).compute()
    np.testing.assert_allclose(stored["image"].values, expected["image"].values, rtol=1e-6)
    np.testing.assert_array_equal(stored["labels"].values, expected["labels"].values)
    assert int(stored["input_nonfinite"].sum()) == 0
    assert (
        json.loads((tmp_path / "out.zarr" / "nima_lessons_complete.json").read_text())[
            "fingerprint"
        ]["--median-radius"]
        == 1
    )
    assert isinstance(stored, xr.Dataset)


LIMITED_DISK_CLI = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
from nima_lessons.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_full_disk_on_a_netcdf_output_is_one_line_with_status_5(inputs, tmp_path):
    # No file may grow past 20 kB: the netCDF library then fails as on a full disk.
    argv = [sys.executable, "-c", LIMITED_DISK_CLI, *command(inputs, tmp_path / "out.nc")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"could not write {tmp_path / 'out.nc'}: NetCDF: HDF error" in lines[0]
    assert "MiB free on its disk" in lines[0] and "nothing was kept" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
