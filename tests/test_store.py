"""Tests of nima_lessons.store: region-by-region saving, completion marker, resume."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
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
import psutil
import pytest
import xarray as xr

from nima_lessons._atomic import (
    OutputLockedError,
    StaleLockWarning,
    find_leftovers,
    lock_path,
)
from nima_lessons.cluster import use_scheduler
from nima_lessons.store import (
    MARKER_NAME,
    PROGRESS_NAME,
    IncompleteStoreError,
    NotOurOutputError,
    ResumeMismatchError,
    describe_input,
    is_complete,
    open_result,
    partial_path,
    save,
    save_progress,
)

SHAPE_YX = (12, 10)
N_C = 2
# Time points whose planes were computed, appended by the block function: tells
# which regions a save actually wrote.
COMPUTED_T: list[int] = []


def _plane(t: int, c: int) -> np.ndarray:
    return np.random.default_rng(1000 * t + c).integers(0, 4000, SHAPE_YX, dtype=np.uint16)


def _image_block(block_info=None, seconds=0.0, fail_at=None, gate=None):
    t0 = block_info[None]["array-location"][0][0]
    c0 = block_info[None]["array-location"][1][0]
    if fail_at is not None and t0 == fail_at:
        raise RuntimeError(f"interrupted at T={t0}")
    # A writer in another process waits here, holding its lock, until the test
    # creates the gate file.
    while gate is not None and t0 > 0 and not os.path.exists(gate):
        time.sleep(0.01)
    time.sleep(seconds)
    COMPUTED_T.append(t0)
    return _plane(t0, c0)[np.newaxis, np.newaxis]


def _labels_block(block_info=None):
    t0 = block_info[None]["array-location"][0][0]
    return (_plane(t0, 0) > 2000).astype(np.int32)[np.newaxis]


def make_result(
    n_t: int = 8, seconds: float = 0.0, fail_at: int | None = None, gate: str | None = None
) -> xr.Dataset:
    """A lazy, deterministic pipeline-like result: image (T, C, Y, X), labels, flat."""
    image = da.map_blocks(
        _image_block,
        seconds=seconds,
        fail_at=fail_at,
        gate=gate,
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


def test_resuming_a_netcdf_file_writes_it_whole_once(tmp_path):
    target = save(make_result(), tmp_path / "result.nc", resume=True)
    xr.testing.assert_identical(open_result(target).compute(), reference())
    written = target.stat().st_mtime_ns
    COMPUTED_T.clear()
    assert save(make_result(), target, resume=True) == target  # already complete
    assert COMPUTED_T == [] and target.stat().st_mtime_ns == written
    with pytest.raises(ResumeMismatchError, match="already complete"):
        save(make_result(5), target, resume=True)
    assert target.stat().st_mtime_ns == written


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
    before = tree_bytes(partial_path(target))
    with pytest.raises(ResumeMismatchError, match=r"started differently.*overwrite=True"):
        save(make_result(9), target, resume=True)
    # Neither resuming nor discarding: the interrupted save is kept as it was.
    with pytest.raises(FileExistsError, match=r"resume=True.*overwrite=True"):
        save(make_result(9), target)
    assert tree_bytes(partial_path(target)) == before
    # overwrite=True discards the interrupted store and starts afresh.
    save(make_result(9), target, overwrite=True)
    xr.testing.assert_identical(open_result(target).compute(), reference(9))


def test_resume_of_a_complete_store_writes_nothing(tmp_path):
    store = save(make_result(), tmp_path / "result.zarr")
    before = tree_bytes(store)
    COMPUTED_T.clear()
    assert save(make_result(), store, resume=True) == store
    assert COMPUTED_T == [] and tree_bytes(store) == before
    with pytest.raises(ResumeMismatchError, match=r"already complete.*overwrite"):
        save(make_result(5), store, resume=True)
    assert tree_bytes(store) == before


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
    with pytest.warns(StaleLockWarning, match=f"process {process.pid} on host"):
        save(make_result(), target, resume=True)
    written_again = {recorded["layout"]["regions"][i][2] for i in range(n_regions)} - {
        recorded["layout"]["regions"][i][2] for i in recorded["done"]
    }
    assert set(COMPUTED_T) == written_again
    assert is_complete(target)
    uninterrupted = save(make_result(), tmp_path / "uninterrupted.zarr")
    assert tree_bytes(target) == tree_bytes(uninterrupted)
    xr.testing.assert_identical(open_result(target).compute(), reference())


# ------------------------------------------------------- one writer at a time

WRITER = """
import json, sys, time
sys.path.insert(0, {tests!r})
import dask
from test_store import make_result
from nima_lessons._atomic import OutputLockedError
from nima_lessons.store import save
started = time.monotonic()
try:
    with dask.config.set(scheduler="threads", num_workers=2):
        save(make_result({n_t}, gate={gate!r}), {target!r}, fingerprint={fingerprint!r})
except OutputLockedError as error:
    print(json.dumps({{"seconds": time.monotonic() - started, "error": str(error)}}))
    sys.exit(4)
"""


def writer_script(target: Path, n_t: int = 8, gate=None, fingerprint=None) -> str:
    return WRITER.format(
        tests=str(Path(__file__).parent), target=str(target), n_t=n_t, gate=gate,
        fingerprint=fingerprint,
    )  # fmt: skip


def start_writer(target: Path, **options) -> subprocess.Popen:
    script = writer_script(target, **options)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def wait_for_lock_record(target: Path, process: subprocess.Popen) -> dict:
    """The lock record of ``target`` once ``process`` has written it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            record = json.loads(lock_path(target).read_text() or "{}")
        except (FileNotFoundError, json.JSONDecodeError):
            record = {}
        if record.get("pid") == process.pid and partial_path(target).exists():
            return record
        time.sleep(0.02)
    raise AssertionError(f"the writer did not take the lock (exit status {process.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "second_n_t", "second_fingerprint"),
    [("result.zarr", 8, None), ("result.nc", 6, {"settings": {"median_radius": 2}})],
    ids=["same-save-twice", "other-settings"],
)
def test_a_second_writer_fails_at_once_and_the_first_is_unaffected(
    tmp_path, name, second_n_t, second_fingerprint
):
    target, gate = tmp_path / name, tmp_path / "gate"
    first = start_writer(target, gate=str(gate))
    try:
        if target.suffix == ".nc":  # a netCDF save has no partial store to wait for
            deadline = time.monotonic() + 60
            while not lock_path(target).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            holder = json.loads(lock_path(target).read_text() or "{}")
        else:
            holder = wait_for_lock_record(target, first)
        second = subprocess.run(
            [sys.executable, "-c", writer_script(target, second_n_t, None, second_fingerprint)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        gate.touch()
        first.wait(timeout=120)
    assert second.returncode == 4, second.stderr
    refused = json.loads(second.stdout)
    assert refused["seconds"] < 5  # at once, not after waiting for the first
    assert f"process {first.pid} on host {socket.gethostname()}" in refused["error"]
    assert holder["pid"] == first.pid
    assert first.returncode == 0
    assert not lock_path(target).exists() and not find_leftovers(target)
    # The first writer's result is that of a single, undisturbed run.
    single = save(make_result(8), tmp_path / f"single{target.suffix}")
    xr.testing.assert_identical(open_result(target).compute(), reference())
    if target.suffix == ".zarr":
        assert tree_bytes(target) == tree_bytes(single)


@pytest.mark.slow
def test_killed_writer_lock_is_taken_over_with_a_warning_naming_it(tmp_path):
    target = tmp_path / "result.zarr"
    writer = start_writer(target, gate=str(tmp_path / "never"))
    try:
        wait_for_lock_record(target, writer)
    finally:
        writer.kill()
        writer.wait()
    assert lock_path(target).exists()  # SIGKILL ran no clean-up
    # The next save takes over the lock, then refuses to discard the interrupted save.
    with pytest.warns(StaleLockWarning, match=f"process {writer.pid} on host .* no longer"):
        with pytest.raises(FileExistsError, match="resume=True"):
            save(make_result(), target)
    assert not lock_path(target).exists()  # released on the error
    save(make_result(), target, resume=True)
    xr.testing.assert_identical(open_result(target).compute(), reference())
    assert not lock_path(target).exists()


def test_lock_recorded_by_another_host_is_never_taken_over(tmp_path):
    target = tmp_path / "result.zarr"
    record = {"pid": 4242, "host": "node-17.cluster", "since": "2026-01-01T10:00:00+00:00"}
    lock_path(target).write_text(json.dumps(record))
    with pytest.raises(OutputLockedError, match=r"process 4242 on host node-17\.cluster.*delete"):
        save(make_result(), target)
    assert json.loads(lock_path(target).read_text()) == record
    assert sorted(p.name for p in tmp_path.iterdir()) == [".result.zarr.lock"]


def test_lock_of_a_running_process_is_respected_without_an_operating_system_lock(tmp_path):
    # As on a file system where locks do not reach other machines or processes:
    # the record alone names a holder that still runs.
    target = tmp_path / "result.nc"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(sleeper.pid).create_time()
        record = {"pid": sleeper.pid, "host": socket.gethostname(), "process_started": started}
        lock_path(target).write_text(json.dumps(record))
        with pytest.raises(OutputLockedError, match=f"process {sleeper.pid} on host"):
            save(make_result(), target)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not target.exists()
    with pytest.warns(StaleLockWarning, match=str(sleeper.pid)):
        save(make_result(), target)
    xr.testing.assert_identical(open_result(target).compute(), reference())


# ------------------------------------------------------ resume the same save only


def test_resume_with_other_settings_is_refused_naming_the_setting(tmp_path):
    target = tmp_path / "result.zarr"
    radius_1 = {"settings": {"median_radius": 1}, "inputs": {"image": {"path": "/data/a"}}}
    with pytest.raises(RuntimeError):
        save(make_result(fail_at=4), target, fingerprint=radius_1)
    before = tree_bytes(partial_path(target))
    radius_2 = {"settings": {"median_radius": 2}, "inputs": {"image": {"path": "/data/a"}}}
    with pytest.raises(ResumeMismatchError, match=r"settings.median_radius was 1, now 2") as error:
        save(make_result(), target, resume=True, fingerprint=radius_2)
    assert error.value.differences == [("settings.median_radius", 1, 2)]
    assert tree_bytes(partial_path(target)) == before
    save(make_result(), target, resume=True, fingerprint=radius_1)
    xr.testing.assert_identical(open_result(target).compute(), reference())
    # The same again: already complete. Other settings: refused, nothing changes.
    finished = tree_bytes(target)
    assert save(make_result(), target, resume=True, fingerprint=radius_1) == target
    with pytest.raises(ResumeMismatchError, match=r"already complete.*median_radius was 1, now 2"):
        save(make_result(), target, resume=True, fingerprint=radius_2)
    assert tree_bytes(target) == finished


def test_result_attributes_and_package_version_are_part_of_the_fingerprint(tmp_path, monkeypatch):
    target = tmp_path / "result.zarr"
    with pytest.raises(RuntimeError):
        save(make_result(fail_at=4), target)
    other = make_result().assign_attrs(threshold=3000)
    with pytest.raises(
        ResumeMismatchError, match=r"result attributes.threshold was 2000, now 3000"
    ):
        save(other, target, resume=True)
    monkeypatch.setattr("nima_lessons.store.__version__", "99.0")
    with pytest.raises(ResumeMismatchError, match=r"nima_lessons version was '.*', now '99.0'"):
        save(make_result(), target, resume=True)


def test_describe_input_tells_files_apart_cheaply(tmp_path):
    import tifffile

    image = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
    tifffile.imwrite(tmp_path / "a.tif", image)
    first = describe_input(tmp_path / "a.tif", image)
    assert first == describe_input(tmp_path / "a.tif", image)  # stable
    assert first["shape"] == [2, 16, 16] and first["dtype"] == "uint16"
    tifffile.imwrite(tmp_path / "a.tif", image, metadata={"axes": "TYX", "note": "other"})
    assert describe_input(tmp_path / "a.tif", image)["metadata"] != first["metadata"]
    frame = np.ones((16, 16))
    changed = frame.copy()
    changed[3, 4] = 2
    assert (
        describe_input("dark.tif", frame, include_values=True)["values"]
        != describe_input("dark.tif", changed, include_values=True)["values"]
    )


# ------------------------------------------------------------ only what is ours


def test_overwrite_replaces_only_results_of_this_package(tmp_path):
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "precious.txt").write_text("years of work")
    foreign_store = tmp_path / "foreign.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference().to_zarr(foreign_store)
    text_file = tmp_path / "notes.nc"
    text_file.write_text("not netCDF")
    foreign_netcdf = tmp_path / "foreign.nc"
    reference().to_netcdf(foreign_netcdf)
    for target in (folder, foreign_store, text_file, foreign_netcdf):
        before = tree_bytes(target) if target.is_dir() else target.read_bytes()
        with pytest.raises(NotOurOutputError, match=r"did not write.*never replaced"):
            save(make_result(), target, overwrite=True)
        with pytest.raises((NotOurOutputError, ResumeMismatchError)):
            save(make_result(), target, resume=True)
        assert (tree_bytes(target) if target.is_dir() else target.read_bytes()) == before
        assert not is_complete(target)
    # Results of this package are replaced, zarr and netCDF alike.
    for name in ("ours.zarr", "ours.nc"):
        save(make_result(4), tmp_path / name)
        save(make_result(), tmp_path / name, overwrite=True)
        xr.testing.assert_identical(open_result(tmp_path / name).compute(), reference())


def test_a_foreign_folder_in_place_of_the_partial_store_is_kept(tmp_path):
    target = tmp_path / "result.zarr"
    partial_path(target).mkdir()
    (partial_path(target) / "mine.txt").write_text("not a save")
    with pytest.raises(NotOurOutputError, match="did not write"):
        save(make_result(), target, overwrite=True)
    assert (partial_path(target) / "mine.txt").read_text() == "not a save"


def test_output_below_a_file_is_refused_clearly(tmp_path):
    (tmp_path / "results").write_text("a file")
    with pytest.raises(NotADirectoryError, match=r"results is a file, not a folder"):
        save(make_result(), tmp_path / "results" / "out.zarr")


# ------------------------------------------------------ disks that refuse data

DISK_LIMITED = """
import json, resource, signal, sys
sys.path.insert(0, {tests!r})
import dask
import numpy as np
from test_store import make_result
from nima_lessons.store import WriteError, save


def refuse_large_files_from(block, block_info=None):
    # From this time point on, no file may grow past 100 bytes: as a full disk.
    if block_info[None]["array-location"][0][0] >= {limit_at}:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
    return block


signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
result = make_result(8)
image = result["image"].data.map_blocks(refuse_large_files_from, meta=np.empty((0,) * 4, "u2"))
result["image"] = result["image"].copy(data=image)
try:
    with dask.config.set(scheduler="synchronous"):
        save(result, {target!r})
except WriteError as error:
    print(json.dumps({{"error": str(error), "errno": error.errno}}))
    sys.exit(5)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("name", "limit_at"), [("result.zarr", 3), ("result.nc", 0)])
def test_a_full_disk_gives_one_clear_error_and_keeps_what_can_be_resumed(tmp_path, name, limit_at):
    target = tmp_path / name
    script = DISK_LIMITED.format(tests=str(Path(__file__).parent), target=str(target),
                                 limit_at=limit_at)  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 5, done.stderr
    failure = json.loads(done.stdout)
    assert failure["errno"] in (errno.EFBIG, errno.EIO)
    assert f"could not write {target}" in failure["error"]
    assert "MiB free on its disk" in failure["error"]
    assert not target.exists() and not find_leftovers(target)
    if target.suffix == ".nc":
        assert "nothing was kept" in failure["error"]
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        return
    assert f"kept in {partial_path(target)}" in failure["error"] and "--resume" in failure["error"]
    written, total = save_progress(target)
    assert 0 < written < total
    save(make_result(), target, resume=True)
    assert tree_bytes(target) == tree_bytes(save(make_result(), tmp_path / "whole.zarr"))


# ---------------------------------------------------------------- leftovers

SLOW_NETCDF = """
import sys
sys.path.insert(0, {tests!r})
import dask
from test_store import make_result
from nima_lessons.store import save
with dask.config.set(scheduler="threads", num_workers=2):
    save(make_result(gate={gate!r}), {target!r})
"""


@pytest.mark.slow
def test_killed_netcdf_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "result.nc"
    script = SLOW_NETCDF.format(tests=str(Path(__file__).parent), target=str(target),
                                gate=str(tmp_path / "never"))  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not find_leftovers(target) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        writer.kill()
        writer.wait()
    leftovers = find_leftovers(target)
    assert [p.name.startswith(".result.nc.partial-") for p in leftovers] == [True]
    with pytest.warns(StaleLockWarning):
        save(make_result(), target)
    assert not find_leftovers(target) and not lock_path(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.nc"]
    xr.testing.assert_identical(open_result(target).compute(), reference())
