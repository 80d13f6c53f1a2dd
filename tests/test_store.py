"""Tests of nima_lessons.store: region-by-region saving, completion marker, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from nima_lessons.cluster import use_scheduler
from nima_lessons.store import (
    MARKER_NAME,
    PROGRESS_NAME,
    IncompleteStoreError,
    is_complete,
    open_result,
    partial_path,
    save,
)

SHAPE_YX = (12, 10)
N_C = 2
# Time points whose planes were computed, appended by the block function: tells
# which regions a save actually wrote.
COMPUTED_T: list[int] = []


def _plane(t: int, c: int) -> np.ndarray:
    return np.random.default_rng(1000 * t + c).integers(0, 4000, SHAPE_YX, dtype=np.uint16)


def _image_block(block_info=None, seconds=0.0, fail_at=None):
    t0 = block_info[None]["array-location"][0][0]
    c0 = block_info[None]["array-location"][1][0]
    if fail_at is not None and t0 == fail_at:
        raise RuntimeError(f"interrupted at T={t0}")
    time.sleep(seconds)
    COMPUTED_T.append(t0)
    return _plane(t0, c0)[np.newaxis, np.newaxis]


def _labels_block(block_info=None):
    t0 = block_info[None]["array-location"][0][0]
    return (_plane(t0, 0) > 2000).astype(np.int32)[np.newaxis]


def make_result(n_t: int = 8, seconds: float = 0.0, fail_at: int | None = None) -> xr.Dataset:
    """A lazy, deterministic pipeline-like result: image (T, C, Y, X), labels, flat."""
    image = da.map_blocks(
        _image_block,
        seconds=seconds,
        fail_at=fail_at,
        chunks=((1,) * n_t, (1,) * N_C, (SHAPE_YX[0],), (SHAPE_YX[1],)),
        dtype=np.uint16,
        meta=np.empty((0, 0, 0, 0), np.uint16),
    )
    labels = da.map_blocks(
        _labels_block,
        chunks=((1,) * n_t, (SHAPE_YX[0],), (SHAPE_YX[1],)),
        dtype=np.int32,
        meta=np.empty((0, 0, 0), np.int32),
    )
    flat = np.linspace(0.8, 1.2, N_C * SHAPE_YX[0] * SHAPE_YX[1]).reshape(N_C, *SHAPE_YX)
    return xr.Dataset(
        {
            "image": (("T", "C", "Y", "X"), image, {"units": "counts"}),
            "labels": (("T", "Y", "X"), labels),
            "flat": (("C", "Y", "X"), flat),
        },
        coords={"T": np.arange(n_t) * 2.5, "C": ["G", "R"]},
        attrs={"pipeline": "test", "threshold": 2000},
    )


def reference(n_t: int = 8) -> xr.Dataset:
    """The same result built eagerly with numpy, independently of dask and the store."""
    image = np.stack([np.stack([_plane(t, c) for c in range(N_C)]) for t in range(n_t)])
    labels = (image[:, 0] > 2000).astype(np.int32)
    lazy = make_result(n_t)
    return lazy.assign(
        image=(("T", "C", "Y", "X"), image, {"units": "counts"}),
        labels=(("T", "Y", "X"), labels),
    )


def tree_bytes(store: Path) -> dict[str, bytes]:
    """Every file of a store with its content, keyed by relative path."""
    return {
        str(path.relative_to(store)): path.read_bytes()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(autouse=True)
def _threads_and_fresh_record():
    COMPUTED_T.clear()
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def test_zarr_round_trip_equals_numpy_reference(tmp_path):
    store = save(make_result(), tmp_path / "result.zarr")
    assert store == tmp_path / "result.zarr"
    assert is_complete(store)
    assert (store / MARKER_NAME).is_file() and not (store / PROGRESS_NAME).exists()
    assert not partial_path(store).exists()
    opened = open_result(store)
    assert opened["image"].chunks is not None  # opened lazily
    xr.testing.assert_identical(opened.compute(), reference())


def test_dataarray_is_saved_under_its_name_or_data(tmp_path):
    image = make_result()["image"]
    named = open_result(save(image.rename("raw"), tmp_path / "named.zarr"))
    unnamed = open_result(save(image.rename(None), tmp_path / "unnamed.zarr"))
    expected = reference()["image"]
    np.testing.assert_array_equal(named["raw"].values, expected.values)
    np.testing.assert_array_equal(unnamed["data"].values, expected.values)


@pytest.mark.parametrize(
    ("name", "format", "progress"), [("result.nc", None, False), ("result.h5", "netcdf", True)]
)
def test_netcdf_file_equals_reference(tmp_path, name, format, progress):
    target = save(make_result(), tmp_path / name, format=format, progress=progress)
    assert target.is_file() and is_complete(target)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind
    xr.testing.assert_identical(open_result(target).compute(), reference())
    in_memory = save(reference(3), tmp_path / "in_memory.nc")
    xr.testing.assert_identical(open_result(in_memory).compute(), reference(3))


def test_resume_refused_for_netcdf(tmp_path):
    with pytest.raises(ValueError, match="zarr stores only"):
        save(make_result(), tmp_path / "result.nc", resume=True)
    assert not (tmp_path / "result.nc").exists()


def test_irregular_chunks_and_in_memory_data_are_saved(tmp_path):
    result = reference(7).chunk({"T": (3, 1, 3)})
    eager = reference(3)
    xr.testing.assert_identical(open_result(save(result, tmp_path / "a.zarr")).compute(), result)
    xr.testing.assert_identical(open_result(save(eager, tmp_path / "b.zarr")).compute(), eager)


def test_existing_result_is_not_overwritten(tmp_path):
    store = save(make_result(4), tmp_path / "result.zarr")
    before = tree_bytes(store)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save(make_result(6), store)
    assert tree_bytes(store) == before


def test_overwrite_replaces_the_old_result_only_once_complete(tmp_path):
    store = save(make_result(4), tmp_path / "result.zarr")
    with pytest.raises(RuntimeError, match="interrupted"):
        save(make_result(6, fail_at=3), store, overwrite=True)
    # The old result survives the failed replacement untouched.
    assert is_complete(store)
    xr.testing.assert_identical(open_result(store).compute(), reference(4))
    save(make_result(6), store, overwrite=True)
    xr.testing.assert_identical(open_result(store).compute(), reference(6))
    assert not list(tmp_path.glob(".result.zarr*"))


def test_interrupted_save_is_incomplete_and_resumes_only_missing_regions(tmp_path):
    target = tmp_path / "result.zarr"
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError):
        save(make_result(fail_at=5), target)
    assert not is_complete(target)
    assert not is_complete(partial_path(target))
    with pytest.raises(IncompleteStoreError, match="resume=True") as error:
        open_result(target)
    assert str(target) in str(error.value)
    record = json.loads((partial_path(target) / PROGRESS_NAME).read_text())
    regions = record["layout"]["regions"]
    written = {t for index in record["done"] for t in range(*regions[index][2:])}
    # Regions are recorded batch by batch, up to the batch that failed.
    assert 0 in written and 5 not in written and written == set(range(len(written)))
    COMPUTED_T.clear()
    save(make_result(), target, resume=True)
    assert set(COMPUTED_T) == set(range(8)) - written  # recorded regions are not redone
    xr.testing.assert_identical(open_result(target).compute(), reference())


def test_resume_checks_that_it_continues_the_same_result(tmp_path):
    target = tmp_path / "result.zarr"
    with pytest.raises(RuntimeError):
        save(make_result(fail_at=2), target)
    with pytest.raises(ValueError, match="resume=False"):
        save(make_result(9), target, resume=True)
    # Saving afresh (resume=False) discards the interrupted store.
    save(make_result(9), target)
    xr.testing.assert_identical(open_result(target).compute(), reference(9))


def test_resume_of_a_complete_store_writes_nothing(tmp_path):
    store = save(make_result(), tmp_path / "result.zarr")
    before = tree_bytes(store)
    COMPUTED_T.clear()
    assert save(make_result(), store, resume=True) == store
    assert COMPUTED_T == [] and tree_bytes(store) == before
    with pytest.raises(FileExistsError):
        save(make_result(5), store, resume=True)


def test_resume_without_an_interrupted_save_starts_afresh(tmp_path):
    store = save(make_result(), tmp_path / "result.zarr", resume=True)
    xr.testing.assert_identical(open_result(store).compute(), reference())


def test_open_result_refuses_a_store_without_marker(tmp_path):
    foreign = tmp_path / "foreign.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on format 3, not under test
        reference().to_zarr(foreign)
    assert not is_complete(foreign)
    with pytest.raises(IncompleteStoreError, match="completion marker"):
        open_result(foreign)


def test_missing_result_is_file_not_found(tmp_path):
    assert not is_complete(tmp_path / "none.zarr")
    with pytest.raises(FileNotFoundError, match="no saved result"):
        open_result(tmp_path / "none.zarr")


def test_invalid_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="format 'tiff'"):
        save(make_result(), tmp_path / "x", format="tiff")
    with pytest.raises(TypeError, match="ndarray"):
        save(np.zeros(3), tmp_path / "x.zarr")


def test_processes_scheduler_writes_the_same_store(tmp_path):
    with use_scheduler("processes", n_workers=2):
        in_processes = save(make_result(), tmp_path / "processes.zarr")
    threaded = save(make_result(), tmp_path / "threads.zarr")
    assert tree_bytes(in_processes) == tree_bytes(threaded)
    xr.testing.assert_identical(open_result(in_processes).compute(), reference())


def test_progress_bar_counts_regions(tmp_path, capsys, monkeypatch):
    save(make_result(), tmp_path / "result.zarr", progress=True)
    assert "8/8" in capsys.readouterr().err
    monkeypatch.setenv("NIMA_LESSONS_PROGRESS", "off")
    save(make_result(), tmp_path / "quiet.zarr", progress=None)
    assert capsys.readouterr().err == ""


def test_regions_are_written_concurrently(tmp_path):
    # Every block waits for a second one: the save completes only if blocks of
    # different regions run at the same time.
    barrier = threading.Barrier(2, timeout=20)

    def paired_plane(block, block_info=None):
        barrier.wait()
        return block

    lazy = make_result(4)
    paired = lazy["image"].data.map_blocks(paired_plane, meta=np.empty((0,) * 4, np.uint16))
    lazy["image"] = lazy["image"].copy(data=paired)
    with dask.config.set(num_workers=4):
        save(lazy[["image"]].isel(C=[0]), tmp_path / "result.zarr")
    stored = open_result(tmp_path / "result.zarr")["image"].values
    np.testing.assert_array_equal(stored, reference(4)["image"].isel(C=[0]).values)


KILLED_SAVE = """
import sys
sys.path.insert(0, {tests!r})
import dask
from test_store import make_result
from nima_lessons.store import save
with dask.config.set(scheduler="threads", num_workers=2):
    save(make_result(seconds=0.25), {target!r})
"""


def test_killed_save_resumes_to_the_store_of_an_uninterrupted_run(tmp_path):
    target = tmp_path / "killed.zarr"
    record_path = partial_path(target) / PROGRESS_NAME
    script = KILLED_SAVE.format(tests=str(Path(__file__).parent), target=str(target))
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        deadline = time.monotonic() + 60
        done: list[int] = []
        while not done and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            done = json.loads(record_path.read_text())["done"] if record_path.exists() else []
        assert done, f"the save process recorded no region (exit status {process.poll()})"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    recorded = json.loads(record_path.read_text())
    n_regions = len(recorded["layout"]["regions"])
    assert 0 < len(recorded["done"]) < n_regions
    assert not is_complete(target)
    with pytest.raises(IncompleteStoreError):
        open_result(target)
    # Garbage in a chunk of an unrecorded region (as a write cut short leaves it)
    # must be replaced by the resumed save.
    missing = sorted(set(range(n_regions)) - set(recorded["done"]))[0]
    t_missing = recorded["layout"]["regions"][missing][2]
    chunk = partial_path(target) / "image" / "c" / str(t_missing) / "0" / "0" / "0"
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(b"half-written")

    COMPUTED_T.clear()
    save(make_result(), target, resume=True)
    written_again = {recorded["layout"]["regions"][i][2] for i in range(n_regions)} - {
        recorded["layout"]["regions"][i][2] for i in recorded["done"]
    }
    assert set(COMPUTED_T) == written_again
    assert is_complete(target)
    uninterrupted = save(make_result(), tmp_path / "uninterrupted.zarr")
    assert tree_bytes(target) == tree_bytes(uninterrupted)
    xr.testing.assert_identical(open_result(target).compute(), reference())
