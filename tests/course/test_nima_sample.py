"""Fetching nima's sample: checked, extracted, recorded; offline, a message saying what to do.

These tests build a stand-in archive shaped like nima's sdist; the real one is fetched
and checked by tests/pipeline/test_nima_acceptance.py.
"""

from __future__ import annotations

import io as bytes_io
import subprocess
import tarfile

import numpy as np
import pytest
import tifffile

from nima_lessons.course import nima_sample
from nima_lessons.course.nima_sample import (
    NimaSampleUnavailable,
    ensure_nima_sample,
    nima_sample_path,
    open_nima_sample,
)
from nima_lessons.course.synthetic import ensure_dataset

IMAGE = np.arange(4 * 3 * 8 * 8, dtype=np.uint16).reshape(4, 3, 8, 8)


def stand_in_sdist(path, top="nima-0.11.9"):
    """A tar.gz with the members of nima's sdist that the dataset uses."""
    image = bytes_io.BytesIO()
    tifffile.imwrite(image, IMAGE, ome=True, metadata={"axes": "TCYX"})
    flat = bytes_io.BytesIO()
    tifffile.imwrite(flat, np.full((4, 5), 700, np.uint16))
    members = {
        "tests/data/1b_c16_15.tif": image.getvalue(),
        **{f"tests/data/test_flat{i}.tif": flat.getvalue() for i in range(3)},
        "tests/data/output/1b_c16_15/bg.csv": b",C,G,R\n0,272.0,459.0,245.0\n",
        "LICENSE.txt": b"BSD 3-Clause text\n",
        "src/nima/__init__.py": b"",
    }
    header = ",C,G,R,area,eccentricity,equivalent_diameter,r_cl,r_pH,r_cl_median,r_pH_median\n"
    for k in (1, 2, 3):
        row = f"0,1.0,2.0,3.0,{100 * k},0.5,11.0,0.33,2.0,0.3,2.1\n"
        members[f"tests/data/output/1b_c16_15/label{k}.csv"] = (header + row).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, bytes_io.BytesIO(data))
    return path


@pytest.fixture
def archive(tmp_path, monkeypatch):
    path = stand_in_sdist(tmp_path / "nima-0.11.9.tar.gz")
    monkeypatch.setattr(nima_sample, "SDIST_SHA256", nima_sample._sha256(path))
    return path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pip was called")

    monkeypatch.setattr(nima_sample, "_pip_download", refuse)


def failing_pip(stderr):
    def run(folder, timeout_s):
        return subprocess.CompletedProcess(["pip"], 1, "", stderr)

    return run


def test_archive_is_checked_extracted_and_recorded(tmp_path, archive, no_network):
    folder = ensure_nima_sample(tmp_path / "data", archive=archive)
    assert folder == nima_sample_path(tmp_path / "data")
    for name in nima_sample.MEMBERS.values():
        assert (folder / name).is_file()
    assert "BSD 3-Clause" in (folder / "SOURCE.md").read_text()
    assert nima_sample.SDIST_SHA256 in (folder / "SOURCE.md").read_text()
    assert (folder / "LICENSE.txt").read_text() == "BSD 3-Clause text\n"
    sample = open_nima_sample(folder)
    assert sample.image.C.values.tolist() == ["G", "R", "C"]
    np.testing.assert_array_equal(sample.image.values[:, :, 0], IMAGE)
    assert sample.background.loc[0, "G"] == 459.0
    assert sorted(sample.cells["label"]) == [1, 2, 3] and sample.flat.shape == (3, 4, 5)
    archive.unlink()  # a complete dataset is reused as it is
    assert ensure_nima_sample(tmp_path / "data", archive=archive) == folder


def test_a_wrong_hash_is_refused_before_anything_is_written(tmp_path):
    path = stand_in_sdist(tmp_path / "nima-0.11.9.tar.gz", top="other")
    with pytest.raises(ValueError, match=r"sha256 [0-9a-f]{64}, not 38903bfb"):
        ensure_nima_sample(tmp_path / "data", archive=path)
    assert not nima_sample_path(tmp_path / "data").exists()


def test_offline_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    stderr = (
        "WARNING: Retrying ... Failed to establish a new connection: [Errno 101]\n"
        "ERROR: No matching distribution found for nima==0.11.9\n"
    )
    monkeypatch.setattr(nima_sample, "_pip_download", failing_pip(stderr))
    with pytest.raises(NimaSampleUnavailable) as error:
        ensure_dataset("nima-sample", root=tmp_path / "data")
    message = str(error.value)
    assert "\n" not in message
    assert "nima-0.11.9.tar.gz" in message and nima_sample.SDIST_SHA256 in message
    assert str(tmp_path / "data" / "downloads" / "nima-0.11.9.tar.gz") in message
    assert "pip download --no-deps --no-binary :all: nima==0.11.9" in message


def test_other_pip_failures_are_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(nima_sample, "_pip_download", failing_pip("ERROR: disk quota exceeded"))
    with pytest.raises(RuntimeError, match="disk quota"):
        ensure_nima_sample(tmp_path / "data")


def test_the_cached_archive_needs_no_network(tmp_path, archive, no_network):
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    archive.rename(downloads / "nima-0.11.9.tar.gz")
    folder = ensure_dataset("nima-sample", root=tmp_path / "data")
    assert (folder / "1b_c16_15.tif").is_file()


def test_pip_download_is_the_documented_command(tmp_path, archive, monkeypatch):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        target = command[command.index("-d") + 1]
        archive.rename(f"{target}/nima-0.11.9.tar.gz")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(nima_sample.subprocess, "run", fake_run)
    ensure_nima_sample(tmp_path / "data")
    assert calls[0][1:8] == ["-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                             "nima==0.11.9"]  # fmt: skip
    assert (tmp_path / "data" / "downloads" / "nima-0.11.9.tar.gz").is_file()


def test_something_else_at_the_path_is_not_replaced(tmp_path, archive):
    folder = nima_sample_path(tmp_path / "data")
    folder.mkdir(parents=True)
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a complete copy"):
        ensure_nima_sample(tmp_path / "data", archive=archive)
    assert (folder / "mine.txt").read_text() == "keep me"
    with pytest.raises(FileNotFoundError, match="ensure_dataset"):
        open_nima_sample(folder)
    with pytest.raises(ValueError, match="no seed"):
        ensure_dataset("nima-sample", root=tmp_path / "data", seed=2)
