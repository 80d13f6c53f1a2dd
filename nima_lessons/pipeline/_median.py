"""Exact median filtering of image planes: fast compiled kernels and their lazy lift.

Why not simply ``scipy.ndimage.median_filter``: for every pixel it copies the
neighbourhood into a buffer of doubles and runs a quickselect, 0.2 to 0.5 s
for a 2048 x 2048 plane, while the step is memory-bound by nature (one read
and one write of a float32 plane take about 1 ms). nima filters every plane with a
radius-1 disk, so this module compiles, with numba, the two radius-1
footprints:

* the 5-point cross (radius-1 disk): the median of five is taken with
  branch-free minimum / maximum operations (10 per pixel), which LLVM turns
  into SIMD min/max instructions over whole rows;
* the 3 x 3 square: each column triple is sorted once per row (6 operations)
  and the median of nine is the median of the largest low, the median of the
  middles and the smallest high of three neighbouring sorted columns (12 more).

Large planes filtered from the main thread are split into bands of rows that
run on several threads (the kernels release the GIL); planes filtered by dask
worker threads, which already filter planes side by side, run whole.

Exactness: a median picks one of its input values and the kernels compare with
``<`` only (no fastmath, which would let LLVM assume away NaN and signed
zeros), so for every ordinary value the result is bit-identical to scipy's.
Two cases order differently from scipy's quickselect: NaN (unordered) and
``-0.0 == 0.0`` (equal values with different bits, where scipy's choice depends
on its selection order). The kernels detect both in a float plane while they
run, and such planes are filtered by scipy itself, so the result is
bit-identical in every case, signs of zeros included. Infinities are ordinary
ordered values. Every other footprint and dtype goes through scipy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import scipy.ndimage as ndi
import xarray as xr
from numba import types
from numba.extending import overload

from nima_lessons.pipeline._lift import apply_overlapped, apply_per_plane, is_tiled

__all__ = ["FOOTPRINTS", "make_footprint", "median", "median_plane"]

FOOTPRINTS = ("disk", "square")

# Integer and float types the compiled kernels handle; anything else (bool,
# float16, complex, object) goes through scipy.
_KERNEL_DTYPES = frozenset(
    np.dtype(name)
    for name in (
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "float32", "float64",
    )
)  # fmt: skip

# Planes from this many pixels up are split into row bands over threads.
_BAND_MIN_PIXELS = 2**20
# The fewest rows per band: below this the threads cost more than they save.
_BAND_MIN_ROWS = 64


def make_footprint(footprint: str = "disk", radius: int = 1) -> np.ndarray:
    """Return the boolean footprint of a median filter.

    Parameters
    ----------
    footprint : {"disk", "square"}
        ``"disk"``: pixels whose distance to the centre is at most ``radius``
        (as ``skimage.morphology.disk``); ``"square"``: a (2r+1) x (2r+1) square.
    radius : int
        Radius in pixels, at least 0.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape (2r+1, 2r+1).

    Raises
    ------
    ValueError
        If ``footprint`` is unknown or ``radius`` is negative or not an integer.

    Examples
    --------
    >>> make_footprint("disk", 1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    if footprint not in FOOTPRINTS:
        raise ValueError(f"footprint must be one of {FOOTPRINTS}, got {footprint!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")
    offsets = np.arange(-radius, radius + 1)
    if footprint == "square":
        return np.ones((offsets.size, offsets.size), dtype=bool)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


@numba.njit(inline="always")
def _lower(a, b):
    # One comparison per select (not one shared by a min and a max): LLVM
    # then lowers each to a single min/max instruction, branch-free even in
    # the scalar code at the ends of rows.
    return a if a < b else b


@numba.njit(inline="always")
def _upper(a, b):
    return a if b < a else b


@numba.njit(inline="always")
def _median3(a, b, c):
    return _upper(_lower(a, b), _lower(_upper(a, b), c))


@numba.njit(inline="always")
def _median5(up, left, centre, right, down):
    # The larger of the two pair minima and the smaller of the two pair maxima
    # are the 2nd and 4th of the four outer values; the median of five is the
    # median of those two and the centre.
    second = _upper(_lower(up, down), _lower(left, right))
    fourth = _lower(_upper(up, down), _upper(left, right))
    return _median3(centre, second, fourth)


@numba.njit(inline="always")
def _median9(low, mid, high, left, centre, right):
    # The median of nine is the median of the largest of the three lows, the
    # median of the three middles and the smallest of the three highs.
    largest_low = _upper(_upper(low[left], low[centre]), low[right])
    smallest_high = _lower(_lower(high[left], high[centre]), high[right])
    return _median3(largest_low, _median3(mid[left], mid[centre], mid[right]), smallest_high)


def _row_is_special(row):
    """Whether a float row holds NaN or -0.0; always False for integers (compiled)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_row_is_special, inline="always")
def _row_is_special_impl(row):
    if not isinstance(row.dtype, types.Float):
        return lambda row: False
    signed_of_width: dict[int, type[np.signedinteger]] = {32: np.int32, 64: np.int64}
    bits_type = signed_of_width[row.dtype.bitwidth]
    magnitude = bits_type(np.iinfo(bits_type).max)
    infinity = np.array(np.inf, dtype=row.dtype.name).view(bits_type)[()]
    negative_zero = bits_type(np.iinfo(bits_type).min)

    def impl(row):
        # On the IEEE-754 bits: NaN is a magnitude above infinity's, -0.0 the
        # smallest signed integer. Integer max/min reductions vectorise where
        # float ones (which would need reassociation) do not.
        bits = row.view(bits_type)
        largest = bits_type(0)
        smallest = bits_type(0)
        for j in range(bits.shape[0]):
            value = bits[j]
            # np.bitwise_and keeps the lanes' width (``&`` would widen to int64).
            largest = max(largest, np.bitwise_and(value, magnitude))
            smallest = min(smallest, value)
        return largest > infinity or smallest == negative_zero

    return impl


@numba.njit(cache=True, nogil=True)
def _cross_median(plane, out, start, stop):
    """Fill rows [start, stop) of ``out`` with the 5-point-cross median of ``plane``.

    Returns whether those rows of ``plane`` hold NaN or -0.0. With radius 1,
    scipy's ``mode="reflect"`` repeats the edge pixel: indices are clamped.
    """
    n_rows, n_cols = plane.shape
    special = False
    if n_cols == 0:
        return special
    last = n_cols - 1
    for i in range(start, stop):
        above = plane[max(i - 1, 0)]
        below = plane[min(i + 1, n_rows - 1)]
        row = plane[i]
        result = out[i]
        # Interior columns without clamping, so that the loop vectorises.
        for j in range(1, last):
            result[j] = _median5(above[j], row[j - 1], row[j], row[j + 1], below[j])
        result[0] = _median5(above[0], row[0], row[0], row[min(1, last)], below[0])
        result[last] = _median5(
            above[last], row[max(last - 1, 0)], row[last], row[last], below[last]
        )
        # Checked while the row is in cache: no second pass over memory.
        special |= _row_is_special(row)
    return special


@numba.njit(cache=True, nogil=True)
def _square_median(plane, out, start, stop):
    """Fill rows [start, stop) of ``out`` with the 3 x 3 median of ``plane``.

    Returns whether those rows of ``plane`` hold NaN or -0.0.
    """
    n_rows, n_cols = plane.shape
    special = False
    if n_cols == 0:
        return special
    last = n_cols - 1
    # Each column triple of the current row, sorted: low <= mid <= high.
    low = np.empty(n_cols, plane.dtype)
    mid = np.empty(n_cols, plane.dtype)
    high = np.empty(n_cols, plane.dtype)
    for i in range(start, stop):
        above = plane[max(i - 1, 0)]
        below = plane[min(i + 1, n_rows - 1)]
        row = plane[i]
        for j in range(n_cols):
            pair_low = _lower(above[j], below[j])
            pair_high = _upper(above[j], below[j])
            low[j] = _lower(pair_low, row[j])
            high[j] = _upper(pair_high, row[j])
            mid[j] = _upper(pair_low, _lower(pair_high, row[j]))
        result = out[i]
        for j in range(1, last):
            result[j] = _median9(low, mid, high, j - 1, j, j + 1)
        result[0] = _median9(low, mid, high, 0, 0, min(1, last))
        result[last] = _median9(low, mid, high, max(last - 1, 0), last, last)
        special |= _row_is_special(row)
    return special


_KERNELS = {"disk": _cross_median, "square": _square_median}

_band_pool: ThreadPoolExecutor | None = None
_band_pool_lock = threading.Lock()


def _forget_band_pool() -> None:
    # A forked child inherits the pool object but not its threads.
    global _band_pool
    _band_pool = None


os.register_at_fork(after_in_child=_forget_band_pool)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _band_count(plane: np.ndarray) -> int:
    """How many row bands (threads) to filter ``plane`` with.

    One unless the plane is large and the caller is the main thread: dask's
    worker threads already filter several planes at once, and bands there
    would only add threads competing for the same cores.
    """
    if plane.size < _BAND_MIN_PIXELS or threading.current_thread() is not threading.main_thread():
        return 1
    return max(1, min(_available_cores(), plane.shape[0] // _BAND_MIN_ROWS))


def _run_kernel(
    kernel: Callable[[np.ndarray, np.ndarray, int, int], bool],
    plane: np.ndarray,
    out: np.ndarray,
    bands: int,
) -> bool:
    """Run ``kernel`` on ``bands`` row bands, the first on this thread; return "special"."""
    n_rows = plane.shape[0]
    bands = max(1, min(bands, n_rows))
    if bands == 1:
        return kernel(plane, out, 0, n_rows)
    global _band_pool
    with _band_pool_lock:
        if _band_pool is None:
            _band_pool = ThreadPoolExecutor(
                max_workers=max(1, _available_cores() - 1), thread_name_prefix="median-band"
            )
        pool = _band_pool
    edges = [n_rows * band // bands for band in range(bands + 1)]
    others = [
        pool.submit(kernel, plane, out, edges[band], edges[band + 1]) for band in range(1, bands)
    ]
    special = kernel(plane, out, edges[0], edges[1])
    # A list, not a generator: every band must finish before ``out`` is returned.
    return any([future.result() for future in others]) or special


# Dtypes scipy cannot filter but a kernel type holds exactly: a median only
# picks one of the values, so converting there and back changes nothing.
_WIDENED: dict[np.dtype, np.dtype] = {
    np.dtype("float16"): np.dtype("float32"),
    np.dtype("bool"): np.dtype("uint8"),
}


def _uses_kernel(plane: np.ndarray, radius: int) -> bool:
    return radius == 1 and plane.ndim == 2 and plane.dtype in _KERNEL_DTYPES


def median_plane(
    plane: np.ndarray, footprint: str = "disk", radius: int = 1, *, threads: int | None = None
) -> np.ndarray:
    """Median-filter one 2-D plane, bit-identical to ``scipy.ndimage.median_filter``.

    The radius-1 disk and the 3x3 square of integer and float32/float64
    planes run a compiled kernel (see the module notes; about a hundred times
    faster than scipy, releasing the GIL); every other footprint, dtypes
    without a kernel (complex, object) and float planes holding NaN or -0.0
    are passed to ``scipy.ndimage.median_filter(plane, footprint=...,
    mode="reflect")``. bool and float16 planes, which scipy's radius-1 path
    does not take, are filtered as uint8 and float32 (exact: a median picks
    one of the values).

    Parameters
    ----------
    plane : numpy.ndarray
        2-D image (any shape, including 1 x N and empty ones).
    footprint : {"disk", "square"}
        Neighbourhood shape, see :func:`make_footprint`.
    radius : int
        Neighbourhood radius in pixels; 0 returns a copy.
    threads : int, optional
        How many threads filter the plane's row bands. Default: one per CPU
        core for a plane of 2**20 pixels or more filtered from the main
        thread, else 1. :func:`median` passes 1: dask already filters planes
        side by side, and its synchronous scheduler means one core.

    Returns
    -------
    numpy.ndarray
        Filtered plane, same shape and dtype; borders follow scipy's
        ``mode="reflect"`` (the edge pixel is repeated).

    Raises
    ------
    ValueError
        If ``plane`` is not 2-D, or ``footprint``, ``radius`` or ``threads`` is invalid.

    Notes
    -----
    Signed zeros: ``-0.0`` and ``0.0`` compare equal, so which one a median
    of both returns depends on the order of selection. A float plane holding
    ``-0.0`` is therefore filtered by scipy, and the result matches scipy's
    bit for bit, zero signs included; a plane without ``-0.0`` returns only
    ``+0.0`` zeros, as scipy does.

    A plane of 2**20 pixels or more filtered from the main thread is split
    into bands of rows filtered on as many threads as there are CPU cores
    (``threads`` overrides this).

    Examples
    --------
    >>> plane = np.array([[1, 9, 2], [8, 3, 7], [4, 6, 5]], dtype=np.uint8)
    >>> median_plane(plane, "disk", 1)
    array([[1, 3, 2],
           [4, 7, 5],
           [4, 5, 5]], dtype=uint8)
    """
    shape = make_footprint(footprint, radius)
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"plane must be 2-D (Y, X), got shape {plane.shape}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
    ):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    if plane.dtype in _WIDENED:
        widened = median_plane(
            plane.astype(_WIDENED[plane.dtype]), footprint, radius, threads=threads
        )
        return widened.astype(plane.dtype)
    if not _uses_kernel(plane, radius):
        return ndi.median_filter(plane, footprint=shape, mode="reflect")
    return _filter_with_kernel(plane, footprint, _band_count(plane) if threads is None else threads)


def _filter_with_kernel(plane: np.ndarray, footprint: str, bands: int) -> np.ndarray:
    """The radius-1 ``footprint`` median of a kernel dtype plane, on ``bands`` row bands."""
    if plane.size == 0:
        return plane.copy()
    source = np.ascontiguousarray(plane)
    out = np.empty_like(source)
    if _run_kernel(_KERNELS[footprint], source, out, bands):
        # NaN or -0.0: scipy orders them its own way, so scipy decides.
        return ndi.median_filter(plane, footprint=make_footprint(footprint, 1), mode="reflect")
    return out


def median(im: xr.DataArray, footprint: str = "disk", radius: int = 1) -> xr.DataArray:
    """Median-filter every (Y, X) plane of an image, lazily.

    Parameters
    ----------
    im : xarray.DataArray
        Image with dims including ("Y", "X"), numpy- or dask-backed. Planes
        split into tiles (Y or X in several chunks) are filtered tile by tile
        with an overlap of ``radius`` pixels and give the same result as whole
        planes: no tile border shows.
    footprint : {"disk", "square"}
        Neighbourhood shape (nima uses a radius-1 disk).
    radius : int
        Neighbourhood radius in pixels.

    Returns
    -------
    xarray.DataArray
        Same dims, coordinates and dtype; dask-backed if ``im`` is.

    Examples
    --------
    >>> im = xr.DataArray(np.eye(4, dtype=np.uint8)[None], dims=("T", "Y", "X"))
    >>> int(median(im).sum())  # only the corners survive: they see themselves twice
    2
    """
    make_footprint(footprint, radius)
    # One thread per plane: dask's scheduler decides how many planes run at once.
    kwargs = {"footprint": footprint, "radius": radius, "threads": 1}
    if is_tiled(im):
        # Each output pixel sees only pixels within ``radius``: overlapping tiles are exact.
        return apply_overlapped(median_plane, im, int(radius), kwargs=kwargs)
    return apply_per_plane(median_plane, im, kwargs=kwargs, name="median")
