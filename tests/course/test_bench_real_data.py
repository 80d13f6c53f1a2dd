"""The ``real_data`` benchmark case: finding nima, measuring a command, agreeing with nima.

The fast tests run on a stand-in of nima's sample (an archive shaped like nima's sdist, made
here) with a stand-in ``nima`` executable; the slow ones run the tiny preset on the real
sample, fetched once into the data folder (skipped, saying so, without the package index),
and compare our tables with the ones nima ships.
"""

from __future__ import annotations

import dataclasses
import io as bytes_io
import os
import stat
import sys
import tarfile
import textwrap

import numpy as np
import pandas as pd
import pytest
import tifffile

from nima_lessons.course import bench, nima_sample
from nima_lessons.course.bench import case as protocol
from nima_lessons.course.bench import real_data
from nima_lessons.course.bench.harness import Work
from nima_lessons.course.nima_sample import NimaSampleUnavailable, ensure_nima_sample

ROW_KEYS = {
    "operation", "implementation", "role", "params", "seconds", "peak_rss_bytes",
    "baseline_rss_bytes", "work_rss_bytes", "metrics",
}  # fmt: skip
COLUMNS = ["C", "G", "R", "area", "eccentricity", "equivalent_diameter", *real_data.RATIO_COLUMNS]


def nima_csvs(scale: float = 1.0) -> dict[str, str]:
    """bg.csv and label<N>.csv as nima writes them (index column T first), ratios scaled."""
    background = pd.DataFrame({"C": [272.0, 275.0], "G": [459.0, 462.0], "R": [245.0, 249.0]})
    files = {"bg.csv": background.to_csv()}
    for label in (1, 2, 3):
        values = np.arange(len(COLUMNS), dtype=float) + label
        table = pd.DataFrame([values, values + 0.5], columns=COLUMNS)
        table[list(real_data.RATIO_COLUMNS)] *= scale
        files[f"label{label}.csv"] = table.to_csv()
    return files


def stand_in_archive(path):
    """A tar.gz holding every member of nima's sdist that the sample uses, with small files."""
    image, flat = bytes_io.BytesIO(), bytes_io.BytesIO()
    tifffile.imwrite(image, np.ones((2, 3, 16, 16), np.uint16), ome=True, metadata={"axes": "TCYX"})
    tifffile.imwrite(flat, np.ones((4, 5), np.uint16))
    contents = {"LICENSE.txt": b"BSD 3-Clause\n"}
    for name, text in nima_csvs().items():
        contents[f"tests/data/output/1b_c16_15/{name}"] = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        for member in nima_sample.MEMBERS:
            data = contents.get(member, (image if member.endswith("15.tif") else flat).getvalue())
            info = tarfile.TarInfo(f"nima-0.11.9/{member}")
            info.size = len(data)
            tar.addfile(info, bytes_io.BytesIO(data))
    return path


@pytest.fixture
def stand_in_sample(tmp_path, monkeypatch):
    """nima's sample made from a stand-in archive, in a data folder of its own."""
    archive = stand_in_archive(tmp_path / "nima-0.11.9.tar.gz")
    monkeypatch.setattr(nima_sample, "SDIST_SHA256", nima_sample._sha256(archive))
    monkeypatch.setenv("NIMA_LESSONS_DATA", str(tmp_path / "data"))
    return ensure_nima_sample(tmp_path / "data", archive=archive)


@pytest.fixture
def stand_in_nima(tmp_path, monkeypatch):
    """A ``nima`` executable that checks its call and writes tables as nima's command line does.

    Returns a function writing the tables it will produce.
    """
    if os.name == "nt":
        pytest.skip("a script with a #! line is not an executable on Windows")
    tables, log = tmp_path / "tables", tmp_path / "nima-calls.txt"
    script = tmp_path / "bin" / "nima"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(f"""
        import os, pathlib, shutil, sys
        with open({str(log)!r}, "a") as log:
            print(sys.argv[1:], sorted(os.listdir()), os.environ.get("PYTHONPATH"), file=log)
        if sys.argv[1:] != ["1b_c16_15.tif", "G", "R", "C"]:
            sys.exit("nima: unexpected arguments")
        if pathlib.Path({str(tables)!r}, "exit").exists():
            sys.exit(pathlib.Path({str(tables)!r}, "exit").read_text())
        out = pathlib.Path("nima-0.11.9", "1b_c16_15")
        out.mkdir(parents=True)
        for table in pathlib.Path({str(tables)!r}).iterdir():
            shutil.copy(table, out)
        """)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(real_data.NIMA_ENV, str(script))

    def write(files):
        tables.mkdir(exist_ok=True)
        for name, text in files.items():
            (tables / name).write_text(text)
        return log

    return write


def stub_ours(folder):
    """Ours replaced by nima's shipped tables: the anchor's tests need no pipeline run."""
    reference = nima_sample.open_nima_sample(folder)
    return Work(
        run=lambda: (reference.background, reference.cells),
        record=lambda found: real_data.agreement_with_nima(*found, reference),
    )


def run_variant(monkeypatch=None, **params):
    """Run the case at the tiny preset with other settings; ours stubbed when ``monkeypatch``."""
    if monkeypatch is not None:
        monkeypatch.setattr(real_data, "prepare_ours", stub_ours)
    settings = {**real_data.CASE.presets["tiny"], **params}
    variant = dataclasses.replace(real_data.CASE, presets={"tiny": settings})
    return protocol.run_case(variant, "tiny", fresh_processes=False)


def check_row_schema(row):
    assert set(row) == ROW_KEYS
    assert row["role"] in protocol.ROLES
    seconds = row["seconds"]
    assert seconds["min"] <= seconds["median"] <= seconds["max"]
    assert seconds["n"] == len(seconds["values"]) >= 1
    assert row["params"] == {"image": "1b_c16_15.tif"}


# ---------------------------------------------------------------- finding nima


def test_missing_nima_is_one_line_naming_the_variable_and_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(real_data.NIMA_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nima there
    path, note = real_data.find_nima()
    assert path is None
    assert "\n" not in note and "NIMA_LESSONS_NIMA" in note
    assert "python -m venv nima-venv && nima-venv/bin/pip install nima==0.11.9" in note
    assert "NIMA_LESSONS_NIMA=nima-venv/bin/nima" in note


def test_a_variable_naming_no_executable_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(real_data.NIMA_ENV, str(tmp_path / "nope" / "nima"))
    path, note = real_data.find_nima()
    assert path is None and "\n" not in note
    assert f"NIMA_LESSONS_NIMA={tmp_path / 'nope' / 'nima'} is not an executable file" in note


def test_nima_is_found_through_the_variable_before_the_path(monkeypatch, tmp_path):
    for folder in ("named", "on-path"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "nima").write_text("#!/bin/sh\n")
        (tmp_path / folder / "nima").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "on-path"))
    monkeypatch.delenv(real_data.NIMA_ENV, raising=False)
    assert real_data.find_nima() == (tmp_path / "on-path" / "nima", None)
    monkeypatch.setenv(real_data.NIMA_ENV, str(tmp_path / "named" / "nima"))
    assert real_data.find_nima() == (tmp_path / "named" / "nima", None)


# ---------------------------------------------------------------- measuring a command

ALLOCATE = "import numpy as np; n = int({}); a = np.ones(n, np.uint8); assert a.sum() == n"


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="no resource usage of one child here")
def test_command_peak_memory_is_the_commands_own(tmp_path):
    # The same command with and without a 100 MB array: the peaks differ by about its size.
    runs = [
        real_data.run_command([sys.executable, "-c", ALLOCATE.format(n_bytes)], tmp_path)
        for n_bytes in (1, 100e6)
    ]
    assert 0.9 * 100e6 <= runs[1].peak_rss_bytes - runs[0].peak_rss_bytes <= 1.2 * 100e6
    # Started while this process holds 200 MB, a small command is not charged for them.
    held = np.ones(200_000_000, np.uint8)
    small = real_data.run_command([sys.executable, "-c", "pass"], tmp_path)
    assert held.sum() == held.size and small.peak_rss_bytes < 60e6
    assert 0 < small.seconds < runs[1].seconds + 10
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing left behind


def test_a_failing_command_is_one_line_with_its_status_and_last_error(tmp_path):
    command = [sys.executable, "-c", "import sys; print('first'); sys.exit('it broke')"]
    with pytest.raises(real_data.CommandFailed) as failure:
        real_data.run_command(command, tmp_path)
    message = str(failure.value)
    assert "\n" not in message
    assert "exit status 1" in message and message.endswith(": it broke")
    assert str(tmp_path) in message and "sys.exit" in message


def test_a_command_that_cannot_start_is_named(tmp_path):
    with pytest.raises(real_data.CommandFailed) as failure:
        real_data.run_command([tmp_path / "no-such-nima", "x.tif"], tmp_path)
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"`{tmp_path / 'no-such-nima'} x.tif`")
    assert "could not be run: FileNotFoundError" in message


def test_a_command_past_its_time_limit_is_stopped(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(real_data.CommandFailed, match=r"did not finish in 0.5 s"):
        real_data.run_command(command, tmp_path, timeout_s=0.5)


# ---------------------------------------------------------------- agreement with nima


@pytest.fixture
def reference():
    background, cells = pd.DataFrame({"G": [459.0, 462.0], "R": [245.0, 249.0],
                                      "C": [272.0, 275.0]}), pd.DataFrame({
        "label": [1, 2, 1], "T": [0, 0, 1], "r_cl": [0.65, 0.56, 0.67],
        "r_pH": [9.15, 8.94, 9.19], "r_cl_median": [0.64, 0.56, 0.66],
        "r_pH_median": [9.33, 8.92, 9.36]})  # fmt: skip
    return nima_sample.NimaSample(None, None, background.rename_axis("T"), cells, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("none", {"background_max_diff": 0.0, "same_cells": True, "ratio_max_rel_diff": 0.0}),
        ("background +2", {"background_max_diff": 2.0, "agrees_with_nima": True}),
        ("background +2.5", {"background_max_diff": 2.5, "agrees_with_nima": False}),
        ("ratio x 1.009", {"ratio_max_rel_diff": pytest.approx(0.009), "agrees_with_nima": True}),
        ("ratio x 0.98", {"ratio_max_rel_diff": pytest.approx(0.02), "agrees_with_nima": False}),
        ("cell missing", {"same_cells": False, "ratio_max_rel_diff": 0.0,
                          "agrees_with_nima": False}),
        ("time point missing", {"background_max_diff": np.inf, "agrees_with_nima": False}),
    ],
)  # fmt: skip
def test_agreement_follows_the_acceptance_tolerances(reference, change, expected):
    background, cells = reference.background.copy(), reference.cells.iloc[::-1].copy()
    if change.startswith("background"):
        background.loc[1, "R"] += float(change.split("+")[1])
    elif change.startswith("ratio"):
        cells.loc[cells.index[0], "r_pH_median"] *= float(change.split("x ")[1])
    elif change == "cell missing":
        cells = cells[cells["label"] != 2]
    elif change == "time point missing":
        background = background.iloc[:1]
    found = real_data.agreement_with_nima(background, cells, reference)
    assert found == {**found, **expected}
    assert found["agrees_with_nima"] is (change in ("none", "background +2", "ratio x 1.009"))


def test_nimas_tables_are_read_with_labels_and_time_points(tmp_path):
    for name, text in nima_csvs().items():
        (tmp_path / name).write_text(text)
    background, cells = nima_sample.read_nima_tables(tmp_path)
    expected = pd.DataFrame({"G": [459.0, 462.0], "R": [245.0, 249.0], "C": [272.0, 275.0]})
    pd.testing.assert_frame_equal(background, expected.rename_axis("T"))
    assert list(cells.columns) == ["label", "T", *COLUMNS]
    assert list(zip(cells["label"], cells["T"], strict=True)) == [
        (label, t) for label in (1, 2, 3) for t in (0, 1)
    ]
    # label N's second row is its first plus 0.5, its first row 0, 1, 2, ... plus N
    second_of_3 = cells[(cells["label"] == 3) & (cells["T"] == 1)][COLUMNS].to_numpy()
    np.testing.assert_array_equal(second_of_3[0], np.arange(len(COLUMNS)) + 3.5)
    with pytest.raises(FileNotFoundError, match=r"holds no bg\.csv"):
        nima_sample.read_nima_tables(tmp_path / "empty")


# ---------------------------------------------------------------- the case, on a stand-in


def test_without_the_sample_the_tiny_preset_skips_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("NIMA_LESSONS_DATA", str(tmp_path))
    result = run_variant()
    assert result["error"] is None and result["rows"] == [] and result["claims"] == []
    (note,) = [note for note in result["notes"] if note not in real_data.CASE.notes]
    assert note.startswith("real_data skipped: nima's sample is not in") and "\n" not in note
    assert not (tmp_path / "nima-sample").exists()  # the tiny preset downloads nothing


def test_offline_the_case_skips_in_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise NimaSampleUnavailable("cannot reach the package index")

    monkeypatch.setattr(real_data, "ensure_nima_sample", offline)
    result = run_variant(fetch=True)
    assert result["error"] is None and result["rows"] == []
    assert result["notes"][0] == (
        "real_data skipped: nima's sample could not be fetched: cannot reach the package index"
    )


def test_without_nima_the_anchor_is_skipped_in_one_line(stand_in_sample, monkeypatch, tmp_path):
    monkeypatch.setenv(real_data.NIMA_ENV, str(tmp_path / "missing-nima"))
    result = run_variant(monkeypatch, anchor=True)
    assert result["error"] is None
    assert [row["role"] for row in result["rows"]] == ["ours"]
    assert result["notes"][0] == real_data.missing_nima_message(str(tmp_path / "missing-nima"))


def test_the_anchor_runs_nima_in_a_scratch_folder_and_checks_its_tables(
    stand_in_sample, stand_in_nima, monkeypatch
):
    calls = stand_in_nima(nima_csvs())
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    result = run_variant(monkeypatch, anchor=True)
    assert result["error"] is None, result["error"]
    ours, nima = result["rows"]
    for row in (ours, nima):
        check_row_schema(row)
    assert (ours["role"], nima["role"]) == ("ours", "anchor")
    assert nima["implementation"] == real_data.NIMA_COMMAND
    assert nima["metrics"] == {
        "nima_version": "0.11.9",
        "tables_agree_with_shipped": True,
        "ratio_max_rel_diff_shipped": 0.0,
    }
    # Called once per repeat, in a folder holding only the image, without our Python path.
    assert calls.read_text().splitlines() == [
        "['1b_c16_15.tif', 'G', 'R', 'C'] ['1b_c16_15.tif'] None"
    ]
    if hasattr(os, "wait4"):
        assert nima["peak_rss_bytes"] > 1_000_000  # a Python process
    compared = {item["metric"]: item for item in result["comparisons"]}
    assert compared["seconds"]["ratio"] == pytest.approx(
        nima["seconds"]["median"] / ours["seconds"]["median"]
    )
    assert ("peak_rss_bytes" in compared) == (ours["peak_rss_bytes"] is not None)


def test_the_anchor_says_when_nimas_tables_depart_from_the_shipped_ones(
    stand_in_sample, stand_in_nima, monkeypatch
):
    stand_in_nima(nima_csvs(scale=1.05))
    result = run_variant(monkeypatch, anchor=True)
    nima = result["rows"][1]
    assert nima["metrics"]["tables_agree_with_shipped"] is False
    assert nima["metrics"]["ratio_max_rel_diff_shipped"] == pytest.approx(0.05)


def test_a_failing_nima_is_the_case_error_and_ours_is_kept(
    stand_in_sample, stand_in_nima, monkeypatch
):
    stand_in_nima({"exit": "nima: cannot read the image"})
    result = run_variant(monkeypatch, anchor=True)
    assert result["error"].startswith("CommandFailed: `")
    assert result["error"].endswith("failed (exit status 1): nima: cannot read the image")
    assert [row["role"] for row in result["rows"]] == ["ours"]


# ---------------------------------------------------------------- the real sample


@pytest.fixture(scope="module")
def real_sample():
    try:
        return ensure_nima_sample()
    except NimaSampleUnavailable as error:
        pytest.skip(f"nima's sample could not be fetched: {error}")


@pytest.mark.slow
def test_tiny_preset_on_the_sample_agrees_with_nimas_shipped_tables(real_sample):
    result = bench.run_case("real_data", "tiny")
    assert result["error"] is None, result["error"]
    (ours,) = result["rows"]
    check_row_schema(ours)
    assert (ours["role"], ours["implementation"]) == ("ours", real_data.OURS)
    assert ours["metrics"]["agrees_with_nima"] is True
    assert ours["metrics"]["background_max_diff"] <= real_data.BACKGROUND_TOLERANCE
    assert ours["metrics"]["ratio_max_rel_diff"] <= real_data.RATIO_TOLERANCE
    assert [item["holds"] for item in result["claims"]] == [True]
    assert any(
        note.startswith("nima's command line skipped at the tiny") for note in result["notes"]
    )


@pytest.mark.slow
def test_our_command_line_finds_nimas_cells_and_background(real_sample):
    result = run_variant(command=True)
    assert result["error"] is None, result["error"]
    _, command = result["rows"]
    check_row_schema(command)
    assert (command["role"], command["implementation"]) == ("ours", real_data.OUR_COMMAND)
    assert command["metrics"]["ratios_checked"] == "r_pH"  # the command's table has no r_cl
    assert command["metrics"]["agrees_with_nima"] is True
    if hasattr(os, "wait4"):
        assert command["peak_rss_bytes"] > 100_000_000  # Python, dask, the image
    assert [item["holds"] for item in result["claims"]] == [True, True]
