"""The suite on a dask.distributed LocalCluster of worker processes.

Results must equal those of the threaded scheduler, graphs must pickle and send
large constants once, and a worker killed mid-computation must not change a result.
"""

from __future__ import annotations

import os
import time

import cloudpickle
import dask
import dask.array as da
import numpy as np
import psutil
import pytest
import scipy.ndimage as ndi
import xarray as xr
from distributed import Client, get_task_stream

from nima_lessons.cluster import local_cluster
from nima_lessons.course.synthetic import NUCLEI_THRESHOLD, nuclei_image, ratiometric_timelapse
from nima_lessons.labels import label
from nima_lessons.pipeline import run_pipeline
from nima_lessons.store import open_result, save

pytestmark = pytest.mark.distributed

PLANE_SHAPE = (96, 96)


def worker_processes() -> set[psutil.Process]:
    """Live descendants of this process but multiprocessing's lifelong resource tracker."""
    children = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                children.add(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return children


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, shared by the module (starting costs seconds).

    Closing the cluster must stop every process it started, the workers a
    nanny restarted included.
    """
    before = worker_processes()
    with local_cluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        yield client
    _, alive = psutil.wait_procs(worker_processes() - before, timeout=20)
    assert not alive, f"processes left running: {[p.cmdline() for p in alive]}"


def ratiometric_result(n_t: int = 3, image_store=None):
    """Pipeline result on a small synthetic time-lapse; the image is read lazily
    from ``image_store`` when given, so that its tasks hold no pixel data."""
    data = ratiometric_timelapse(n_t=n_t, shape=PLANE_SHAPE, n_cells=4, seed=0)
    image = data.image.chunk({"T": 1, "C": 1, "Z": 1})
    if image_store is not None:
        image = open_result(save(image.rename("image"), image_store))["image"]
    return data, run_pipeline(image, dark=data.dark, flat=data.flat)


def blob_mask(shape=(120, 150), seed=0) -> np.ndarray:
    """Random blobs of many sizes, most of them crossing chunk borders."""
    noise = np.random.default_rng(seed).random(shape)
    return ndi.gaussian_filter(noise, 2.0) > 0.5


def on_cluster(client, collection):
    """Compute on the cluster, checking that the cluster did the work.

    A Dataset is computed with its own ``compute()``: ``dask.compute(dataset)``
    can lose keys shared between variables when optimising the graph
    (pydata/xarray#11329), on any scheduler.
    """
    with get_task_stream(client) as stream:
        if isinstance(collection, xr.Dataset):
            result = collection.compute()
        else:
            result = dask.compute(collection)[0]
    assert stream.data, "no task ran on the cluster"
    return result


def tree_bytes(store) -> dict[str, bytes]:
    return {
        str(path.relative_to(store)): path.read_bytes()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


def pickled_tasks(collection) -> dict:
    """Each task of the graph as the bytes sent to the cluster."""
    return {key: cloudpickle.dumps(task) for key, task in dict(collection.__dask_graph__()).items()}


# ------------------------------------------------------------- same results


def test_pipeline_equals_threaded(client):
    _, result = ratiometric_result()
    threaded = result.compute(scheduler="threads")
    xr.testing.assert_identical(on_cluster(client, result), threaded)
    assert int(threaded["labels"].max()) > 0  # cells were found: a meaningful comparison


def test_label_equals_threaded_and_scipy(client):
    mask = blob_mask()
    labels, n = label(da.from_array(mask, chunks=(40, 50)))
    threaded = dask.compute(labels, n, scheduler="threads")
    distributed = on_cluster(client, (labels, n))
    expected, expected_n = ndi.label(mask)
    assert expected_n > 10
    for got_labels, got_n in (threaded, distributed):
        np.testing.assert_array_equal(got_labels, expected)
        assert int(got_n) == expected_n


def test_nuclei_labelling_counts_the_truth(client):
    nuclei = nuclei_image(shape=(300, 400), seed=3)
    _, n = label(da.from_array(nuclei.image > NUCLEI_THRESHOLD, chunks=(100, 100)))
    assert int(on_cluster(client, n)) == nuclei.count


def test_count_tiled_equals_threaded(client):
    from nima_lessons.counting import STRATEGIES, count_map, count_tiled

    nuclei = nuclei_image(shape=(300, 400), seed=4)
    image = da.from_array(nuclei.image, chunks=(100, 100))
    counts = {strategy: count_tiled(image, strategy) for strategy in STRATEGIES}
    threaded = dask.compute(counts, scheduler="threads")[0]
    assert on_cluster(client, counts) == threaded
    # The exact strategies find the generator's truth on the cluster too.
    assert threaded["global"] == threaded["centroid"] == nuclei.count
    per_tile = count_map(image)
    np.testing.assert_array_equal(
        on_cluster(client, per_tile), per_tile.compute(scheduler="threads")
    )


def test_zarr_save_equals_threaded_save(client, tmp_path):
    _, result = ratiometric_result()
    on_workers = save(result, tmp_path / "distributed.zarr")
    with dask.config.set(scheduler="threads"):
        threaded = save(result, tmp_path / "threaded.zarr")
    assert tree_bytes(on_workers) == tree_bytes(threaded)
    xr.testing.assert_identical(
        open_result(on_workers).compute(scheduler="threads"), result.compute(scheduler="threads")
    )


def test_netcdf_save_equals_threaded(client, tmp_path):
    _, result = ratiometric_result(n_t=2)
    target = save(result, tmp_path / "result.nc")
    xr.testing.assert_identical(
        open_result(target).compute(scheduler="threads"), result.compute(scheduler="threads")
    )


def test_pipeline_command_on_a_running_cluster(client, tmp_path):
    from nima_lessons.cli import main
    from nima_lessons.course.synthetic.ratiometric import write_ratiometric

    folder = write_ratiometric(
        tmp_path / "data", n_t=2, shape=PLANE_SHAPE, n_cells=4, seed=0, progress=False
    )
    inputs = [str(folder / "image.zarr"), "--dark", str(folder / "dark.tif")]
    inputs += ["--flat", str(folder / "flat.tif"), "--no-progress"]
    address = client.scheduler.address
    with get_task_stream(client) as stream:
        status = main(
            [
                "pipeline",
                *inputs[:1],
                str(tmp_path / "cluster.zarr"),
                *inputs[1:],
                "--scheduler",
                address,
            ]
        )
    assert status == 0
    assert stream.data, "the command did not compute on the cluster at " + address
    status = main(
        [
            "pipeline",
            *inputs[:1],
            str(tmp_path / "threads.zarr"),
            *inputs[1:],
            "--scheduler",
            "threads",
        ]
    )
    assert status == 0
    assert tree_bytes(tmp_path / "cluster.zarr") == tree_bytes(tmp_path / "threads.zarr")


# ------------------------------------------------------- what goes to workers


def test_graphs_pickle(client):
    _, result = ratiometric_result(n_t=2)
    labels, n = label(da.from_array(blob_mask(), chunks=(40, 50)))
    for collection in (result, labels, n):
        graph = dict(collection.__dask_graph__())
        restored = cloudpickle.loads(cloudpickle.dumps(graph))
        assert restored.keys() == graph.keys()


def test_dark_and_flat_are_sent_once_whatever_the_number_of_planes(tmp_path):
    plane_nbytes = PLANE_SHAPE[0] * PLANE_SHAPE[1] * 2  # one uint16 plane
    big_tasks = {}
    for n_t in (2, 5):
        data, result = ratiometric_result(n_t, image_store=tmp_path / f"image{n_t}.zarr")
        tasks = pickled_tasks(result)
        big_tasks[n_t] = sum(len(task) >= plane_nbytes for task in tasks.values())
        for name, frame in (("dark", data.dark), ("flat", data.flat)):
            for channel in frame["C"].values:
                raw = np.ascontiguousarray(frame.sel(C=channel).values).tobytes()
                holders = [key for key, task in tasks.items() if raw in task]
                assert len(holders) == 1, (
                    f"the {name} frame of channel {channel} is held by {len(holders)} tasks "
                    f"for T={n_t}; it must be one graph key (e.g. a dask array made once with "
                    "da.from_array / DataArray.chunk) that the per-plane tasks refer to"
                )
    # The image is read from zarr, so only constants may make a task large: their
    # number must not grow with the number of time points.
    assert big_tasks[5] == big_tasks[2], big_tasks


# ------------------------------------------------------------------- faults


def slow_double(block: np.ndarray, seconds: float) -> np.ndarray:
    time.sleep(seconds)
    return 2 * block


def test_worker_killed_mid_computation_does_not_change_the_result(client):
    values = np.arange(16 * 20, dtype=np.int64).reshape(16, 20)
    doubled = da.from_array(values, chunks=(1, 20)).map_blocks(slow_double, seconds=0.3)
    total = doubled.sum(axis=1)
    n_blocks = doubled.npartitions

    def computed(keys) -> bool:
        return any("slow_double" in str(key) or "sum" in str(key) for key in keys)

    with get_task_stream(client) as stream:
        # Unfused, so that the task stream shows each slow_double task by name.
        future = client.compute(total, optimize_graph=False)
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            # A worker holding computed blocks and still busy: killing it loses
            # finished work and interrupts running work.
            processing = client.processing()
            for address, keys in client.has_what().items():
                if computed(keys) and processing.get(address):
                    victim = address
                    break
            time.sleep(0.02)
        assert victim is not None and not future.done(), "no worker was caught mid-computation"
        pid = client.run(os.getpid, workers=[victim])[victim]
        psutil.Process(pid).kill()
        result = future.result(timeout=120)
    np.testing.assert_array_equal(result, 2 * values.sum(axis=1))
    runs = sum("slow_double" in str(task["key"]) for task in stream.data)
    assert runs > n_blocks, "the lost blocks were not computed again"
    # The nanny replaced the worker: the cluster is whole again for later tests.
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.scheduler_info()["workers"]
