"""The exact median: bit-identical to scipy.ndimage.median_filter, plane by plane."""

import os
import subprocess
import sys
import threading
import time
import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr

from nima_lessons.pipeline import make_footprint, median, median_plane
from nima_lessons.pipeline._median import (
    _cross_median,
    _filter_with_kernel,
    _square_median,
)

SHAPES = [
    (0, 0), (0, 5), (5, 0), (1, 1), (1, 2), (2, 1), (1, 9), (9, 1), (2, 2), (2, 3), (3, 2),
    (3, 3), (5, 7), (8, 8), (31, 17),
]  # fmt: skip
KERNEL_DTYPES = [
    "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float32", "float64",
]  # fmt: skip
KERNELS = {"disk": _cross_median, "square": _square_median}


def scipy_median(plane, footprint, radius):
    return ndi.median_filter(plane, footprint=make_footprint(footprint, radius), mode="reflect")


def random_plane(rng, shape, dtype, n_values=None):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = rng.normal(0.0, 100.0, shape)
        if n_values:  # many ties
            values = np.round(values / 100.0 * n_values)
        return values.astype(dtype)
    info = np.iinfo(dtype)
    low, high = (0, n_values) if n_values else (max(info.min, -(2**40)), min(info.max, 2**40))
    return rng.integers(low, high, shape, endpoint=True).astype(dtype)


def assert_same_bytes(result, expected, message=""):
    assert result.dtype == expected.dtype and result.shape == expected.shape, message
    # Bytes, not values: NaN, infinities and the signs of zeros must agree too.
    assert result.tobytes() == expected.tobytes(), message


@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
@pytest.mark.parametrize("footprint", ["disk", "square"])
def test_radius_one_kernels_equal_scipy_for_every_shape(dtype, footprint):
    rng = np.random.default_rng(abs(hash((dtype, footprint))) % 2**32)
    for shape in SHAPES:
        for n_values in (None, 3):
            plane = random_plane(rng, shape, dtype, n_values)
            expected = scipy_median(plane, footprint, 1)
            assert_same_bytes(median_plane(plane, footprint, 1), expected, f"{shape} {n_values}")


@pytest.mark.parametrize("footprint", ["disk", "square"])
@pytest.mark.parametrize("dtype", ["uint16", "int64", "float32", "float64"])
def test_row_bands_join_without_seams(footprint, dtype):
    # Bands share their edge rows as neighbours; more bands than rows is allowed.
    rng = np.random.default_rng(12)
    for shape in [(1, 6), (2, 5), (7, 3), (40, 33)]:
        plane = random_plane(rng, shape, dtype)
        expected = scipy_median(plane, footprint, 1)
        for bands in (2, 3, 7, 64):
            assert_same_bytes(_filter_with_kernel(plane, footprint, bands), expected, f"{shape}")


def test_kernels_are_bit_identical_on_large_float_planes():
    rng = np.random.default_rng(1)
    plane = rng.random((257, 300))
    for footprint in ("disk", "square"):
        assert_same_bytes(median_plane(plane, footprint, 1), scipy_median(plane, footprint, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinities_are_ordered_like_scipy(dtype):
    rng = np.random.default_rng(2)
    plane = rng.normal(size=(20, 20)).astype(dtype)
    plane[rng.random(plane.shape) < 0.2] = np.inf
    plane[rng.random(plane.shape) < 0.2] = -np.inf
    for footprint in ("disk", "square"):
        assert_same_bytes(median_plane(plane, footprint, 1), scipy_median(plane, footprint, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_planes_equal_scipy(dtype):
    rng = np.random.default_rng(3)
    plane = rng.normal(size=(15, 12)).astype(dtype)
    plane[rng.random(plane.shape) < 0.1] = np.nan
    plane[0, 0] = -np.nan  # a NaN with its sign bit set
    for footprint in ("disk", "square"):
        assert_same_bytes(median_plane(plane, footprint, 1), scipy_median(plane, footprint, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_signed_zeros_equal_scipy_bit_for_bit(dtype):
    # Medians of neighbourhoods mixing -0.0 and 0.0: scipy's pick depends on its
    # selection order, so such planes go to scipy; the sign must match.
    rng = np.random.default_rng(4)
    plane = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0], dtype=dtype), size=(24, 23))
    for footprint in ("disk", "square"):
        expected = scipy_median(plane, footprint, 1)
        assert np.signbit(expected[expected == 0]).any()  # the case is exercised
        assert_same_bytes(median_plane(plane, footprint, 1), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planes_with_only_positive_zeros_stay_compiled(dtype):
    rng = np.random.default_rng(5)
    plane = rng.choice(np.array([0.0, 1.0, -1.0, 2.0], dtype=dtype), size=(24, 23))
    for footprint, kernel in KERNELS.items():
        out = np.empty_like(plane)
        assert not kernel(plane, out, 0, plane.shape[0])  # no NaN, no -0.0: the kernel's result
        assert_same_bytes(out, scipy_median(plane, footprint, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_flag_nan_and_negative_zero_in_the_rows_they_filter(dtype):
    for special in (np.nan, -np.nan, -0.0):
        for row in (0, 3, 6):
            plane = np.ones((7, 5), dtype=dtype)
            plane[row, 4] = special
            for kernel in KERNELS.values():
                assert kernel(plane, np.empty_like(plane), 0, 7), (special, row)
                assert kernel(plane, np.empty_like(plane), row, row + 1), (special, row)
                assert not kernel(plane, np.empty_like(plane), 0, row), (special, row)


@pytest.mark.parametrize(("footprint", "radius"), [("disk", 2), ("disk", 3), ("square", 2)])
def test_other_footprints_equal_scipy(footprint, radius):
    plane = np.random.default_rng(4).integers(0, 1000, (23, 19)).astype(np.uint16)
    np.testing.assert_array_equal(
        median_plane(plane, footprint, radius), scipy_median(plane, footprint, radius)
    )


def test_bool_planes_equal_scipy():
    plane = np.random.default_rng(5).random((11, 13)) > 0.5
    result = median_plane(plane, "disk", 1)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, scipy_median(plane, "disk", 1))


def test_float16_planes_equal_scipy_on_the_exact_float32_values():
    plane = np.random.default_rng(5).normal(size=(11, 13)).astype(np.float16)
    result = median_plane(plane, "square", 1)
    assert result.dtype == np.float16
    expected = scipy_median(plane.astype(np.float32), "square", 1).astype(np.float16)
    np.testing.assert_array_equal(result, expected)


def test_radius_zero_and_views():
    plane = np.random.default_rng(6).random((12, 10))
    np.testing.assert_array_equal(median_plane(plane, "disk", 0), plane)
    view = plane[::2, ::-1]
    np.testing.assert_array_equal(median_plane(view, "square", 1), scipy_median(view, "square", 1))


def test_footprints_match_skimage_shapes():
    from skimage.morphology import disk

    for radius in range(4):
        np.testing.assert_array_equal(make_footprint("disk", radius), disk(radius).astype(bool))
    assert make_footprint("square", 2).shape == (5, 5)


def other_thread_progress(work, calls: int = 20) -> int:
    """How often this thread gets to run while another thread calls ``work`` repeatedly.

    The switch interval is raised far above the test's length, so a thread
    holding the GIL keeps it until it blocks or ends: this thread then runs
    only if ``work`` releases the GIL.
    """
    done = threading.Event()

    def worker():
        for _ in range(calls):
            work()
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        thread = threading.Thread(target=worker)
        progress = 0
        thread.start()
        while not done.is_set():
            progress += 1
            time.sleep(0)  # hand the GIL over if the worker wants it
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    return progress


@pytest.mark.parametrize("footprint", ["disk", "square"])
def test_kernels_release_the_gil_while_they_run(footprint):
    kernel = KERNELS[footprint]
    assert kernel.targetoptions["nogil"]
    plane = np.random.default_rng(13).random((1024, 1024)).astype(np.float32)
    out = np.empty_like(plane)
    kernel(plane, out, 0, 1024)
    # Twenty calls of a millisecond or more each leave this thread plenty of turns...
    assert other_thread_progress(lambda: kernel(plane, out, 0, 1024)) > 10
    # ...while Python code holding the GIL leaves it none but at the start and end.
    assert other_thread_progress(lambda: sum(range(50_000))) < 5


EDGE_SCRIPT = """
import numpy as np, scipy.ndimage as ndi
from nima_lessons.pipeline._median import _filter_with_kernel, make_footprint
rng = np.random.default_rng(0)
for dtype in ("uint8", "float64"):
    for shape in [(0, 0), (0, 4), (4, 0), (1, 1), (1, 5), (5, 1), (2, 2), (3, 2), (2, 3)]:
        plane = (rng.random(shape) * 200).astype(dtype)
        for footprint in ("disk", "square"):
            shape_1 = make_footprint(footprint, 1)
            expected = ndi.median_filter(plane, footprint=shape_1, mode="reflect")
            for bands in (1, 2, 3):
                assert _filter_with_kernel(plane, footprint, bands).tobytes() == expected.tobytes()
print("ok")
"""


@pytest.mark.slow  # compiles the kernels afresh, with bounds checks
def test_edge_shapes_stay_in_bounds_with_numba_bounds_checks(tmp_path):
    # A fresh cache directory: the cached kernels were compiled without checks.
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", EDGE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"footprint": "ball"}, "footprint"),
        ({"radius": -1}, "radius"),
        ({"radius": 1.5}, "radius"),
        ({"threads": 0}, "threads"),
        ({"threads": 1.0}, "threads"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        median_plane(np.zeros((3, 3)), **kwargs)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_number_of_band_threads_equals_scipy(threads):
    plane = np.random.default_rng(3).random((257, 129)).astype(np.float32)
    expected = ndi.median_filter(plane, footprint=make_footprint("disk", 1), mode="reflect")
    np.testing.assert_array_equal(median_plane(plane, threads=threads), expected)


def test_lazy_median_filters_each_plane_on_one_thread(monkeypatch):
    # Under dask's synchronous scheduler every task runs on the main thread, where
    # a large plane would otherwise be split into bands over every core.
    import dask

    from nima_lessons.pipeline import _median

    threads_used = []

    def record(plane, footprint, bands):
        threads_used.append(bands)
        return original(plane, footprint, bands)

    original = _median._filter_with_kernel
    monkeypatch.setattr(_median, "_filter_with_kernel", record)
    monkeypatch.setattr(_median, "_BAND_MIN_PIXELS", 16)
    planes = np.random.default_rng(4).random((2, 128, 64))
    im = xr.DataArray(da.from_array(planes, chunks=(1, 128, 64)), dims=("T", "Y", "X"))
    with dask.config.set(scheduler="synchronous"):
        result = median(im).values
    assert threads_used == [1, 1]
    assert _median._band_count(planes[0]) > 1 or _median._available_cores() == 1  # eager calls band
    expected = ndi.median_filter(planes, footprint=make_footprint("disk", 1)[None], mode="reflect")
    np.testing.assert_array_equal(result, expected)


def test_plane_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        median_plane(np.zeros((2, 3, 3)))


def image_4d(rng):
    data = rng.integers(0, 4000, (2, 3, 16, 20)).astype(np.uint16)
    return xr.DataArray(data, dims=("T", "C", "Y", "X"), coords={"C": ["G", "R", "C"]})


def test_lazy_median_equals_scipy_on_each_plane():
    im = image_4d(np.random.default_rng(7))
    lazy = median(im.chunk({"T": 1, "C": 1}), "disk", 1)
    assert isinstance(lazy.data, da.Array)
    assert lazy.dims == im.dims and lazy.dtype == im.dtype
    assert lazy.chunks == ((1, 1), (1, 1, 1), (16,), (20,))
    result = lazy.compute()
    for t in range(2):
        for c in range(3):
            expected = scipy_median(im.values[t, c], "disk", 1)
            np.testing.assert_array_equal(result.values[t, c], expected)
    assert list(result.C.values) == ["G", "R", "C"]


def test_eager_median_stays_in_numpy():
    im = image_4d(np.random.default_rng(8))
    result = median(im, "square", 1)
    assert isinstance(result.data, np.ndarray)
    np.testing.assert_array_equal(result.values[1, 2], scipy_median(im.values[1, 2], "square", 1))


@pytest.mark.parametrize(("footprint", "radius"), [("disk", 1), ("square", 1), ("disk", 3)])
def test_split_planes_are_filtered_in_overlapping_tiles_without_artefacts(footprint, radius):
    im = image_4d(np.random.default_rng(9))
    # Uneven tiles, one of them a single pixel wide (thinner than the overlap).
    tiled = im.chunk({"T": 1, "C": 1, "Y": (5, 1, 10), "X": (7, 7, 6)})
    lazy = median(tiled, footprint, radius)
    assert lazy.chunks == tiled.chunks
    result = lazy.values
    for t in range(2):
        for c in range(3):
            expected = scipy_median(im.values[t, c], footprint, radius)
            np.testing.assert_array_equal(result[t, c], expected)


def test_dim_order_is_kept():
    im = image_4d(np.random.default_rng(11)).transpose("Y", "T", "X", "C")
    result = median(im.chunk({"T": 1, "C": 1}))
    assert result.dims == ("Y", "T", "X", "C")
    expected = scipy_median(im.values[:, 1, :, 2], "disk", 1)
    np.testing.assert_array_equal(result.values[:, 1, :, 2], expected)


def test_whole_planes_give_no_warning():
    im = image_4d(np.random.default_rng(10)).chunk({"T": 1, "C": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        median(im)
